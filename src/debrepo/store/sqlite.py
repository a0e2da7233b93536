"""SQLite metadata store: the embedded default, one file under `.debrepo/`.

One row per package version, one column per attribute of the seed's schema. Writes
run in a single transaction (all records of an `add` or none); the table has no
UPDATE path, so a stored version never changes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from debrepo.errors import DuplicatePackageError, RecordValidationError, StoreError
from debrepo.folders import make_folders
from debrepo.model import PackageRecord, item_problems
from debrepo.ports import Snapshot
from debrepo.store.base import BaseMetadataStore, warn_skipped

log = logging.getLogger("debrepo.store")

COLUMNS: tuple[str, ...] = (
    "package_id",
    "package_name",
    "version",
    "architecture",
    "section",
    "priority",
    "maintainer",
    "homepage",
    "description",
    "depends",
    "deb_url",
    "actual_filename",
    "file_size",
    "installed_size",
    "md5_hash",
    "sha1_hash",
    "sha256_hash",
    "sha512_hash",
    "certificate_url",
    "signature_url",
    "notes",
    "pub_date",
    "processed_timestamp",
    "package_type",
    "control_fields",
)
_INTEGER = {"file_size", "installed_size"}
# Every change also draws a random token: a revision then names one state of one store,
# so a recreated or restored database that has counted as many changes never matches
# what was published from another (a count alone would, and skip the new records).
_BUMP = "UPDATE store_revision SET revision = revision + 1, change = lower(hex(randomblob(12)));"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS packages (
    package_id TEXT PRIMARY KEY NOT NULL,
    {", ".join(f"{c} {'INTEGER' if c in _INTEGER else 'TEXT'}" for c in COLUMNS[1:])}
);
CREATE INDEX IF NOT EXISTS packages_by_name ON packages (package_name);
CREATE TABLE IF NOT EXISTS store_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL,
    change TEXT NOT NULL
);
INSERT OR IGNORE INTO store_revision (id, revision, change)
    VALUES (1, 0, lower(hex(randomblob(12))));
CREATE TRIGGER IF NOT EXISTS packages_inserted AFTER INSERT ON packages
    BEGIN {_BUMP} END;
CREATE TRIGGER IF NOT EXISTS packages_updated AFTER UPDATE ON packages
    BEGIN {_BUMP} END;
CREATE TRIGGER IF NOT EXISTS packages_deleted AFTER DELETE ON packages
    BEGIN {_BUMP} END;
"""  # noqa: S608 - constant column names
# Versions removed on purpose. Added without a new schema version: a debrepo from before
# ignores the table (its `remove` records nothing there), so going back still works.
_WITHDRAWN = """CREATE TABLE IF NOT EXISTS withdrawn (
    package_id TEXT PRIMARY KEY NOT NULL,
    withdrawn_at TEXT NOT NULL
)"""
# Version 0 counted changes without `change`; its triggers and counter are replaced.
_SCHEMA_VERSION = 1
# A debrepo of a few commits labelled schema 1 plus `withdrawn` as 2, which stores it
# wrote (or merely opened) still carry; the next real schema must be 3 or higher.
_RETIRED_SCHEMA_2 = 2
_UPGRADE = """
DROP TRIGGER IF EXISTS packages_inserted;
DROP TRIGGER IF EXISTS packages_updated;
DROP TRIGGER IF EXISTS packages_deleted;
DROP TABLE IF EXISTS store_revision;
"""
# Columns in PackageRecord's field order, so a row becomes a record positionally.
_RECORD_COLUMNS = PackageRecord._fields
_SELECT_RECORDS = f"SELECT package_id, {', '.join(_RECORD_COLUMNS)} FROM packages"  # noqa: S608
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM packages"  # noqa: S608 - constant column names
_INSERT = f"INSERT INTO packages ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"  # noqa: S608
_INSERT_RECORD = (
    f"INSERT INTO packages (package_id, {', '.join(_RECORD_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in range(len(_RECORD_COLUMNS) + 1))})"
)


# How SQLite reports a full disk when it opens a store in WAL mode.
_NO_ROOM = {"SQLITE_IOERR_SHMSIZE", "SQLITE_FULL"}


def _failure(path: Path, action: str, exc: sqlite3.Error) -> StoreError:
    return StoreError(f"{path}: cannot {action} the metadata store: {exc}{_advice(exc)}")


