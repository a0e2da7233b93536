"""Reading .deb files: the control file, the size and four checksums, in one pass.

A .deb is an ar archive: `debian-binary`, `control.tar[.gz|.xz|.zst]`, then
`data.tar[...]`. The file is read once, front to back, in 1 MiB chunks; each chunk
goes to the four hashes (on two threads when the file is large, since hashlib
releases the GIL) and, optionally, to a copy, while the ar headers and the small
control member are parsed from the same stream. Peak memory does not depend on the
size of the file.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from debrepo.core.control import parse_control
from debrepo.core.records import FileFacts
from debrepo.errors import InvalidPackageError

CHUNK = 1 << 20
PARALLEL_FROM = 4 * CHUNK  # below this, thread hand-offs cost more than they save
CONTROL_LIMIT = 64 << 20  # compressed or not, a control archive is a few KiB in practice
AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60


@dataclass(frozen=True, slots=True)
class DebInspection:
    """What a .deb says about itself, and its checksums."""

    control: list[tuple[str, str]]
    facts: FileFacts


class _Hashes:
    """MD5, SHA1, SHA256 and SHA512 fed chunk by chunk, optionally on two threads."""

    def __init__(self, parallel: bool) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512()
        self._pool = ThreadPoolExecutor(max_workers=2) if parallel else None
        self._pending: tuple[Future[None], Future[None]] | None = None

    def _pair(self, first: Any, second: Any, chunk: bytes) -> None:
        first.update(chunk)
        second.update(chunk)

    def update(self, chunk: bytes) -> None:
        if self._pool is None:
            self.md5.update(chunk)
            self.sha1.update(chunk)
            self.sha256.update(chunk)
            self.sha512.update(chunk)
            return
        self.wait()
        # Balanced by cost: md5+sha256 against sha1+sha512 (with SHA-NI, ~equal halves).
        self._pending = (
            self._pool.submit(self._pair, self.md5, self.sha256, chunk),
            self._pool.submit(self._pair, self.sha1, self.sha512, chunk),
        )

    def wait(self) -> None:
        if self._pending is not None:
            for future in self._pending:
                future.result()
            self._pending = None

    def close(self) -> None:
        self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class _Source:
    """A forward-only reader that hashes (and copies) every byte exactly once."""

    def __init__(
        self, handle: BinaryIO, hashes: _Hashes, sink: BinaryIO | None, *, defer_sink: bool = False
    ) -> None:
        self._handle = handle
        self._hashes = hashes
        self._sink = sink
        # Chunks read before the sink is known (it may depend on the control file).
        self._held: list[bytes] | None = [] if defer_sink else None
        self._buffer = b""
        self._offset = 0
        self.consumed = 0
        self.size = 0

    def _next_chunk(self) -> bytes:
        chunk = self._handle.read(CHUNK)
        if chunk:
            self.size += len(chunk)
            self._hashes.update(chunk)
            if self._sink is not None:
                self._sink.write(chunk)
            elif self._held is not None:
                self._held.append(chunk)
        return chunk

    def attach(self, sink: BinaryIO | None) -> None:
        """Start copying: write what was read so far, then every later chunk."""
        held, self._held = self._held or [], None
        self._sink = sink
        if sink is not None:
            for chunk in held:
                sink.write(chunk)

    def _available(self) -> int:
        return len(self._buffer) - self._offset

    def read(self, count: int) -> bytes:
        while self._available() < count:
            chunk = self._next_chunk()
            if not chunk:
                break
            self._buffer = self._buffer[self._offset :] + chunk
            self._offset = 0
        data = self._buffer[self._offset : self._offset + count]
        self._offset += len(data)
        self.consumed += len(data)
        return data

    def skip(self, count: int) -> int:
        """Consume `count` bytes without keeping them; returns how many there were."""
        taken = min(count, self._available())
        self._offset += taken
        while taken < count:
            chunk = self._next_chunk()
            if not chunk:
                break
            need = count - taken
            if len(chunk) > need:
                self._buffer, self._offset = chunk, need
                taken = count
            else:
                taken += len(chunk)
        self.consumed += taken
        return taken

    def drain(self) -> int:
        """Hash the rest of the file; returns the number of trailing bytes."""
        extra = self._available()
        self._buffer, self._offset = b"", 0
        while chunk := self._next_chunk():
            extra += len(chunk)
        return extra


def _decompress_control(name: str, raw: bytes, source: str) -> bytes:
    try:
        if name == "control.tar":
            return raw
        if name == "control.tar.gz":
            gz = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = gz.decompress(raw, CONTROL_LIMIT + 1)
        elif name == "control.tar.xz":
            data = lzma.LZMADecompressor().decompress(raw, CONTROL_LIMIT + 1)
        else:
            import zstandard  # deferred: only .zst control archives need it

            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)) as reader:
                data = reader.read(CONTROL_LIMIT + 1)
    except (zlib.error, lzma.LZMAError, EOFError, ValueError) as exc:
        raise InvalidPackageError(f"{source}: {name} is corrupt ({exc})") from None
    except Exception as exc:  # zstandard.ZstdError does not derive from a stdlib error
        raise InvalidPackageError(f"{source}: {name} is corrupt ({exc})") from None
    if len(data) > CONTROL_LIMIT:
        raise InvalidPackageError(f"{source}: {name} expands beyond {CONTROL_LIMIT >> 20} MiB")
    return data


def _control_text(tar_bytes: bytes, member_name: str, source: str) -> str:
    import tarfile  # deferred: only reading a .deb needs it

    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
            for member in archive:
                if member.name in ("./control", "control") and member.isfile():
                    extracted = archive.extractfile(member)
                    if extracted is None:
                        break
                    raw = extracted.read()
                    try:
                        return raw.decode("utf-8")
                    except UnicodeDecodeError:
                        raise InvalidPackageError(
                            f"{source}: control file is not valid UTF-8"
                        ) from None
    except tarfile.TarError as exc:
        raise InvalidPackageError(
            f"{source}: {member_name} is not a valid tar archive ({exc})"
        ) from None
    raise InvalidPackageError(f"{source}: {member_name} holds no control file")


CopyOpener = Callable[[list[tuple[str, str]]], BinaryIO | None]


def inspect_deb(
    path: Path,
    *,
    copy_to: BinaryIO | None = None,
    open_copy: CopyOpener | None = None,
    name: str | None = None,
) -> DebInspection:
    """Read `path` once: control fields, size and checksums; optionally copy its bytes.

    The copy goes to `copy_to`, or to what `open_copy(control_fields)` returns once the
    control file has been read (so the copy can be named after the package it holds).
    Raises InvalidPackageError naming the file for anything that is not a complete,
    well-formed binary package.
    """
    source = name or path.name
    control: list[tuple[str, str]] | None = None
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidPackageError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        try:
            parallel = os.fstat(handle.fileno()).st_size >= PARALLEL_FROM
        except OSError:
            parallel = False
        hashes = _Hashes(parallel)
        stream = _Source(handle, hashes, copy_to, defer_sink=open_copy is not None)

        def on_control(member: str, raw: bytes) -> None:
            nonlocal control
            text = _control_text(_decompress_control(member, raw, source), member, source)
            control = parse_control(text, source=source)
            if open_copy is not None:
                stream.attach(open_copy(control))

        try:
            has_data = _walk_ar(stream, source, on_control)
            stream.drain()
        except OSError as exc:
            raise InvalidPackageError(f"{path}: cannot read: {exc.strerror}") from None
        finally:
            hashes.close()
    if control is None:
        raise InvalidPackageError(f"{source}: not a binary package (no control.tar member)")
    if not has_data:
        raise InvalidPackageError(f"{source}: not a binary package (no data.tar member)")
    return DebInspection(
        control=control,
        facts=FileFacts(
            size=stream.size,
            md5=hashes.md5.hexdigest(),
            sha1=hashes.sha1.hexdigest(),
            sha256=hashes.sha256.hexdigest(),
            sha512=hashes.sha512.hexdigest(),
        ),
    )


def _walk_ar(stream: _Source, source: str, on_control: Callable[[str, bytes], None]) -> bool:
    """Walk the ar members, handing the control member to `on_control`; True if data seen."""
    if stream.read(len(AR_MAGIC)) != AR_MAGIC:
        raise InvalidPackageError(f"{source}: not a Debian package (no ar archive signature)")
    control_member: str | None = None
    has_data = False
    index = 0
    while True:
        header = stream.read(AR_HEADER)
        if not header:
            break
        if len(header) < AR_HEADER or header[58:60] != b"`\n":
            raise InvalidPackageError(
                f"{source}: truncated or corrupt .deb "
                f"(bad ar header after {stream.consumed - len(header)} bytes)"
            )
        member = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise InvalidPackageError(
                f"{source}: corrupt .deb (bad size in ar header of {member!r})"
            ) from None
        if index == 0:
            if member != "debian-binary":
                raise InvalidPackageError(
                    f"{source}: not a Debian binary package (first member is {member!r})"
                )
            body = stream.read(size)
            if len(body) < size:
                raise InvalidPackageError(f"{source}: truncated .deb (in debian-binary)")
            if not body.startswith(b"2."):
                raise InvalidPackageError(
                    f"{source}: unsupported .deb format {body.strip()[:10]!r}"
                )
        elif member.startswith("control.tar") and control_member is None:
            if member not in ("control.tar", "control.tar.gz", "control.tar.xz", "control.tar.zst"):
                raise InvalidPackageError(f"{source}: unsupported control archive {member!r}")
            if size > CONTROL_LIMIT:
                raise InvalidPackageError(
                    f"{source}: {member} is larger than {CONTROL_LIMIT >> 20} MiB"
                )
            control_member = member
            control_raw = stream.read(size)
            if len(control_raw) < size:
                raise InvalidPackageError(
                    f"{source}: truncated .deb ({member} declares {size} bytes, "
                    f"the file ends after {len(control_raw)})"
                )
            on_control(member, control_raw)
        else:
            if member.startswith("data.tar"):
                if control_member is None:
                    raise InvalidPackageError(f"{source}: data.tar comes before control.tar")
                has_data = True
            skipped = stream.skip(size)
            if skipped < size:
                raise InvalidPackageError(
                    f"{source}: truncated .deb ({member} declares {size} bytes, "
                    f"the file ends after {skipped})"
                )
        if size % 2 and stream.read(1) not in (b"\n", b""):
            raise InvalidPackageError(f"{source}: corrupt .deb (bad ar padding after {member!r})")
        index += 1
    return has_data
