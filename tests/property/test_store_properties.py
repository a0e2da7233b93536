"""Seed Properties 1, 2, 3, 5 and 18 against the SQLite metadata store.

Every example opens a fresh store in its own directory. Where a test needs to see what
is really stored, or to damage an item the way a migration or a hand edit could, it
talks to the SQLite file through its own connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from debrepo import app
from debrepo.errors import DebrepoError, DuplicatePackageError, RecordValidationError
from debrepo.model import MAX_INSTALLED_SIZE, PackageRecord
from debrepo.store.sqlite import SqliteMetadataStore
from tests.conftest import FIXED_NOW, deb_bytes
from tests.property.oracles import scratch_dir
from tests.property.strategies import (
    ARCHITECTURES,
    BINARY_ARCHITECTURES,
    KNOWN_PACKAGES,
    PHASES_WITHOUT_EXPLAIN,
    SEED_REQUIRED_FIELDS,
    deb_filename,
    debian_versions,
    distinct_versions,
    package_names,
    package_records,
    record_lists,
    respellings_of,
)
from tests.property.workspaces import workspace_in

# Fields that may legitimately be stored empty: a .deb that lacks them gets no such line
# in its Packages stanza, as dpkg-scanpackages does. Empty is not missing for them.
MAY_BE_EMPTY = {"section", "priority", "homepage"}
TEXT_FIELDS = [f for f in SEED_REQUIRED_FIELDS if f != "file_size"]
NAME_POOL = st.sampled_from(("kiro", "kiro-repo", "kiro-cli", "kiro-cli-extra", "ki", "kiro.repo"))


@contextmanager
def fresh_store() -> Iterator[tuple[SqliteMetadataStore, Path]]:
    with scratch_dir() as directory:
        path = directory / "metadata.db"
        store = SqliteMetadataStore(path)
        try:
            yield store, path
        finally:
            store.close()


def by_id(records: Iterable[PackageRecord]) -> dict[str, PackageRecord]:
    return {record.package_id: record for record in records}


def raw_connection(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.row_factory = sqlite3.Row
    return connection


def table_of(connection: sqlite3.Connection) -> str:
    """The table holding the package items: the one keyed by the seed's package_id."""
    tables = [
        str(name)
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    holding = [
        table
        for table in tables
        if {"package_id", "package_name", "version"}
        <= {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
    ]
    assert len(holding) == 1, tables
    return holding[0]


def raw_items(path: Path) -> list[dict[str, object]]:
    connection = raw_connection(path)
    try:
        table = table_of(connection)
        return [dict(row) for row in connection.execute(f"SELECT * FROM {table}")]  # noqa: S608
    finally:
        connection.close()


def damage(path: Path, package_id: str, column: str, value: object) -> None:
    """Change one stored attribute behind the store's back."""
    connection = raw_connection(path)
    try:
        table = table_of(connection)
        changed = connection.execute(
            f"UPDATE {table} SET {column} = ? WHERE package_id = ?",  # noqa: S608
            (value, package_id),
        ).rowcount
        assert changed == 1
    finally:
        connection.close()


def assert_listing_agrees_with_lookup(store: SqliteMetadataStore) -> None:
    """Every record the store lists is the one it finds under that record's package_id."""
    listed = store.all()
    assert len({r.package_id for r in listed}) == len(listed)
    for record in listed:
        assert store.exists(record.package_id), record.package_id
        assert store.get(record.package_id) == record, record.package_id


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(
    records=record_lists(
        min_size=1, max_size=6, names=st.sampled_from(KNOWN_PACKAGES) | package_names()
    ),
    split=st.integers(0, 10),
)
def test_property_1_multi_package_type_storage(records: list[PackageRecord], split: int) -> None:
    """Feature: unified-multi-package-repo, Property 1: Multi-Package Type Storage

    Records of any mix of packages (kiro, kiro-repo, kiro-cli and others), stored one at
    a time or in one batch, all come back field for field, each identified by its package
    name and type, also through a second connection to the same database file.
    """
    with fresh_store() as (store, path):
        for record in records[:split]:
            store.put(record)
        store.put_many(records[split:])
        reopened = SqliteMetadataStore(path)
        try:
            for current in (store, reopened):
                listed = current.all()
                assert len(listed) == len(records)
                assert by_id(listed) == by_id(records)
                for record in records:
                    found = current.get(record.package_id)
                    assert found == record
                    assert found is not None
                    assert (found.package_name, found.package_type) == (
                        record.package_name,
                        record.package_type,
                    )
                    assert type(found.file_size) is int
                assert_listing_agrees_with_lookup(current)
        finally:
            reopened.close()


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(records=record_lists(min_size=1, max_size=5))
def test_property_2_stored_items_carry_every_required_field(records: list[PackageRecord]) -> None:
    """Feature: unified-multi-package-repo, Property 2: Package Metadata Completeness

    Read back with plain SQL, every stored item holds all seventeen attributes the seed
    requires, with the record's values, under the key `{package_name}#{version}`.
    """
    with fresh_store() as (store, path):
        store.put_many(records)
        items = raw_items(path)
    assert len(items) == len(records)
    expected = by_id(records)
    for item in items:
        record = expected[f"{item['package_name']}#{item['version']}"]
        assert item["package_id"] == f"{record.package_name}#{record.version}"
        for name in SEED_REQUIRED_FIELDS:
            assert item.get(name) is not None, name
            assert item[name] == getattr(record, name), name
        for name in TEXT_FIELDS:
            assert isinstance(item[name], str) and item[name] != "", name
        assert isinstance(item["file_size"], int) and item["file_size"] >= 0


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(
    record=package_records(),
    field=st.sampled_from(SEED_REQUIRED_FIELDS),
    empty=st.booleans(),
)
def test_property_2_incomplete_record_is_refused(
    record: PackageRecord, field: str, empty: bool
) -> None:
    """Feature: unified-multi-package-repo, Property 2: Package Metadata Completeness

    A record lacking any required field (absent, or empty text where empty means
    nothing) is refused with an error naming the field, and nothing is stored.
    """
    blank: object = "" if empty and field in TEXT_FIELDS and field not in MAY_BE_EMPTY else None
    broken = record.with_changes(**{field: blank})
    with fresh_store() as (store, path):
        with pytest.raises(RecordValidationError) as refused:
            store.put(broken)
        assert field in str(refused.value)
        with pytest.raises(RecordValidationError):
            store.put_many([record, broken])
        assert store.all() == []
        assert raw_items(path) == []


# How a stored item can be damaged behind the store's back (a migration, a hand edit):
# a required attribute missing, a checksum cut short, a size below zero, the
# architecture of a source package, an installed size beyond what the store keeps.
@st.composite
def damages(draw: st.DrawFn) -> tuple[str, object]:
    kind = draw(
        st.sampled_from(("missing", "short hash", "negative size", "source", "huge installed size"))
    )
    if kind == "missing":
        return draw(st.sampled_from(SEED_REQUIRED_FIELDS)), None
    if kind == "short hash":
        column = draw(st.sampled_from(("md5_hash", "sha1_hash", "sha256_hash")))
        return column, draw(st.sampled_from(("", "0", "abc123", "d41d8cd98f00b204e9800998ecf8427")))
    if kind == "source":
        return "architecture", "source"
    if kind == "huge installed size":
        # Up to SQLite's largest integer.
        return "installed_size", draw(st.integers(MAX_INSTALLED_SIZE + 1, 2**63 - 1))
    return "file_size", draw(st.integers(-(2**40), -1))


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(records=record_lists(min_size=1, max_size=5, lean=True), damaged=damages(), data=st.data())
def test_property_2_damaged_items_are_skipped_and_named(
    records: list[PackageRecord], damaged: tuple[str, object], data: st.DataObject
) -> None:
    """Feature: unified-multi-package-repo, Property 2: Package Metadata Completeness

    An item whose required metadata is missing or malformed is never served as a
    record: listing skips it and reports it by package_id with the field named, a
    lookup by its package_id refuses it, and every other record is unaffected.
    """
    victim = data.draw(st.sampled_from(records))
    column, value = damaged
    with fresh_store() as (store, path):
        store.put_many(records)
        damage(path, victim.package_id, column, value)
        snapshot = store.snapshot()
        assert by_id(snapshot.records) == {
            r.package_id: r for r in records if r.package_id != victim.package_id
        }
        assert [skipped.package_id for skipped in snapshot.skipped] == [victim.package_id]
        assert column in "; ".join(snapshot.skipped[0].problems)
        assert victim.package_id not in by_id(store.by_name(victim.package_name))
        with pytest.raises(RecordValidationError):
            store.get(victim.package_id)
        assert_listing_agrees_with_lookup(store)


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(
    records=record_lists(max_size=10, lean=True),
    broken=st.integers(0, 3),
    batches=st.lists(st.integers(0, 12), max_size=3),
)
def test_property_3_force_rebuild_retrieves_all_packages(
    records: list[PackageRecord], broken: int, batches: list[int]
) -> None:
    """Feature: unified-multi-package-repo, Property 3: Force Rebuild Retrieves All Packages

    With N complete records stored (in any number of writes) next to some incomplete
    items, the snapshot a rebuild works from holds exactly the N records, and counts
    the incomplete ones as skipped.
    """
    with fresh_store() as (store, path):
        start = 0
        for cut in sorted(batches):
            store.put_many(records[start:cut])
            start = max(start, cut)
        store.put_many(records[start:])
        connection = raw_connection(path)
        try:
            table = table_of(connection)
            for number in range(broken):
                # Upper case makes the name invalid, so it can never clash with a record.
                connection.execute(
                    f"INSERT INTO {table} (package_id, package_name, version) VALUES (?, ?, ?)",  # noqa: S608
                    (f"Broken-{number}#1.0", f"Broken-{number}", "1.0"),
                )
        finally:
            connection.close()
        snapshot = store.snapshot()
        assert len(snapshot.records) == len(records)
        assert by_id(snapshot.records) == by_id(records)
        assert len(snapshot.skipped) == broken
        assert store.package_ids() == {r.package_id for r in records} | {
            f"Broken-{n}#1.0" for n in range(broken)
        }


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(
    records=record_lists(max_size=10, names=NAME_POOL | package_names(), lean=True),
    probe=NAME_POOL | package_names(),
)
def test_property_5_package_query_by_name(records: list[PackageRecord], probe: str) -> None:
    """Feature: unified-multi-package-repo, Property 5: Package Query by Name

    Querying by a package name returns exactly the stored records with that exact
    name: none of a name it is a prefix of (kiro vs kiro-repo), none missing.
    """
    with fresh_store() as (store, _):
        store.put_many(records)
        for name in {r.package_name for r in records} | {probe}:
            found = store.by_name(name)
            assert all(r.package_name == name for r in found)
            wanted = [r for r in records if r.package_name == name]
            assert len(found) == len(wanted)
            assert by_id(found) == by_id(wanted)


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(records=record_lists(min_size=1, max_size=5, lean=True), data=st.data())
def test_property_18_stored_version_is_never_stored_again(
    records: list[PackageRecord], data: st.DataObject
) -> None:
    """Feature: unified-multi-package-repo, Property 18: Version Deduplication

    Once `P#V` is stored, the store says it exists, and storing P V again (whatever its
    other metadata) is refused without touching the stored record; a batch holding such
    a duplicate stores nothing at all.
    """
    existing = data.draw(st.sampled_from(records))
    other = data.draw(package_records(lean=True))
    duplicate = other.with_changes(
        package_name=existing.package_name,
        version=existing.version,
        actual_filename=deb_filename(existing.package_name, existing.version, other.architecture),
    )
    ids = {r.package_id for r in records}
    newcomer = data.draw(package_records(lean=True).filter(lambda r: r.package_id not in ids))
    with fresh_store() as (store, _):
        store.put_many(records)
        assert store.exists(existing.package_id)
        with pytest.raises(DuplicatePackageError):
            store.put(duplicate)
        with pytest.raises(DuplicatePackageError):
            store.put_many([newcomer, duplicate])
        with pytest.raises(DuplicatePackageError):
            store.put_many([newcomer, newcomer.with_changes(deb_url="https://example.com/2")])
        assert not store.exists(newcomer.package_id)
        assert store.get(existing.package_id) == existing
        assert by_id(store.all()) == by_id(records)


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(records=record_lists(min_size=1, max_size=5, lean=True), data=st.data())
def test_property_18_lookup_key_agrees_with_stored_identity(
    records: list[PackageRecord], data: st.DataObject
) -> None:
    """Feature: unified-multi-package-repo, Property 18: Version Deduplication

    De-duplication asks the store whether `P#V` exists. For that answer to be right,
    every record the store serves must sit under the key `P#V` of its own name and
    version: an item whose key says otherwise (a hand edit, a faulty migration) must not
    be listed as a record that `exists`/`get` then cannot find.
    """
    victim = data.draw(st.sampled_from(records))
    ids = {r.package_id for r in records}
    wrong_key = data.draw(
        st.builds(lambda v: f"{victim.package_name}#{v}", debian_versions()).filter(
            lambda key: key not in ids
        )
    )
    with fresh_store() as (store, path):
        store.put_many(records)
        damage(path, victim.package_id, "package_id", wrong_key)
        assert_listing_agrees_with_lookup(store)
        assert victim.package_id not in by_id(store.all())


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(
    known=package_records(lean=True),
    name=package_names(),
    # Distinct pool file names too: versions differing only by epoch cannot share a pool.
    versions=distinct_versions(min_size=2, max_size=2),
    architecture=st.sampled_from(ARCHITECTURES),
    data=st.data(),
)
def test_property_18_adding_a_known_version_changes_nothing(
    known: PackageRecord,
    name: str,
    versions: list[str],
    architecture: str,
    data: st.DataObject,
) -> None:
    """Feature: unified-multi-package-repo, Property 18: Version Deduplication

    A .deb whose `P#V` is already in the store is neither placed nor stored again, and a
    batch containing it adds nothing (not even its new companion); the companion alone
    is then accepted, so the refusal was about the duplicate. The same holds for a .deb
    whose version is spelled otherwise but equal as dpkg compares (1.00 for 1.0, 0:1.0,
    1.0-0): dpkg and apt take it for the stored version.
    """
    old_version, new_version = versions
    respelled = data.draw(respellings_of(old_version), label="respelled")
    known = known.with_changes(
        package_name=name,
        version=old_version,
        actual_filename=deb_filename(name, old_version, known.architecture),
    )
    with (
        scratch_dir() as directory,
        workspace_in(directory, architectures=",".join(BINARY_ARCHITECTURES)) as ws,
    ):
        ws.store.put(known)
        duplicate = directory / "duplicate.deb"
        duplicate.write_bytes(deb_bytes(name, old_version, architecture))
        respelling = directory / "respelled.deb"
        respelling.write_bytes(deb_bytes(name, respelled, architecture))
        fresh = directory / "fresh.deb"
        fresh.write_bytes(deb_bytes(name, new_version, architecture))

        for batch in ([duplicate], [fresh, duplicate], [respelling], [fresh, respelling]):
            with pytest.raises(DebrepoError) as refused:
                app.add_packages(ws, batch, publish=False, now=FIXED_NOW)
            assert old_version in str(refused.value), str(refused.value)
            assert ws.store.all() == [known]
            assert list(ws.repo.list("")) == []
            assert [info.key for info in ws.staging.list("") if info.key.endswith(".deb")] == []

        added = app.add_packages(ws, [fresh], publish=False, now=FIXED_NOW).records
        assert [r.package_id for r in added] == [f"{name}#{new_version}"]
        assert by_id(ws.store.all()) == by_id([known, *added])
