"""Filesystem object store: a published repository or staging area in a local folder.

Every write goes to a temporary file in the target directory and is renamed into
place, so a reader (apt through `debrepo serve`, nginx, rsync) sees the old file or
the new one, never a part. Temporary names start with `.tmp-` and are never listed.

What it writes is for everyone to read (a web server reads it as another user), so
files are 0644 and the folders it creates 0755 whatever the umask.

Durability: rather than an fsync per file (10,000 pool files are 10,000 waits), the
publisher calls `flush` once, before the Release files, so that after a power loss a
Release never names a file that was lost.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO

from debrepo.core.layout import Delivery
from debrepo.errors import ObjectStoreError
from debrepo.folders import make_folders
from debrepo.ports import ObjectInfo, ObjectStore

TEMP_PREFIX = ".tmp-"
COPY_CHUNK = 1 << 20
FILE_MODE = 0o644
DIRECTORY_MODE = 0o755


class FilesystemObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)
        self._root = str(root)
        self._known_dirs: set[str] = set()
        # Created by the first write, not here: a command that only reads (a dry run, a
        # mistyped --home) leaves no empty folder behind.
        if root.exists() and not root.is_dir():
            raise ObjectStoreError(f"{root}: cannot create directory: Not a directory")

    def _local(self, key: str) -> str:
        """The local path of `key` as text; refuses keys that could leave the root."""
        if (
            not key
            or key[0] == "/"
            or "\\" in key
            or "\x00" in key
            or "//" in key
            or key[-1] == "/"
            or any(part in (".", "..") for part in key.split("/"))
        ):
            raise ObjectStoreError(f"{key!r} is not a safe object key under {self.root}")
        return f"{self._root}/{key}"

    def path_for(self, key: str) -> Path:
        """The local path of `key`; refuses keys that could leave the root."""
        return Path(self._local(key))

    def unwritable(self, folders: Sequence[str]) -> str | None:
        """Which of these existing folders under the root, the folders inside them (a
        publish writes down to `by-hash/SHA256`), and the root itself a write would fail
        in (read-only, another owner's: left by a run as root, say), or None: for a
        command that must not change the store when its publish cannot write."""
        for folder in ("", *folders):
            top = f"{self._root}/{folder}".rstrip("/")
            if not os.path.isdir(top):
                continue
            # The root alone: its pool holds thousands of folders, which a copy that
            # fails to go in refuses with nothing stored anyway.
            inside = (path for path, _, _ in os.walk(top)) if folder else iter((top,))
            for path in inside:
                if not os.access(path, os.W_OK | os.X_OK, effective_ids=True):
                    return f"{path}: cannot write there (read-only, or not permitted)"
        return None

    # -- reading --------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        path = self._local(key)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ObjectStoreError(f"{path}: cannot read: {exc.strerror}") from None

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            info = os.stat(self._local(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return ObjectInfo(key, info.st_size, f"{info.st_mtime_ns}-{info.st_ino}")

    def stat_many(self, keys: Sequence[str]) -> dict[str, int]:
        """One stat per key: cheaper on a local disk than walking the directories."""
        sizes = {}
        for key in keys:
            try:
                sizes[key] = os.stat(self._local(key)).st_size
            except (FileNotFoundError, NotADirectoryError):
                continue
        return sizes

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        return self._open(key)

    @contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        path = self.path_for(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise ObjectStoreError(f"{path}: no such file") from None
        except OSError as exc:
            raise ObjectStoreError(f"{path}: cannot read: {exc.strerror}") from None
        with handle:
            yield handle

    def same_bytes(self, key: str, data: bytes) -> bool:
        info = self.stat(key)
        return info is not None and info.size == len(data) and self.get(key) == data

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix` (a directory prefix ending in '/', or '')."""
        base = self.path_for(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for directory, folders, files in os.walk(base):
            folders[:] = [name for name in folders if not name.startswith(TEMP_PREFIX)]
            for name in sorted(files):
                if name.startswith(TEMP_PREFIX):
                    continue
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                try:
                    yield ObjectInfo(key, path.stat().st_size)
                except FileNotFoundError:
                    continue

    # -- writing --------------------------------------------------------------------
    def _temp_for(self, target: str) -> str:
        directory, name = target.rsplit("/", 1)
        if directory not in self._known_dirs:
            try:
                self._make_directories(directory)
            except OSError as exc:
                raise ObjectStoreError(
                    f"{directory}: cannot create directory: {exc.strerror}"
                ) from None
            self._known_dirs.add(directory)
        return f"{directory}/{TEMP_PREFIX}{os.urandom(6).hex()}-{name}"

    def make_root(self) -> None:
        """The root folder, and its missing parents, 0755 whatever the umask (a web
        server reads them as another user)."""
        try:
            self._make_directories(self._root)
        except OSError as exc:
            raise ObjectStoreError(
                f"{self._root}: cannot create directory: {exc.strerror}"
            ) from None

    def _make_directories(self, directory: str) -> None:
        """`directory` and its missing parents: 0755 whatever the umask up to the root;
        above it (the home), at most 0755, less what the umask takes away."""
        try:  # the usual case: only the last folder is new
            _make_directory(directory)
            return
        except FileNotFoundError:
            pass
        missing = []
        while not os.path.isdir(directory) and directory != os.path.dirname(directory):
            if directory == self._root:
                make_folders(Path(os.path.dirname(directory)))
                missing.append(directory)
                break
            missing.append(directory)
            directory = os.path.dirname(directory)
        for path in reversed(missing):
            _make_directory(path)

    @staticmethod
    def _discard(temp: str) -> None:
        # Clean-up after a failure: its own failure (a read-only file system) must not
        # hide the error being reported.
        with contextlib.suppress(OSError):
            os.unlink(temp)

    def _commit(self, temp: str, target: str) -> None:
        try:
            os.replace(temp, target)
        except OSError as exc:
            self._discard(temp)
            raise ObjectStoreError(f"{target}: cannot write: {exc.strerror}") from None

    # -- two-step writes, for writers in other processes ------------------------------
    def reserve(self, key: str, *, incoming: str | None = None) -> tuple[str, BinaryIO]:
        """A new temporary file for `key`, open for writing: next to it, or in the folder
        `incoming` (on this file system), which its writer can clear whatever happens.

        `key`'s directory is created either way, and the file made readable by all
        whatever the umask, so that the commit (done serially, for a whole batch) is one
        rename.
        """
        temp = self._temp_for(self._local(key))
        if incoming is not None:
            temp = os.path.join(incoming, os.path.basename(temp))
        try:
            return temp, _create_readable(temp)
        except OSError as exc:
            self._discard(temp)
            raise ObjectStoreError(f"{temp}: cannot write: {exc.strerror}") from None

    def commit_reserved(self, temp: str, key: str) -> None:
        """Move a file written through `reserve` into place, atomically; copied there
        first if `key`'s folder is on another file system than `incoming` (a pool
        folder that is a mount point or a symbolic link to one)."""
        target = self._local(key)
        try:
            os.replace(temp, target)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                self._place_file(target, temp, move=True)
                return
            self._discard(temp)
            raise ObjectStoreError(f"{target}: cannot write: {exc.strerror}") from None

    def discard_reserved(self, temp: str) -> None:
        self._discard(temp)

    def remove_empty_folders(self, keys: Sequence[str]) -> None:
        """Remove the folders of `keys`, and their parents up to the root, that are
        empty (made for files that were then not kept)."""
        for key in keys:
            directory = os.path.dirname(self._local(key))
            while directory != self._root and directory.startswith(self._root + os.sep):
                try:
                    os.rmdir(directory)
                except OSError:  # not empty (or gone): its parents are not empty either
                    break
                self._known_dirs.discard(directory)
                directory = os.path.dirname(directory)

    def put(self, key: str, data: bytes, delivery: Delivery) -> str | None:
        target = self._local(key)
        temp = self._temp_for(target)
        try:
            with _create_readable(temp) as handle:
                handle.write(data)
                handle.flush()  # the last write sets the mtime; a rename keeps it
                written = os.fstat(handle.fileno())
        except OSError as exc:
            self._discard(temp)
            raise ObjectStoreError(f"{target}: cannot write: {exc.strerror}") from None
        self._commit(temp, target)
        return f"{written.st_mtime_ns}-{written.st_ino}"

    def put_file(self, key: str, path: Path, delivery: Delivery, *, move: bool = False) -> None:
        self._place_file(self._local(key), str(path), move=move)

    def _place_file(self, target: str, path: str, *, move: bool) -> None:
        import shutil  # not at module level: `debrepo rebuild` starts faster without it

        temp = self._temp_for(target)
        try:
            if move:
                try:
                    os.replace(path, temp)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    shutil.copyfile(path, temp)
                    os.unlink(path)
            else:
                shutil.copyfile(path, temp)
            os.chmod(temp, FILE_MODE)
        except OSError as exc:
            self._discard(temp)
            raise ObjectStoreError(f"{target}: cannot write from {path}: {exc.strerror}") from None
        self._commit(temp, target)

    def copy_from(
        self,
        source: ObjectStore,
        source_key: str,
        key: str,
        delivery: Delivery,
        *,
        shared: bool = False,
    ) -> None:
        import shutil

        target = self._local(key)
        temp = self._temp_for(target)
        try:
            if isinstance(source, FilesystemObjectStore):
                origin = source._local(source_key)
                # Linked only when asked: a hand-made `cp` over kiro-repo.deb writes into
                # its inode, and must not also change the pool file and the staged copy
                # that would restore it.
                if not (shared and _linked(origin, temp)):
                    try:
                        shutil.copyfile(origin, temp)
                    except FileNotFoundError:
                        raise ObjectStoreError(f"{origin}: no such file") from None
                    os.chmod(temp, FILE_MODE)
                elif os.stat(temp).st_mode & 0o777 != FILE_MODE:
                    os.chmod(temp, FILE_MODE)  # the shared inode keeps an older debrepo's mode
            else:
                with source.open(source_key) as reader, _create_readable(temp) as writer:
                    shutil.copyfileobj(reader, writer, COPY_CHUNK)
        except OSError as exc:
            self._discard(temp)
            raise ObjectStoreError(f"{target}: cannot copy {source_key}: {exc.strerror}") from None
        except BaseException:
            self._discard(temp)
            raise
        self._commit(temp, target)
        if os.path.lexists(temp):
            # rename(2) does nothing when both names are links to one file (the target
            # already was a link to the origin): the temporary name would stay, served.
            self._discard(temp)

    def flush(self) -> None:
        """Write this file system's cached data to disk and wait for it (Linux `syncfs`;
        elsewhere `sync`, which waits for every file system, or on some systems none)."""
        import ctypes  # the full publish path only

        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None:
            os.sync()
            return
        try:
            fd = os.open(self._root, os.O_RDONLY)
        except FileNotFoundError:
            return  # nothing was ever written here
        try:
            if syncfs(fd) != 0:
                error = ctypes.get_errno()
                raise ObjectStoreError(f"{self._root}: cannot sync: {os.strerror(error)}")
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        path = self._local(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ObjectStoreError(f"{path}: cannot delete: {exc.strerror}") from None
        # A pool folder of a version gone, the by-hash folders of an architecture no
        # longer published: an empty folder would stay for ever (S3 has none).
        self.remove_empty_folders([key])


def _linked(origin: str, link: str) -> bool:
    """Whether `link` is now a hard link to `origin` (False: not on one file system, or
    no hard links there)."""
    try:
        os.link(origin, link)
    except FileNotFoundError:
        raise ObjectStoreError(f"{origin}: no such file") from None
    except OSError:
        return False
    return True


def _make_directory(path: str) -> None:
    try:
        os.mkdir(path, DIRECTORY_MODE)
    except FileExistsError:
        if not os.path.isdir(path):  # a file in the way
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path) from None
        return  # made meanwhile by another writer
    os.chmod(path, DIRECTORY_MODE)  # the umask applies to mkdir's mode


def _create_readable(path: str) -> BinaryIO:
    """A new file at `path`, open for writing and 0644 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")
