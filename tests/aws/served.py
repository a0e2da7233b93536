"""What a published object must be served with, written out here (not taken from
debrepo.core.layout, which these tests check): a change there shows up as a failure."""

from __future__ import annotations

# Pool files and by-hash copies never change under their names; what clients poll does.
CACHED_FOR_A_YEAR = "public, max-age=31536000, immutable"
REVALIDATED_EACH_MINUTE = "public, max-age=60, must-revalidate"


def content_type(key: str) -> str:
    """The Content-Type of a repository key (relative to the repository root)."""
    name = key.rsplit("/", 1)[-1]
    by_suffix = {
        ".deb": "application/vnd.debian.binary-package",
        ".gz": "application/gzip",
        ".xz": "application/x-xz",
        ".html": "text/html; charset=utf-8",
        ".asc": "application/pgp-keys",  # the keyring, armoured
    }
    for suffix, served_as in by_suffix.items():
        if name.endswith(suffix):
            return served_as
    if name.endswith("-keyring.gpg"):
        return "application/pgp-keys"
    if "/by-hash/" in key:  # a copy of any index, under its checksum
        return "application/octet-stream"
    return "text/plain; charset=utf-8"  # Packages, Release, InRelease, Release.gpg
