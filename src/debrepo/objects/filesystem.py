"""Filesystem object store: a published repository or staging area in a local folder.

Every write goes to a temporary file in the target directory and is renamed into
place, so a reader (apt through `debrepo serve`, nginx, rsync) sees the old file or
the new one, never a part. Temporary names start with `.tmp-` and are never listed.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO

from debrepo.core.layout import Delivery
from debrepo.errors import ObjectStoreError
from debrepo.ports import ObjectInfo, ObjectStore

TEMP_PREFIX = ".tmp-"
COPY_CHUNK = 1 << 20


class FilesystemObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ObjectStoreError(f"{root}: cannot create directory: {exc.strerror}") from None

    def path_for(self, key: str) -> Path:
        """The local path of `key`; refuses keys that could leave the root."""
        parts = key.split("/")
        if (
            not key
            or key.startswith("/")
            or "\\" in key
            or "\x00" in key
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise ObjectStoreError(f"{key!r} is not a safe object key under {self.root}")
        return self.root.joinpath(*parts)

    # -- reading --------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        try:
            return self.path_for(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ObjectStoreError(f"{self.path_for(key)}: cannot read: {exc.strerror}") from None

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            return ObjectInfo(key, self.path_for(key).stat().st_size)
        except (FileNotFoundError, NotADirectoryError):
            return None

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
        for directory, _, files in os.walk(base):
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
    def _temp_for(self, target: Path) -> Path:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ObjectStoreError(
                f"{target.parent}: cannot create directory: {exc.strerror}"
            ) from None
        return target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{target.name}")

    def _commit(self, temp: Path, target: Path) -> None:
        try:
            os.replace(temp, target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise ObjectStoreError(f"{target}: cannot write: {exc.strerror}") from None

    def put(self, key: str, data: bytes, delivery: Delivery) -> None:
        target = self.path_for(key)
        temp = self._temp_for(target)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise ObjectStoreError(f"{target}: cannot write: {exc.strerror}") from None
        self._commit(temp, target)

    def put_file(self, key: str, path: Path, delivery: Delivery, *, move: bool = False) -> None:
        target = self.path_for(key)
        temp = self._temp_for(target)
        try:
            if move:
                try:
                    os.replace(path, temp)
                    os.chmod(temp, 0o644)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    shutil.copyfile(path, temp)
                    path.unlink()
            else:
                shutil.copyfile(path, temp)
                os.chmod(temp, 0o644)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise ObjectStoreError(f"{target}: cannot write from {path}: {exc.strerror}") from None
        self._commit(temp, target)

    def copy_from(self, source: ObjectStore, source_key: str, key: str, delivery: Delivery) -> None:
        target = self.path_for(key)
        temp = self._temp_for(target)
        try:
            if isinstance(source, FilesystemObjectStore):
                origin = source.path_for(source_key)
                if not origin.is_file():
                    raise ObjectStoreError(f"{origin}: no such file")
                try:
                    # Pool and staging files are never modified in place (every write is
                    # a new inode), so sharing the inode is as safe as a copy and free.
                    os.link(origin, temp)
                except OSError:
                    shutil.copyfile(origin, temp)
                    os.chmod(temp, 0o644)
            else:
                with source.open(source_key) as reader, temp.open("wb") as writer:
                    shutil.copyfileobj(reader, writer, COPY_CHUNK)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise ObjectStoreError(f"{target}: cannot copy {source_key}: {exc.strerror}") from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._commit(temp, target)

    def delete(self, key: str) -> None:
        try:
            self.path_for(key).unlink(missing_ok=True)
        except OSError as exc:
            raise ObjectStoreError(f"{self.path_for(key)}: cannot delete: {exc.strerror}") from None
