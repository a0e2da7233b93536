"""store/sqlite.py and store/base.py: immutable versions, skipped incomplete rows, latest.

The behaviour shared by every backend (store/base.py) runs here against SQLite, and in
tests/contract/ against SQLite and DynamoDB (moto); SQLite's own concerns (the file,
its corruption, raw SQL) are tested here too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from debrepo.errors import DuplicatePackageError, RecordValidationError, StoreError
from debrepo.store.base import BaseMetadataStore
from debrepo.store.sqlite import SqliteMetadataStore
from tests.unit.helpers import make_record


class Backend:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "store" / "metadata.db"
        self.store = SqliteMetadataStore(self.path)

    def insert_raw(self, **columns: object) -> None:
        """Store an item behind the store's back, as another tool or an old version might.

        `control_fields` is given as the JSON text SQLite keeps."""
        raw_insert(self.path, **columns)

    def close(self) -> None:
        self.store.close()


def raw_insert(path: Path, **columns: object) -> None:
    connection = sqlite3.connect(path)
    with connection:
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        connection.execute(
            f"INSERT INTO packages ({names}) VALUES ({marks})",  # noqa: S608 - test data
            tuple(columns.values()),
        )
    connection.close()


def item_columns(record, **changes: object) -> dict[str, object]:
    item = record.to_item()
    if "control_fields" in item:
        item["control_fields"] = json.dumps(item["control_fields"])
    item.update(changes)
    return item


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    opened = Backend(tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def store(backend: Backend) -> BaseMetadataStore:
    return backend.store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db" / "metadata.db"


def test_put_get_round_trip(store):
    record = make_record("hello", "1.0", depends="libc6", control_fields=(("Multi-Arch", "same"),))
    store.put(record)
    assert store.get("hello#1.0") == record
    assert store.exists("hello#1.0")
    assert not store.exists("hello#2.0")
    assert store.get("hello#2.0") is None
    assert store.package_ids() == {"hello#1.0"}
    assert store.all() == [record]


def test_store_survives_reopening(db_path):
    first = SqliteMetadataStore(db_path)
    first.put(make_record("hello", "1.0"))
    first.close()
    second = SqliteMetadataStore(db_path)
    assert second.get("hello#1.0") == make_record("hello", "1.0")
    assert second.description == f"sqlite://{db_path}"
    second.close()


def test_duplicate_is_refused_and_the_stored_version_unchanged(store):
    original = make_record("hello", "1.0")
    store.put(original)
    with pytest.raises(DuplicatePackageError) as caught:
        store.put(make_record("hello", "1.0", maintainer="Someone Else <else@example.com>"))
    assert caught.value.package_id == "hello#1.0"
    assert "hello 1.0 is already in the store" in str(caught.value)
    assert store.get("hello#1.0") == original


def _as_first_release_wrote_it(db_path: Path) -> None:
    """Turn the change counting back into what the first release created (schema 0)."""
    connection = sqlite3.connect(db_path)
    connection.executescript(
        """
        DROP TRIGGER packages_inserted; DROP TRIGGER packages_updated;
        DROP TRIGGER packages_deleted; DROP TABLE store_revision;
        CREATE TABLE store_revision (
            id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
        INSERT INTO store_revision VALUES (1, 1);
        CREATE TRIGGER packages_inserted AFTER INSERT ON packages
            BEGIN UPDATE store_revision SET revision = revision + 1; END;
        CREATE TRIGGER packages_updated AFTER UPDATE ON packages
            BEGIN UPDATE store_revision SET revision = revision + 1; END;
        CREATE TRIGGER packages_deleted AFTER DELETE ON packages
            BEGIN UPDATE store_revision SET revision = revision + 1; END;
        PRAGMA user_version = 0;
        """
    )
    connection.close()


def test_a_store_of_the_first_schema_is_upgraded_in_place(db_path):
    first = SqliteMetadataStore(db_path)
    first.put(make_record("hello", "1.0"))
    first.close()
    _as_first_release_wrote_it(db_path)

    upgraded = SqliteMetadataStore(db_path)
    assert upgraded.all() == [make_record("hello", "1.0")]
    before = upgraded.revision()
    assert before is not None and before != "sqlite:1"
    seen = [before]
    for change in (
        lambda: upgraded.put(make_record("hello", "2.0")),
        lambda: upgraded.delete("hello#1.0"),
        lambda: _update_by_hand(db_path, "hello#2.0"),
    ):
        change()
        assert upgraded.revision() not in (*seen, None)
        seen.append(upgraded.revision())
    upgraded._upgrade()  # as a second process that waited for the lock would: no-op
    assert upgraded.revision() == seen[-1]
    upgraded.close()

    reopened = SqliteMetadataStore(db_path)  # upgraded once, not again on every open
    assert reopened.revision() == seen[-1]
    reopened.close()


def test_a_store_from_before_withdrawals_gains_them_and_stays_readable_by_it(db_path):
    store = SqliteMetadataStore(db_path)
    store.put(make_record("hello", "1.0"))
    revision = store.revision()
    store.close()
    connection = sqlite3.connect(db_path)  # as the release before withdrawals left it
    connection.executescript("DROP TABLE withdrawn;")
    connection.close()

    upgraded = SqliteMetadataStore(db_path)
    # The same revision: the next publish still sees an unchanged store.
    assert upgraded.revision() == revision
    assert upgraded.withdrawals() == {}
    assert upgraded.delete("hello#1.0", withdrawn_at="2026-11-29T10:00:00+00:00")
    assert upgraded.withdrawn_at("hello#1.0") == "2026-11-29T10:00:00+00:00"
    upgraded.close()
    # The schema version did not change: the release before still opens the store.
    connection = sqlite3.connect(db_path)
    assert connection.execute("PRAGMA user_version").fetchone() == (1,)
    connection.close()


def _update_by_hand(db_path: Path, package_id: str) -> None:
    connection = sqlite3.connect(db_path)
    with connection:
        connection.execute(
            "UPDATE packages SET notes = 'edited' WHERE package_id = ?", (package_id,)
        )
    connection.close()


def test_copies_of_one_store_changed_differently_have_different_revisions(tmp_path, db_path):
    # A backup restored and then changed as much as the live store: a count alone, or a
    # token drawn only when the store was made, would read the same.
    original = SqliteMetadataStore(db_path)
    original.put(make_record("hello", "1.0"))
    original.close()
    copy_path = tmp_path / "copy.db"
    copy_path.write_bytes(db_path.read_bytes())
    first, second = SqliteMetadataStore(db_path), SqliteMetadataStore(copy_path)
    assert first.revision() == second.revision()
    first.put(make_record("alpha", "1.0"))
    second.put(make_record("beta", "1.0"))
    assert first.revision() != second.revision()
    first.close()
    second.close()


def test_a_store_written_by_a_newer_debrepo_is_refused(db_path):
    SqliteMetadataStore(db_path).close()
    connection = sqlite3.connect(db_path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(StoreError, match="written by a newer debrepo"):
        SqliteMetadataStore(db_path)


def test_a_store_labelled_schema_2_by_an_earlier_debrepo_is_read_as_it_is(db_path):
    """A few commits labelled schema 1 plus the `withdrawn` table as 2: the same tables
    as this schema, so the store opens (it used to be refused as a newer one's)."""
    store = SqliteMetadataStore(db_path)
    store.put(make_record("hello", "1.0"))
    store.delete("hello#1.0", withdrawn_at="2026-11-29T09:00:00+00:00")
    store.close()
    connection = sqlite3.connect(db_path)
    connection.execute("PRAGMA user_version = 2")
    connection.close()
    reopened = SqliteMetadataStore(db_path)
    assert reopened.withdrawn_at("hello#1.0") == "2026-11-29T09:00:00+00:00"
    reopened.put(make_record("hello", "1.1"))
    assert reopened.package_ids() == {"hello#1.1"}
    reopened.close()
    connection = sqlite3.connect(db_path)
    connection.execute("DROP TABLE withdrawn")
    connection.close()
    with pytest.raises(StoreError, match="written by a newer debrepo"):
        SqliteMetadataStore(db_path)  # a 2 without that table is not the old label


def test_put_many_is_all_or_nothing_against_the_store(store):
    store.put(make_record("hello", "1.0"))
    batch = [make_record("alpha", "1.0"), make_record("hello", "1.0"), make_record("beta", "1.0")]
    with pytest.raises(DuplicatePackageError) as caught:
        store.put_many(batch)
    assert caught.value.package_id == "hello#1.0"
    assert store.package_ids() == {"hello#1.0"}


def test_put_many_is_all_or_nothing_within_the_batch(store):
    batch = [make_record("alpha", "1.0"), make_record("beta", "1.0"), make_record("alpha", "1.0")]
    with pytest.raises(DuplicatePackageError) as caught:
        store.put_many(batch)
    assert caught.value.package_id == "alpha#1.0"
    assert store.package_ids() == set()
    store.put_many(batch[:2])
    assert store.package_ids() == {"alpha#1.0", "beta#1.0"}


def test_put_many_validates_every_record_before_writing(store):
    bad = make_record("beta", "1.0", md5_hash="not-hex")
    with pytest.raises(RecordValidationError) as caught:
        store.put_many([make_record("alpha", "1.0"), bad])
    assert "md5_hash must be 32 lowercase hex digits" in str(caught.value)
    assert store.package_ids() == set()


def test_put_many_of_nothing(store):
    store.put_many([])
    assert store.all() == []


def test_incomplete_rows_are_skipped_with_a_warning_naming_the_fields(backend, store, caplog):
    store.put(make_record("hello", "1.0"))
    backend.insert_raw(
        package_id="legacy#0.9",
        package_name="legacy",
        version="0.9",
        architecture="amd64",
        file_size=10,
    )
    with caplog.at_level(logging.WARNING, logger="debrepo.store"):
        snapshot = store.snapshot()
    assert [r.package_id for r in snapshot.records] == ["hello#1.0"]
    assert [e.package_id for e in snapshot.skipped] == ["legacy#0.9"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "legacy#0.9" in warnings[0]
    for field in ("deb_url", "actual_filename", "md5_hash", "sha256_hash", "maintainer"):
        assert field in warnings[0]
    assert "package_name" not in warnings[0].split("missing", 1)[1]

    assert [r.package_id for r in store.all()] == ["hello#1.0"]
    assert store.get("hello#1.0") is not None
    with pytest.raises(RecordValidationError):
        store.get("legacy#0.9")
    assert store.exists("legacy#0.9")
    assert store.package_ids() == {"hello#1.0", "legacy#0.9"}


def test_incomplete_names_missing_fields(backend, store):
    backend.insert_raw(
        **item_columns(make_record("broken", "1.0"), homepage=None, control_fields="not json")
    )
    store.put(make_record("hello", "1.0"))
    found = store.incomplete()
    assert [e.package_id for e in found] == ["broken#1.0"]
    assert "missing homepage" in "; ".join(found[0].problems)
    assert str(found[0]).startswith("package record 'broken#1.0' is incomplete")


def test_malformed_values_are_named(backend, store):
    backend.insert_raw(
        **item_columns(
            make_record("broken", "1.0"), sha256_hash="ABC", control_fields='[["Multi-Arch"]]'
        )
    )
    (error,) = store.incomplete()
    problems = "; ".join(error.problems)
    assert "sha256_hash must be 64 lowercase hex digits" in problems
    assert "control_fields must be a list of [name, value] pairs" in problems
    assert [e.package_id for e in store.snapshot().skipped] == ["broken#1.0"]


def test_a_stored_valid_record_is_not_reported_incomplete(store):
    # Installed-Size 0 is what dpkg computes for a package that installs no files.
    store.put(make_record("meta", "1.0", installed_size=0))
    assert [r.package_id for r in store.all()] == ["meta#1.0"]
    assert store.incomplete() == []


def test_by_name_skips_incomplete_rows(backend, store, caplog):
    store.put_many([make_record("hello", "1.0"), make_record("hello", "1.1"), make_record("x1")])
    backend.insert_raw(package_id="hello#0.1", package_name="hello", version="0.1")
    with caplog.at_level(logging.WARNING, logger="debrepo.store"):
        versions = [r.version for r in store.by_name("hello")]
    assert sorted(versions) == ["1.0", "1.1"]
    assert any("hello#0.1" in r.getMessage() for r in caplog.records)
    assert store.by_name("absent") == []


def test_latest_uses_debian_version_ordering(store):
    store.put_many(
        [
            make_record("kiro", "1.9.0"),
            make_record("kiro", "1.10.0"),
            make_record("kiro", "1.10.0~rc1"),
            make_record("other", "99"),
        ]
    )
    latest = store.latest("kiro")
    assert latest is not None and latest.version == "1.10.0"
    store.put(make_record("kiro", "1:0.1"))
    latest = store.latest("kiro")
    assert latest is not None and latest.version == "1:0.1"
    assert store.latest("absent") is None


def test_latest_prefers_revision_and_release_over_prerelease(store):
    store.put_many([make_record("tool", "2.0~beta2"), make_record("tool", "2.0~beta10")])
    assert store.latest("tool").version == "2.0~beta10"
    store.put(make_record("tool", "2.0-1"))
    assert store.latest("tool").version == "2.0-1"


def test_delete(store):
    store.put_many([make_record("hello", "1.0"), make_record("hello", "2.0")])
    assert store.delete("hello#1.0") is True
    assert store.delete("hello#1.0") is False
    assert store.package_ids() == {"hello#2.0"}
    store.put(make_record("hello", "1.0"))
    assert store.package_ids() == {"hello#1.0", "hello#2.0"}


def test_corrupt_database_file_names_the_path(db_path):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not an SQLite database, just some text " * 100)
    with pytest.raises(StoreError) as caught:
        SqliteMetadataStore(db_path)
    assert str(db_path) in str(caught.value)
    assert "\n" not in str(caught.value)
    # Another file named by mistake, as often as a damaged store: both are said.
    assert str(caught.value).endswith(
        "file is not a database; check --store (DEBREPO_STORE) and --home, or, if this was "
        "the store, restore it from a backup (see Troubleshooting)"
    )


def damage_the_first_page(db_path: Path, of: str = "packages_by_name") -> None:
    """Overwrite the first page of the by-name index (or of the table `of`), as when a
    disk loses one block: with the index's, a scan of the table still reads every row
    and a lookup by name fails."""
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file
        (root,) = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (of,)
        ).fetchone()
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
    with db_path.open("r+b") as database:
        database.seek((root - 1) * page_size)
        database.write(b"\xff" * page_size)


def test_a_damaged_store_file_is_found_by_its_check_and_named_when_read(db_path):
    store = SqliteMetadataStore(db_path)
    for number in range(50):
        store.put(make_record("pkg", f"1.{number}"))
    assert store.damage() == []
    store.close()
    damage_the_first_page(db_path)
    store = SqliteMetadataStore(db_path)
    assert len(store.all()) == 50  # what a full scan reads looks whole
    found = store.damage()
    assert found and all("\n" not in line and not line.startswith("***") for line in found)
    with pytest.raises(StoreError) as caught:
        store.by_name("pkg")
    message = str(caught.value)
    assert message.startswith(f"{db_path}: cannot read the metadata store: ")
    assert message.endswith("the file is damaged: restore it from a backup (see Troubleshooting)")
    store.close()


def test_path_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreError) as caught:
        SqliteMetadataStore(blocker / "metadata.db")
    assert str(blocker / "metadata.db") in str(caught.value)


_OPEN_WITH_NO_ROOM = """
import resource, signal, sys
from pathlib import Path
from debrepo.errors import StoreError
from debrepo.store.sqlite import SqliteMetadataStore
from tests.unit.helpers import make_record

# No file may grow past 16 KiB: as a full disk, SQLite cannot make its -shm file.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
try:
    store = SqliteMetadataStore(Path(sys.argv[1]))
    print(sorted(store.package_ids()))
    store.put(make_record("second", "2.0"))
except StoreError as exc:
    print(exc)
"""


def _open_with_no_room(db_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _OPEN_WITH_NO_ROOM, str(db_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )


def test_a_full_disk_leaves_the_store_readable_and_refuses_changes(db_path):
    # An operator whose disk filled up still needs `list`, `show` and `verify`.
    store = SqliteMetadataStore(db_path)
    store.put(make_record("first", "1.0"))
    store.close()
    done = _open_with_no_room(db_path)
    assert done.stdout.splitlines() == [
        "['first#1.0']",
        f"{db_path}: cannot write the metadata store: no room for metadata.db-shm beside "
        "it (is its disk full?); nothing was changed",
    ]
    assert "open for reading only" in done.stderr
    assert SqliteMetadataStore(db_path).package_ids() == {"first#1.0"}


_KILLED_WRITER = """
import os, sys
from pathlib import Path
from debrepo.store.sqlite import SqliteMetadataStore
from tests.unit.helpers import make_record

SqliteMetadataStore(Path(sys.argv[1])).put(make_record("second", "2.0"))
os._exit(0)  # killed before folding its write-ahead log into the database
"""


def test_a_full_disk_with_changes_left_in_the_write_ahead_log_is_not_read_stale(db_path):
    # Without room for the -shm file those changes cannot be read: listing (or
    # publishing) the store without them would show it older than it is.
    store = SqliteMetadataStore(db_path)
    store.put(make_record("first", "1.0"))
    store.close()
    subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(db_path)],
        check=True,
        cwd=Path(__file__).parents[2],
    )
    wal = db_path.with_name("metadata.db-wal")
    assert wal.stat().st_size > 0
    db_path.with_name("metadata.db-shm").unlink()
    done = _open_with_no_room(db_path)
    assert done.stdout.strip() == (
        f"{db_path}: cannot open the SQLite metadata store: no room for metadata.db-shm "
        "beside it (is its disk full?)"
    )
    assert SqliteMetadataStore(db_path).package_ids() == {"first#1.0", "second#2.0"}


def test_a_full_disk_at_creating_the_store_is_named_not_a_disk_io_error(db_path):
    done = _open_with_no_room(db_path)  # a new store: nothing to read
    assert done.stdout.strip() == (
        f"{db_path}: cannot open the SQLite metadata store: no room for metadata.db-shm "
        "beside it (is its disk full?)"
    )


def test_table_gone_after_opening_is_a_store_error(db_path):
    store = SqliteMetadataStore(db_path)
    connection = sqlite3.connect(db_path)
    connection.execute("DROP TABLE packages")
    connection.commit()
    connection.close()
    for operation in (
        store.all,
        store.package_ids,
        lambda: store.by_name("x1"),
        lambda: store.get("x#1"),
        lambda: store.delete("x#1"),
        lambda: store.put(make_record("hello", "1.0")),
    ):
        with pytest.raises(StoreError) as caught:
            operation()
        assert str(db_path) in str(caught.value)
    store.close()
