"""Helpers shared by the unit tests: hand-made ar archives, store records, repository trees."""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import tarfile
from collections.abc import Sequence
from pathlib import Path

import zstandard

from debrepo.model import PackageRecord
from debrepo.ports import ObjectStore


def ar_member(name: str, data: bytes, *, size: int | None = None) -> bytes:
    """One ar member; `size` overrides the size written in the header."""
    declared = len(data) if size is None else size
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{declared:<10}`\n".encode("ascii")
    assert len(header) == 60
    return header + data + (b"\n" if len(data) % 2 else b"")


def ar_archive(members: Sequence[tuple[str, bytes]]) -> bytes:
    return b"!<arch>\n" + b"".join(ar_member(name, data) for name, data in members)


def tar_bytes(files: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def control_text(name: str = "hello", version: str = "1.0", architecture: str = "amd64") -> bytes:
    return (
        f"Package: {name}\nVersion: {version}\nArchitecture: {architecture}\n"
        "Maintainer: Test Maintainer <test@example.com>\n"
        "Description: a hand-made package\n built byte by byte.\n"
    ).encode()


def compress_control(tar: bytes, kind: str) -> tuple[str, bytes]:
    """The ar member name and bytes of a control archive compressed with `kind`."""
    if kind == "gz":
        return "control.tar.gz", gzip.compress(tar)
    if kind == "xz":
        return "control.tar.xz", lzma.compress(tar, format=lzma.FORMAT_XZ)
    if kind == "zst":
        return "control.tar.zst", zstandard.ZstdCompressor().compress(tar)
    if kind == "none":
        return "control.tar", tar
    raise AssertionError(kind)


XZ_MAGIC = b"\xfd7zXZ\x00"  # how data.tar.xz starts, which is checked


def hand_made_deb(
    *,
    control: bytes | None = None,
    kind: str = "gz",
    data: bytes = XZ_MAGIC + b"not really a tar, only its first bytes are read",
    debian_binary: bytes = b"2.0\n",
) -> bytes:
    tar = tar_bytes([("./control", control if control is not None else control_text())])
    member, compressed = compress_control(tar, kind)
    return ar_archive(
        [("debian-binary", debian_binary), (member, compressed), ("data.tar.xz", data)]
    )


def fake_hash(seed: str, digits: int) -> str:
    return hashlib.sha512(seed.encode()).hexdigest()[:digits]


def make_record(
    name: str = "hello", version: str = "1.0", architecture: str = "amd64", **changes: object
) -> PackageRecord:
    """A complete record whose hashes are derived from its id (no file behind it)."""
    seed = f"{name}#{version}#{architecture}"
    upstream = version.split(":", 1)[-1]
    record = PackageRecord(
        package_name=name,
        version=version,
        architecture=architecture,
        section="devel",
        priority="optional",
        maintainer="Test Maintainer <test@example.com>",
        homepage="https://example.com",
        description="a test package\n It has an extended description.",
        deb_url=f"https://example.com/{name}_{upstream}_{architecture}.deb",
        actual_filename=f"{name}_{upstream}_{architecture}.deb",
        file_size=1234,
        md5_hash=fake_hash(seed + "md5", 32),
        sha1_hash=fake_hash(seed + "sha1", 40),
        sha256_hash=fake_hash(seed + "sha256", 64),
        pub_date="2026-11-24T12:00:00Z",
        processed_timestamp="2026-11-24T12:00:00Z",
        package_type="manual",
        installed_size=12,
        sha512_hash=fake_hash(seed + "sha512", 128),
    )
    return record.with_changes(**changes) if changes else record


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def repo_keys(repo: ObjectStore, prefix: str = "") -> set[str]:
    return {info.key for info in repo.list(prefix)}
