"""The Trio shell: session, shard streamers, sender. All waiting lives here."""

from vsmux.mux.api import Gateway, SendResponses
from vsmux.mux.session import run_vstream
from vsmux.mux.shard_source import ShardSource, SourceDirectory

__all__ = ["Gateway", "SendResponses", "ShardSource", "SourceDirectory", "run_vstream"]
