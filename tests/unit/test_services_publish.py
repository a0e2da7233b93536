"""services/publish.py: incremental, safely ordered publishing from one store snapshot."""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
import logging
import lzma
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from debrepo import app
from debrepo.errors import ObjectStoreError, PackageNotFoundError, PublishError
from debrepo.services.publish import (
    POOL_STATE_KEY,
    STATE_KEY,
    PoolMap,
    Publisher,
    PublishReport,
    PublishState,
    collector_paused,
    release_info,
)
from tests.conftest import FIXED_NOW, piece_cutting_deb, settings_for
from tests.unit.helpers import repo_keys, tree

DISTS = "dists/stable"
BINARY = f"{DISTS}/main/binary-amd64"
RELEASE_FILES = [f"{DISTS}/Release.gpg", f"{DISTS}/Release", f"{DISTS}/InRelease"]


def at(hours: int):
    return FIXED_NOW + timedelta(hours=hours)


def by_hash_keys(ws) -> set[str]:
    return repo_keys(ws.repo, f"{BINARY}/by-hash/")


def add(ws, make_deb, name: str, version: str = "1.0", hours: int = 0, **kwargs):
    return app.add_packages(ws, [make_deb(name, version, **kwargs)], now=at(hours))


class RecordingStore:
    """Wraps an object store and records every write and delete, in order."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.events: list[tuple[str, str]] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def put(self, key, data, delivery):
        self.events.append(("put", key))
        return self.inner.put(key, data, delivery)

    def put_file(self, key, path, delivery, *, move=False):
        self.events.append(("put", key))
        self.inner.put_file(key, path, delivery, move=move)

    def copy_from(self, source, source_key, key, delivery, *, shared=False):
        self.events.append(("copy", key))
        origin = source.inner if isinstance(source, RecordingStore) else source
        self.inner.copy_from(origin, source_key, key, delivery, shared=shared)

    def delete(self, key):
        self.events.append(("delete", key))
        self.inner.delete(key)

    def flush(self):
        self.events.append(("flush", ""))
        self.inner.flush()


def record_repo(ws) -> RecordingStore:
    recording = RecordingStore(ws.repo)
    ws.__dict__["repo"] = recording
    return recording


def test_second_publish_with_nothing_changed_rewrites_only_the_release_files(workspace, make_deb):
    first = add(workspace, make_deb, "alpha")
    assert first.report is not None
    pool = workspace.repo.root / "pool/main/a/alpha/alpha_1.0_amd64.deb"
    before = pool.stat()
    contents = tree(workspace.repo.root)

    report = app.rebuild(workspace, now=at(1))

    assert report.written == RELEASE_FILES
    assert report.pool_copied == []
    assert report.deleted == []
    assert report.unchanged > 0
    after = pool.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    changed = {k for k, v in tree(workspace.repo.root).items() if contents.get(k) != v}
    assert changed == set(RELEASE_FILES)


def test_a_publish_runs_without_the_cyclic_collector_and_turns_it_back_on(
    workspace, make_deb, monkeypatch
):
    seen: list[bool] = []
    snapshot = type(workspace.store).snapshot

    def watched(store):
        seen.append(gc.isenabled())
        return snapshot(store)

    monkeypatch.setattr(type(workspace.store), "snapshot", watched)
    add(workspace, make_deb, "alpha")
    assert seen == [False]
    assert gc.isenabled()

    def failing(store):
        raise ObjectStoreError("no store today")

    monkeypatch.setattr(type(workspace.store), "snapshot", failing)
    with pytest.raises(ObjectStoreError):
        app.rebuild(workspace, now=at(1), full=True)
    assert gc.isenabled()


def test_collector_paused_leaves_a_collector_that_was_off_off():
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_published_tree_is_readable_by_all_whatever_the_umask(workspace, make_deb):
    # A web server reads the folder as another user: with umask 077 the indices and
    # Release files used to come out 0600 in 0700 folders, and apt got 403.
    previous = os.umask(0o077)
    try:
        add(workspace, make_deb, "hello", "1.0")
        add(workspace, make_deb, "kiro-repo", "1.0", architecture="all", hours=1)
    finally:
        os.umask(previous)
    root = workspace.settings.home / "repo"
    modes = {
        path.relative_to(root).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in [root, *root.rglob("*")]
    }
    assert "dists/stable/InRelease" in modes and "kiro-repo.deb" in modes
    wrong = {
        key: oct(mode)
        for key, mode in modes.items()
        if mode != (0o755 if (root / key).is_dir() else 0o644)
    }
    assert wrong == {}


def test_publish_writes_in_the_order_clients_can_bear(workspace, make_deb):
    for hours, name in enumerate(("alpha", "beta", "gamma")):
        add(workspace, make_deb, name, hours=hours)
    # kiro-repo waits in the staging area, so this publish copies it into the pool.
    app.build_kiro_repo(workspace, version="1.0", publish_after=False, now=at(3))
    recording = record_repo(workspace)
    report = app.rebuild(workspace, now=at(4))
    events = recording.events

    def positions(kinds: tuple[str, ...], predicate) -> list[int]:
        return [i for i, (kind, key) in enumerate(events) if kind in kinds and predicate(key)]

    pool = positions(("copy", "put"), lambda k: k.startswith("pool/"))
    by_hash = positions(("copy", "put"), lambda k: "/by-hash/" in k)
    plain = positions(("put",), lambda k: k.startswith(f"{BINARY}/Packages"))
    release = [events.index(("put", key)) for key in RELEASE_FILES]
    convenience = positions(("copy", "put"), lambda k: k == "kiro-repo.deb")
    deletes = positions(("delete",), lambda k: True)
    flushes = positions(("flush",), lambda k: True)

    assert report.pool_copied == ["pool/main/k/kiro-repo/kiro-repo_1.0_all.deb"]
    assert pool and by_hash and plain and convenience and deletes
    assert max(pool) < min(by_hash)
    assert max(by_hash) < min(plain)
    assert max(plain) < release[0] < release[1] < release[2]
    # Everything the new Release names is made durable before it is written.
    assert len(flushes) == 1 and max(plain) < flushes[0] < release[0]
    assert min(convenience) > release[2]
    assert min(deletes) > release[2]
    assert report.deleted and all("/by-hash/" in key for key in report.deleted)


def test_every_publish_but_a_re_sign_waits_once_for_the_disk(workspace, make_deb):
    # Even one that writes nothing: an earlier run may have written the files and died
    # before its Release, leaving them unflushed.
    add(workspace, make_deb, "alpha")
    recording = record_repo(workspace)
    app.rebuild(workspace, now=at(1))  # re-sign only
    assert ("flush", "") not in recording.events
    app.rebuild(workspace, now=at(2), full=True)  # every index again, all unchanged
    assert recording.events.count(("flush", "")) == 1
    add(workspace, make_deb, "beta", hours=3)
    assert recording.events.count(("flush", "")) == 2


def test_an_index_is_written_once_under_its_hashes_and_apart_from_its_plain_path(
    workspace, make_deb
):
    add(workspace, make_deb, "alpha")
    root = workspace.repo.root
    for suffix in ("", ".gz", ".xz"):
        plain = Path(root, f"{BINARY}/Packages{suffix}")
        data = plain.read_bytes()
        sha256 = Path(root, f"{BINARY}/by-hash/SHA256/{hashlib.sha256(data).hexdigest()}")
        sha512 = Path(root, f"{BINARY}/by-hash/SHA512/{hashlib.sha512(data).hexdigest()}")
        assert sha256.read_bytes() == sha512.read_bytes() == data
        assert sha256.stat().st_ino == sha512.stat().st_ino  # one write, two names
        # A hand edit of the plain path (in place) must not reach the by-hash files.
        assert plain.stat().st_ino != sha256.stat().st_ino


def test_by_hash_generations_are_kept_then_deleted(workspace, make_deb):
    assert workspace.settings.by_hash_keep == 3
    add(workspace, make_deb, "alpha", hours=0)
    first = by_hash_keys(workspace)
    assert len(first) == 6  # Packages, .gz and .xz, by SHA256 and by SHA512

    add(workspace, make_deb, "beta", hours=1)
    second = by_hash_keys(workspace) - first
    report = add(workspace, make_deb, "gamma", hours=2).report
    third = by_hash_keys(workspace) - first - second
    assert report is not None and report.deleted == []
    assert len(second) == len(third) == 6
    assert by_hash_keys(workspace) == first | second | third

    report = add(workspace, make_deb, "delta", hours=3).report
    assert report is not None
    assert sorted(report.deleted) == sorted(first)
    remaining = by_hash_keys(workspace)
    assert remaining.isdisjoint(first)
    assert second | third <= remaining
    assert len(remaining) == 18

    report = add(workspace, make_deb, "epsilon", hours=4).report
    assert report is not None and sorted(report.deleted) == sorted(second)
    assert app.verify(workspace, now=at(4)).ok


def test_more_generations_kept_when_configured(tmp_path, make_deb):
    ws = app.Workspace(settings_for(tmp_path / "home", by_hash_keep="4"))
    for hours, name in enumerate(("alpha", "beta", "gamma", "delta")):
        report = add(ws, make_deb, name, hours=hours).report
        assert report is not None and report.deleted == []
    report = add(ws, make_deb, "epsilon", hours=5).report
    assert report is not None and len(report.deleted) == 6


@pytest.mark.parametrize(
    "corrupt",
    [b"{this is not json", b"[]", b"null", b'{"version": 1, "pool": []}'],
    ids=["not-json", "list", "null", "pool-not-a-mapping"],
)
def test_corrupt_publisher_state_still_publishes_and_keeps_unknown_by_hash_files(
    workspace, make_deb, caplog, corrupt
):
    for hours, name in enumerate(("alpha", "beta", "gamma")):
        add(workspace, make_deb, name, hours=hours)
    known = by_hash_keys(workspace)
    workspace.staging.put(STATE_KEY, corrupt, None)

    with caplog.at_level(logging.WARNING, logger="debrepo.publish"):
        report = add(workspace, make_deb, "delta", hours=3).report
    assert "unreadable" in caplog.text
    assert report is not None
    assert report.deleted == []
    assert known < by_hash_keys(workspace)
    assert app.verify(workspace, now=at(3)).ok
    assert PublishState.from_json(workspace.staging.get(STATE_KEY)).generations


@pytest.mark.parametrize(
    "raw",
    [
        b'{"version": "2", "generations": []}',
        b'{"version": 1, "pool": {"k": [1]}}',
        b'{"version": 1, "generations": 5}',
        b"[1, 2]",
        b'"text"',
    ],
)
def test_unreadable_state_starts_afresh(raw, caplog):
    with caplog.at_level(logging.WARNING, logger="debrepo.publish"):
        state = PublishState.from_json(raw)
    assert state == PublishState()
    assert "unreadable" in caplog.text


def test_a_state_of_a_newer_format_is_refused_not_read_as_unreadable():
    with pytest.raises(PublishError, match=r"written by a newer debrepo \(format 3; this"):
        PublishState.from_json(b'{"version": 3, "generations": []}')
    with pytest.raises(PublishError, match=r"publish-pool.json was written by a newer"):
        PublishState.pool_from_json(b'{"version": 3, "pool": {}}')


def test_state_round_trip():
    state = PublishState(
        generations=[["a", "b"], ["c"]],
        pool_count=1,
        convenience_sha256="cd",
        revision="7",
        fingerprint="f",
        skipped=["old#1"],
        index_stamps={"dists/stable/main/binary-amd64/Packages": (10, "123-4", "ab" * 32)},
    )
    assert PublishState.from_json(state.to_json()) == state
    assert PublishState.from_json(None) == PublishState()

    with_pool = PublishState(pool={"pool/x.deb": (3, "ab")}, retired={"pool/y.deb": "g1"})
    assert PublishState.pool_from_json(with_pool.pool_to_json()) == PoolMap(
        {"pool/x.deb": (3, "ab")}, {"pool/y.deb": "g1"}
    )
    assert PublishState.pool_from_json(None) is None
    assert PublishState.pool_from_json(b"{not json") is None
    assert PublishState.from_json(with_pool.to_json()).pool_count == 1


def test_state_written_by_an_earlier_version_keeps_its_pool_map(workspace, make_deb):
    """Version 1 kept the pool map inside the state; it is still trusted, then split."""
    add(workspace, make_deb, "alpha")
    pool = pool_map(workspace).pool
    assert list(pool) == ["pool/main/a/alpha/alpha_1.0_amd64.deb"]
    old = {"version": 1, "generations": [], "pool": {k: list(v) for k, v in pool.items()}}
    workspace.staging.put(STATE_KEY, json.dumps(old).encode(), None)
    workspace.staging.delete(POOL_STATE_KEY)
    looked_up = []
    stat_many = workspace.repo.stat_many
    workspace.repo.stat_many = lambda keys: looked_up.extend(keys) or stat_many(keys)

    report = app.rebuild(workspace, now=at(1))

    assert not report.resigned_only  # no revision in a version 1 state
    assert looked_up == []  # the pool map was trusted, not checked again
    assert pool_map(workspace) == PoolMap(pool, {})
    assert PublishState.from_json(workspace.staging.get(STATE_KEY)).pool_count == 1
    assert app.verify(workspace, now=at(1)).ok


def test_a_publish_handed_state_read_before_an_ingest_first_checks_the_lock(workspace, make_deb):
    """The state was read before an ingest that may have outlasted the lock's lease: a
    lock lost meanwhile must stop the publish before it writes the pool map."""
    from debrepo.errors import LockError
    from debrepo.services.publish import POOL_STATE_KEY, StateFiles

    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", hours=1)
    files = StateFiles.read(workspace.staging)
    # Another publisher, meanwhile: beta removed, its file retired in the pool map.
    app.remove_package(workspace, "beta", "1.0", now=at(2))
    pool_now = workspace.staging.get(POOL_STATE_KEY)
    assert pool_now != files.pool

    def lost(*, renew: bool = True) -> None:
        raise LockError("the lock was taken over")

    staging = RecordingStore(workspace.staging)
    workspace.__dict__["staging"] = staging
    repo = record_repo(workspace)
    publisher = workspace.publisher()
    publisher.fence = lost
    with pytest.raises(LockError):
        publisher.publish(now=at(3), state_files=files)
    assert staging.events == [] and repo.events == []  # nothing written, not even the map
    assert workspace.staging.get(POOL_STATE_KEY) == pool_now


def test_a_version_removed_without_publishing_is_added_again_once_the_removal_is_published(
    workspace, make_deb
):
    """Until the removal is published, the current index names the old bytes: a refused
    publish after the new file went in would leave every client a hash mismatch."""
    from debrepo.errors import InvalidPackageError

    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", hours=1)
    pool_file = workspace.repo.root / "pool/main/a/alpha/alpha_1.0_amd64.deb"
    published = pool_file.read_bytes()
    app.remove_package(workspace, "alpha", "1.0", publish_after=False)
    with pytest.raises(InvalidPackageError, match=r"its removal is not published yet"):
        add(workspace, make_deb, "alpha", hours=2, extra_fields=[("X-Build", "2")])
    assert pool_file.read_bytes() == published
    app.rebuild(workspace, now=at(2))
    rebuilt = add(workspace, make_deb, "alpha", hours=3, extra_fields=[("X-Build", "2")])
    assert [r.package_id for r in rebuilt.records] == ["alpha#1.0"]
    assert workspace.store.withdrawn_at("alpha#1.0") is None
    assert app.verify(workspace, now=at(3)).ok


def test_under_a_version_1_state_a_removed_version_can_be_added_again(workspace, make_deb):
    """Version 1 kept the files of removed versions in the pool, outside its pool map."""
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", hours=1)
    app.remove_package(workspace, "alpha", "1.0", now=at(2))
    alpha_file = workspace.repo.root / "pool/main/a/alpha/alpha_1.0_amd64.deb"
    assert alpha_file.exists()  # kept for the older indices
    pool = {k: list(v) for k, v in pool_map(workspace).pool.items()}
    old = {"version": 1, "generations": [], "pool": pool}
    assert "pool/main/a/alpha/alpha_1.0_amd64.deb" not in pool
    workspace.staging.put(STATE_KEY, json.dumps(old).encode(), None)
    workspace.staging.delete(POOL_STATE_KEY)
    workspace.store.clear_withdrawals(["alpha#1.0"])  # as a release before withdrawals
    rebuilt = add(workspace, make_deb, "alpha", hours=3, extra_fields=[("X-Build", "2")])
    assert [r.package_id for r in rebuilt.records] == ["alpha#1.0"]
    assert app.verify(workspace, now=at(3)).ok


def test_a_state_written_before_stores_were_recorded_gains_its_store_on_a_re_sign(
    workspace, make_deb, tmp_path
):
    """Otherwise a repository whose scheduled runs only re-sign would never be guarded
    against a publish from another store."""
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", hours=1)
    state = json.loads(workspace.staging.get(STATE_KEY))
    del state["store"]  # as the release before this record wrote it
    workspace.staging.put(STATE_KEY, json.dumps(state).encode(), None)

    assert app.rebuild(workspace, now=at(2)).resigned_only
    recorded = PublishState.from_json(workspace.staging.get(STATE_KEY)).store
    assert recorded == f"sqlite://{workspace.settings.home / 'metadata.db'}"

    # Another store, holding alpha only, is now refused.
    other_db = tmp_path / "other" / "metadata.db"
    other = app.Workspace(settings_for(workspace.settings.home, store=f"sqlite://{other_db}"))
    app.add_packages(
        app.Workspace(settings_for(other_db.parent)), [make_deb("alpha", "1.0")], publish=False
    )
    with pytest.raises(PublishError, match=f"was last published from the store {recorded}"):
        app.rebuild(other, now=at(3))


def test_a_repository_another_configuration_published_last_is_brought_up_to_date(
    workspace, make_deb, tmp_path
):
    """Two `repo` settings sharing one staging area (a prefix forgotten on one side):
    the one published second must not look up to date to the first."""
    from debrepo.services.publish import store_changed_since_publish

    add(workspace, make_deb, "alpha")
    assert not store_changed_since_publish(workspace.store, workspace.staging, repo=workspace.repo)
    state = json.loads(workspace.staging.get(STATE_KEY))
    state["repo"] = str(tmp_path / "elsewhere")  # as the other configuration leaves it
    workspace.staging.put(STATE_KEY, json.dumps(state).encode(), None)
    assert store_changed_since_publish(workspace.store, workspace.staging, repo=workspace.repo)
    # So the next add or sync publishes here too, though the store did not change.
    assert app.add_packages(workspace, [make_deb("alpha", "1.0")], now=at(1)).report is not None


def _delete_by_hand(ws, package_id: str) -> None:
    with sqlite3.connect(ws.settings.home / "metadata.db") as db:
        db.execute("DELETE FROM packages WHERE package_id = ?", (package_id,))


def test_a_removal_undone_by_an_add_does_not_excuse_a_later_loss(workspace, make_deb):
    add(workspace, make_deb, "zed", "1.0")
    add(workspace, make_deb, "zed", "1.1", hours=1)
    app.remove_package(workspace, "zed", "1.0", now=at(2))  # withdrawn at 2
    add(workspace, make_deb, "zed", "1.0", hours=3)  # wanted again, published at 3
    _delete_by_hand(workspace, "zed#1.0")

    with pytest.raises(PublishError, match=r"publishing would drop zed 1\.0 from every client"):
        app.rebuild(workspace, now=at(4))
    # A removal since the last publish is one: the same version removed properly goes.
    add(workspace, make_deb, "zed", "1.0", hours=5)
    app.remove_package(workspace, "zed", "1.0", publish_after=False, now=at(6))
    assert app.rebuild(workspace, now=at(7)).packages == 1


def test_a_lost_pool_map_does_not_let_a_loss_through(workspace, make_deb):
    for hours, version in enumerate(("1.0", "1.1", "1.2")):
        add(workspace, make_deb, "zed", version, hours=hours)
    workspace.staging.delete(POOL_STATE_KEY)
    _delete_by_hand(workspace, "zed#1.1")

    with pytest.raises(PublishError, match=r"publishing would drop zed 1\.1 from every client"):
        app.rebuild(workspace, now=at(4))
    assert workspace.repo.stat("pool/main/z/zed/zed_1.1_amd64.deb") is not None


def test_an_epoch_is_compared_as_the_file_names_compare(workspace, make_deb):
    """A withdrawal of 1:2.0 before 2.0 was added names the same file, but is older."""
    add(workspace, make_deb, "foo", "1:2.0")
    app.remove_package(workspace, "foo", "1:2.0", now=at(1))
    add(workspace, make_deb, "foo", "2.0", hours=2)
    _delete_by_hand(workspace, "foo#2.0")
    with pytest.raises(PublishError, match=r"publishing would drop foo 2\.0"):
        app.rebuild(workspace, now=at(3))


def test_a_store_switch_does_not_let_a_settings_change_through(workspace, make_deb, tmp_path):
    add(workspace, make_deb, "alpha")
    other_db = tmp_path / "other" / "metadata.db"
    elsewhere = settings_for(other_db.parent, repo=workspace.settings.repo)
    app.add_packages(app.Workspace(elsewhere), [make_deb("alpha", "1.0")], publish=False)
    # Holding every published version, the other store passes the first check...
    switched = settings_for(
        workspace.settings.home, store=f"sqlite://{other_db}", origin="Someone else"
    )
    # ...but not the second: clients would refuse the new Origin.
    with pytest.raises(PublishError, match="Origin 'Kiro' would become 'Someone else'"):
        app.rebuild(app.Workspace(switched), now=at(1))


def test_resigning_does_not_read_indices_untouched_since_they_were_published(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    read = []
    get = workspace.repo.get
    workspace.repo.get = lambda key: read.append(key) or get(key)

    report = app.rebuild(workspace, now=at(1))

    assert report.resigned_only
    assert not [key for key in read if "/Packages" in key]
    assert app.verify(workspace, now=at(1)).ok


def test_indices_checked_by_hashing_are_stamped_for_the_next_rebuild(workspace, make_deb):
    """Indices copied back as they were (a restore from backup: same bytes, new inode
    and mtime) cost one read each; the next re-sign trusts the stamps recorded then."""
    add(workspace, make_deb, "alpha")
    keys = [f"{BINARY}/Packages", f"{BINARY}/Packages.gz", f"{BINARY}/Packages.xz"]
    stamps_before = PublishState.from_json(workspace.staging.get(STATE_KEY)).index_stamps
    for key in keys:
        path = Path(workspace.repo.root, key)
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)
    read: list[str] = []
    get = workspace.repo.get
    workspace.repo.get = lambda key: read.append(key) or get(key)

    first = app.rebuild(workspace, now=at(1))
    hashed = sorted(key for key in read if "/Packages" in key)
    read.clear()
    second = app.rebuild(workspace, now=at(2))

    assert first.resigned_only and second.resigned_only
    assert hashed == keys
    assert not [key for key in read if "/Packages" in key]
    stamps = PublishState.from_json(workspace.staging.get(STATE_KEY)).index_stamps
    assert sorted(stamps) == keys
    assert all(stamps[key] != stamps_before[key] for key in keys)  # the new files' stamps
    assert all(stamps[key][2] == stamps_before[key][2] for key in keys)  # the same bytes
    assert app.verify(workspace, now=at(2)).ok


def test_an_index_that_fails_its_hash_is_not_stamped(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    key = f"{BINARY}/Packages.gz"
    original = workspace.repo.get(key)
    assert original is not None
    Path(workspace.repo.root, key).write_bytes(bytes(b ^ 0x20 for b in original))
    state = PublishState.from_json(workspace.staging.get(STATE_KEY))
    published = workspace.publisher()._resign_unchanged(
        release_info(workspace.settings), state, now=at(1)
    )
    assert published is None  # not re-signed: a full publish must repair it
    current = workspace.repo.stat(key)
    assert current is not None
    assert state.index_stamps[key][1] != current.version  # still the old file's stamp


def test_a_release_rewritten_behind_debrepos_back_is_not_re_signed_as_it_is(workspace, make_deb):
    """The indices are untouched, but Release now lists other bytes of the same size:
    re-signing that Release would sign wrong hashes, so everything is rendered again."""
    add(workspace, make_deb, "alpha")
    release_path = Path(workspace.repo.root, DISTS, "Release")
    release = release_path.read_text()
    packages = workspace.repo.get(f"{BINARY}/Packages")
    assert packages is not None
    real = hashlib.sha256(packages).hexdigest()
    fake = hashlib.sha256(b"other bytes").hexdigest()
    assert real in release
    release_path.write_text(release.replace(real, fake))

    report = app.rebuild(workspace, now=at(1))

    assert not report.resigned_only
    republished = release_path.read_text()
    assert real in republished and fake not in republished
    assert app.verify(workspace, now=at(1)).ok


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz"])
def test_an_index_rewritten_behind_debrepos_back_is_repaired_by_rebuild(
    workspace, make_deb, suffix
):
    add(workspace, make_deb, "alpha")
    key = f"{BINARY}/Packages{suffix}"
    original = workspace.repo.get(key)
    assert original is not None
    # Same size, other bytes: the size alone would not tell.
    Path(workspace.repo.root, key).write_bytes(bytes(b ^ 0x20 for b in original))

    report = app.rebuild(workspace, now=at(1))

    assert not report.resigned_only
    assert key in report.written
    assert workspace.repo.get(key) == original
    assert app.verify(workspace, now=at(1)).ok


@pytest.mark.parametrize("directory", ["SHA256", "SHA512"])
@pytest.mark.parametrize("suffix", ["", ".xz"])  # rendered again; reused compressed form
def test_a_damaged_by_hash_file_is_repaired_by_a_full_rebuild(
    workspace, make_deb, directory, suffix
):
    add(workspace, make_deb, "alpha")
    original = workspace.repo.get(f"{BINARY}/Packages{suffix}")
    assert original is not None
    damaged = f"{BINARY}/by-hash/{directory}/{hashlib.new(directory.lower(), original).hexdigest()}"
    path = Path(workspace.repo.root, damaged)
    path.unlink()  # a new file: the other hash's name, if linked, keeps the right bytes
    path.write_bytes(bytes(b ^ 0x20 for b in original))
    assert not app.verify(workspace, now=at(1)).ok

    report = app.rebuild(workspace, now=at(1), full=True)

    assert damaged in report.written
    assert workspace.repo.get(damaged) == original
    assert app.verify(workspace, now=at(1)).ok
    assert damaged not in app.rebuild(workspace, now=at(2), full=True).written


def test_state_lost_pool_files_are_checked_not_copied_again(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    workspace.staging.delete(STATE_KEY)
    workspace.staging.delete(POOL_STATE_KEY)
    report = app.rebuild(workspace, now=at(1))
    assert report.pool_copied == []
    assert app.verify(workspace, now=at(1)).ok


KIRO_STAGED = "staging/kiro-repo/kiro-repo_2.0_all.deb"
KIRO_POOL = "pool/main/k/kiro-repo/kiro-repo_2.0_all.deb"


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_state_lost_a_damaged_pool_file_found_by_the_listing_is_restored(
    workspace, make_deb, damage
):
    add(workspace, make_deb, "alpha")
    app.build_kiro_repo(workspace, version="2.0", now=at(1))
    workspace.staging.delete(STATE_KEY)
    workspace.staging.delete(POOL_STATE_KEY)
    damaged = workspace.repo.root / KIRO_POOL
    head = damaged.read_bytes()[:100]
    damaged.unlink()  # the staged copy may be the same inode: leave it intact
    if damage == "truncated":
        damaged.write_bytes(head)

    report = app.rebuild(workspace, now=at(2))

    assert report.pool_copied == [KIRO_POOL]
    assert damaged.read_bytes() == (workspace.staging.root / KIRO_STAGED).read_bytes()
    assert app.verify(workspace, now=at(2)).ok


def test_missing_staged_file_refuses_the_publish_and_changes_nothing(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    app.build_kiro_repo(workspace, version="2.0", publish_after=False, now=at(1))
    assert workspace.staging.stat(KIRO_STAGED) is not None
    workspace.staging.delete(KIRO_STAGED)
    before = tree(workspace.repo.root)

    with pytest.raises(PublishError) as caught:
        app.rebuild(workspace, now=at(2))

    message = str(caught.value)
    assert "kiro-repo#2.0" in message
    assert KIRO_STAGED in message
    assert "nothing was published" in message
    assert tree(workspace.repo.root) == before


def test_missing_staged_file_on_a_first_publish_leaves_no_release(workspace):
    app.build_kiro_repo(workspace, version="2.0", publish_after=False, now=FIXED_NOW)
    workspace.staging.delete(KIRO_STAGED)
    with pytest.raises(PublishError):
        app.rebuild(workspace, now=at(1))
    assert workspace.repo.stat(f"{DISTS}/InRelease") is None
    assert workspace.repo.stat(f"{DISTS}/Release") is None
    assert list(workspace.repo.list("")) == []


def test_staged_file_that_differs_from_the_record_refuses_the_publish(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    app.build_kiro_repo(workspace, version="2.0", publish_after=False, now=at(1))
    staged = workspace.staging.root / KIRO_STAGED
    data = bytearray(staged.read_bytes())
    data[-1] ^= 0xFF
    staged.write_bytes(bytes(data))
    before = tree(workspace.repo.root)

    with pytest.raises(PublishError) as caught:
        app.rebuild(workspace, now=at(2))

    message = str(caught.value)
    assert "kiro-repo#2.0" in message
    assert "does not match the stored size and SHA256" in message
    assert tree(workspace.repo.root) == before


def test_unpublished_pool_file_lost_refuses_the_publish(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(1))
    workspace.repo.delete("pool/main/b/beta/beta_2.0_amd64.deb")
    before = tree(workspace.repo.root)
    with pytest.raises(PublishError) as caught:
        app.rebuild(workspace, now=at(2))
    assert "beta#2.0: pool/main/b/beta/beta_2.0_amd64.deb is missing or holds other bytes" in str(
        caught.value
    )
    assert tree(workspace.repo.root) == before


def test_pool_file_with_other_bytes_is_not_read_but_verify_names_it(workspace):
    # A rebuild reads no .deb (seed Property 4): a pool file of the recorded size is
    # taken as it is. verify hashes it, and deleting it lets rebuild --full restore it.
    app.build_kiro_repo(workspace, version="2.0", publish_after=False, now=FIXED_NOW)
    pool_key = "pool/main/k/kiro-repo/kiro-repo_2.0_all.deb"
    staged = workspace.staging.get(KIRO_STAGED)
    workspace.repo.put(pool_key, bytes(len(staged)), None)

    report = app.rebuild(workspace, now=at(1))
    assert report.pool_copied == []
    problems = app.verify(workspace, now=at(1)).problems
    assert any(pool_key in p and "SHA256" in p for p in problems), problems

    workspace.repo.delete(pool_key)
    report = app.rebuild(workspace, now=at(2), full=True)
    assert report.pool_copied == [pool_key]
    assert workspace.repo.get(pool_key) == staged
    assert app.verify(workspace, now=at(2)).ok


def test_many_problems_are_summarised(workspace):
    for minor in range(7):
        app.build_kiro_repo(workspace, version=f"1.{minor}", publish_after=False, now=FIXED_NOW)
        workspace.staging.delete(f"staging/kiro-repo/kiro-repo_1.{minor}_all.deb")
    with pytest.raises(PublishError, match=r"\(and 2 more\); nothing was published"):
        app.rebuild(workspace, now=at(1))


def named_but_missing(ws) -> list[str]:
    """Pool files that some published Packages, plain or kept by-hash, names but that
    are not there: what a client holding any kept Release could fail to download."""
    names = set()
    for key in repo_keys(ws.repo, f"{BINARY}/"):
        data = ws.repo.get(key)
        if data is not None and ("/by-hash/" in key or key.endswith("/Packages")):
            text = lzma.decompress(data) if data[:6] == b"\xfd7zXZ\x00" else data
            text = gzip.decompress(text) if text[:2] == b"\x1f\x8b" else text
            names |= set(re.findall(rb"^Filename: (\S+)$", text, re.MULTILINE))
    return sorted(n.decode() for n in names if ws.repo.stat(n.decode()) is None)


@contextmanager
def publish_failing_in(step: str = "_update_convenience_copy") -> Iterator[None]:
    """The publishes inside fail at `step` (a Publisher method), as on a lost connection."""

    def broken(*args, **kwargs):
        raise ObjectStoreError(f"{step}: connection reset")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Publisher, step, broken)
        # After `add` the error also says the version was stored: it is a PublishError.
        with pytest.raises((ObjectStoreError, PublishError), match="connection reset"):
            yield


def test_a_removed_version_stays_in_the_pool_while_a_kept_generation_names_it(workspace, make_deb):
    assert workspace.settings.by_hash_keep == 3
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)
    pool_key = "pool/main/b/beta/beta_2.0_amd64.deb"

    record, report = app.remove_package(workspace, "beta", "2.0", now=at(2))

    assert record.package_id == "beta#2.0"
    assert report is not None and report.packages == 1
    packages = workspace.repo.get(f"{BINARY}/Packages")
    assert packages is not None and b"Package: beta" not in packages
    assert workspace.staging.stat("staging/beta/beta_2.0_amd64.deb") is None
    # The generation published at hour 1 still names it: it stays.
    assert workspace.repo.stat(pool_key) is not None
    assert named_but_missing(workspace) == []
    assert app.verify(workspace, now=at(2)).ok

    report = add(workspace, make_deb, "gamma", hours=3).report
    assert report is not None and pool_key not in report.deleted
    assert workspace.repo.stat(pool_key) is not None

    recording = record_repo(workspace)
    report = add(workspace, make_deb, "delta", hours=4).report
    # That generation is dropped now, and the file with it, after the new InRelease.
    assert report is not None and pool_key in report.deleted
    events = recording.events
    assert events.index(("delete", pool_key)) > events.index(("put", f"{DISTS}/InRelease"))
    assert workspace.repo.stat(pool_key) is None
    assert named_but_missing(workspace) == []
    assert app.verify(workspace, now=at(4)).ok


def test_a_removed_version_added_again_is_not_deleted_later(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)
    app.remove_package(workspace, "beta", "2.0", now=at(2))
    add(workspace, make_deb, "beta", "2.0", hours=3, description="a test package\n Again.")
    for hours, name in enumerate(("gamma", "delta", "epsilon"), start=4):
        add(workspace, make_deb, name, hours=hours)
    assert named_but_missing(workspace) == []
    assert app.verify(workspace, now=at(7)).ok


def test_a_kept_pool_file_is_not_taken_for_a_new_build_of_that_version(workspace):
    # kiro-repo goes through the staging area: its pool file is copied at publish time.
    # The removed version's file is still in the pool (a kept generation names it); even
    # with the size of the new build it is not the new build.
    pool_key = "pool/main/k/kiro-repo/kiro-repo_1.0_all.deb"
    app.build_kiro_repo(workspace, version="1.0", repo_url="https://one.example.com/", now=at(0))
    app.remove_package(workspace, "kiro-repo", "1.0", now=at(1))
    assert workspace.repo.stat(pool_key) is not None
    rebuilt = app.build_kiro_repo(
        workspace, version="1.0", repo_url="https://two.example.com/", publish_after=False
    ).records[0]
    Path(workspace.repo.root, pool_key).write_bytes(b"x" * rebuilt.file_size)

    app.rebuild(workspace, now=at(3))

    staged = workspace.staging.get("staging/kiro-repo/kiro-repo_1.0_all.deb")
    assert staged is not None and workspace.repo.get(pool_key) == staged
    assert app.verify(workspace, now=at(3)).ok


@pytest.mark.parametrize("publish_after", [True, False])
def test_a_version_never_published_leaves_the_pool_with_its_record(
    workspace, make_deb, publish_after
):
    # Added without publishing, so no index ever named its pool file: nothing keeps it.
    # Left behind, a later build of that version could have been taken for it.
    add(workspace, make_deb, "alpha")
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(1))
    pool_key = "pool/main/b/beta/beta_2.0_amd64.deb"
    assert workspace.repo.stat(pool_key) is not None

    app.remove_package(workspace, "beta", "2.0", publish_after=publish_after, now=at(2))

    assert workspace.repo.stat(pool_key) is None
    assert workspace.repo.stat("pool/main/a/alpha/alpha_1.0_amd64.deb") is not None


def test_removing_a_version_nothing_was_published_from_needs_no_key(workspace, make_deb):
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(0))
    pool_key = "pool/main/b/beta/beta_2.0_amd64.deb"
    assert workspace.repo.stat(pool_key) is not None

    app.remove_package(workspace, "beta", "2.0", publish_after=False, now=at(1))

    assert workspace.repo.stat(pool_key) is None
    assert not workspace.settings.key_file.exists()


@pytest.mark.parametrize("publish_after", [True, False])
@pytest.mark.parametrize(
    "damage", ["state lost", "state unreadable", "pool map lost", "pool map unreadable"]
)
def test_a_published_pool_file_is_kept_when_the_publisher_state_is_unknown(
    workspace, make_deb, damage, publish_after
):
    # Without the record of what was published, a removed version's pool file may be
    # named by the live indices (or kept ones): it stays rather than break clients.
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)
    pool_key = "pool/main/b/beta/beta_2.0_amd64.deb"
    state_file = Path(
        workspace.staging.root, STATE_KEY if damage.startswith("state") else POOL_STATE_KEY
    )
    if damage.endswith("lost"):
        state_file.unlink()
    else:
        state_file.write_bytes(b"{not json")

    app.remove_package(workspace, "beta", "2.0", publish_after=publish_after, now=at(2))

    assert workspace.repo.stat(pool_key) is not None
    assert named_but_missing(workspace) == []


def test_a_publish_that_fails_after_its_release_still_recorded_its_pool_files(workspace, make_deb):
    # The Release of the failed publish names beta; the pool map must say so, or
    # removing beta without publishing would take its file from under that Release.
    add(workspace, make_deb, "alpha")
    with publish_failing_in():
        add(workspace, make_deb, "beta", "2.0", hours=1)
    packages = workspace.repo.get(f"{BINARY}/Packages")
    assert packages is not None and b"Package: beta" in packages

    app.remove_package(workspace, "beta", "2.0", publish_after=False, now=at(2))

    assert workspace.repo.stat("pool/main/b/beta/beta_2.0_amd64.deb") is not None
    assert named_but_missing(workspace) == []


def test_retired_files_recorded_by_an_earlier_state_format_are_still_deleted(workspace, make_deb):
    # An earlier format kept the retired files in publish-state.json, not with the pool
    # map; read from there, they are deleted once their generation goes.
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)
    app.remove_package(workspace, "beta", "2.0", now=at(2))
    pool_key = "pool/main/b/beta/beta_2.0_amd64.deb"
    pool_map = json.loads(workspace.staging.get(POOL_STATE_KEY))
    state = json.loads(workspace.staging.get(STATE_KEY))
    state["retired"] = pool_map.pop("retired")
    assert pool_key in state["retired"]
    Path(workspace.staging.root, POOL_STATE_KEY).write_text(json.dumps(pool_map))
    Path(workspace.staging.root, STATE_KEY).write_text(json.dumps(state))

    add(workspace, make_deb, "gamma", hours=3)
    assert workspace.repo.stat(pool_key) is not None
    assert "retired" not in json.loads(workspace.staging.get(STATE_KEY))
    report = add(workspace, make_deb, "delta", hours=4).report

    assert report is not None and pool_key in report.deleted
    assert workspace.repo.stat(pool_key) is None
    assert app.verify(workspace, now=at(4)).ok


BETA_POOL = "pool/main/b/beta/beta_2.0_amd64.deb"


def pool_map(ws) -> PoolMap:
    known = PublishState.pool_from_json(ws.staging.get(POOL_STATE_KEY))
    assert known is not None
    return known


def test_a_file_retired_before_the_generations_were_lost_is_kept_with_the_new_ones(
    workspace, make_deb
):
    # beta's file is retired for the generation of hour 1, which is kept. With the
    # generations lost, that one is kept for good (unknown by-hash files are never
    # deleted), and beta's file as long as any generation known from now on.
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)
    app.remove_package(workspace, "beta", "2.0", now=at(2))
    Path(workspace.staging.root, STATE_KEY).unlink()

    report = app.rebuild(workspace, now=at(3))

    assert BETA_POOL not in report.deleted
    assert workspace.repo.stat(BETA_POOL) is not None
    assert named_but_missing(workspace) == []
    for hours, name in enumerate(("gamma", "delta"), start=4):
        add(workspace, make_deb, name, hours=hours)
        assert workspace.repo.stat(BETA_POOL) is not None
    report = add(workspace, make_deb, "epsilon", hours=6).report
    assert report is not None and BETA_POOL in report.deleted  # hour 3 dropped now
    assert app.verify(workspace, now=at(6)).ok


@pytest.mark.parametrize("lost", [[POOL_STATE_KEY], [STATE_KEY, POOL_STATE_KEY]])
def test_a_pool_map_rebuilt_after_a_loss_finds_the_retired_files_in_the_pool(
    workspace, make_deb, lost
):
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)  # generation of hour 1 names beta
    app.remove_package(workspace, "beta", "2.0", now=at(2))  # retired for it
    for key in lost:
        Path(workspace.staging.root, key).unlink()
    add(workspace, make_deb, "gamma", hours=3)  # the map is rebuilt, from a pool listing
    assert BETA_POOL in pool_map(workspace).retired
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(4))

    app.remove_package(workspace, "beta", "2.0", publish_after=False, now=at(5))

    assert workspace.repo.stat(BETA_POOL) is not None
    assert named_but_missing(workspace) == []
    # Retired for the generation of hour 3, the newest when it was found.
    for hours, name in enumerate(("delta", "epsilon"), start=6):
        add(workspace, make_deb, name, hours=hours)
        assert workspace.repo.stat(BETA_POOL) is not None
    report = add(workspace, make_deb, "zeta", hours=8).report
    assert report is not None and BETA_POOL in report.deleted
    # And the map is proof again: a version added and removed unpublished goes at once.
    app.add_packages(workspace, [make_deb("eta", "1.0")], publish=False, now=at(9))
    app.remove_package(workspace, "eta", "1.0", publish_after=False, now=at(10))
    assert workspace.repo.stat("pool/main/e/eta/eta_1.0_amd64.deb") is None


def test_only_a_publish_that_lost_its_pool_map_lists_the_pool(workspace, make_deb):
    listed: list[str] = []
    inner_list = workspace.repo.list
    workspace.repo.list = lambda prefix: listed.append(prefix) or inner_list(prefix)

    add(workspace, make_deb, "alpha")  # the first: nothing published could name a file
    add(workspace, make_deb, "beta", hours=1)
    assert "pool/" not in listed
    Path(workspace.staging.root, POOL_STATE_KEY).unlink()
    add(workspace, make_deb, "gamma", hours=2)
    assert listed.count("pool/") == 1


@pytest.mark.parametrize("fail_in", ["_write_indices", "_update_convenience_copy"])
def test_a_lost_pool_map_completed_by_a_publish_that_fails_keeps_files_kept_generations_name(
    workspace, make_deb, fail_in
):
    add(workspace, make_deb, "alpha")  # generation A
    add(workspace, make_deb, "beta", "2.0", hours=1)  # generation B names beta
    app.remove_package(workspace, "beta", "2.0", now=at(2))  # generation C; beta kept for B
    Path(workspace.staging.root, POOL_STATE_KEY).unlink()  # the pool map is lost

    # This publish lists the pool and retires beta for its own generation, writes the
    # map, then fails: that generation never makes it into the publisher state.
    with publish_failing_in(fail_in):
        add(workspace, make_deb, "gamma", hours=3)
    assert BETA_POOL in pool_map(workspace).retired

    # The next publish keeps generations [D, C, B]: B still names beta.
    add(workspace, make_deb, "delta", hours=4)

    assert named_but_missing(workspace) == []
    assert workspace.repo.stat(BETA_POOL) is not None


def test_losing_the_generations_twice_keeps_the_retired_files_for_the_newest(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)  # generation of hour 1 names beta
    for key in (STATE_KEY, POOL_STATE_KEY):
        Path(workspace.staging.root, key).unlink()
    app.remove_package(workspace, "beta", "2.0", now=at(2))
    Path(workspace.staging.root, STATE_KEY).unlink()  # the generations lost again
    add(workspace, make_deb, "gamma", hours=3)
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(4))

    app.remove_package(workspace, "beta", "2.0", publish_after=False, now=at(5))

    assert workspace.repo.stat(BETA_POOL) is not None  # hour 1's by-hash Packages names it
    assert named_but_missing(workspace) == []


@pytest.mark.parametrize("publish_in_between", [False, True])
def test_a_version_1_state_is_no_proof_a_file_was_never_published(
    workspace, make_deb, publish_in_between
):
    # Version 1 kept no retired files: a removed version's file stayed in the pool,
    # named by kept generations, and out of its pool map.
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)  # generation of hour 1 names beta
    app.remove_package(workspace, "beta", "2.0", publish_after=False, now=at(2))
    add(workspace, make_deb, "gamma", hours=3)
    state = json.loads(workspace.staging.get(STATE_KEY))
    pool = json.loads(workspace.staging.get(POOL_STATE_KEY))["pool"]
    assert BETA_POOL not in pool
    old = {"version": 1, "generations": state["generations"], "pool": pool}
    workspace.staging.put(STATE_KEY, json.dumps(old).encode(), None)
    workspace.staging.delete(POOL_STATE_KEY)
    if publish_in_between:
        add(workspace, make_deb, "delta", hours=4)
        assert BETA_POOL in pool_map(workspace).retired
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(5))

    app.remove_package(workspace, "beta", "2.0", publish_after=False, now=at(6))

    assert workspace.repo.stat(BETA_POOL) is not None
    assert named_but_missing(workspace) == []


def test_a_never_published_file_goes_even_if_the_publish_of_its_removal_fails(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(1))

    with publish_failing_in():
        app.remove_package(workspace, "beta", "2.0", now=at(2))

    assert workspace.repo.stat(BETA_POOL) is None
    assert workspace.store.get("beta#2.0") is None


def test_a_removed_version_added_again_without_publishing_is_published_from_the_pool(
    workspace, make_deb
):
    # `add` writes straight into the pool, over the retired file; there is no staged
    # copy to take, and none is needed: the pool file is checked against the record.
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)
    app.remove_package(workspace, "beta", "2.0", now=at(2))
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(3))

    report = app.rebuild(workspace, now=at(4))

    assert BETA_POOL not in report.pool_copied
    assert BETA_POOL in pool_map(workspace).pool and BETA_POOL not in pool_map(workspace).retired
    assert named_but_missing(workspace) == []
    assert app.verify(workspace, now=at(4)).ok


def test_a_retired_file_overwritten_with_other_bytes_and_no_staged_copy_is_refused(
    workspace, make_deb
):
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)
    app.remove_package(workspace, "beta", "2.0", now=at(2))
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(3))
    Path(workspace.repo.root, BETA_POOL).write_bytes(b"not the package")

    with pytest.raises(PublishError, match=r"beta#2.0: .*beta_2.0_amd64.deb is missing or holds"):
        app.rebuild(workspace, now=at(4))


def test_a_retired_file_overwritten_with_other_bytes_of_its_size_and_no_staged_copy_is_refused(
    workspace, make_deb
):
    # The size matches the record: only reading and hashing the bytes tells them apart.
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)
    app.remove_package(workspace, "beta", "2.0", now=at(2))
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(3))
    pool_file = Path(workspace.repo.root, BETA_POOL)
    original = pool_file.read_bytes()
    damaged = original[:-1] + bytes([original[-1] ^ 0xFF])
    pool_file.write_bytes(damaged)
    assert workspace.store.get("beta#2.0").file_size == len(damaged)

    with pytest.raises(PublishError, match=r"beta#2.0: .*beta_2.0_amd64.deb is missing or holds"):
        app.rebuild(workspace, now=at(4))
    assert pool_file.read_bytes() == damaged  # nothing good to put there instead


def test_a_release_of_another_suite_is_not_taken_for_never_published(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)  # dists/stable names beta
    renamed = app.Workspace(workspace.settings._replace(suite="next"))

    app.remove_package(renamed, "beta", "2.0", publish_after=False, now=at(2))

    assert workspace.repo.stat(BETA_POOL) is not None
    assert named_but_missing(workspace) == []


def test_without_any_state_a_release_of_another_suite_keeps_the_file(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    app.add_packages(workspace, [make_deb("beta", "2.0")], publish=False, now=at(1))
    for key in (STATE_KEY, POOL_STATE_KEY):
        Path(workspace.staging.root, key).unlink()
    renamed = app.Workspace(workspace.settings._replace(suite="next"))

    app.remove_package(renamed, "beta", "2.0", publish_after=False, now=at(2))

    assert workspace.repo.stat(BETA_POOL) is not None


def test_a_file_expiring_in_a_publish_that_fails_late_is_deleted_by_the_next(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    add(workspace, make_deb, "beta", "2.0", hours=1)
    app.remove_package(workspace, "beta", "2.0", now=at(2))
    add(workspace, make_deb, "gamma", hours=3)

    with publish_failing_in():
        add(workspace, make_deb, "delta", hours=4)  # drops hour 1's generation, then fails
    assert workspace.repo.stat(BETA_POOL) is not None
    assert BETA_POOL in pool_map(workspace).retired

    report = add(workspace, make_deb, "epsilon", hours=5).report

    assert report is not None and BETA_POOL in report.deleted
    assert workspace.repo.stat(BETA_POOL) is None
    assert BETA_POOL not in pool_map(workspace).retired


def test_remove_without_publishing_keeps_the_published_files(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    before = tree(workspace.repo.root)
    _, report = app.remove_package(workspace, "alpha", "1.0", publish_after=False, now=at(1))
    assert report is None
    assert tree(workspace.repo.root) == before
    assert workspace.store.get("alpha#1.0") is None


def test_remove_unknown_version(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    with pytest.raises(PackageNotFoundError, match=r"alpha 9.9 is not in the store"):
        app.remove_package(workspace, "alpha", "9.9", now=at(1))


def test_deleted_pool_file_is_restored_from_staging_by_rebuild(workspace):
    app.build_kiro_repo(workspace, version="2.0", now=FIXED_NOW)
    pool_key = "pool/main/k/kiro-repo/kiro-repo_2.0_all.deb"
    original = workspace.repo.get(pool_key)
    workspace.repo.delete(pool_key)

    # A plain rebuild of an unchanged store only re-signs; --full looks the pool up.
    assert app.rebuild(workspace, now=at(1)).resigned_only
    assert workspace.repo.get(pool_key) is None
    app.rebuild(workspace, now=at(2), full=True)

    assert workspace.repo.get(pool_key) == original
    assert app.verify(workspace, now=at(2)).ok


def test_rebuild_refuses_to_publish_an_index_naming_a_lost_pool_file(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    workspace.repo.delete("pool/main/a/alpha/alpha_1.0_amd64.deb")
    before = tree(workspace.repo.root)

    with pytest.raises(PublishError, match=r"alpha#1.0"):
        app.rebuild(workspace, now=at(1), full=True)

    assert tree(workspace.repo.root) == before


def test_deleted_by_hash_file_of_the_current_generation_is_recreated(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    victim = sorted(k for k in by_hash_keys(workspace) if "/SHA256/" in k)[0]
    workspace.repo.delete(victim)
    report = app.rebuild(workspace, now=at(1))
    assert victim in report.written
    assert app.verify(workspace, now=at(1)).ok


def test_convenience_copy_follows_the_newest_kiro_repo(workspace):
    app.build_kiro_repo(workspace, version="1.0", now=FIXED_NOW)
    newest = app.build_kiro_repo(workspace, version="1.10", now=at(1))
    older_pool = "pool/main/k/kiro-repo/kiro-repo_1.0_all.deb"
    newest_pool = "pool/main/k/kiro-repo/kiro-repo_1.10_all.deb"
    assert newest.report is not None and newest.report.convenience_version == "1.10"
    assert workspace.repo.get("kiro-repo.deb") == workspace.repo.get(newest_pool)

    unchanged = app.rebuild(workspace, now=at(2))
    assert "kiro-repo.deb" not in unchanged.written

    app.remove_package(workspace, "kiro-repo", "1.10", now=at(3))
    assert workspace.repo.get("kiro-repo.deb") == workspace.repo.get(older_pool)

    _, report = app.remove_package(workspace, "kiro-repo", "1.0", now=at(4))
    assert report is not None and "kiro-repo.deb" in report.deleted
    assert workspace.repo.stat("kiro-repo.deb") is None
    assert report.convenience_version is None


def test_incomplete_store_rows_are_skipped_and_reported(workspace, make_deb):
    add(workspace, make_deb, "alpha")
    connection = sqlite3.connect(workspace.store.path)
    with connection:
        connection.execute(
            "INSERT INTO packages (package_id, package_name, version) VALUES (?, ?, ?)",
            ("legacy#0.9", "legacy", "0.9"),
        )
    connection.close()
    report = app.rebuild(workspace, now=at(1))
    assert report.packages == 1
    assert report.skipped_incomplete == ["legacy#0.9"]
    assert "1 incomplete record(s) skipped" in report.summary()


def test_publish_report_summary():
    report = PublishReport(
        packages=2,
        pool_copied=["p"],
        pool_placed=["q", "r"],
        written=["a", "b"],
        unchanged=4,
        deleted=["dists/stable/main/binary-amd64/by-hash/SHA256/0a", "pool/main/o/old/o.deb"],
    )
    summary = report.summary()
    assert summary.startswith("2 package(s) published, 3 pool file(s) added, 2 file(s) written")
    assert "4 unchanged" in summary
    assert "1 pool file(s) of removed versions deleted, 1 old index file(s) deleted" in summary


def test_published_files_match_the_store(workspace, make_deb):
    result = add(workspace, make_deb, "alpha")
    record = result.records[0]
    pool = workspace.repo.get("pool/main/a/alpha/alpha_1.0_amd64.deb")
    assert pool is not None
    assert hashlib.sha256(pool).hexdigest() == record.sha256_hash
    assert len(pool) == record.file_size
    assert workspace.repo.stat(STATE_KEY) is None
    assert Path(workspace.staging.root, STATE_KEY).is_file()


def test_an_add_whose_publish_fails_says_the_version_was_stored(workspace, make_deb):
    add(workspace, make_deb, "alpha")

    def broken(*args, **kwargs):
        raise ObjectStoreError("dists/stable/Release: cannot write: No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Publisher, "_write_release", broken)
        with pytest.raises(PublishError) as caught:
            app.add_packages(workspace, [make_deb("beta", "2.0")], now=at(1))
    message = str(caught.value)
    assert message.startswith("dists/stable/Release: cannot write: No space left on device; ")
    assert "beta 2.0 stored but not published" in message
    assert "`debrepo rebuild`" in message
    assert workspace.store.exists("beta#2.0")
    assert app.rebuild(workspace, now=at(2)).packages == 2


@contextmanager
def counting_compressions(monkeypatch) -> Iterator[dict[str, int]]:
    """Count the pieces of compressed indices actually compressed (not reused)."""
    from debrepo.core import compression

    counts = {".gz": 0, ".xz": 0}

    def counted(suffix, compress):
        def wrapper(piece):
            counts[suffix] += 1
            return compress(piece)

        return wrapper

    monkeypatch.setattr(compression, "_deflated", counted(".gz", compression._deflated))
    monkeypatch.setattr(compression, "xz_block", counted(".xz", compression.xz_block))
    yield counts


def two_piece_repository(ws, make_deb) -> dict[str, bytes]:
    """alpha in the first piece of the compressed indices; beta starts the second, with
    gamma after it. Returns the published compressed indices."""
    app.add_packages(
        ws,
        [make_deb("alpha"), piece_cutting_deb(make_deb, "beta"), make_deb("gamma")],
        now=at(0),
    )
    state = PublishState.parse(ws.staging.get(STATE_KEY))
    layouts = [state.index_pieces[f"{BINARY}/Packages{s}"] for s in (".gz", ".xz")]
    assert [len(layout.pieces) for layout in layouts] == [2, 2]
    return {s: ws.repo.get(f"{BINARY}/Packages{s}") for s in (".gz", ".xz")}


def assert_indices_as_rebuilt_from_the_store(ws) -> None:
    """The published indices are what rendering the store's records from nothing gives."""
    from debrepo.core.indexes import build_indices

    rendered = build_indices(ws.store.snapshot().records, release_info(ws.settings))
    for index in rendered:
        assert ws.repo.get(f"{DISTS}/{index.path}") == index.data, index.path
    plain = ws.repo.get(f"{BINARY}/Packages")
    assert gzip.decompress(ws.repo.get(f"{BINARY}/Packages.gz")) == plain
    assert lzma.decompress(ws.repo.get(f"{BINARY}/Packages.xz")) == plain


