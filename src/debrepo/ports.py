"""The small interfaces between the pure core and the outside world.

One class per backend implements each of them (store/, objects/, signing/); services
take them as arguments, so tests and the Lambda can hand in any implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from debrepo.core.layout import Delivery
from debrepo.errors import RecordValidationError
from debrepo.model import PackageRecord


class Snapshot(NamedTuple):
    """Every complete record at one moment, and the incomplete items left out."""

    records: list[PackageRecord]
    skipped: list[RecordValidationError]


class MetadataStore(Protocol):
    """The single source of truth for package versions (seed "Query Patterns")."""

    description: str

    @property
    def identity(self) -> str:
        """What tells this store from any other: the description, plus what it leaves
        out (a DynamoDB table's region: the same name elsewhere is another table)."""

    def put(self, record: PackageRecord) -> None:
        """Store a new version; DuplicatePackageError if its package_id exists."""

    def put_many(self, records: Iterable[PackageRecord]) -> None:
        """Store several new versions in one transaction: all of them or none."""

    def get(self, package_id: str) -> PackageRecord | None: ...

    def exists(self, package_id: str) -> bool: ...

    def all(self) -> list[PackageRecord]:
        """Every complete record; incomplete ones are skipped with a warning naming fields."""

    def snapshot(self) -> Snapshot:
        """Like `all`, also reporting what was skipped; one read of the store."""

    def incomplete(self) -> list[RecordValidationError]: ...

    def by_name(self, package_name: str) -> list[PackageRecord]: ...

    def latest(self, package_name: str) -> PackageRecord | None: ...

    def delete(self, package_id: str, *, withdrawn_at: str | None = None) -> bool:
        """Remove a version; False if it was not there. With `withdrawn_at` (a time),
        also record, in the same transaction, that it was removed on purpose."""

    def withdraw(self, package_id: str, withdrawn_at: str) -> None:
        """Record that a version the store does not hold is left out on purpose (a
        migration's --skip); `delete` does it for one it holds."""

    def clear_withdrawals(self, package_ids: Iterable[str]) -> None:
        """Forget that these versions were removed on purpose (they were added again):
        a stale withdrawal would excuse their later loss, and keep sync from them."""

    def withdrawn_at(self, package_id: str) -> str | None:
        """When the version was last removed on purpose; None if it never was. (One
        stored again since is wanted again: callers look in the store first.)"""

    def withdrawals(self) -> dict[str, str]:
        """package_id -> when, of every version ever removed on purpose (including
        any stored again since)."""

    def package_ids(self) -> set[str]: ...

    def damage(self) -> list[str]:
        """What is wrong with the store's own storage, as its engine checks it (a damaged
        SQLite file reads some rows and fails on others); [] if nothing or it cannot tell."""

    def revision(self, *, seed: bool = True) -> str | None:
        """A token that changes whenever any record changes; None if the backend cannot tell.

        `seed=False` for read-only callers: a backend that would have to write to start
        counting (a DynamoDB table from an earlier debrepo) does not, and answers a
        revision that matches no published one instead, as the written one would.
        """


class ObjectInfo(NamedTuple):
    key: str
    size: int
    # Changes whenever the object is rewritten (file: mtime and inode; S3: ETag), so a
    # caller that noted it can tell "untouched since" without reading the bytes.
    version: str | None = None


class ObjectStore(Protocol):
    """A tree of objects addressed by '/'-separated keys (a folder, an S3 prefix)."""

    description: str

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""

    def stat(self, key: str) -> ObjectInfo | None: ...

    def stat_many(self, keys: Sequence[str]) -> dict[str, int]:
        """Sizes of the objects that exist among `keys`, looked up the cheapest way."""

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Stream an object's bytes; ObjectStoreError if it does not exist."""

    def put(self, key: str, data: bytes, delivery: Delivery) -> str | None:
        """Write atomically: readers see the old object or the new one, never a part.
        Returns the new object's ObjectInfo.version where the write tells it (saving a
        stat to a caller that notes it), else None."""

    def put_file(self, key: str, path: Path, delivery: Delivery, *, move: bool = False) -> None:
        """Write a local file's bytes atomically; `move` lets the store take the file."""

    def copy_from(
        self,
        source: ObjectStore,
        source_key: str,
        key: str,
        delivery: Delivery,
        *,
        shared: bool = False,
    ) -> None:
        """Copy an object from `source` (possibly this store) to `key`, atomically.

        `shared`: the copy may share its storage with the source (a hard link), for
        content-addressed copies whose bytes nobody has a reason to write over."""

    def same_bytes(self, key: str, data: bytes) -> bool:
        """Whether the object at `key` exists and holds exactly `data`."""

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def flush(self) -> None:
        """Make every write so far durable (power loss included) before any later one."""


class Signer(Protocol):
    """Makes the InRelease and Release.gpg signatures."""

    fingerprint: str

    def clearsign(self, data: bytes) -> bytes: ...

    def detached_signature(self, data: bytes) -> bytes: ...

    def public_key_binary(self) -> bytes: ...

    def public_key_armored(self) -> bytes: ...
