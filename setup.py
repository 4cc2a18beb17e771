"""Build script for the optional C extension; everything else is in pyproject.toml.

``vsmux.wire._accel`` runs the gateway's per-event wire loops in C. It is
optional: without a C compiler the install still succeeds and the pure-Python
wire code runs instead (slower; see BENCHMARKS.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vsmux.wire._accel",
            ["src/vsmux/wire/_accel.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
