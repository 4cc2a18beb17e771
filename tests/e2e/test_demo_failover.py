"""``vsmux demo --failover-after``: a primary dies, the stream pauses, then goes on."""

from __future__ import annotations

import io

from rich.console import Console

from vsmux.demo.runner import FAILOVER_PROMOTE_SECONDS, DemoOptions, run_demo


async def test_demo_rides_through_a_failover() -> None:
    out = io.StringIO()
    options = DemoOptions(
        shards=2,
        rate=100.0,
        duration=FAILOVER_PROMOTE_SECONDS + 2.0,
        port=0,
        live=False,
        failover_after=0.5,
    )
    assert await run_demo(options, Console(file=out, width=200)) == 0
    text = out.getvalue()
    assert "of commerce/-80 dies" in text
    assert "is the new primary of commerce/-80; streaming resumes" in text
    assert "stream failed" not in text  # a pause, not an error
    lines = [line for line in text.splitlines() if line.startswith("[")]
    assert int(lines[-1].split("events=")[1].split()[0]) > 100
