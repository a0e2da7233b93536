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
