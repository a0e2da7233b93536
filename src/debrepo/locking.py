"""One publisher at a time on the embedded default: an advisory lock on a local file.

The kernel drops a `flock` when its holder exits, so a crashed publisher never leaves
the repository locked. The file records who holds the lock, for the error message.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from debrepo.errors import LockError
from debrepo.folders import make_folders, refuse_a_home_others_control

POLL_SECONDS = 0.1

# Descriptors of the locks this process holds. A forked child (a reader process) closes
# its copies at once: a `flock` lasts while any copy is open, so a child outliving its
# parent would otherwise keep the repository locked. (Closing a copy does not unlock.)
_held: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in _held:
        with suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


@contextmanager
def local_lock(path: Path, *, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on `path`; LockError after `wait_seconds` of waiting."""
    make_folders(path.parent)
    refuse_a_home_others_control(path.parent)  # the lock is taken to change the store and sign
    try:
        # Taking the lock truncates the file: never through a link planted in the home.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise LockError(f"{path}: is a symbolic link; refusing to lock through it") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)  # a hard link to a file elsewhere would be truncated below
        raise LockError(
            f"{path}: not a plain file of its own (a device, or a hard link); remove it"
        )
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text(encoding="utf-8", errors="replace").strip() or "unknown"
                    advice = (
                        f"still held after waiting {wait_seconds:g} s; retry when it has "
                        "finished, or wait longer"
                        if wait_seconds > 0
                        else "retry when it has finished, or pass --wait SECONDS"
                    )
                    raise LockError(
                        f"another debrepo process is publishing ({holder}); lock {path}; {advice}"
                    ) from None
                time.sleep(POLL_SECONDS)
            except OSError as exc:
                # Publishing without the lock could interleave two publishers: refuse.
                raise LockError(
                    f"{path}: cannot lock it ({exc.strerror}): its file system does not "
                    "support flock (NFS without a lock daemon, some FUSE mounts); keep the "
                    "home (--home) on a local file system"
                ) from None
        since = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
        owner = f"pid {os.getpid()} on {os.uname().nodename} since {since}"
        # Who holds it is for the message of a second publisher only: a full disk fails
        # the publish itself where it writes, naming that file, not here.
        with suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, owner.encode(), 0)
        _held.add(fd)
        try:
            yield
        finally:
            _held.discard(fd)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def local_holder(path: Path) -> str | None:
    """Who holds the lock at `path` now (as it recorded itself), None if nobody does or
    it cannot be told. Takes no lock, not even for a moment (a publisher asking for the
    lock then would be refused): the kernel's table of locks (Linux /proc/locks) says
    whether a `flock` is held on the file."""
    try:
        info = path.stat()
        locks = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    held = any(
        fields[1:2] == ["FLOCK"] and device in fields
        for fields in (line.split() for line in locks.splitlines())
    )
    if not held:
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"