def _advice(exc: BaseException) -> str:
    """What to do when SQLite's error says the file is damaged, or no database (another
    file named by mistake, or a store damaged from its first page); "" for any other."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    if name.startswith("SQLITE_CORRUPT"):
        return "; the file is damaged: restore it from a backup (see Troubleshooting)"
    if name == "SQLITE_NOTADB":
        return (
            "; check --store (DEBREPO_STORE) and --home, or, if this was the store, restore "
            "it from a backup (see Troubleshooting)"
        )
    return ""


class SqliteMetadataStore(BaseMetadataStore):
    # Why the store was opened for reading only, where a change would otherwise fail as
    # SQLite's "attempt to write a readonly database".
    _read_only_because: str | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"sqlite://{path}"
        try:
            if path.is_file() and not all(
                os.access(p, os.W_OK, effective_ids=True) for p in (path, path.parent)
            ):
                self._open_read_only()
                return
            make_folders(path.parent)
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self._check_tables()  # before WAL: another program's database stays as it is
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if self._schema_version() != _SCHEMA_VERSION:
                self._upgrade()
            if not self._has_withdrawn_table():
                self._db.execute(_WITHDRAWN)
        except (sqlite3.Error, OSError) as exc:
            reason = str(exc)
            if getattr(exc, "sqlite_errorname", "") in _NO_ROOM:
                # SQLite says only "disk I/O error" when the disk is full.
                reason = f"no room for {path.name}-shm beside it (is its disk full?)"
                if self._open_on_full_disk(reason):
                    return
            raise StoreError(
                f"{path}: cannot open the SQLite metadata store: {reason}{_advice(exc)}"
            ) from None

    def _open_on_full_disk(self, reason: str) -> bool:
        """Open for reading only when the disk is full, so that `list`, `show` and
        `verify` still tell the operator what is there; a change then fails naming the
        reason. False when even that fails."""
        with contextlib.suppress(AttributeError, sqlite3.Error):
            self._db.close()
        wal = self.path.with_name(f"{self.path.name}-wal")
        with contextlib.suppress(OSError):
            if wal.stat().st_size > 0:
                # Changes a writer committed there (one killed before folding them in)
                # cannot be read without the -shm file: the store would look older than
                # it is, and a publish from it would drop them.
                return False
        try:
            self._open_read_only()
        except (sqlite3.Error, OSError, StoreError):
            return False
        self._read_only_because = reason
        log.warning(
            "%s: %s; the metadata store is open for reading only (make room for a "
            "command that changes it)",
            self.path,
            reason,
        )
        return True

    def _open_read_only(self) -> None:
        """For a user who may only read the home (a monitoring account running `verify`,
        `list`, `show`): a write then fails as "readonly database"."""
        self._db = sqlite3.connect(
            f"{self.path.as_uri()}?mode=ro", uri=True, timeout=30, isolation_level=None
        )
        try:
            self._schema_version()
        except sqlite3.OperationalError:
            # WAL needs a -shm file beside the database, which this user cannot create
            # while no writer has one open: read the file as it is.
            self._db.close()
            self._db = sqlite3.connect(
                f"{self.path.as_uri()}?immutable=1", uri=True, isolation_level=None
            )
            wal = self.path.with_name(f"{self.path.name}-wal")
            if wal.exists() and wal.stat().st_size > 0:
                # Changes committed there are not read this way (a writer killed before
                # it folded them in): what is listed or verified may be out of date.
                log.warning(
                    "%s holds changes this user cannot read without write access to %s; "
                    "the store may look older than it is (any command that writes, run by "
                    "its owner, folds them in)",
                    wal,
                    self.path.parent,
                )
        self._check_tables()
        if self._schema_version() != _SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: the metadata store needs an upgrade of its schema, and this "
                "user may not write it: run any command that writes (`debrepo rebuild`) as "
                "its owner first"
            )
        if not self._has_withdrawn_table():  # a store older than the table: none withdrawn
            self._db.execute(_WITHDRAWN.replace("CREATE TABLE", "CREATE TEMP TABLE"))

    def _check_tables(self) -> None:
        """StoreError for a database that is not a debrepo store (another program's:
        debrepo must not add its tables there) or one whose package table is gone (a
        publish would read it as empty)."""
        tables = {
            str(row[0])
            for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables or "packages" in tables:
            return  # a new store, or one with its packages
        if self._schema_version() == 0:
            listed = ", ".join(sorted(tables)[:5])
            raise StoreError(
                f"{self.path}: not a debrepo metadata store (an SQLite database with the "
                f"tables {listed}); check --store (DEBREPO_STORE) and --home"
            )
        raise StoreError(
            f"{self.path}: the metadata store is damaged (its packages table is missing); "
            "restore it from a backup"
        )

    def _has_withdrawn_table(self) -> bool:
        return bool(
            self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'withdrawn'"
            ).fetchone()
        )

    def _schema_version(self) -> int:
        version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == _RETIRED_SCHEMA_2 and self._has_withdrawn_table():
            return 1  # schema 1 with `withdrawn`, as this one creates it
        if version > _SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: the metadata store was written by a newer debrepo "
                f"(schema {version}; this one knows up to {_SCHEMA_VERSION})"
            )
        return version

    def _upgrade(self) -> None:
        """Create or upgrade the schema, once: a second process that was waiting for the
        lock finds it done."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._schema_version() < _SCHEMA_VERSION:
                statement = ""
                for line in (_UPGRADE + _SCHEMA).splitlines(keepends=True):
                    statement += line
                    if sqlite3.complete_statement(statement):
                        self._db.execute(statement)
                        statement = ""
                self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # a failed COMMIT may have ended it already
                self._db.execute("ROLLBACK")
            raise

    def revision(self, *, seed: bool = True) -> str | None:
        """Changed by triggers on every change to the table, even one made by hand."""
        try:
            row = self._db.execute(
                "SELECT revision, change FROM store_revision WHERE id = 1"
            ).fetchone()
        except sqlite3.Error as exc:
            raise _failure(self.path, "read", exc) from None
        return None if row is None else f"sqlite:{row[0]}:{row[1]}"

    def damage(self) -> list[str]:
        try:
            rows = [str(row[0]) for row in self._db.execute("PRAGMA quick_check(5)")]
        except sqlite3.Error as exc:
            if _advice(exc):  # corrupt, or no database at all
                return [str(exc)]
            raise _failure(self.path, "check", exc) from None
        if rows == ["ok"]:
            return []
        # A row may hold several lines, under a "*** in database main ***" heading.
        lines = (line.strip() for row in rows for line in row.splitlines())
        return [line for line in lines if line and not line.startswith("***")]

    def close(self) -> None:
        self._db.close()

    def _items(self, package_name: str | None = None) -> Iterator[Mapping[str, Any]]:
        try:
            if package_name is None:
                rows = self._db.execute(_SELECT + " ORDER BY package_id").fetchall()
            else:
                rows = self._db.execute(
                    _SELECT + " WHERE package_name = ? ORDER BY package_id", (package_name,)
                ).fetchall()
        except sqlite3.Error as exc:
            raise _failure(self.path, "read", exc) from None
        return (self._row_item(row, COLUMNS) for row in rows)

    def snapshot(self) -> Snapshot:
        """All records, built straight from rows: the hot path of every publish."""
        try:
            rows = self._db.execute(_SELECT_RECORDS).fetchall()
        except sqlite3.Error as exc:
            raise _failure(self.path, "read", exc) from None
        records: list[PackageRecord] = []
        skipped: list[RecordValidationError] = []
        make = PackageRecord._make
        for package_id, *fields in rows:
            control = fields[-1]  # control_fields is the record's last field
            try:
                pairs = () if control is None else tuple((k, v) for k, v in json.loads(control))
                record = make((*fields[:-1], pairs))
                if record.plainly_valid() and package_id == f"{record[0]}#{record[1]}":
                    records.append(record)
                    continue
            except (ValueError, TypeError):
                pass
            item = self._row_item((package_id, *fields), ("package_id", *_RECORD_COLUMNS))
            problems = item_problems(item)
            if problems:
                skipped.append(RecordValidationError(str(package_id), problems))
                warn_skipped(skipped[-1])
            else:
                records.append(PackageRecord.from_item(item))
        return Snapshot(records, skipped)

    @staticmethod
    def _row_item(
        row: tuple[Any, ...], columns: tuple[str, ...] = _RECORD_COLUMNS
    ) -> dict[str, Any]:
        """A row as a store item; control_fields left as text if it is not JSON."""
        item = {name: value for name, value in zip(columns, row, strict=True) if value is not None}
        if "control_fields" in item:
            with contextlib.suppress(ValueError):  # item_problems names it
                item["control_fields"] = json.loads(item["control_fields"])
        return item

    def _item(self, package_id: str) -> Mapping[str, Any] | None:
        try:
            row = self._db.execute(_SELECT + " WHERE package_id = ?", (package_id,)).fetchone()
        except sqlite3.Error as exc:
            raise _failure(self.path, "read", exc) from None
        return None if row is None else self._row_item(row, COLUMNS)

    def package_ids(self) -> set[str]:
        try:
            return {row[0] for row in self._db.execute("SELECT package_id FROM packages")}
        except sqlite3.Error as exc:
            raise _failure(self.path, "read", exc) from None

    def put_many(self, records: Iterable[PackageRecord]) -> None:
        """Validate every record, then insert them all in one transaction; rows are built
        straight from the records (adding 10,000 files inserts 10,000 at once)."""
        rows = []
        for record in records:
            record.validate()
            control = json.dumps(record.control_fields) if record.control_fields else None
            rows.append((record.package_id, *record[:-1], control))
        if rows:
            self._insert_rows(_INSERT_RECORD, rows)

    def _insert(self, items: list[dict[str, Any]]) -> None:
        rows = []
        for item in items:
            values = dict(item)
            if "control_fields" in values:
                values["control_fields"] = json.dumps(values["control_fields"])
            rows.append(tuple(values.get(c) for c in COLUMNS))
        self._insert_rows(_INSERT, rows)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction: all of its statements or none; a StoreError if SQLite
        fails (errors raised inside, such as a DuplicatePackageError, pass as they are)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise self._write_failure(exc) from None

    def _write_failure(self, exc: sqlite3.Error) -> StoreError:
        if self._read_only_because:
            return StoreError(
                f"{self.path}: cannot write the metadata store: {self._read_only_because}; "
                "nothing was changed"
            )
        return _failure(self.path, "write", exc)

    def _insert_rows(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        """All rows or none; DuplicatePackageError names a package_id already taken."""
        try:
            with self._writing():
                self._db.executemany(statement, rows)
        except sqlite3.IntegrityError:
            raise DuplicatePackageError(self._first_duplicate(rows)) from None

    def _first_duplicate(self, rows: list[tuple[Any, ...]]) -> str:
        taken = self.package_ids()
        for row in rows:
            if row[0] in taken:
                return str(row[0])
            taken.add(row[0])
        return str(rows[0][0])

    def _delete(self, package_id: str, withdrawn_at: str | None) -> bool:
        with self._writing():  # the deletion and its withdrawal, or neither
            deleted = self._db.execute(
                "DELETE FROM packages WHERE package_id = ?", (package_id,)
            ).rowcount
            if withdrawn_at is not None and deleted:
                self._db.execute(
                    "INSERT OR REPLACE INTO withdrawn (package_id, withdrawn_at) VALUES (?, ?)",
                    (package_id, withdrawn_at),
                )
        return deleted > 0

    def withdrawals(self) -> dict[str, str]:
        try:
            rows = self._db.execute("SELECT package_id, withdrawn_at FROM withdrawn").fetchall()
        except sqlite3.Error as exc:
            raise _failure(self.path, "read", exc) from None
        return {str(package_id): str(at) for package_id, at in rows}

    def withdraw(self, package_id: str, withdrawn_at: str) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO withdrawn (package_id, withdrawn_at) VALUES (?, ?)",
                (package_id, withdrawn_at),
            )
        except sqlite3.Error as exc:
            raise self._write_failure(exc) from None

    def clear_withdrawals(self, package_ids: Iterable[str]) -> None:
        with self._writing():
            self._db.executemany(
                "DELETE FROM withdrawn WHERE package_id = ?", ((i,) for i in package_ids)
            )

    def withdrawn_at(self, package_id: str) -> str | None:
        try:
            row = self._db.execute(
                "SELECT withdrawn_at FROM withdrawn WHERE package_id = ?", (package_id,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise _failure(self.path, "read", exc) from None
        return None if row is None else str(row[0])
