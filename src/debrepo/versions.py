"""Debian version ordering, used wherever a "latest" version is chosen.

The seed's `parse_version` turns `1.0~rc1` or `2:1.0` into `(0,)`; Debian policy
comparison (python-debian, the algorithm dpkg uses) orders `1.9.0 < 1.10.0`,
`1.0~rc1 < 1.0` and `1:0.1 > 9.9` correctly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from debian.debian_support import Version

T = TypeVar("T")


def _version_class() -> type[Version]:
    # Deferred: python-debian's module costs ~14 ms of start-up, and most commands
    # (a rebuild of single-version packages among them) never compare versions.
    from debian.debian_support import Version

    return Version


def version_key(version: str) -> Version:
    """A sort key ordering version strings as dpkg does."""
    return _version_class()(version)


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as `left` sorts before, equal to or after `right` (dpkg --compare-versions)."""
    version = _version_class()
    a, b = version(left), version(right)
    return (a > b) - (a < b)


def latest(items: Iterable[T], version_of: Callable[[T], str]) -> T | None:
    """The item with the highest Debian version, or None for no items."""
    version = _version_class()
    best: T | None = None
    best_key: Version | None = None
    for item in items:
        key = version(version_of(item))
        if best_key is None or key > best_key:
            best, best_key = item, key
    return best


_DIGITS = frozenset("0123456789")


_Parts = tuple[tuple[str, int], ...]


def dpkg_identity(version: str) -> tuple[int, _Parts, _Parts]:
    """A key that is equal for two valid versions exactly when dpkg compares them equal
    (`1.0`, `1.00`, `0:1.0`, `1.0-0`), to find one in a dict instead of comparing with
    every version of a package. (python-debian's `Version` cannot be that key: it hashes
    its text, so `Version("1.0") == Version("1.00")` with different hashes.)

    dpkg compares epoch, upstream and revision in turn, each as alternating non-digit
    strings (compared character by character, an injective order) and numbers (so
    leading zeros do not count), a missing part counting as an empty string and 0.
    """
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return int(epoch), _dpkg_parts(upstream), _dpkg_parts(revision)


def _dpkg_parts(text: str) -> _Parts:
    parts: list[tuple[str, int]] = []
    start, end = 0, len(text)
    while start < end:
        digits = start
        while digits < end and text[digits] not in _DIGITS:
            digits += 1
        stop = digits
        while stop < end and text[stop] in _DIGITS:
            stop += 1
        parts.append((text[start:digits], int(text[digits:stop] or 0)))
        start = stop
    while parts and parts[-1] == ("", 0):  # what a shorter version is compared as
        parts.pop()
    return tuple(parts)
