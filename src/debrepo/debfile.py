"""Reading .deb files: the control file, the size and four checksums, in one pass.

A .deb is an ar archive: `debian-binary`, `control.tar[.gz|.xz|.zst]`, then
`data.tar[...]`. The file is read once, front to back, in 1 MiB chunks; each chunk
goes to the four hashes and, optionally, to a copy (for a large file, on three threads
fed through short queues), while the ar headers and the small control member are
parsed from the same stream. Peak memory does not depend on the size of the file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import lzma
import mmap
import os
import queue
import re
import stat
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from debrepo.core.control import parse_control, quoted_excerpt
from debrepo.core.records import FileFacts
from debrepo.errors import InvalidPackageError, PackageReadError

if TYPE_CHECKING:
    from tarfile import TarInfo

CHUNK = 1 << 20
PARALLEL_FROM = 4 * CHUNK  # below this, thread hand-offs cost more than they save
LANE_DEPTH = 8  # chunks queued per thread: smooths hand-offs, bounds memory (~8 MiB)
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere copies are ordinary writes
CONTROL_LIMIT = 64 << 20  # compressed or not, a control archive is a few KiB in practice
# apt cannot read a Packages stanza over 1 MiB ("Unable to parse package file"): one
# such package would break `apt update` for every client. Real control files are ~1 KiB.
CONTROL_FILE_LIMIT = 512 << 10
AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
DEBIAN_BINARY_LIMIT = 64
# dpkg-deb: the first line is the format version, "2.<minor>" (a C int); later lines are
# ignored.
_FORMAT_RE = re.compile(rb"2\.([0-9]+)\n")
_INT_MAX = (1 << 31) - 1
TAR_BLOCK = 512
NAME_MAX = 255  # bytes in one file name, as Linux (and so tar) takes it
PATH_MAX = 4095
_VOLUME_LABEL = b"V"  # a GNU tar member type
# How GNU tar reads a header (list.c) and its PAX records (xheader.c), where it differs
# from tarfile: tar fails on numbers tarfile reads past, and reads some records on
# where tarfile stops.
_INT64_MAX = (1 << 63) - 1  # the largest off_t or time_t
_UINT32_MAX = (1 << 32) - 1  # the largest uid_t or gid_t
# The numbers in a file's header: offset, width, the range tar takes, and where the
# name tar reads instead of the number is (0: none).
_HEADER_NUMBERS = (
    ("mode", 100, 8, -(1 << 63), (1 << 64) - 1, 0),
    ("uid", 108, 8, 0, _UINT32_MAX, 265),
    ("gid", 116, 8, 0, _UINT32_MAX, 297),
    ("mtime", 136, 12, -(1 << 63), _INT64_MAX, 0),
)
_BLANKS = b" \t\n\v\f\r"  # what C's isspace() takes, and so tar around a number
_OCTAL = b"01234567"
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_HIGH_BYTES = bytes(range(128, 256))
# A header's mode, uid, gid, size, mtime and checksum as nearly every tool writes them:
# zero-padded octal, each in the range tar takes.
_PLAIN_NUMBERS = re.compile(rb"[0-7]{7}\0[0-7]{7}\0[0-7]{7}\0([0-7]{11})\0[0-7]{11}\0([0-7]{6})\0 ")
# After one NUL and blanks, octal digits, then the end, a NUL or a blank.
_PLAIN_OCTAL = re.compile(rb"\0?[ \t\n\v\f\r]*([0-7]+)(?:[\0 \t\n\v\f\r]|\Z)")
# Header types describing the file after them: GNU long name (L) and link (K), PAX
# extended (x; X as Solaris wrote it) and global (g) headers.
_EXTENSIONS = b"LKxXg"
_NO_DATA = b"123456"  # links, devices, folders, FIFOs: tarfile skips no data after them
# A PAX record's start as tar reads it: blanks, the length, blanks, a keyword, "="; and
# as tarfile reads it: the length, one space, a keyword, "=".
_PAX_RECORD_TAR = re.compile(rb"[ \t]*([0-9]+)[ \t]+([^=\0]*)=")
_PAX_RECORD_TARFILE = re.compile(rb"([0-9]+) ([^=]+)=")
_PAX_RECORDS_END = re.compile(rb"[ \t]*(\0|\Z)")  # where tar stops reading records
# The PAX records that decide which file tar unpacks, where, and how large: tar and
# tarfile must read the same ones.
_PAX_PLACING = {b"path", b"linkpath", b"size"}
# PAX records tar reads as whole numbers, and the range it takes (tarfile takes any
# value, as 0 if it is not a number); tar fails the archive on any other value.
_PAX_INTEGERS = {
    b"uid": (0, _UINT32_MAX),
    b"gid": (0, _UINT32_MAX),
    b"size": (0, _INT64_MAX),
    b"GNU.volume.size": (0, (1 << 64) - 1),
    b"GNU.volume.offset": (0, (1 << 64) - 1),
}
_PAX_INTEGER_RE = re.compile(rb"-?[0-9]+")
# PAX times: tar reads seconds (a time_t) and a fraction, and ignores what follows.
_PAX_TIMES = {b"mtime", b"atime", b"ctime"}
_PAX_TIME_RE = re.compile(rb"(-?[0-9]+)(\.[0-9]*[1-9])?")
CONTROL_MEMBERS = ("control.tar", "control.tar.gz", "control.tar.xz", "control.tar.zst")
# The data archives dpkg-deb unpacks, and how each compressed one starts (empty: a tar
# file, or lzma, has no magic worth checking).
DATA_MAGIC = {
    "data.tar": b"",
    "data.tar.gz": b"\x1f\x8b",
    "data.tar.xz": b"\xfd7zXZ\x00",
    "data.tar.zst": b"\x28\xb5\x2f\xfd",
    "data.tar.bz2": b"BZh",
    "data.tar.lzma": b"",
}


@dataclass(frozen=True, slots=True)
class DebInspection:
    """What a .deb says about itself, and its checksums."""

    control: list[tuple[str, str]]
    facts: FileFacts


class _CopyFailed(Exception):
    """The copy could not be written; carries the OSError (a write error, not a read one)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


