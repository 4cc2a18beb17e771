"""Where events come from: real tablets over gRPC, or simulated ones."""

from vsmux.sources.base import ShardSource, SourceDirectory

__all__ = ["ShardSource", "SourceDirectory"]
