"""The Trio shell: session, shard streamers, sender. All waiting lives here."""

from vsmux.mux.api import Gateway, SendResponses
from vsmux.mux.feed_hub import FeedHub, FeedStats, open_feed_hub
from vsmux.mux.session import run_vstream
from vsmux.mux.shard_source import ShardSource, SourceDirectory

__all__ = [
    "FeedHub",
    "FeedStats",
    "Gateway",
    "SendResponses",
    "ShardSource",
    "SourceDirectory",
    "open_feed_hub",
    "run_vstream",
]
