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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from vsmux.core.metrics import Metrics
from vsmux.core.settings import GatewaySettings
from vsmux.mux.shard_source import SourceDirectory
from vsmux.topology import Topology

__all__ = ["Gateway", "SendResponses"]

SendResponses = Callable[[list[bytes]], Awaitable[None]]


@dataclass(slots=True)
class Gateway:
    """Everything a session needs that outlives it."""

    topology: Topology
    sources: SourceDirectory
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    metrics: Metrics = field(default_factory=Metrics)
