"""The Trio shell: session, shard streamers, sender. All waiting lives here."""

from vsmux.mux.api import Gateway, SendResponses
from vsmux.mux.session import run_vstream

__all__ = ["Gateway", "SendResponses", "run_vstream"]
