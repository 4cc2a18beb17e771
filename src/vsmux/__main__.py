from vsmux.cli.main import main

raise SystemExit(main())
