"""OpenPGP signing of Release files."""
