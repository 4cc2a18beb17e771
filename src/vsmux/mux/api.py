"""What the server edge needs to run one VStream request.

``run_vstream(request, gateway, send)`` is the whole contract:

- ``send`` receives a list of encoded ``vtgate.VStreamResponse`` bodies at a
  time (each at most ``settings.max_response_bytes``) and returns once the
  edge has taken them; awaiting it is the backpressure from a slow client.
- Returning normally means the stream ended cleanly (OK status, e.g.
  ``stop_on_reshard``). A failure raises exactly one
  :class:`vsmux.errors.VStreamError`; exception groups never escape.
- Cancellation (client gone, deadline, shutdown) stops every task of the
  request before ``run_vstream`` returns.
- ``share=False`` (the client's ``vsmux-share: off``) makes every shard
  stream of the request read its own tablet stream.
- ``send`` may also be a :class:`SendNow`: then units a shared stream hands
  over while the request's sender is idle are written at once from the
  feed's task, without waking the sender (see
  :meth:`vsmux.mux.sender.Sender.deliver_now`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from vsmux.core.metrics import Metrics
from vsmux.core.settings import GatewaySettings
from vsmux.mux.failover_wait import FailoverBuffers
from vsmux.mux.feed_hub import FeedHub
from vsmux.mux.shard_source import SourceDirectory
from vsmux.topology import Topology

__all__ = ["Gateway", "SendNow", "SendResponses"]

SendResponses = Callable[[list[bytes]], Awaitable[None]]


@runtime_checkable
class SendNow(Protocol):
    """A :data:`SendResponses` that can also write without awaiting."""

    def __call__(self, bodies: list[bytes], /) -> Awaitable[None]: ...

    def now(self, bodies: list[bytes], /) -> bool:
        """Write ``bodies`` at once if nothing is queued and no wait is needed.

        True when they are the client's (written, or the write failed and
        the session is being cancelled, as an awaited send would be); False
        when nothing was done and ``bodies`` must be awaited instead.
        """
        ...


@dataclass(slots=True)
class Gateway:
    """Everything a session needs that outlives it.

    ``failover`` holds one failover buffer per keyspace/shard, shared by the
    PRIMARY streams of every session (:mod:`vsmux.mux.failover_wait`); call
    ``failover.shutdown()`` when the gateway stops, so streams waiting out a
    failover are let go at once.

    ``feeds``, when the server opened one (:func:`vsmux.mux.feed_hub.open_feed_hub`
    over ``sources``), lets sessions share tablet streams; without it every
    shard stream reads its own.
    """

    topology: Topology
    sources: SourceDirectory
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    metrics: Metrics = field(default_factory=Metrics)
    feeds: FeedHub | None = None
    failover: FailoverBuffers = field(init=False)

    def __post_init__(self) -> None:
        self.failover = FailoverBuffers(self.topology, self.sources, self.settings, self.metrics)
