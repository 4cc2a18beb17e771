"""The ``vsmux`` command line."""
