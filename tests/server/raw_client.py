"""A grpcio client that sends request bytes as they are, for hostile-request tests.

grpcio is what most clients use, with its limits (16 KiB of response
metadata, 4 MiB responses), so an error message too big for a real client
fails here too. Calls block: run them in worker threads
(``trio.to_thread.run_sync``) while the gateway serves on the Trio loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

VSTREAM = "/vtgateservice.Vitess/VStream"
EXECUTE = "/vtgateservice.Vitess/Execute"
HEALTH = "/grpc.health.v1.Health/Check"


def _identity(data: bytes) -> bytes:
    return data


@dataclass
class Outcome:
    """What one call got: the status code's name, its details and the response bodies."""

    code: str
    details: str
    responses: list[bytes] = field(default_factory=list)
    seconds: float = 0.0


class RawClient:
    def __init__(self, port: int) -> None:
        # No send limit: the server must refuse big requests itself.
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)]
        )

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, body: bytes, timeout: float = 10.0, **kwargs: Any) -> Outcome:
        started = time.monotonic()
        responses: list[bytes] = []
        try:
            if method == VSTREAM:
                stream = self.channel.unary_stream(
                    method, request_serializer=_identity, response_deserializer=_identity
                )
                responses.extend(stream(body, timeout=timeout, **kwargs))
            else:
                unary = self.channel.unary_unary(
                    method, request_serializer=_identity, response_deserializer=_identity
                )
                responses.append(unary(body, timeout=timeout, **kwargs))
        except grpc.RpcError as err:
            return Outcome(
                err.code().name, err.details() or "", responses, time.monotonic() - started
            )
        return Outcome("OK", "", responses, time.monotonic() - started)

    def health(self, timeout: float = 10.0) -> float:
        """Seconds one health check took; raises if it did not report SERVING."""
        started = time.monotonic()
        reply = self.channel.unary_unary(HEALTH)(b"", timeout=timeout)
        assert reply == b"\x08\x01", reply  # status: SERVING
        return time.monotonic() - started


def poll_health(port: int, done: Callable[[], bool], interval: float = 0.02) -> list[float]:
    """Health checks on their own connection until ``done()``; the time each took."""
    times: list[float] = []
    with RawClient(port) as client:
        while True:
            times.append(client.health())
            if done():
                return times
            time.sleep(interval)
