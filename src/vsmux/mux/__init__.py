"""The Trio shell: session, shard streamers, sender. All waiting lives here."""
