"""Independent judges for the property tests: real dpkg and gpgv, python-debian's deb822
parser, hashlib, and guards that catch a force rebuild reading package files."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from debian import deb822

from debrepo.model import PackageRecord
from tests.tools import require_tool


def dpkg_compare_many(pairs: Sequence[tuple[str, str]]) -> list[int]:
    """-1, 0 or 1 for each (a, b) as `dpkg --compare-versions` orders them.

    One shell runs every comparison, so a batch costs one process start from Python.
    dpkg warns about a version it finds malformed; that fails the test too, since every
    version the strategies produce must be valid for dpkg.
    """
    if not pairs:
        return []
    dpkg = shlex.quote(require_tool("dpkg"))
    lines = []
    for left, right in pairs:
        a, b = shlex.quote(left), shlex.quote(right)
        lines.append(
            f"if {dpkg} --compare-versions {a} lt {b}; then echo -1; "
            f"elif {dpkg} --compare-versions {a} eq {b}; then echo 0; else echo 1; fi"
        )
    done = subprocess.run(
        ["sh", "-c", "\n".join(lines)], capture_output=True, text=True, check=True
    )
    assert "warning" not in done.stderr and "error" not in done.stderr, done.stderr
    results = [int(word) for word in done.stdout.split()]
    assert len(results) == len(pairs), done.stdout + done.stderr
    return results


def dpkg_table(versions: Sequence[str]) -> dict[tuple[str, str], int]:
    """dpkg's verdict on every ordered pair of `versions`: table[a, b] is -1, 0 or 1."""
    pairs = [(a, b) for i, a in enumerate(versions) for b in versions[i + 1 :]]
    table = {(v, v): 0 for v in versions}
    for (a, b), result in zip(pairs, dpkg_compare_many(pairs), strict=True):
        table[a, b], table[b, a] = result, -result
    return table


def highest(versions: Sequence[str], table: dict[tuple[str, str], int]) -> set[str]:
    """The versions no other version exceeds (several if dpkg finds them equal)."""
    return {v for v in versions if all(table[v, other] >= 0 for other in versions)}


