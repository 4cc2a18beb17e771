"""The one-line request summary of the session log: bounded, escaped, never raising."""

from __future__ import annotations

from typing import Any

from vsmux.proto import binlogdata, vtgate, vtrpc
from vsmux.server.summary import summarize_request


def sg(keyspace: str, shard: str = "", gtid: str = "current") -> binlogdata.ShardGtid:
    return binlogdata.ShardGtid(keyspace=keyspace, shard=shard, gtid=gtid)


def test_a_usual_request_reads_plainly() -> None:
    request = vtgate.VStreamRequest(
        tablet_type=1,
        vgtid=binlogdata.VGtid(
            shard_gtids=[sg("commerce", "-80", "MySQL56/abc:1-4"), sg("commerce", "80-", "")]
        ),
        filter=binlogdata.Filter(rules=[binlogdata.Rule(match="/.*")]),
        flags=vtgate.VStreamFlags(minimize_skew=True, heartbeat_interval=5),
        caller_id=vtrpc.CallerId(principal="alice"),
    )
    assert summarize_request(request) == (
        "tablet_type=primary shards=commerce/-80@MySQL56/abc:1-4,commerce/80-@copy rules=1 "
        "flags=minimize_skew,heartbeat=5s caller=alice"
    )


def test_client_values_are_escaped_and_cut() -> None:
    request = vtgate.VStreamRequest(
        tablet_type=99,
        vgtid=binlogdata.VGtid(shard_gtids=[sg("k" * 1_000_000, "s\nINFO forged", "g" * 1000)]),
        caller_id=vtrpc.CallerId(principal="alice\r\nINFO vsmux.server forged"),
    )
    line = summarize_request(request)
    assert line.isprintable()
    assert len(line) < 400
    assert line.startswith("tablet_type=99 shards='kkkk")
    assert "caller='alice\\r\\nINFO vsmux.server forged'" in line


def test_many_shards_are_counted_not_listed() -> None:
    request = vtgate.VStreamRequest(
        vgtid=binlogdata.VGtid(shard_gtids=[sg("ks", f"s{i}") for i in range(1000)])
    )
    line = summarize_request(request)
    assert "ks/s7@current,+992 more" in line
    assert len(line) < 300


def test_a_summary_never_raises() -> None:
    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("no such thing")

    assert summarize_request(Broken()) == "(request not summarized: RuntimeError)"  # type: ignore[arg-type]
