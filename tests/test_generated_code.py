"""The committed message classes match protos/ exactly."""

from vsmux.tools import genprotos


def test_committed_proto_code_is_fresh() -> None:
    assert genprotos.main(["--check"]) == 0, "run 'make protos' and commit the result"
