"""Reading ``/metrics`` from a metrics endpoint in a test."""

from __future__ import annotations

import trio


async def scrape(port: int) -> tuple[bytes, bytes]:
    """GET ``/metrics`` from 127.0.0.1:``port``; the response's head and body."""
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body
