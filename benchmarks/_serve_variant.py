"""``vsmux serve`` with the client responses framed another way (benchmarks only).

Runs the real CLI (``vsmux.cli.main``, so the same wiring, GC settings and
defaults) after replacing one piece in this process, to measure what the
framing of client responses costs end to end:

- ``batch``: nothing replaced; one unit per response, a batch written with
  one ``send_data`` (``vsmux.transport._batched_send``), as shipped;
- ``coalesced``: the framing before one unit per response: the units of a
  send share responses (``ResponsePacker.add_unit`` appends like ``add``, up
  to ``max_response_bytes``), written as shipped (so one response per send);
- ``messages``: one unit per response, each written with grpclib's
  ``Stream.send_message`` (the gateway's write loop before batched sends);
  ``send_message`` can only be awaited, so the session's synchronous write
  (``send_batch_nowait``, where the gateway has it) is off and every batch
  goes through the asyncio writer, as it did then;
- ``coalesced-messages``: both, which is the gateway before one unit per
  response (its writes, its framing).

Usage: python benchmarks/_serve_variant.py --framing messages -- --topology FILE --listen ...
(everything after ``--`` goes to ``vsmux serve``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

FRAMINGS = ("batch", "coalesced", "messages", "coalesced-messages")


async def _send_each(stream: Any, bodies: list[bytes]) -> None:
    # The gateway's write before batched sends: one send_message per body.
    for body in bodies:
        await stream.send_message(body)


def _never_now(stream: Any, bodies: list[bytes]) -> bool:
    # Every batch goes to the asyncio writer.
    return False


def apply(framing: str) -> None:
    """Replace the pieces ``framing`` needs (see the module doc) in this process."""
    # The module whose calls write a session's batches.
    import vsmux.transport._service as gateway
    from vsmux.wire.pack import ResponsePacker

    if not hasattr(gateway, "send_batch"):
        # The gateway writes some other way now: refuse rather than measure nothing.
        raise SystemExit("_serve_variant: vsmux.transport._service no longer uses send_batch")
    if framing in ("coalesced", "coalesced-messages"):
        ResponsePacker.add_unit = ResponsePacker.add  # type: ignore[method-assign]
    if framing in ("messages", "coalesced-messages"):
        gateway.send_batch = _send_each  # type: ignore[attr-defined]
        if hasattr(gateway, "send_batch_nowait"):
            gateway.send_batch_nowait = _never_now  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, serve_args = argv, []
    if "--" in argv:
        cut = argv.index("--")
        ours, serve_args = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--framing", choices=FRAMINGS, required=True)
    args = p.parse_args(ours)
    apply(args.framing)
    from vsmux.cli.main import main as vsmux_main

    return vsmux_main(["serve", *serve_args])


if __name__ == "__main__":
    sys.exit(main())
