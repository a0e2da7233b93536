"""objects/filesystem.py: safe keys, atomic writes, listing, copying between stores."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
from pathlib import Path

import pytest

from debrepo.core.layout import delivery_for
from debrepo.errors import ObjectStoreError
from debrepo.objects import filesystem
from debrepo.objects.filesystem import FilesystemObjectStore

DELIVERY = delivery_for("pool/main/h/hello/hello_1.0_amd64.deb")


@pytest.fixture
def store(tmp_path: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path / "root")


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


UNSAFE_KEYS = [
    "",
    "/etc/passwd",
    "..",
    "../outside",
    "a/../../outside",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "a\x00b",
    "a\\..\\b",
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused_by_every_operation(store, tmp_path, key):
    operations = [
        lambda: store.get(key),
        lambda: store.stat(key),
        lambda: store.put(key, b"x", DELIVERY),
        lambda: store.delete(key),
        lambda: store.same_bytes(key, b"x"),
        lambda: store.copy_from(store, "safe", key, DELIVERY),
    ]
    for operation in operations:
        with pytest.raises(ObjectStoreError) as caught:
            operation()
        assert "is not a safe object key" in str(caught.value)
    with pytest.raises(ObjectStoreError), store.open(key):
        pass
    assert not (tmp_path / "outside").exists()


def test_put_get_stat_round_trip(store):
    written = store.put("dists/stable/Release", b"Origin: Test\n", DELIVERY)
    assert store.get("dists/stable/Release") == b"Origin: Test\n"
    first = store.stat("dists/stable/Release")
    assert first is not None and (first.key, first.size) == ("dists/stable/Release", 13)
    with store.open("dists/stable/Release") as handle:
        assert handle.read() == b"Origin: Test\n"
    assert store.stat("dists/stable/Release") == first  # reading changes nothing
    assert written == first.version  # what the write answers is what a stat finds
    store.put("dists/stable/Release", b"Origin: Tess\n", DELIVERY)  # same size
    second = store.stat("dists/stable/Release")
    assert second is not None and second.size == 13
    assert second.version != first.version


def test_put_replaces_atomically_and_leaves_no_temporary_files(store):
    store.put("a/b/file", b"old", DELIVERY)
    before = (store.root / "a/b/file").stat().st_ino
    store.put("a/b/file", b"new contents", DELIVERY)
    assert store.get("a/b/file") == b"new contents"
    assert (store.root / "a/b/file").stat().st_ino != before
    assert temp_files(store.root) == []
    assert stat.S_IMODE((store.root / "a/b/file").stat().st_mode) & 0o044 == 0o044


def test_failed_write_leaves_no_temporary_file(store, monkeypatch):
    def failing_replace(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(filesystem.os, "replace", failing_replace)
    with pytest.raises(ObjectStoreError) as caught:
        store.put("dir/file", b"data", DELIVERY)
    assert "cannot write" in str(caught.value)
    assert str(store.root / "dir/file") in str(caught.value)
    assert temp_files(store.root) == []
    assert store.get("dir/file") is None


def test_missing_objects(store):
    assert store.get("nothing/here") is None
    assert store.stat("nothing/here") is None
    assert store.same_bytes("nothing/here", b"") is False
    with pytest.raises(ObjectStoreError, match=r"no such file"), store.open("nothing/here"):
        pass


def test_key_below_a_file_is_missing_not_an_error(store):
    store.put("file", b"x", DELIVERY)
    assert store.get("file/below") is None
    assert store.stat("file/below") is None


def test_reading_a_directory_is_an_error(store):
    store.put("dir/file", b"x", DELIVERY)
    with pytest.raises(ObjectStoreError, match=r"cannot read"):
        store.get("dir")
    with pytest.raises(ObjectStoreError, match=r"cannot read"), store.open("dir"):
        pass


def test_list_skips_temporary_files_and_filters_by_prefix(store):
    store.put("dists/stable/Release", b"r", DELIVERY)
    store.put("dists/stable/main/binary-amd64/Packages", b"pp", DELIVERY)
    store.put("pool/main/h/hello/hello_1.0_amd64.deb", b"deb", DELIVERY)
    (store.root / "dists/stable/.tmp-abc123-Release").write_bytes(b"half written")
    everything = {info.key: info.size for info in store.list("")}
    assert everything == {
        "dists/stable/Release": 1,
        "dists/stable/main/binary-amd64/Packages": 2,
        "pool/main/h/hello/hello_1.0_amd64.deb": 3,
    }
    assert [info.key for info in store.list("pool/")] == ["pool/main/h/hello/hello_1.0_amd64.deb"]
    assert list(store.list("absent/")) == []


def test_same_bytes(store):
    store.put("k", b"abc", DELIVERY)
    assert store.same_bytes("k", b"abc")
    assert not store.same_bytes("k", b"abd")
    assert not store.same_bytes("k", b"abcd")


def test_delete(store):
    store.put("a/b", b"x", DELIVERY)
    store.delete("a/b")
    assert store.get("a/b") is None
    store.delete("a/b")
    store.delete("never/existed")


def test_delete_a_directory_is_an_error(store):
    store.put("a/b", b"x", DELIVERY)
    with pytest.raises(ObjectStoreError, match=r"cannot delete"):
        store.delete("a")


def test_a_copy_is_a_file_of_its_own_unless_it_may_be_shared(tmp_path, store):
    staging = FilesystemObjectStore(tmp_path / "staging")
    staging.put("staging/hello/hello_1.0_amd64.deb", b"package bytes", DELIVERY)
    store.copy_from(staging, "staging/hello/hello_1.0_amd64.deb", "pool/hello.deb", DELIVERY)
    store.copy_from(store, "pool/hello.deb", "kiro-repo.deb", DELIVERY)
    store.copy_from(store, "pool/hello.deb", "by-hash/x", DELIVERY, shared=True)
    source = staging.root / "staging/hello/hello_1.0_amd64.deb"
    pool, convenience = store.root / "pool/hello.deb", store.root / "kiro-repo.deb"
    assert pool.stat().st_ino == (store.root / "by-hash/x").stat().st_ino
    with convenience.open("r+b") as written_in_place:  # as `cp other.deb kiro-repo.deb` does
        written_in_place.write(b"PACKAGE")
    assert pool.read_bytes() == source.read_bytes() == b"package bytes"
    assert temp_files(store.root) == []


def test_copying_again_onto_a_link_of_the_same_file_leaves_no_temporary_file(store):
    # A by-hash name linked to its plain file a second time: both names already are one
    # file, and rename(2) then leaves the temporary name in place.
    store.put("pool/kiro-repo_1.0_all.deb", b"package bytes", DELIVERY)
    for _ in range(2):
        store.copy_from(store, "pool/kiro-repo_1.0_all.deb", "kiro-repo.deb", DELIVERY, shared=True)
    assert store.get("kiro-repo.deb") == b"package bytes"
    assert temp_files(store.root) == []


def test_a_linked_copy_is_readable_by_all_even_if_its_source_was_not(tmp_path, store):
    # Written under umask 077 by an earlier version: sharing the inode must not keep the
    # published name private.
    staging = FilesystemObjectStore(tmp_path / "staging")
    staging.put("staging/hello/hello_1.0_amd64.deb", b"package bytes", DELIVERY)
    (staging.root / "staging/hello/hello_1.0_amd64.deb").chmod(0o600)
    store.copy_from(
        staging, "staging/hello/hello_1.0_amd64.deb", "pool/hello.deb", DELIVERY, shared=True
    )
    assert stat.S_IMODE((store.root / "pool/hello.deb").stat().st_mode) == 0o644


def test_a_linked_copy_that_cannot_be_made_readable_leaves_its_source_intact(
    tmp_path, store, monkeypatch
):
    # Not the owner of the shared inode, so chmod is refused: an error naming the copy,
    # the source untouched and no temporary name left.
    staging = FilesystemObjectStore(tmp_path / "staging")
    staging.put("staging/hello.deb", b"package bytes", DELIVERY)
    (staging.root / "staging/hello.deb").chmod(0o600)
    store.put("pool/other.deb", b"other", DELIVERY)  # the folder exists already

    def refuse(path, mode):
        raise PermissionError(1, "Operation not permitted", path)

    monkeypatch.setattr(os, "chmod", refuse)
    with pytest.raises(ObjectStoreError, match="cannot copy"):
        store.copy_from(staging, "staging/hello.deb", "pool/hello.deb", DELIVERY, shared=True)
    monkeypatch.undo()
    assert staging.get("staging/hello.deb") == b"package bytes"
    assert store.stat("pool/hello.deb") is None
    assert temp_files(store.root) == []


class FakeLibc:
    """Stands in for a libc without syncfs, or one whose syncfs fails (`result`)."""

    def __init__(self, result: int = 0, has_syncfs: bool = True) -> None:
        self.result = result
        if has_syncfs:
            self.syncfs = self._syncfs

    def _syncfs(self, fd: int) -> int:
        return self.result


def test_flush_syncs_the_file_system_holding_the_root(store, monkeypatch):
    """With the real syncfs, watched: called once, on the root, and it succeeds."""
    real = ctypes.CDLL(None, use_errno=True)
    calls: list[tuple[str, int]] = []

    class Watched:
        def syncfs(self, fd: int) -> int:
            result = int(real.syncfs(fd))
            calls.append((str(Path(f"/proc/self/fd/{fd}").readlink()), result))
            return result

    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: Watched())
    monkeypatch.setattr(os, "sync", lambda: pytest.fail("sync instead of syncfs"))
    store.put("written", b"x", DELIVERY)
    store.flush()
    assert calls == [(os.path.realpath(store.root), 0)]


def test_flush_without_syncfs_syncs_everything(store, monkeypatch):
    calls = []
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: FakeLibc(has_syncfs=False))
    monkeypatch.setattr(os, "sync", lambda: calls.append("sync"))
    store.flush()
    assert calls == ["sync"]


def test_a_failing_flush_is_an_error_naming_the_root(store, monkeypatch):
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: FakeLibc(result=-1))
    monkeypatch.setattr(ctypes, "get_errno", lambda: errno.EIO)
    store.put("written", b"x", DELIVERY)
    with pytest.raises(ObjectStoreError, match=rf"{re.escape(str(store.root))}: cannot sync: "):
        store.flush()


def test_copy_from_falls_back_to_copying(tmp_path, store, monkeypatch):
    staging = FilesystemObjectStore(tmp_path / "staging")
    staging.put("s/file.deb", b"bytes to copy", DELIVERY)

    def no_link(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(filesystem.os, "link", no_link)
    store.copy_from(staging, "s/file.deb", "pool/file.deb", DELIVERY, shared=True)
    assert store.get("pool/file.deb") == b"bytes to copy"
    target = (store.root / "pool/file.deb").stat()
    assert target.st_ino != (staging.root / "s/file.deb").stat().st_ino
    assert stat.S_IMODE(target.st_mode) == 0o644


def test_copy_from_missing_source(tmp_path, store):
    staging = FilesystemObjectStore(tmp_path / "staging")
    with pytest.raises(ObjectStoreError, match=r"no such file"):
        store.copy_from(staging, "s/absent.deb", "pool/file.deb", DELIVERY)
    assert store.get("pool/file.deb") is None
    assert temp_files(store.root) == []


def test_copy_within_the_same_store(store):
    store.put("pool/a.deb", b"A", DELIVERY)
    store.copy_from(store, "pool/a.deb", "kiro-repo.deb", DELIVERY)
    assert store.get("kiro-repo.deb") == b"A"


def test_put_file_copies(tmp_path, store):
    source = tmp_path / "local.deb"
    source.write_bytes(b"local")
    store.put_file("pool/local.deb", source, DELIVERY)
    assert store.get("pool/local.deb") == b"local"
    assert source.exists()


def test_put_file_moves(tmp_path, store):
    store.make_root()
    source = tmp_path / "root" / "scratch.deb"
    source.write_bytes(b"moved")
    os.chmod(source, 0o600)
    store.put_file("pool/moved.deb", source, DELIVERY, move=True)
    assert store.get("pool/moved.deb") == b"moved"
    assert not source.exists()
    assert stat.S_IMODE((store.root / "pool/moved.deb").stat().st_mode) == 0o644


def test_put_file_move_across_filesystems(tmp_path, store, monkeypatch):
    source = tmp_path / "elsewhere.deb"
    source.write_bytes(b"across devices")
    real_replace = os.replace

    def replace(src, dst):
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(filesystem.os, "replace", replace)
    store.put_file("pool/x.deb", source, DELIVERY, move=True)
    assert store.get("pool/x.deb") == b"across devices"
    assert not source.exists()
    assert temp_files(store.root) == []


def test_put_file_missing_source(tmp_path, store):
    with pytest.raises(ObjectStoreError) as caught:
        store.put_file("pool/x.deb", tmp_path / "absent.deb", DELIVERY)
    assert "cannot write from" in str(caught.value)
    assert temp_files(store.root) == []


def test_root_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    store = FilesystemObjectStore(blocker / "root")  # nothing written yet, nothing tried
    with pytest.raises(ObjectStoreError, match=r"cannot create directory"):
        store.put("dists/stable/Release", b"x", DELIVERY)
    with pytest.raises(ObjectStoreError, match=r"cannot create directory: Not a directory"):
        FilesystemObjectStore(blocker)


def test_a_store_only_read_leaves_no_folder_behind(tmp_path):
    """A dry run, `serve` or a mistyped --home must not leave an empty repository."""
    root = tmp_path / "home" / "repo"
    store = FilesystemObjectStore(root)
    assert store.get("dists/stable/Release") is None
    assert store.stat("pool/main/a/a.deb") is None
    assert list(store.list("")) == []
    store.delete("dists/stable/InRelease")
    store.flush()
    assert not (tmp_path / "home").exists()
    store.put("dists/stable/Release", b"x", DELIVERY)
    assert (root / "dists/stable/Release").read_bytes() == b"x"


def test_key_whose_parent_is_a_file_cannot_be_written(store):
    store.put("a", b"file", DELIVERY)
    with pytest.raises(ObjectStoreError, match=r"cannot create directory"):
        store.put("a/b", b"x", DELIVERY)


def test_reserved_path_is_written_then_committed(store):
    previous_umask = os.umask(0o077)  # a strict umask must not leave the pool unreadable
    try:
        temp, handle = store.reserve("pool/main/h/hello/hello_1.0_amd64.deb")
    finally:
        os.umask(previous_umask)
    assert Path(temp).parent == store.root / "pool/main/h/hello"
    assert Path(temp).name.startswith(".tmp-")
    with handle:
        handle.write(b"written by a worker")
    assert list(store.list("pool/")) == []
    store.commit_reserved(temp, "pool/main/h/hello/hello_1.0_amd64.deb")
    assert store.get("pool/main/h/hello/hello_1.0_amd64.deb") == b"written by a worker"
    mode = (store.root / "pool/main/h/hello/hello_1.0_amd64.deb").stat().st_mode
    assert stat.S_IMODE(mode) == 0o644
    assert temp_files(store.root) == []


def test_reserved_path_can_be_discarded(store):
    temp, handle = store.reserve("pool/x.deb")
    with handle:
        handle.write(b"abandoned")
    store.discard_reserved(temp)
    store.discard_reserved(temp)
    assert temp_files(store.root) == []
    assert store.get("pool/x.deb") is None


def test_reserve_refuses_unsafe_keys(store):
    with pytest.raises(ObjectStoreError, match=r"not a safe object key"):
        store.reserve("../escape.deb")


def test_stat_many_gives_sizes_of_the_objects_that_exist(store):
    store.put("pool/main/a/alpha/alpha_1.0_all.deb", b"12345", delivery_for("x.deb"))
    store.put("pool/main/b/beta/beta_1.0_all.deb", b"", delivery_for("x.deb"))
    sizes = store.stat_many(
        [
            "pool/main/a/alpha/alpha_1.0_all.deb",
            "pool/main/b/beta/beta_1.0_all.deb",
            "pool/main/c/gamma/gamma_1.0_all.deb",
            "pool/main/a/alpha/alpha_1.0_all.deb/below",
        ]
    )
    assert sizes == {
        "pool/main/a/alpha/alpha_1.0_all.deb": 5,
        "pool/main/b/beta/beta_1.0_all.deb": 0,
    }


def test_the_root_is_made_readable_by_all_and_the_folders_above_it_as_the_umask_says(tmp_path):
    store = FilesystemObjectStore(tmp_path / "home" / "repo")
    previous = os.umask(0o077)
    try:
        store.put("dists/stable/Release", b"x", DELIVERY)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700  # the home stays private
    # A umask that takes nothing away (a service manager's 000) adds nothing either: the
    # home holds the store and the key, and other users must not write it.
    previous = os.umask(0)
    try:
        FilesystemObjectStore(tmp_path / "open" / "home" / "repo").put("a", b"x", DELIVERY)
    finally:
        os.umask(previous)
    modes = {f: stat.S_IMODE((tmp_path / f).stat().st_mode) for f in ("open", "open/home")}
    assert modes == {"open": 0o775, "open/home": 0o775}  # the group may share a home
    assert stat.S_IMODE((tmp_path / "open/home/repo").stat().st_mode) == 0o755
    for folder in ("repo", "repo/dists", "repo/dists/stable"):
        assert stat.S_IMODE((tmp_path / "home" / folder).stat().st_mode) == 0o755, folder
