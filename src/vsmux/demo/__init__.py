"""The ``vsmux demo`` program: cluster, gateway and a live view in one process."""

from vsmux.demo.runner import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
