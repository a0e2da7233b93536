"""The MetadataStore contract: what every backend promises (seed "Query Patterns").

Each test runs once per backend (tests/contract/conftest.py): SQLite and DynamoDB on a
moto server. A backend passes when it passes all of them, with no backend-specific
expectations here.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings

from debrepo.errors import DuplicatePackageError, RecordValidationError
from debrepo.model import MAX_INSTALLED_SIZE, PackageRecord
from tests.contract.conftest import Backend, dynamodb_backend, sqlite_backend
from tests.property.strategies import PHASES_WITHOUT_EXPLAIN, record_lists
from tests.unit.helpers import make_record

RICH = make_record(
    "hello",
    "1.0",
    depends="libc6 (>= 2.34), libssl3",
    certificate_url="https://example.com/hello.pem",
    signature_url="https://example.com/hello.sig",
    notes="Release notes\nwith two lines",
    control_fields=(
        ("Multi-Arch", "foreign"),
        ("Recommends", "git"),
        ("X-Zebra", "last in the alphabet, first in the file"),
        ("Built-Using", "rustc (= 1.80.0)"),
        ("X-Long", "first line\n continued\n ."),
    ),
)


def ids(records: list[PackageRecord]) -> list[str]:
    return sorted(record.package_id for record in records)


def test_description_names_the_backend(backend: Backend, store):
    scheme = {"sqlite": "sqlite://", "dynamodb": "dynamodb://"}[backend.kind]
    assert store.description.startswith(scheme)


def test_put_get_round_trip(store):
    store.put(RICH)
    assert store.get("hello#1.0") == RICH
    assert store.exists("hello#1.0")
    assert store.package_ids() == {"hello#1.0"}
    assert store.all() == [RICH]
    assert store.snapshot().records == [RICH]
    assert store.snapshot().skipped == []


def test_absent_versions(store):
    store.put(make_record("hello", "1.0"))
    assert store.get("hello#2.0") is None
    assert not store.exists("hello#2.0")
    assert store.get("hello") is None
    assert store.by_name("absent") == []
    assert store.latest("absent") is None


def test_empty_store(store):
    assert store.all() == []
    assert store.package_ids() == set()
    assert store.snapshot().records == []
    assert store.incomplete() == []


def test_numbers_come_back_as_equal_integers(store):
    record = make_record("big", "1.0", file_size=5_000_000_000_123, installed_size=0)
    store.put(record)
    stored = store.get("big#1.0")
    assert stored == record
    assert type(stored.file_size) is int and stored.file_size == 5_000_000_000_123
    assert type(stored.installed_size) is int and stored.installed_size == 0
    (listed,) = store.all()
    assert type(listed.file_size) is int and listed == record


def test_optional_fields_absent_stay_absent(store):
    record = make_record("lean", "1.0", installed_size=None, sha512_hash=None)
    store.put(record)
    stored = store.get("lean#1.0")
    assert stored == record
    assert stored.depends is None and stored.installed_size is None
    assert stored.sha512_hash is None and stored.control_fields == ()


def test_fields_allowed_empty_and_text_beyond_ascii(store):
    record = make_record(
        "plain",
        "1.0",
        section="",
        priority="",
        homepage="",
        maintainer="Zoë Ångström <zoe@example.com>",
        description="パッケージ — a package\n Ünïcödé in the long description.",
    )
    store.put(record)
    assert store.get("plain#1.0") == record
    assert store.all() == [record]


def test_control_fields_keep_their_order(store):
    store.put(RICH)
    assert store.get("hello#1.0").control_fields == RICH.control_fields
    assert store.by_name("hello")[0].control_fields == RICH.control_fields


def test_duplicate_is_refused_and_the_stored_version_unchanged(store):
    original = make_record("hello", "1.0")
    store.put(original)
    with pytest.raises(DuplicatePackageError) as caught:
        store.put(make_record("hello", "1.0", maintainer="Someone Else <else@example.com>"))
    assert caught.value.package_id == "hello#1.0"
    assert "hello 1.0 is already in the store" in str(caught.value)
    assert store.get("hello#1.0") == original
    assert store.all() == [original]


def test_put_many_stores_every_record(store):
    batch = [make_record("kiro", f"1.{i}.0") for i in range(150)]
    store.put_many(batch)
    assert ids(store.all()) == ids(batch)
    assert len(store.package_ids()) == 150


def test_put_many_with_a_duplicate_in_the_middle_stores_nothing(store):
    store.put(make_record("hello", "1.0"))
    batch = [make_record("alpha", "1.0"), make_record("hello", "1.0"), make_record("beta", "1.0")]
    with pytest.raises(DuplicatePackageError) as caught:
        store.put_many(batch)
    assert caught.value.package_id == "hello#1.0"
    assert store.package_ids() == {"hello#1.0"}


def test_put_many_with_a_duplicate_within_the_batch_stores_nothing(store):
    batch = [make_record("alpha", "1.0"), make_record("beta", "1.0"), make_record("alpha", "1.0")]
    with pytest.raises(DuplicatePackageError) as caught:
        store.put_many(batch)
    assert caught.value.package_id == "alpha#1.0"
    assert store.package_ids() == set()
    store.put_many(batch[:2])
    assert store.package_ids() == {"alpha#1.0", "beta#1.0"}


def test_a_large_batch_failing_at_its_end_stores_nothing(store):
    store.put(make_record("kiro", "9.9"))
    batch = [make_record("kiro", f"1.{i}") for i in range(200)] + [make_record("kiro", "9.9")]
    with pytest.raises(DuplicatePackageError) as caught:
        store.put_many(batch)
    assert caught.value.package_id == "kiro#9.9"
    assert store.package_ids() == {"kiro#9.9"}
    assert ids(store.all()) == ["kiro#9.9"]


def test_put_many_validates_every_record_before_writing(store):
    bad = make_record("beta", "1.0", md5_hash="not-hex")
    with pytest.raises(RecordValidationError) as caught:
        store.put_many([make_record("alpha", "1.0"), bad])
    assert "md5_hash must be 32 lowercase hex digits" in str(caught.value)
    assert store.package_ids() == set()


# Values no binary package can have: "source" is the architecture of a source package,
# and an Installed-Size beyond the largest the store keeps exactly.
NOT_A_BINARY_PACKAGE = [
    pytest.param({"architecture": "source"}, "architecture", id="source-architecture"),
    pytest.param(
        {"installed_size": MAX_INSTALLED_SIZE + 1}, "installed_size", id="installed-size-too-large"
    ),
]


@pytest.mark.parametrize(("changes", "field"), NOT_A_BINARY_PACKAGE)
def test_a_record_no_binary_package_could_have_is_refused(store, changes, field):
    bad = make_record("odd", "1.0").with_changes(**changes)
    with pytest.raises(RecordValidationError) as caught:
        store.put(bad)
    assert caught.value.package_id == "odd#1.0"
    assert field in str(caught.value)
    with pytest.raises(RecordValidationError):
        store.put_many([make_record("fine", "1.0"), bad])
    assert store.package_ids() == set()


@pytest.mark.parametrize(("changes", "field"), NOT_A_BINARY_PACKAGE)
def test_a_stored_item_no_binary_package_could_have_is_skipped_as_damaged(
    backend: Backend, store, changes, field
):
    item = make_record("odd", "1.0").to_item()
    item.update(changes)
    backend.write_raw(item)
    store.put(make_record("odd", "2.0"))
    snapshot = store.snapshot()
    assert ids(snapshot.records) == ["odd#2.0"]
    (skipped,) = snapshot.skipped
    assert skipped.package_id == "odd#1.0"
    assert field in "; ".join(skipped.problems)
    assert ids(store.all()) == ["odd#2.0"]
    assert ids(store.by_name("odd")) == ["odd#2.0"]
    with pytest.raises(RecordValidationError):
        store.get("odd#1.0")


def test_put_many_of_nothing(store):
    revision = store.revision()
    store.put_many([])
    assert store.all() == []
    assert store.revision() == revision


def test_by_name_returns_exactly_that_name(store):
    """Seed Property 5: names that share a prefix, or a prefix of the package_id, stay apart."""
    records = [
        make_record("kiro", "1.0"),
        make_record("kiro", "2.0"),
        make_record("kiro-repo", "1.0"),
        make_record("kiro-cli", "1.0"),
        make_record("kiro.repo", "1.0"),
        make_record("ki", "1.0"),
    ]
    store.put_many(records)
    assert ids(store.by_name("kiro")) == ["kiro#1.0", "kiro#2.0"]
    assert ids(store.by_name("kiro-repo")) == ["kiro-repo#1.0"]
    assert ids(store.by_name("ki")) == ["ki#1.0"]
    assert store.by_name("kir") == []
    assert {r.package_name for r in store.by_name("kiro-cli")} == {"kiro-cli"}


def test_latest_uses_debian_version_ordering(store):
    store.put_many(
        [
            make_record("kiro", "1.9.0"),
            make_record("kiro", "1.10.0"),
            make_record("kiro", "1.10.0~rc1"),
            make_record("kiro", "1.2.0"),
            make_record("other", "99"),
        ]
    )
    assert store.latest("kiro").version == "1.10.0"
    store.put(make_record("kiro", "1:0.1"))
    assert store.latest("kiro").version == "1:0.1"
    assert store.latest("other").version == "99"


def test_latest_prefers_release_over_prerelease_and_revisions(store):
    store.put_many([make_record("tool", "1.0~rc1"), make_record("tool", "1.0~beta2")])
    assert store.latest("tool").version == "1.0~rc1"
    store.put(make_record("tool", "1.0"))
    assert store.latest("tool").version == "1.0"
    store.put(make_record("tool", "1.0-2"))
    assert store.latest("tool").version == "1.0-2"


def test_delete(store):
    store.put_many([make_record("hello", "1.0"), make_record("hello", "2.0")])
    assert store.delete("hello#1.0") is True
    assert store.delete("hello#1.0") is False
    assert store.delete("never#1.0") is False
    assert store.package_ids() == {"hello#2.0"}
    assert store.get("hello#1.0") is None
    assert ids(store.by_name("hello")) == ["hello#2.0"]
    store.put(make_record("hello", "1.0"))
    assert store.package_ids() == {"hello#1.0", "hello#2.0"}


def test_a_withdrawal_is_recorded_with_its_deletion(store):
    first, later = "2026-11-29T10:00:00+00:00", "2026-11-30T10:00:00+00:00"
    store.put_many([make_record("hello", "1.0"), make_record("hello", "2.0")])
    assert store.withdrawals() == {} and store.withdrawn_at("hello#1.0") is None
    assert store.delete("hello#1.0", withdrawn_at=first) is True
    assert store.delete("hello#2.0") is True  # a plain deletion withdraws nothing
    assert store.delete("never#1.0", withdrawn_at=first) is False
    assert store.withdrawals() == {"hello#1.0": first}
    assert store.withdrawn_at("hello#1.0") == first
    assert store.withdrawn_at("hello#2.0") is None and store.withdrawn_at("never#1.0") is None
    assert store.package_ids() == set()  # not a package, whatever the backend keeps
    assert store.all() == [] and store.incomplete() == []
    # Stored again, the withdrawal stays until it is cleared (not by a put that is then
    # taken back); removed again: the later removal is the one on record.
    store.put(make_record("hello", "1.0"))
    assert store.withdrawn_at("hello#1.0") == first
    store.clear_withdrawals(["hello#1.0", "never#1.0"])
    assert store.withdrawn_at("hello#1.0") is None and store.withdrawals() == {}
    assert store.delete("hello#1.0", withdrawn_at=later) is True
    assert store.withdrawals() == {"hello#1.0": later}
    store.put_many([make_record("hello", "1.0"), make_record("hello", "3.0")])
    store.clear_withdrawals(f"hello#{v}" for v in ("1.0", "3.0"))
    assert store.withdrawals() == {}
    assert store.delete("hello#1.0", withdrawn_at=later) is True
    # A version never stored, left out on purpose (a migration's --skip).
    store.withdraw("hello#0.9", first)
    assert store.withdrawn_at("hello#0.9") == first and store.package_ids() == {"hello#3.0"}


def test_revision_tells_two_stores_with_the_same_history_apart(backend, tmp_path, request):
    # What a publish compares against: a recreated, restored or other store that has
    # seen as many changes must not read as the one the indices were rendered from.
    if backend.kind == "sqlite":
        other = sqlite_backend(tmp_path / "other" / "metadata.db")
    else:
        other = dynamodb_backend(
            request.getfixturevalue("unique_name") + "-other",
            request.getfixturevalue("dynamodb_client"),
        )
    try:
        for store in (backend.store, other.store):
            store.put(make_record("hello", "1.0"))
        assert backend.store.revision() != other.store.revision()
    finally:
        other.close()


def test_revision_changes_on_every_write_and_only_then(store):
    seen = [store.revision()]
    assert isinstance(seen[0], str)  # a new, empty store has one too

    def changed() -> None:
        now = store.revision()
        assert isinstance(now, str) and now not in seen
        seen.append(now)

    store.put(make_record("hello", "1.0"))
    changed()
    store.put_many([make_record("hello", "2.0"), make_record("world", "1.0")])
    changed()
    assert store.delete("hello#1.0")
    changed()
    store.put(make_record("hello", "1.0"))  # the same id again is a new change
    changed()

    store.get("hello#1.0")
    store.exists("hello#1.0")
    store.all()
    store.snapshot()
    store.by_name("hello")
    store.latest("hello")
    store.package_ids()
    store.incomplete()
    assert store.revision() == seen[-1]

    with pytest.raises(DuplicatePackageError):
        store.put(make_record("hello", "1.0"))
    with pytest.raises(DuplicatePackageError):
        store.put_many([make_record("new", "1.0"), make_record("world", "1.0")])
    assert store.delete("absent#1.0") is False
    assert store.revision() == seen[-1]


def test_incomplete_items_are_skipped_with_a_warning_naming_the_fields(
    backend: Backend, store, caplog
):
    store.put(make_record("hello", "1.0"))
    backend.write_raw(
        {
            "package_id": "legacy#0.9",
            "package_name": "legacy",
            "version": "0.9",
            "architecture": "amd64",
            "file_size": 10,
        }
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

    assert ids(store.all()) == ["hello#1.0"]
    with pytest.raises(RecordValidationError):
        store.get("legacy#0.9")
    assert store.exists("legacy#0.9")
    assert store.package_ids() == {"hello#1.0", "legacy#0.9"}
    assert [e.package_id for e in store.incomplete()] == ["legacy#0.9"]


def test_malformed_values_are_named(backend: Backend, store, caplog):
    item = make_record("broken", "1.0").to_item()
    item.update(sha256_hash="ABC", file_size=-3, control_fields=[["Multi-Arch"]])
    backend.write_raw(item)
    store.put(make_record("broken", "2.0"))
    (error,) = store.incomplete()
    problems = "; ".join(error.problems)
    assert error.package_id == "broken#1.0"
    assert "sha256_hash must be 64 lowercase hex digits" in problems
    assert "file_size must be a non-negative integer" in problems
    assert "control_fields must be a list of [name, value] pairs" in problems
    with caplog.at_level(logging.WARNING, logger="debrepo.store"):
        assert ids(store.by_name("broken")) == ["broken#2.0"]
    assert any("broken#1.0" in r.getMessage() for r in caplog.records)
    assert [e.package_id for e in store.snapshot().skipped] == ["broken#1.0"]


def test_an_item_written_by_another_tool_is_read_back(backend: Backend, store):
    """A complete item stored without the store (a migration) is an ordinary record."""
    backend.write_raw(RICH.to_item())
    assert store.get("hello#1.0") == RICH
    assert store.all() == [RICH]
    assert store.latest("hello") == RICH


@settings(
    max_examples=100,
    deadline=None,
    phases=PHASES_WITHOUT_EXPLAIN,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=record_lists(max_size=6))
def test_any_records_come_back_as_stored(store, records):
    """Feature: unified-multi-package-repo, Property 1: Multi-Package Type Storage
    Feature: unified-multi-package-repo, Property 3: Force Rebuild Retrieves All Packages
    Feature: unified-multi-package-repo, Property 5: Package Query by Name

    On every backend, generated records all come back field for field, in the listing,
    in the snapshot a rebuild works from, by name and by package_id. One store serves
    every example, so each example empties it afterwards.
    """
    store.put_many(records)
    try:
        assert sorted(store.all()) == sorted(records)
        snapshot = store.snapshot()
        assert sorted(snapshot.records) == sorted(records)
        assert snapshot.skipped == []
        assert store.package_ids() == {r.package_id for r in records}
        for name in {r.package_name for r in records}:
            expected = sorted(r for r in records if r.package_name == name)
            assert sorted(store.by_name(name)) == expected
        for record in records:
            assert store.get(record.package_id) == record
    finally:
        for record in records:
            store.delete(record.package_id)
    assert store.package_ids() == set()
