"""vsmux: a Trio-based VStream gateway for sharded Vitess/MySQL clusters."""

__version__ = "0.1.0"
__all__ = ["__version__"]