def gpgv(keyring: Path, *files: Path) -> bytes:
    """Verify with real gpgv against `keyring` (as apt does with signed-by=); return the
    signed text for a clear-signed file."""
    with tempfile.TemporaryDirectory(prefix="gpgv-home-", dir=_SCRATCH_PARENT) as home:
        done = subprocess.run(
            [require_tool("gpgv"), "--keyring", str(keyring), "--output", "-", *map(str, files)],
            capture_output=True,
            env={**os.environ, "GNUPGHOME": home},
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Good signature" in done.stderr, done.stderr.decode(errors="replace")
    return done.stdout


def apt_sortpkgs(packages: bytes) -> bytes:
    """A Packages file as apt rewrites it: apt's parser, apt's canonical field order."""
    with tempfile.NamedTemporaryFile(prefix="Packages-", dir=_SCRATCH_PARENT) as handle:
        handle.write(packages)
        handle.flush()
        done = subprocess.run(
            [require_tool("apt-sortpkgs"), handle.name], capture_output=True, check=False
        )
    assert done.returncode == 0 and not done.stderr, done.stderr.decode(errors="replace")
    return done.stdout


def packages_paragraphs(data: bytes) -> list[dict[str, str]]:
    """The stanzas of a Packages file as deb822 reads them (python parser, no apt_pkg)."""
    text = data.decode("utf-8")
    return [
        dict(paragraph)
        for paragraph in deb822.Packages.iter_paragraphs(text.splitlines(), use_apt_pkg=False)
    ]


def expected_stanza(record: PackageRecord, component: str) -> dict[str, str]:
    """Every field a record's Packages entry must carry, with the value it must have."""
    name = record.package_name
    fields = {
        "Package": name,
        "Version": record.version,
        "Architecture": record.architecture,
        "Maintainer": record.maintainer,
        "Section": record.section,
        "Priority": record.priority,
        "Homepage": record.homepage,
        "Description": record.description,
        "Filename": f"pool/{component}/{name[0]}/{name}/{record.actual_filename}",
        "Size": str(record.file_size),
        "MD5sum": record.md5_hash,
        "SHA1": record.sha1_hash,
        "SHA256": record.sha256_hash,
    }
    if record.depends:
        fields["Depends"] = record.depends
    if record.installed_size is not None:
        fields["Installed-Size"] = str(record.installed_size)
    if record.sha512_hash:
        fields["SHA512"] = record.sha512_hash
    fields.update(record.control_fields)
    return fields


def release_fields(data: bytes) -> deb822.Release:
    return deb822.Release(data.decode("utf-8"))


class ForbiddenRead(AssertionError):
    """A force rebuild touched a package file it must not need."""


class ReadGuard:
    """An object store that fails the test when a package file (*.deb) is read.

    With `forbid_stat`, even asking whether such a file exists counts as a read (for a
    staging area: a rebuild whose pool is complete has no reason to look there).
    Copying an object within the guarded store itself stays allowed (the convenience
    copy is a server-side copy, not a read of the package); writes and deletes pass
    through. Every violation is also recorded, in case the code under test swallows
    the exception.
    """

    def __init__(
        self, inner: Any, *, forbid: Callable[[str], bool], forbid_stat: bool = True
    ) -> None:
        self.inner = inner
        self.forbid = forbid
        self.forbid_stat = forbid_stat
        self.description = inner.description
        self.violations: list[str] = []

    def _check(self, operation: str, key: str) -> None:
        if self.forbid(key):
            self.violations.append(f"{operation} {key}")
            raise ForbiddenRead(f"{operation} {key} in {self.description}")

    def get(self, key: str) -> bytes | None:
        self._check("get", key)
        result: bytes | None = self.inner.get(key)
        return result

    def stat(self, key: str) -> Any:
        if self.forbid_stat:
            self._check("stat", key)
        return self.inner.stat(key)

    def stat_many(self, keys: Any) -> dict[str, int]:
        if self.forbid_stat:
            for key in keys:
                self._check("stat", key)
        result: dict[str, int] = self.inner.stat_many(keys)
        return result

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        self._check("open", key)
        result: AbstractContextManager[BinaryIO] = self.inner.open(key)
        return result

    def same_bytes(self, key: str, data: bytes) -> bool:
        self._check("same_bytes", key)
        return bool(self.inner.same_bytes(key, data))

    def list(self, prefix: str) -> Iterator[Any]:
        # A listing tells whether a file exists: guarded like `stat`, key by key.
        for info in self.inner.list(prefix):
            if self.forbid_stat:
                self._check("list", info.key)
            yield info

    def put(self, key: str, data: bytes, delivery: Any) -> str | None:
        return self.inner.put(key, data, delivery)

    def put_file(self, key: str, path: Path, delivery: Any, *, move: bool = False) -> None:
        self.inner.put_file(key, path, delivery, move=move)

    def copy_from(
        self, source: Any, source_key: str, key: str, delivery: Any, *, shared: bool = False
    ) -> None:
        if isinstance(source, ReadGuard):
            if source is not self:
                source._check("copy", source_key)
            source = source.inner
        self.inner.copy_from(source, source_key, key, delivery, shared=shared)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def flush(self) -> None:
        self.inner.flush()


class WriteRecorder:
    """An object store that records, in order, every write and delete made through it:
    (operation, key, Delivery) with operation "put", "copy", "delete" or "flush" (the
    Delivery is None for the last two). Everything else passes through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.events: list[tuple[str, str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, delivery: Any) -> str | None:
        self.events.append(("put", key, delivery))
        version: str | None = self.inner.put(key, data, delivery)
        return version

    def put_file(self, key: str, path: Path, delivery: Any, *, move: bool = False) -> None:
        self.events.append(("put", key, delivery))
        self.inner.put_file(key, path, delivery, move=move)

    def copy_from(
        self, source: Any, source_key: str, key: str, delivery: Any, *, shared: bool = False
    ) -> None:
        self.events.append(("copy", key, delivery))
        origin = source.inner if isinstance(source, WriteRecorder) else source
        self.inner.copy_from(origin, source_key, key, delivery, shared=shared)

    def delete(self, key: str) -> None:
        self.events.append(("delete", key, None))
        self.inner.delete(key)

    def flush(self) -> None:
        self.events.append(("flush", "", None))
        self.inner.flush()


def is_package_file(key: str) -> bool:
    return key.endswith(".deb")


def is_pool_file(key: str) -> bool:
    return key.startswith("pool/") and key.endswith(".deb")


def _memory_backed_tmp() -> str | None:
    """A RAM-backed temporary directory where the system has one: every example creates
    and removes dozens of directories, which costs far more on a disk."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


_SCRATCH_PARENT = _memory_backed_tmp()


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh directory per hypothesis example (function fixtures are shared by all)."""
    with tempfile.TemporaryDirectory(prefix="debrepo-property-", dir=_SCRATCH_PARENT) as path:
        yield Path(path)
