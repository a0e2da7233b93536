"""Temporary folders for downloads and copies that a killed run does not leave for ever.

Each folder holds an `.owner` file its process keeps locked (flock) until it drops the
folder. A process killed outright (SIGKILL, out of memory, a Lambda timeout) cannot
remove its folder, but the kernel releases its lock; the next run that makes a folder
of the same family finds the lock free and removes the folder. A folder whose owner
still runs, as with two syncs at once, stays locked and is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from debrepo.errors import DebrepoError

log = logging.getLogger("debrepo.scratch")

OWNER = ".owner"
# A folder without an owner file is either being made this instant or older than this
# mechanism; only the latter, left for a day, is removed.
_UNOWNED_GRACE_SECONDS = 86400.0

_held: dict[Path, int] = {}  # folder -> the descriptor holding its lock


def new_scratch(family: str, parent: Path | None = None, *, label: str = "") -> Path:
    """A new folder `<family><label>...` under `parent` (default: the system's temporary
    folder), locked by this process; abandoned folders of the family go first."""
    root = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    sweep(family, root)
    path = Path(tempfile.mkdtemp(prefix=f"{family}{label}", dir=root))
    # Locked before it gets its name: a sweep never sees an owner file not yet locked.
    pending = path / f"{OWNER}.new"
    try:
        descriptor = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            pending.rename(path / OWNER)
        except OSError:
            os.close(descriptor)
            raise
    except OSError as exc:
        shutil.rmtree(path, ignore_errors=True)
        # Unlocked, the folder would pass for abandoned and go from under this run.
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise DebrepoError(
                f"{root}: cannot lock a temporary folder there ({exc.strerror}); point "
                "TMPDIR at a folder on a local file system"
            ) from None
        raise DebrepoError(
            f"{root}: cannot make a temporary folder there: {exc.strerror}"
        ) from None
    _held[path] = descriptor
    return path


def drop_scratch(path: Path) -> None:
    """Remove a folder made by `new_scratch` (or any folder) and release its lock."""
    shutil.rmtree(path, ignore_errors=True)
    descriptor = _held.pop(Path(path), None)
    if descriptor is not None:
        os.close(descriptor)


def sweep(family: str, root: Path) -> list[Path]:
    """Remove the folders of `family` under `root` whose owner is gone; returns them."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(family) or Path(entry.path) in _held:
            continue
        with contextlib.suppress(OSError):  # not ours to touch, or gone meanwhile
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.geteuid():
                continue  # another user's, in a shared /tmp: never ours to remove
            if _abandoned(Path(entry.path)):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
                log.info("removed %s, left by a run that was killed", entry.path)
    return removed


def _abandoned(folder: Path) -> bool:
    try:
        # Not waiting: in the shared /tmp, anyone can plant a FIFO that no one writes to.
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        descriptor = os.open(folder / OWNER, flags)
    except FileNotFoundError:
        return time.time() - folder.stat().st_mtime > _UNOWNED_GRACE_SECONDS
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its owner still runs
    finally:
        os.close(descriptor)  # also releases the lock just taken
    return True
