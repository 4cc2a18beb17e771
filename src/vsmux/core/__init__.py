"""Synchronous, I/O-free gateway logic: each piece a small state machine."""
