"""The consuming side: a VStream client, row decoding, output formats, checkpoints."""
