"""Workflows built from the core and the ports: ingest, publish, verify, build kiro-repo."""
