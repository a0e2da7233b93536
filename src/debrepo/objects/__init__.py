"""Object store backends: a local folder (embedded default)."""