def test_adding_a_package_compresses_again_only_the_piece_it_lands_in(
    workspace, make_deb, monkeypatch
):
    before = two_piece_repository(workspace, make_deb)
    first_pieces = {
        s: PublishState.parse(workspace.staging.get(STATE_KEY))
        .index_pieces[f"{BINARY}/Packages{s}"]
        .pieces[0]
        for s in before
    }

    with counting_compressions(monkeypatch) as counts:
        add(workspace, make_deb, "delta", hours=1)  # sorts after beta: the second piece

    assert counts == {".gz": 1, ".xz": 1}
    state = PublishState.parse(workspace.staging.get(STATE_KEY))
    for suffix, old in before.items():
        layout = state.index_pieces[f"{BINARY}/Packages{suffix}"]
        assert (
            layout.sha256
            == hashlib.sha256(workspace.repo.get(f"{BINARY}/Packages{suffix}")).hexdigest()
        )
        assert layout.pieces[0] == first_pieces[suffix]
        _, offset, length, _ = layout.pieces[0]
        assert (
            workspace.repo.get(f"{BINARY}/Packages{suffix}")[offset : offset + length]
            == (old[offset : offset + length])
        )
    assert_indices_as_rebuilt_from_the_store(workspace)


def test_a_compressed_index_changed_behind_debrepos_back_is_not_reused(
    workspace, make_deb, monkeypatch
):
    before = two_piece_repository(workspace, make_deb)
    state = PublishState.parse(workspace.staging.get(STATE_KEY))
    _, offset, length, _ = state.index_pieces[f"{BINARY}/Packages.xz"].pieces[0]
    damaged = bytearray(before[".xz"])
    damaged[offset + length // 2] ^= 0xFF  # inside alpha's piece, which delta leaves alone
    path = workspace.repo.root / BINARY / "Packages.xz"
    path.unlink()
    path.write_bytes(bytes(damaged))

    with counting_compressions(monkeypatch) as counts:
        add(workspace, make_deb, "delta", hours=1)

    assert counts == {".gz": 1, ".xz": 2}
    assert_indices_as_rebuilt_from_the_store(workspace)


def test_a_layout_lost_with_the_state_means_compressing_everything_again(
    workspace, make_deb, monkeypatch
):
    two_piece_repository(workspace, make_deb)
    workspace.staging.delete(STATE_KEY)

    with counting_compressions(monkeypatch) as counts:
        add(workspace, make_deb, "delta", hours=1)

    assert counts == {".gz": 2, ".xz": 2}
    assert_indices_as_rebuilt_from_the_store(workspace)


def test_files_ingest_put_in_the_pool_count_as_added_not_copied(workspace, make_deb):
    result = app.add_packages(workspace, [make_deb("alpha"), make_deb("beta")], now=at(0))
    assert result.report.pool_copied == []  # ingest wrote them; publish trusts them
    assert sorted(result.report.pool_placed) == [
        "pool/main/a/alpha/alpha_1.0_amd64.deb",
        "pool/main/b/beta/beta_1.0_amd64.deb",
    ]
    assert "2 pool file(s) added" in result.report.summary()
    assert app.rebuild(workspace, now=at(1), full=True).pool_placed == []


def test_a_publish_that_failed_after_its_release_leaves_no_layout_to_misapply(
    workspace, make_deb, monkeypatch
):
    """The state is written last: a publish failing after the Release leaves the layout
    of the indices before it. It describes other bytes and must not be applied to the
    ones published (slices at its offsets would make an index that does not decompress)."""
    two_piece_repository(workspace, make_deb)
    with publish_failing_in("_update_convenience_copy"):
        add(workspace, make_deb, "aaa", hours=1)  # sorts first: the first piece changes

    with counting_compressions(monkeypatch) as counts:
        add(workspace, make_deb, "aab", hours=2)

    assert counts == {".gz": 2, ".xz": 2}  # nothing taken from the mismatched layout
    assert_indices_as_rebuilt_from_the_store(workspace)
    assert app.verify(workspace, now=at(2)).ok


def test_a_full_rebuild_compresses_every_piece_from_nothing(workspace, make_deb, monkeypatch):
    two_piece_repository(workspace, make_deb)
    with counting_compressions(monkeypatch) as counts:
        app.rebuild(workspace, now=at(1), full=True)
    assert counts == {".gz": 2, ".xz": 2}
    assert_indices_as_rebuilt_from_the_store(workspace)


def test_a_settings_change_compresses_every_piece_again(tmp_path, make_deb, monkeypatch):
    workspace = app.Workspace(settings_for(tmp_path / "home"))
    two_piece_repository(workspace, make_deb)
    redescribed = app.Workspace(settings_for(tmp_path / "home", description="Redescribed"))
    with counting_compressions(monkeypatch) as counts:
        add(redescribed, make_deb, "delta", hours=1)
    assert counts == {".gz": 2, ".xz": 2}
    assert_indices_as_rebuilt_from_the_store(redescribed)


@pytest.mark.parametrize("how", ["state lost", "full rebuild"])
def test_by_hash_files_no_generation_accounts_for_are_kept_one_generation_then_deleted(
    workspace, make_deb, how
):
    for hours, name in enumerate(("alpha", "beta")):
        add(workspace, make_deb, name, hours=hours)
    unaccounted = by_hash_keys(workspace)
    if how == "state lost":
        workspace.staging.delete(STATE_KEY)
        report = add(workspace, make_deb, "gamma", hours=2).report
        assert report is not None
    else:  # generations that a failed publish, or an older debrepo, did not record
        state = PublishState.from_json(workspace.staging.get(STATE_KEY))
        state.generations = state.generations[:1]
        workspace.staging.put(STATE_KEY, state.to_json(), None)
        unaccounted -= set(state.generations[0])
        report = app.rebuild(workspace, now=at(2), full=True)
    assert report.deleted == []  # a Release a client still holds may name them
    generations = PublishState.from_json(workspace.staging.get(STATE_KEY)).generations
    assert sorted(unaccounted) in [sorted(g) for g in generations]

    add(workspace, make_deb, "delta", hours=3)
    report = add(workspace, make_deb, "epsilon", hours=4).report
    assert report is not None
    assert unaccounted <= set(report.deleted)
    assert by_hash_keys(workspace).isdisjoint(unaccounted)
    assert app.verify(workspace, now=at(4)).ok
