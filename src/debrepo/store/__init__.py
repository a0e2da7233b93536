"""Metadata store backends: SQLite (embedded default)."""
