"""Open and click tracking (off by default)."""