class _Lane:
    """A thread applying `work` to every chunk put, in order, through a short queue.

    The first error is kept (later chunks are dropped) so the producer is never blocked
    by a dead consumer; `close` waits for the thread and `error` tells what went wrong.
    """

    def __init__(self, work: Callable[[bytes], object]) -> None:
        self._work = work
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=LANE_DEPTH)
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._work(chunk)
                except Exception as exc:  # handed to the producer by close()
                    self.error = exc

    def put(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


class _DirectWriter:
    """Writes a large copy around the page cache (O_DIRECT) where the file system allows.

    Filling hundreds of MiB of fresh page cache costs more system time than hashing the
    same bytes on a small virtual machine; a direct write costs a fraction of that and
    leaves the cache to files that will be read. O_DIRECT needs aligned memory, lengths
    and offsets: every full chunk is copied into a page-aligned buffer, and the first
    chunk of another length (the file's tail) or a refusal (EINVAL: tmpfs, FUSE, odd
    block sizes) switches back to ordinary writes for the rest of the file. Closing
    clears the flag, so the caller's file object is left as it was given.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = mmap.mmap(-1, CHUNK)  # anonymous maps are page-aligned
        self._direct = self._set_direct(True)

    def _set_direct(self, enabled: bool) -> bool:
        try:
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(
                self._fd, fcntl.F_SETFL, flags | _O_DIRECT if enabled else flags & ~_O_DIRECT
            )
        except OSError:
            return False
        return enabled

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        if self._direct:
            written = 0
            if len(chunk) == CHUNK:
                self._buffer[:] = chunk
                try:
                    written = os.write(self._fd, self._buffer)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
            if written == len(chunk):
                return
            self._direct = self._set_direct(False)
            view = view[written:]
        while view:
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        self._set_direct(False)
        self._buffer.close()


def _regular_file_descriptor(sink: BinaryIO) -> int | None:
    """The descriptor behind `sink` when writing to it is writing to the object: a plain
    (buffered or raw) file object on a regular file. Not a pipe (O_DIRECT turns on packet
    mode there), nor a wrapper such as GzipFile whose fileno() is the file beneath it."""
    if not _O_DIRECT or not isinstance(sink, io.BufferedWriter | io.BufferedRandom | io.FileIO):
        return None
    try:
        fd = sink.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (OSError, ValueError):
        return None


def _writing_all(sink: BinaryIO) -> Callable[[bytes], None]:
    """`sink.write`, repeated until a raw file object has taken every byte."""

    def write(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = sink.write(view)
            if written is None or written >= len(view):  # None: a writer that does not count
                return
            view = view[written:]

    return write


class _Fanout:
    """Every chunk of the file goes to the four hashes and, once it is known, the copy.

    Small files are handled inline. For large ones, md5+sha256, sha1+sha512 (about equal
    halves with SHA-NI) and the copy each run on their own thread, so the slowest of the
    three sets the pace instead of their sum: hashlib and os.write release the GIL.
    Chunks read before the copy is opened (its name may depend on the control file) are
    held and written first. `direct`: a copy into a regular file may bypass the page
    cache (for a file that stays where it is written, not one read back at once).
    """

    def __init__(self, parallel: bool, *, direct: bool, defer_sink: bool) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512()
        self._parallel = parallel
        self._allow_direct = direct
        self._held: list[bytes] | None = [] if defer_sink else None
        self._attached = False
        self._copy: Callable[[bytes], object] | None = None
        self._copy_lane: _Lane | None = None
        self._direct: _DirectWriter | None = None
        self._copy_error: OSError | None = None
        self._hash_lanes: list[_Lane] = (
            [_Lane(_both(self.md5, self.sha256)), _Lane(_both(self.sha1, self.sha512))]
            if parallel
            else []
        )

    def attach(self, sink: BinaryIO | None) -> None:
        """Start copying into `sink` (None: no copy): what was held first, then the rest."""
        if self._attached:
            raise ValueError("the copy was already attached")
        self._attached = True
        held, self._held = self._held or [], None
        if sink is None:
            return
        write = _writing_all(sink)
        if self._parallel:
            fd = _regular_file_descriptor(sink) if self._allow_direct else None
            if fd is not None:
                try:
                    sink.flush()  # nothing may stay buffered behind the descriptor's back
                except OSError as exc:
                    raise _CopyFailed(exc) from None
                self._direct = _DirectWriter(fd)
            self._copy_lane = _Lane(self._direct.write if self._direct else write)
        else:
            self._copy = write
        for chunk in held:
            self._to_copy(chunk)

    def _to_copy(self, chunk: bytes) -> None:
        if self._copy_lane is not None:
            if isinstance(self._copy_lane.error, OSError):
                raise _CopyFailed(self._copy_lane.error)
            self._copy_lane.put(chunk)
        elif self._copy is not None:
            try:
                self._copy(chunk)
            except OSError as exc:
                raise _CopyFailed(exc) from None

    def feed(self, chunk: bytes) -> None:
        if self._parallel:
            for lane in self._hash_lanes:
                lane.put(chunk)
        else:
            self.md5.update(chunk)
            self.sha1.update(chunk)
            self.sha256.update(chunk)
            self.sha512.update(chunk)
        if self._held is not None:
            self._held.append(chunk)
        else:
            self._to_copy(chunk)

    def close(self) -> None:
        """Wait for every thread; the copy's error, if any, is kept for `check`."""
        for lane in self._hash_lanes:
            lane.close()
        if self._copy_lane is not None:
            self._copy_lane.close()
        if self._direct is not None:
            self._direct.close()
        for lane in self._hash_lanes:
            if lane.error is not None:
                raise lane.error
        if self._copy_lane is not None and self._copy_lane.error is not None:
            if not isinstance(self._copy_lane.error, OSError):
                raise self._copy_lane.error
            self._copy_error = self._copy_lane.error

    def check(self) -> None:
        """Raise the copy's write error, if it had one."""
        if self._copy_error is not None:
            raise _CopyFailed(self._copy_error)


def _both(first: Any, second: Any) -> Callable[[bytes], None]:
    def update(chunk: bytes) -> None:
        first.update(chunk)
        second.update(chunk)

    return update


class _Source:
    """A forward-only reader that hands every byte to the fan-out exactly once."""

    def __init__(self, handle: BinaryIO, fanout: _Fanout) -> None:
        self._handle = handle
        self._fanout = fanout
        self._buffer = b""
        self._offset = 0
        self.consumed = 0
        self.size = 0

    def _next_chunk(self) -> bytes:
        chunk = self._handle.read(CHUNK)
        if chunk:
            self.size += len(chunk)
            self._fanout.feed(chunk)
        return chunk

    def _available(self) -> int:
        return len(self._buffer) - self._offset

    def read(self, count: int) -> bytes:
        if self._available() < count:
            pieces, have = [self._buffer[self._offset :]], self._available()
            while have < count:  # joined once: growing one buffer would be quadratic
                chunk = self._next_chunk()
                if not chunk:
                    break
                pieces.append(chunk)
                have += len(chunk)
            self._buffer, self._offset = b"".join(pieces), 0
        data = self._buffer[self._offset : self._offset + count]
        self._offset += len(data)
        self.consumed += len(data)
        return data

    def skip(self, count: int) -> int:
        """Consume `count` bytes without keeping them; returns how many there were."""
        if count < 0:
            raise ValueError(f"cannot skip {count} bytes")
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
    """The control file in the control archive, read as dpkg-deb (GNU tar) reads it:
    anything tar would refuse, or unpack otherwise than tarfile reads it, is refused."""
    import tarfile  # deferred: only reading a .deb needs it

    if fault := _header_fault(tar_bytes):
        offset, why, tar_fails = fault
        if tar_fails:
            raise InvalidPackageError(
                f"{source}: {member_name} is corrupt (a header tar cannot read after "
                f"{offset} bytes: {why}); dpkg cannot install such a package"
            )
        raise InvalidPackageError(
            f"{source}: {member_name} holds {why} (after {offset} bytes), which tar "
            "unpacks otherwise than debrepo reads it"
        )
    raw: bytes | None = None
    files: set[str] = set()  # regular files so far, by where they unpack
    # Everything unpacked, by where: a symbolic link's target, or None for a file.
    unpacked: dict[str, str | None] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
            for member in archive:
                if member.type == _VOLUME_LABEL:
                    continue  # GNU tar unpacks nothing for it
                name = _unpacked_name(member, member_name, source)
                if member.offset_data + member.size > len(tar_bytes):
                    raise InvalidPackageError(f"{source}: {member_name} is truncated (in {name})")
                folder = member.isdir() or (member.isfile() and _tar_name(member).endswith("/"))
                if not name and folder:  # the archive's own folder, "./"
                    if tar_bytes[member.offset + 156] == 0 and not _tar_name(member):
                        # An old-style file named "/" (tarfile takes it for a folder):
                        # tar unpacks it as a file named "." ("File exists").
                        raise InvalidPackageError(
                            f"{source}: {member_name} holds '/', a file named as a folder; "
                            "dpkg cannot install such a package"
                        )
                    continue
                if (
                    "/" in name
                    or folder
                    or not (member.isfile() or member.issym() or _links_to(member, files))
                ):
                    # dpkg unpacks control files into one folder: a folder in it fails
                    # every installation ("Is a directory").
                    raise InvalidPackageError(
                        f"{source}: {member_name} holds {_tar_name(member)!r}, which is not a file "
                        "at its top level; dpkg cannot install such a package"
                    )
                if member.isfile():
                    files.add(name)
                unpacked[name] = _tar_link(member) if member.issym() else None
                if name != "control":
                    continue
                if raw is not None:
                    # GNU tar unpacks the last one over the first (`./control` and
                    # `././control` are one file to it): the index must not describe one
                    # and dpkg install the other.
                    raise InvalidPackageError(f"{source}: {member_name} holds two control files")
                if not member.isfile():
                    raise InvalidPackageError(
                        f"{source}: the control file in {member_name} is not a regular file"
                    )
                if member.size > CONTROL_FILE_LIMIT:
                    raise InvalidPackageError(
                        f"{source}: control file is {member.size} bytes; apt cannot read "
                        "a package entry over 1 MiB, so debrepo takes control files of up "
                        f"to {CONTROL_FILE_LIMIT >> 10} KiB"
                    )
                extracted = archive.extractfile(member)
                raw = extracted.read() if extracted is not None else b""
            # tarfile ends its walk at the first header it cannot read, as if it were the
            # end; GNU tar, and so dpkg-deb, fails there. Where the walk ended, only an
            # end-of-archive block (zeros) may be, or nothing.
            if tar_bytes[archive.offset : archive.offset + TAR_BLOCK].strip(b"\0"):
                raise InvalidPackageError(
                    f"{source}: {member_name} is corrupt (a header tar cannot read after "
                    f"{archive.offset} bytes)"
                )
    except tarfile.TarError as exc:
        raise InvalidPackageError(
            f"{source}: {member_name} is not a valid tar archive ({exc})"
        ) from None
    if raw is None:
        raise InvalidPackageError(f"{source}: {member_name} holds no control file")
    if dangling := _dangling_link(unpacked):
        # dpkg opens every control file, through its link ("unable to open file").
        raise InvalidPackageError(
            f"{source}: {member_name} holds {quoted_excerpt(dangling)}, a symbolic link to "
            "no file in it; dpkg cannot install such a package"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPackageError(f"{source}: control file is not valid UTF-8") from None


def _header_number(field: bytes, low: int, high: int, *, octal_only: bool = False) -> int | None:
    """A number in a tar header as GNU tar reads it (list.c, from_header), or None where
    tar fails the archive: after one NUL and blanks, octal digits, or (but in a checksum)
    base-64 after a sign (tar test releases of 1999 wrote it) or base-256 (a first byte
    0x80, or 0xff for a negative number); then the end, a NUL or a blank; in range."""
    if plain := _PLAIN_OCTAL.match(field):  # how every tool but a few writes them
        value = int(plain[1], 8)
        return value if low <= value <= high else None
    rest = (field[1:] if field[:1] == b"\0" else field).lstrip(_BLANKS)
    if not rest:
        return None  # "Blanks in header where numeric value expected"
    digits = rest[: len(rest) - len(rest.lstrip(_OCTAL))]
    value = 0
    if digits:
        value, rest = int(digits, 8), rest[len(digits) :]
    elif octal_only:
        pass
    elif rest[:1] in (b"+", b"-"):
        digits = rest[1 : len(rest) - len(rest[1:].lstrip(_BASE64))]
        for digit in digits:
            value = value * 64 + _BASE64.index(digit)
        value, rest = -value if rest[:1] == b"-" else value, rest[1 + len(digits) :]
    elif rest[0] in (0x80, 0xFF) and len(rest) > 1:
        value = int.from_bytes(rest[1:], "big") - (rest[0] == 0xFF) * 256 ** (len(rest) - 1)
        rest = b""
    if rest[:1].strip(_BLANKS + b"\0"):
        return None  # "Archive contains ... where numeric value expected"
    return value if low <= value <= high else None


def _checksum_tar_takes(block: bytes, recorded: int | None = None) -> bool:
    """Whether GNU tar takes a header's checksum (`recorded`, if read already): an octal
    number equal to the sum of its bytes, counted unsigned or signed, with the
    checksum's own as blanks."""
    if recorded is None:
        recorded = _header_number(block[148:156], 0, _INT_MAX, octal_only=True)
    unsigned = sum(block) - sum(block[148:156]) + 8 * ord(" ")
    if recorded == unsigned:
        return True
    counted = block[:148] + block[156:]
    return recorded == unsigned - 256 * (len(counted) - len(counted.translate(None, _HIGH_BYTES)))


def _pax_records(data: bytes, size: int) -> dict[bytes, bytes] | str:
    """The records of a PAX header (`size` bytes, then padding) as GNU tar reads them
    (xheader.c, decode_record); or "malformed" where tar fails on them, or "read
    otherwise" where tarfile reads other records placing a file: it stops at a blank or
    an empty keyword, where tar reads on, and reads on into the padding, where tar
    stops."""
    records: dict[bytes, bytes] = {}
    start = 0
    while not _PAX_RECORDS_END.match(data, start, size):
        match = _PAX_RECORD_TAR.match(data, start, size)
        end = start + _decimal(match[1]) if match else 0
        if not match or not match.end() <= end <= size or data[end - 1 : end] != b"\n":
            return "malformed"
        records[match[2]] = data[match.end() : end - 1]
        start = end
    read: dict[bytes, bytes] = {}
    start = 0
    while start < len(data) and (match := _PAX_RECORD_TARFILE.match(data, start)):
        end = start + _decimal(match[1])
        read[match[2]] = data[match.end() : end - 1]
        start = end if end > start else len(data)
    return records if _placing(read) == _placing(records) else "read otherwise"


def _decimal(text: bytes) -> int:
    """A decimal number ("-?[0-9]+"); past 20 digits, +-10**20, beyond any range tar
    takes (and int() refuses 4,300 digits)."""
    if len(text.lstrip(b"-").lstrip(b"0")) > 20:
        return -(10**20) if text[:1] == b"-" else 10**20
    return int(text)


def _placing(records: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """The records deciding which file tar unpacks, where, how large, or sparse."""
    return {
        key: value
        for key, value in records.items()
        if key in _PAX_PLACING or key.startswith(b"GNU.sparse.")
    }


def _header_fault(tar: bytes) -> tuple[int, str, bool] | None:
    """Where GNU tar fails on the archive, or reads it otherwise than tarfile: (the
    header's offset, why, whether tar fails), or None. The headers are walked where
    tarfile finds them, each read as tar reads it (list.c, xheader.c): its checksum and
    numbers, its PAX records, and the headers naming the file after them (tarfile takes
    the first long name, tar the last; tar forgets an earlier PAX header, tarfile keeps
    it). A sparse file is refused: dpkg-deb never writes one, and tar checks its map by
    rules of its own. After the first zero block, where tarfile stops, tar reads one
    more header, and still fails on its size or on a global header's records."""
    offset, ended = 0, False
    shared: dict[bytes, bytes] = {}  # the global (g) header's records: for every later file
    local: dict[bytes, bytes] = {}  # the extended (x) header's records: for the next file
    chain = b""  # the long name (L) and link (K) headers before the next file
    while len(block := tar[offset : offset + TAR_BLOCK]) == TAR_BLOCK:
        if not block.strip(b"\0"):
            if ended:
                return None
            offset, ended = offset + TAR_BLOCK, True
            continue
        kind = block[156:157].replace(b"X", b"x")  # X: a PAX header, as Solaris named it
        if plain := _PLAIN_NUMBERS.fullmatch(block, 100, 156):
            # tarfile reads this checksum as tar does and checks it, ending its walk at
            # one that does not match (which _control_text refuses): only past the end
            # of its walk is it debrepo's to check.
            if ended and not _checksum_tar_takes(block, int(plain[2], 8)):
                return None
            size = 0 if kind == b"1" else int(plain[1], 8)
        else:
            if not _checksum_tar_takes(block):
                return None if ended else (offset, "bad checksum", True)
            read = 0 if kind == b"1" else _header_number(block[124:136], 0, _INT64_MAX)
            if read is None:
                return offset, "bad size", True
            size = read
            if size and (block[124] == 0 or block[124:136].lstrip(_BLANKS)[:1] in (b"+", b"-")):
                return offset, "a size field tar reads as another number", False
        blocks = TAR_BLOCK * -(-size // TAR_BLOCK)
        if kind in _EXTENSIONS:
            data = tar[offset + TAR_BLOCK : offset + TAR_BLOCK + blocks]
            if len(data) < size:
                return offset, "truncated", True
            if kind in b"xg" and not (ended and kind == b"x"):  # x is read but not decoded
                records = _pax_records(data, size)
                if records == "malformed":
                    return offset, "bad PAX record", True
                if isinstance(records, str):
                    if not ended:
                        return offset, "PAX records tar reads otherwise", False
                elif kind == b"g":
                    if _placing(shared | records) != _placing(records):
                        return offset, "a global PAX header replacing another", False
                    shared = records  # tar forgets the earlier one's, tarfile keeps them
                elif (b"L" in chain and b"path" in records) or (
                    b"K" in chain and b"linkpath" in records
                ):
                    return offset, "a long name and a PAX one after it", False
                elif _placing(records | local) != _placing(records):
                    return offset, "two PAX headers for one file", False
                else:
                    local = records  # tar forgets an earlier one's, tarfile keeps them
            if kind in b"LK":
                chain += kind
            offset += TAR_BLOCK + blocks
            continue
        if ended:
            return None
        if not plain and (why := _member_header_fault(block)):
            return offset, why, True
        if kind == b"S":
            return offset, "a sparse file", False
        if chain.count(b"L") > 1 or chain.count(b"K") > 1:
            return offset, "two long names for one file", False
        if shared or local:  # most archives have no PAX header at all
            pax = shared | local
            if why := _pax_number_fault(pax):
                return offset, why, True
            if any(key.startswith(b"GNU.sparse.") for key in pax):
                return offset, "a sparse file", False
            if (b"L" in chain and b"path" in shared) or (b"K" in chain and b"linkpath" in shared):
                return offset, "a long name and a global PAX one", False
            if b"size" in pax:
                if not _PAX_INTEGER_RE.fullmatch(pax[b"size"]):  # tar reads on to a NUL
                    return offset, "a PAX size tar reads as another number", False
                if b"size" not in local and _decimal(pax[b"size"]) != size:
                    return offset, "a global PAX size", False  # tarfile skips the header's
                size = _decimal(pax[b"size"])
                blocks = TAR_BLOCK * -(-size // TAR_BLOCK)
            local = {}
        chain = b""
        # tarfile (and tar) take an old-style file whose name ends in "/" for a folder,
        # and read what its size would cover as the headers after it.
        folder = kind == b"\0" and block[:100].split(b"\0", 1)[0].endswith(b"/")
        offset += TAR_BLOCK + (0 if kind in _NO_DATA or folder else blocks)
    return None


def _member_header_fault(block: bytes) -> str | None:
    """Why GNU tar fails on a number in a file's header (list.c, decode_header). tar
    reads the uid and gid only where the installing system does not know the user and
    group named: every system knows root, and any other name may be unknown to it."""
    for field, start, width, low, high, owner in _HEADER_NUMBERS:
        if _header_number(block[start : start + width], low, high) is None and not (
            owner
            and (block[257:263] == b"ustar\0" or block[257:265] == b"ustar  \0")
            and block[owner : owner + 32].split(b"\0", 1)[0] == b"root"
        ):
            return f"bad {field}"
    return None


def _unpacked_name(member: TarInfo, member_name: str, source: str) -> str:
    """Where GNU tar unpacks `member`, relative to the folder it unpacks
    into: without leading `/`, `.` segments and doubled slashes ("" for the folder
    itself). What tar refuses to unpack, or unpacks as something else than tarfile
    reads it, is refused: a `..` segment, a file named like a folder (`x/.`, or `x/`
    with data), an empty name, a name or link target too long for the file system, a
    link to a folder or out of the archive's."""
    name, link = _tar_name(member), _tar_link(member)
    segments = [segment for segment in name.split("/") if segment not in ("", ".")]
    if ".." in segments:
        raise InvalidPackageError(
            f"{source}: {member_name} holds {name!r}, which climbs out of its folder"
        )
    why = None
    if member.isfile() and name.endswith("/") and member.size:
        why = "a file named as a folder"  # tar takes it for one, and its data for headers
    elif not (member.isdir() or member.issym()) and name.rsplit("/", 1)[-1] == ".":
        why = "a file named as a folder"  # tar: "Cannot open: File exists"
    elif not name.strip("/") and not member.isdir():
        why = "an empty name"  # tar unpacks it as "." ("File exists")
    elif any(len(segment.encode("utf-8", "surrogateescape")) > NAME_MAX for segment in segments):
        why = f"a name longer than {NAME_MAX} bytes"
    elif len(link.encode("utf-8", "surrogateescape")) > PATH_MAX:
        why = f"a link target longer than {PATH_MAX} bytes"
    elif member.issym() and ".." in link.split("/"):
        why = "a link out of its folder"  # dpkg opens it from a folder of its own
    elif member.issym() and link.rstrip("/").rsplit("/", 1)[-1] in ("", "."):
        why = "a link to a folder"
    if why:
        raise InvalidPackageError(
            f"{source}: {member_name} holds {quoted_excerpt(name)}, {why}; dpkg cannot "
            "install such a package"
        )
    return "/".join(segments)


def _tar_name(member: TarInfo) -> str:
    """`member`'s name as tar reads it: a PAX path ends at a NUL, and keeps the trailing
    slashes tarfile drops."""
    return member.pax_headers.get("path", member.name).split("\0", 1)[0]


def _tar_link(member: TarInfo) -> str:
    """`member`'s link target as tar reads it: a PAX one ends at a NUL."""
    return member.linkname.split("\0", 1)[0]


def _pax_number_fault(records: dict[bytes, bytes]) -> str | None:
    """Why GNU tar fails on a PAX number (tarfile reads anything, as 0 or as a float)."""
    for key, record in sorted(records.items()):
        value = record.split(b"\0", 1)[0]  # tar reads a C string
        if key in _PAX_TIMES:
            match = _PAX_TIME_RE.match(value)
            negative = bool(match and match[1][:1] == b"-" and match[2])
            low, high = -(1 << 63) + negative, _INT64_MAX  # tar rounds down, below it
        elif key in _PAX_INTEGERS:
            match = _PAX_INTEGER_RE.fullmatch(value)
            low, high = _PAX_INTEGERS[key]
        else:
            continue
        name = key.decode("ascii")
        if not match:
            return f"a PAX {name} that is not a number"
        if not low <= _decimal(match[1] if key in _PAX_TIMES else match[0]) <= high:
            return f"a PAX {name} out of range"
    return None


def _dangling_link(unpacked: dict[str, str | None]) -> str | None:
    """The first symbolic link (in `unpacked`: where each member unpacks, and its link
    target or None) that leads to no file of the archive, or round in a loop; None if
    none does. A target from `/` is a file of the installing system: not judged."""
    for name, target in unpacked.items():
        seen = {name}
        while target is not None and not target.startswith("/"):
            step = "/".join(segment for segment in target.split("/") if segment not in ("", "."))
            # "postinst/": every member is a file or a link, never a folder ("Not a
            # directory").
            if step in seen or step not in unpacked or target.endswith("/"):
                return name
            seen.add(step)
            target = unpacked[step]
    return None


def _links_to(member: TarInfo, files: set[str]) -> bool:
    """Whether `member` is a hard link to a regular file unpacked before it (how tar
    stores one maintainer script linked to another)."""
    if not member.islnk():
        return False
    target = [segment for segment in _tar_link(member).split("/") if segment not in ("", ".")]
    return "/".join(target) in files


CopyOpener = Callable[[list[tuple[str, str]]], BinaryIO | None]


def inspect_deb(
    path: Path,
    *,
    copy_to: BinaryIO | None = None,
    open_copy: CopyOpener | None = None,
    name: str | None = None,
    direct_copy: bool = False,
) -> DebInspection:
    """Read `path` once: control fields, size and checksums; optionally copy its bytes.

    The copy goes to `copy_to`, or to what `open_copy(control_fields)` returns once the
    control file has been read (so the copy can be named after the package it holds).
    `direct_copy`: the copy of a large file may bypass the page cache; for a copy that
    stays on disk, not one read back at once (an upload's scratch file).
    Raises InvalidPackageError naming the file for anything that is not a complete,
    well-formed binary package (PackageReadError when `path` cannot be read); an
    OSError when the copy cannot be made.
    """
    if copy_to is not None and open_copy is not None:
        raise ValueError("inspect_deb takes copy_to or open_copy, not both")
    source = name or path.name
    control: list[tuple[str, str]] | None = None
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise PackageReadError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        try:
            parallel = os.fstat(handle.fileno()).st_size >= PARALLEL_FROM
        except OSError:
            parallel = False
        fanout = _Fanout(parallel, direct=direct_copy, defer_sink=open_copy is not None)
        stream = _Source(handle, fanout)

        def on_control(member: str, raw: bytes) -> None:
            nonlocal control
            text = _control_text(_decompress_control(member, raw, source), member, source)
            control = parse_control(text, source=source)
            if open_copy is not None:
                try:
                    sink = open_copy(control)
                except OSError as exc:
                    raise _CopyFailed(exc) from None
                fanout.attach(sink)

        try:
            try:
                if open_copy is None:
                    fanout.attach(copy_to)
                has_data = _walk_ar(stream, source, on_control)
                stream.drain()
            except _CopyFailed:
                raise
            except OSError as exc:
                raise PackageReadError(f"{path}: cannot read: {exc.strerror}") from None
            finally:
                fanout.close()
            fanout.check()
        except _CopyFailed as failed:
            raise failed.error from None  # the caller's copy, not the package, is at fault
    if control is None:
        raise InvalidPackageError(f"{source}: not a binary package (no control.tar member)")
    if not has_data:
        raise InvalidPackageError(f"{source}: not a binary package (no data.tar member)")
    return DebInspection(
        control=control,
        facts=FileFacts(
            size=stream.size,
            md5=fanout.md5.hexdigest(),
            sha1=fanout.sha1.hexdigest(),
            sha256=fanout.sha256.hexdigest(),
            sha512=fanout.sha512.hexdigest(),
        ),
    )


def _member_name(field: bytes) -> str:
    """An ar member's name as dpkg reads it: trailing spaces and one trailing `/` (GNU
    ar's terminator) dropped, nothing else (a name with a tab or a leading space is not
    `data.tar.xz` to dpkg)."""
    name = field.rstrip(b" ")
    return name.removesuffix(b"/").decode("ascii", "replace")


def _member_size(field: bytes) -> int | None:
    """An ar member's size as dpkg reads it: leading spaces, then decimal digits up to
    the next space (what follows is ignored); None for any other character, which dpkg
    refuses. (int() would also take "-60", a walk that rewinds for ever, or "1_0".)"""
    digits = field.lstrip(b" ").partition(b" ")[0]
    if digits and not digits.isdigit():  # bytes.isdigit: ASCII digits only
        return None
    return int(digits or b"0")


def _walk_ar(stream: _Source, source: str, on_control: Callable[[str, bytes], None]) -> bool:
    """Walk the ar members, handing the control member to `on_control`; True if data seen.

    dpkg-deb's rules: `debian-binary`, then `control.tar*`, then `data.tar*`, with
    members named `_...` ignored before the data and anything after it. A package that
    breaks them would be published, and then fail to install on every client.
    """
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
        member = _member_name(header[:16])
        size = _member_size(header[48:58])
        if size is None:
            raise InvalidPackageError(
                f"{source}: corrupt .deb (bad size in ar header of {member!r})"
            )
        read = 0  # of the member's bytes, before skipping the rest
        if index == 0:
            if member != "debian-binary":
                raise InvalidPackageError(
                    f"{source}: not a Debian binary package (first member is {member!r})"
                )
            if size > DEBIAN_BINARY_LIMIT:
                raise InvalidPackageError(
                    f"{source}: corrupt .deb (debian-binary declares {size} bytes; it holds "
                    "a format version such as 2.0)"
                )
            body = stream.read(size)
            read = len(body)
            if len(body) < size:
                raise InvalidPackageError(f"{source}: truncated .deb (in debian-binary)")
            version = _FORMAT_RE.match(body)
            if not version or int(version.group(1)) > _INT_MAX:
                raise InvalidPackageError(
                    f"{source}: unsupported .deb format {body.strip()[:10]!r}"
                )
        elif member.startswith("_"):
            pass  # dpkg ignores these (signatures such as _gpgorigin)
        elif has_data:
            # dpkg ignores what follows the data, but apt-ftparchive reads a control.tar
            # there and would index another package from the same file.
            if member.startswith("control.tar"):
                raise InvalidPackageError(
                    f"{source}: not a valid .deb (member {member!r} after data.tar)"
                )
        elif control_member is None:
            if member.startswith("data.tar"):
                raise InvalidPackageError(f"{source}: data.tar comes before control.tar")
            if not member.startswith("control.tar"):
                raise InvalidPackageError(
                    f"{source}: not a valid .deb (member {member!r} before control.tar)"
                )
            if member not in CONTROL_MEMBERS:
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
            read = size
        elif member.startswith("control.tar"):
            raise InvalidPackageError(f"{source}: not a valid .deb (two control.tar members)")
        elif not member.startswith("data.tar"):
            raise InvalidPackageError(
                f"{source}: not a valid .deb (member {member!r} before data.tar)"
            )
        elif member not in DATA_MAGIC:
            raise InvalidPackageError(f"{source}: unsupported data archive {member!r}")
        else:
            has_data = True
            magic = DATA_MAGIC[member]
            head = stream.read(min(size, len(magic)))
            read = len(head)
            if len(head) == len(magic) and head != magic:
                raise InvalidPackageError(
                    f"{source}: {member} does not hold {member.rpartition('.')[2]} data"
                )
        if read < size:
            skipped = stream.skip(size - read)
            if skipped < size - read:
                raise InvalidPackageError(
                    f"{source}: truncated .deb ({member} declares {size} bytes, "
                    f"the file ends after {read + skipped})"
                )
        if size % 2 and stream.read(1) not in (b"\n", b""):
            raise InvalidPackageError(f"{source}: corrupt .deb (bad ar padding after {member!r})")
        index += 1
    return has_data
