"""Writing .deb files from bytes, reproducibly (same inputs, same bytes).

Used to build kiro-repo and, in tests and benchmarks, synthetic packages. The result
is what `dpkg-deb --build --root-owner-group` makes: an ar archive of
`debian-binary`, `control.tar.gz` (control, md5sums, conffiles) and `data.tar.xz`,
with root ownership, directory entries, and one fixed timestamp everywhere.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

from debrepo.core.release import format_paragraph


@dataclass(frozen=True, slots=True)
class DebMember:
    """A file to install: `path` relative to /, its bytes and mode."""

    path: str
    data: bytes
    mode: int = 0o644


def _ar_member(name: str, data: bytes, mtime: int) -> bytes:
    header = f"{name:<16}{mtime:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode("ascii")
    return header + data + (b"\n" if len(data) % 2 else b"")


def _tar(entries: Sequence[tuple[str, bytes | None, int]], mtime: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def installed_size_kib(members: Sequence[DebMember]) -> int:
    """Installed-Size as dpkg-gencontrol computes it: 1 KiB per directory, files rounded up."""
    directories = {
        "/".join(m.path.split("/")[:i]) for m in members for i in range(1, m.path.count("/") + 1)
    }
    return len(directories) + sum((len(m.data) + 1023) // 1024 for m in members)


def build_deb(
    control: Sequence[tuple[str, str]],
    members: Sequence[DebMember],
    *,
    mtime: int,
    conffiles: Sequence[str] = (),
    maintainer_scripts: Sequence[DebMember] = (),
) -> bytes:
    """The bytes of a binary package with the given control fields and files."""
    for member in members:
        if member.path.startswith("/") or ".." in member.path.split("/"):
            raise ValueError(f"{member.path!r} must be a relative path inside the package")
    directories = sorted(
        {"/".join(m.path.split("/")[:i]) for m in members for i in range(1, m.path.count("/") + 1)}
    )
    data_entries: list[tuple[str, bytes | None, int]] = [("./", None, 0o755)]
    data_entries += [(f"./{d}/", None, 0o755) for d in directories]
    data_entries += [(f"./{m.path}", m.data, m.mode) for m in sorted(members, key=lambda m: m.path)]

    conffile_set = {c.lstrip("/") for c in conffiles}
    md5sums = "".join(
        f"{hashlib.md5(m.data, usedforsecurity=False).hexdigest()}  {m.path}\n"
        for m in sorted(members, key=lambda m: m.path)
        if m.path not in conffile_set
    )
    control_entries: list[tuple[str, bytes | None, int]] = [
        ("./", None, 0o755),
        ("./control", format_paragraph(control).encode("utf-8"), 0o644),
        ("./md5sums", md5sums.encode("utf-8"), 0o644),
    ]
    if conffiles:
        control_entries.append(
            ("./conffiles", "".join(f"{c}\n" for c in conffiles).encode(), 0o644)
        )
    control_entries += [(f"./{s.path}", s.data, s.mode) for s in maintainer_scripts]

    control_tar = gzip.compress(_tar(control_entries, mtime), compresslevel=9, mtime=0)
    data_tar = lzma.compress(_tar(data_entries, mtime), format=lzma.FORMAT_XZ, preset=6)
    return (
        b"!<arch>\n"
        + _ar_member("debian-binary", b"2.0\n", mtime)
        + _ar_member("control.tar.gz", control_tar, mtime)
        + _ar_member("data.tar.xz", data_tar, mtime)
    )
