"""Build script for the optional C extensions; everything else is in pyproject.toml.

``vsmux.wire._accel`` runs the gateway's per-event wire loops in C;
``vsmux.server._pools`` lets the system take back the pages of CPython's
empty small-object pools after a burst. Both are optional: without a C
compiler the install still succeeds, the pure-Python wire code runs instead
(slower; see BENCHMARKS.md), and memory stays as CPython manages it.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vsmux.wire._accel",
            ["src/vsmux/wire/_accel.c"],
            optional=True,
            extra_compile_args=["-O2"],
        ),
        Extension(
            "vsmux.server._pools",
            ["src/vsmux/server/_pools.c"],
            optional=True,
            extra_compile_args=["-O2"],
        ),
    ]
)
