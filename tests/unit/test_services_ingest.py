"""services/ingest.py: every file checked before anything is placed; all or nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from debrepo import app
from debrepo.core.records import Provenance
from debrepo.errors import DebrepoError, InvalidPackageError, StoreError
from debrepo.services import ingest
from debrepo.services.ingest import Destination, IngestItem, ingest_files
from tests.conftest import FIXED_NOW, deb_bytes
from tests.unit.helpers import repo_keys, tree


def everything_under(root: Path) -> list[str]:
    """Every file under `root`, temporary ones included."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def pool_files(ws) -> list[str]:
    pool = ws.repo.root / "pool"
    return everything_under(pool) if pool.exists() else []


def test_a_bad_file_adds_nothing(workspace, make_deb, tmp_path):
    broken = tmp_path / "broken.deb"
    broken.write_bytes(deb_bytes("broken", "1.0")[:-100])
    with pytest.raises(InvalidPackageError) as caught:
        app.add_packages(workspace, [make_deb("alpha", "1.0"), broken], now=FIXED_NOW)
    message = str(caught.value)
    assert str(broken) in message
    assert "truncated" in message
    assert message.endswith("nothing was added")
    assert workspace.store.package_ids() == set()
    assert pool_files(workspace) == []
    # Nor the folders made for the copies (pool/main/a/alpha, pool/main/b/broken).
    assert not (workspace.repo.root / "pool").exists()


def test_a_bad_file_among_many_adds_nothing(workspace, tmp_path):
    directory = tmp_path / "many"
    directory.mkdir()
    count = ingest.PARALLEL_FROM + 2
    for i in range(count):
        (directory / f"pkg{i:03d}_1.0_amd64.deb").write_bytes(deb_bytes(f"pkg{i:03d}", "1.0"))
    (directory / "zz-broken.deb").write_bytes(b"!<arch>\nnot really")
    with pytest.raises(InvalidPackageError, match=r"zz-broken.deb"):
        app.add_packages(workspace, [directory], publish=False, now=FIXED_NOW)
    assert workspace.store.package_ids() == set()
    assert pool_files(workspace) == []
    assert not (workspace.repo.root / "pool").exists()  # the readers' folders went too

    (directory / "zz-broken.deb").unlink()
    progress: list[int] = []
    result = app.add_packages(
        workspace, [directory], publish=False, now=FIXED_NOW, file_progress=progress.append
    )
    assert len(result.records) == count
    assert sum(progress) == count
    assert len(repo_keys(workspace.repo, "pool/")) == count
    assert [p for p in pool_files(workspace) if "/.tmp-" in p] == []


def test_errors_are_listed_up_to_five(workspace, tmp_path):
    paths = []
    for i in range(7):
        path = tmp_path / f"bad{i}.deb"
        path.write_bytes(b"junk")
        paths.append(path)
    with pytest.raises(InvalidPackageError) as caught:
        app.add_packages(workspace, paths, now=FIXED_NOW)
    message = str(caught.value)
    assert "(and 2 more); nothing was added" in message
    assert "bad4.deb" in message and "bad5.deb" not in message


def test_same_version_twice_in_one_batch(workspace, tmp_path):
    first, second = tmp_path / "one.deb", tmp_path / "two.deb"
    first.write_bytes(deb_bytes("alpha", "1.0"))
    second.write_bytes(deb_bytes("alpha", "1.0", description="other build\n Same version."))
    with pytest.raises(InvalidPackageError) as caught:
        app.add_packages(workspace, [first, second], now=FIXED_NOW)
    assert f"{second}: alpha 1.0 is also in {first}" in str(caught.value)
    assert pool_files(workspace) == []


def test_version_already_in_the_store_with_other_bytes(workspace, make_deb):
    app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    published = tree(workspace.repo.root)
    rebuilt = make_deb("alpha", "1.0", description="another build\n Same version.")
    with pytest.raises(InvalidPackageError, match=r"alpha 1.0 is already in the store"):
        app.add_packages(workspace, [rebuilt, make_deb("beta", "1.0")], now=FIXED_NOW)
    assert tree(workspace.repo.root) == published
    assert workspace.store.get("beta#1.0") is None


def test_the_same_file_added_again_is_skipped_and_nothing_is_published(workspace, make_deb):
    first = app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    published = tree(workspace.repo.root)
    again = app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    assert again.records == [] and again.report is None
    assert again.already_stored == first.records
    assert tree(workspace.repo.root) == published
    assert not list(workspace.repo.root.glob(".tmp-ingest-*"))


def test_the_same_file_added_again_puts_back_its_lost_pool_file(workspace, make_deb, caplog):
    app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    pool_file = workspace.repo.root / "pool/main/a/alpha/alpha_1.0_amd64.deb"
    original = pool_file.read_bytes()
    pool_file.unlink()
    again = app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    assert again.records == [] and [r.package_id for r in again.already_stored] == ["alpha#1.0"]
    assert again.put_back == again.already_stored
    assert pool_file.read_bytes() == original
    assert "pool/main/a/alpha/alpha_1.0_amd64.deb was missing: put back" in caplog.text
    assert app.verify(workspace, now=FIXED_NOW).problems == []


def test_the_same_file_added_again_leaves_no_folder_behind(workspace, make_deb):
    app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    before = sorted(p for p in workspace.repo.root.rglob("*"))
    app.add_packages(workspace, [make_deb("alpha", "1.0")], publish=False, now=FIXED_NOW)
    assert sorted(p for p in workspace.repo.root.rglob("*")) == before


def test_the_same_file_with_a_new_one_adds_only_the_new_one(workspace, make_deb):
    app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    result = app.add_packages(
        workspace, [make_deb("alpha", "1.0"), make_deb("beta", "1.0")], now=FIXED_NOW
    )
    assert [r.package_id for r in result.records] == ["beta#1.0"]
    assert [r.package_id for r in result.already_stored] == ["alpha#1.0"]
    assert result.report is not None and result.report.packages == 2


def test_the_same_file_added_again_publishes_what_an_earlier_add_left_unpublished(
    workspace, make_deb
):
    app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    app.add_packages(workspace, [make_deb("beta", "1.0")], publish=False, now=FIXED_NOW)
    again = app.add_packages(workspace, [make_deb("beta", "1.0")], now=FIXED_NOW)
    assert again.records == [] and again.report is not None
    packages = (workspace.repo.root / "dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: beta\n" in packages


def test_invalid_package_name_in_the_control_file(workspace, tmp_path):
    path = tmp_path / "bad-name.deb"
    path.write_bytes(deb_bytes("Bad_Name", "1.0"))
    with pytest.raises(InvalidPackageError) as caught:
        app.add_packages(workspace, [path], now=FIXED_NOW)
    assert f"{path}: control file: 'Bad_Name' is not a Debian package name" in str(caught.value)
    assert pool_files(workspace) == []


def test_architecture_must_match_the_package_definition(workspace, tmp_path):
    path = tmp_path / "kiro.deb"
    path.write_bytes(deb_bytes("kiro", "1.0", "arm64"))
    with pytest.raises(InvalidPackageError) as caught:
        app.add_packages(workspace, [path], now=FIXED_NOW)
    message = str(caught.value)
    assert "Architecture 'arm64'" in message
    assert "kiro.yaml" in message and "'amd64'" in message
    assert pool_files(workspace) == []


def test_defined_package_takes_its_fields_from_the_definition(workspace, tmp_path):
    path = tmp_path / "kiro.deb"
    path.write_bytes(
        deb_bytes("kiro", "1.2.3", extra_fields=[("Depends", "libgtk-3-0"), ("Section", "misc")])
    )
    (record,) = app.add_packages(workspace, [path], publish=False, now=FIXED_NOW).records
    kiro = workspace.configs["kiro"]
    assert (record.section, record.priority) == (kiro.section, kiro.priority)
    assert record.maintainer == kiro.maintainer
    assert record.homepage == kiro.homepage
    assert record.description == kiro.stanza_description
    assert record.depends == "libgtk-3-0"
    assert record.deb_url == path.resolve().as_uri()
    assert record.processed_timestamp == "2026-11-24T12:00:00Z"


@pytest.mark.parametrize(
    ("control", "kept"),
    [
        ("Kiro IDE - AI-powered development environment\n Extended text.", True),
        ("Kiro\n Agentic IDE.", False),  # another synopsis: the definition's alone
        ("Kiro IDE - AI-powered development environment", False),
    ],
)
def test_a_definitions_one_line_description_keeps_the_extended_text_it_heads(
    workspace, tmp_path, control, kept
):
    path = tmp_path / "kiro.deb"
    path.write_bytes(deb_bytes("kiro", "1.2.3", description=control))
    (record,) = app.add_packages(workspace, [path], publish=False, now=FIXED_NOW).records
    synopsis = workspace.configs["kiro"].description
    assert record.description == (control if kept else synopsis)


def test_added_files_are_recorded_by_their_resolved_file_url(workspace, tmp_path, monkeypatch):
    odd = tmp_path / "odd folder %20" / "ü"
    odd.mkdir(parents=True)
    quoted = odd / "quoted #1.deb"
    quoted.write_bytes(deb_bytes("quoted", "1.0"))
    (odd / "second.deb").write_bytes(deb_bytes("second", "1.0"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "plain.deb").write_bytes(deb_bytes("plain", "1.0"))
    (tmp_path / "here.deb").write_bytes(deb_bytes("here", "1.0"))
    monkeypatch.chdir(tmp_path)
    given = [
        Path("odd folder %20/ü"),  # two files in one folder
        Path("here.deb"),
        Path("./odd folder %20/../other/plain.deb"),
    ]

    records = app.add_packages(workspace, given, publish=False, now=FIXED_NOW).records

    urls = {record.package_name: record.deb_url for record in records}
    assert urls == {
        "quoted": quoted.resolve().as_uri(),
        "second": (odd / "second.deb").resolve().as_uri(),
        "here": (tmp_path / "here.deb").resolve().as_uri(),
        "plain": (tmp_path / "other" / "plain.deb").resolve().as_uri(),
    }
    assert "%20%2520" in urls["quoted"] and "%23" in urls["quoted"]


def test_file_urls_resolve_the_folder_and_keep_the_file_name(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real)
    (real / "target.deb").write_bytes(b"x")
    (real / "alias.deb").symlink_to(real / "target.deb")
    monkeypatch.chdir(tmp_path)
    paths = [
        Path("/x.deb"),  # a file at the root: the folder's URL already ends with "/"
        Path("linked/alias.deb"),  # folder resolved, file name kept
        Path("linked/a b.deb"),
        Path("x.deb"),
    ]
    assert app.file_urls(paths) == [
        "file:///x.deb",
        (real / "alias.deb").as_uri(),
        (real / "a b.deb").as_uri(),
        (tmp_path / "x.deb").as_uri(),
    ]
    assert app.file_urls(paths) == [
        Path(path.parent.resolve(), path.name).as_uri() for path in paths
    ]


def test_a_copy_that_cannot_be_placed_adds_nothing_and_leaves_no_temporary_file(
    workspace, make_deb
):
    pool_letter = workspace.repo.root / "pool" / "main" / "h"
    pool_letter.parent.mkdir(parents=True)
    pool_letter.write_bytes(b"a file where the folder of hello's pool entry must go")
    files = [make_deb("alpha", "1.0"), make_deb("hello", "1.0"), make_deb("zeta", "1.0")]

    with pytest.raises(InvalidPackageError) as caught:
        app.add_packages(workspace, files, now=FIXED_NOW)

    message = str(caught.value)
    assert f"{files[1]}: cannot copy: " in message and "Not a directory" in message
    assert message.endswith("nothing was added")
    assert workspace.store.package_ids() == set()
    assert pool_files(workspace) == ["main/h"]


def test_no_scratch_folder_leaves_no_copy_folder_at_the_repository_root(
    workspace, make_deb, monkeypatch
):
    def unusable(family: str) -> Path:
        raise DebrepoError("/mnt/nfs: cannot lock a temporary folder there (No locks available)")

    monkeypatch.setattr(ingest, "new_scratch", unusable)
    with pytest.raises(DebrepoError, match="cannot lock a temporary folder"):
        app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    assert [p.name for p in workspace.repo.root.iterdir()] == []
    assert workspace.store.package_ids() == set()


def test_source_claims_are_checked_against_the_control_file(workspace, tmp_path):
    path = tmp_path / "hello.deb"
    path.write_bytes(deb_bytes("hello", "1.0"))
    claims = Provenance(
        deb_url="https://example.com/hello_2.0_amd64.deb",
        package_type="external_download",
        expected_name="hello",
        expected_version="2.0",
    )
    with pytest.raises(InvalidPackageError) as caught:
        ingest_files(
            [IngestItem(path, claims)],
            store=workspace.store,
            target=workspace.staging,
            destination=Destination("staging", "main", ("amd64",)),
            configs={},
            now=FIXED_NOW,
        )
    assert "control file says Version '1.0', but the source says '2.0'" in str(caught.value)
    assert workspace.store.package_ids() == set()


def test_nothing_to_ingest(workspace):
    assert (
        ingest_files(
            [],
            store=workspace.store,
            target=workspace.repo,
            destination=Destination("pool", "main", ("amd64",)),
            configs={},
            now=FIXED_NOW,
        )
        == []
    )


def test_epoch_version_does_not_overwrite_a_published_pool_file(workspace, make_deb, tmp_path):
    # 1.0 and 1:1.0 are different versions with the same Debian file name (dpkg drops
    # the epoch), so they would share one pool path.
    app.add_packages(workspace, [make_deb("hello", "1.0")], now=FIXED_NOW)
    published = tree(workspace.repo.root)
    epoch = tmp_path / "hello-epoch.deb"
    epoch.write_bytes(deb_bytes("hello", "1:1.0", description="rebuilt\n With an epoch."))

    with pytest.raises(
        InvalidPackageError,
        match=r"hello 1:1\.0 would be published as hello_1\.0_amd64\.deb, the file of hello#1\.0",
    ):
        app.add_packages(workspace, [epoch], now=FIXED_NOW)

    assert tree(workspace.repo.root) == published
    assert workspace.store.package_ids() == {"hello#1.0"}


def test_a_version_is_refused_when_a_stored_one_differs_only_by_its_epoch(
    workspace, make_deb, tmp_path
):
    epoch = tmp_path / "hello-epoch.deb"
    epoch.write_bytes(deb_bytes("hello", "2:1.0"))
    app.add_packages(workspace, [epoch, make_deb("other", "1.0")], now=FIXED_NOW)
    for name in ("hello", "other"):
        app.add_packages(workspace, [make_deb(name, "3.0")], now=FIXED_NOW)
    with pytest.raises(
        InvalidPackageError, match=r"the file of hello#2:1\.0; versions that differ"
    ):
        app.add_packages(workspace, [make_deb("hello", "1.0")], now=FIXED_NOW)
    assert workspace.store.package_ids() == {"hello#2:1.0", "hello#3.0", "other#1.0", "other#3.0"}


def test_epoch_versions_in_one_batch_are_refused(workspace, make_deb, tmp_path):
    epoch = tmp_path / "hello-epoch.deb"
    epoch.write_bytes(deb_bytes("hello", "1:1.0"))
    with pytest.raises(InvalidPackageError, match=r"hello 1:1\.0 would be published as "):
        app.add_packages(workspace, [make_deb("hello", "1.0"), epoch], now=FIXED_NOW)
    assert workspace.store.package_ids() == set()
    assert pool_files(workspace) == []


def many_debs(directory: Path, count: int) -> Path:
    directory.mkdir()
    for i in range(count):
        (directory / f"pkg{i:03d}_1.0_amd64.deb").write_bytes(deb_bytes(f"pkg{i:03d}", "1.0"))
    return directory


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_parallel_batch_leaves_no_copies_and_no_workers(
    workspace, tmp_path, interruption
):
    import multiprocessing

    folder = many_debs(tmp_path / "incoming", ingest.PARALLEL_FROM * 3)
    seen = []

    def interrupt_midway(count: int) -> None:
        seen.append(count)
        if len(seen) == ingest.PARALLEL_FROM:  # workers are busy with the rest
            raise interruption

    with pytest.raises(interruption):
        app.add_packages(workspace, [folder], now=FIXED_NOW, file_progress=interrupt_midway)
    assert workspace.store.package_ids() == set()
    assert everything_under(workspace.repo.root) == []  # no copy, committed or not
    assert [p.name for p in workspace.repo.root.iterdir() if p.name != "pool"] == []
    assert multiprocessing.active_children() == []


def test_copies_of_a_killed_batch_go_with_the_next_ingest(workspace, make_deb):
    # What a batch killed outright (SIGKILL, power loss) leaves: its folder of copies.
    abandoned = workspace.repo.root / f"{ingest.INCOMING_PREFIX}killed"
    abandoned.mkdir(parents=True)
    (abandoned / ".tmp-0123-alpha_1.0_amd64.deb").write_bytes(b"half a copy")
    assert list(workspace.repo.list("")) == []  # never listed, so never published

    app.add_packages(workspace, [make_deb("beta", "1.0")], now=FIXED_NOW)
    assert not abandoned.exists()
    assert not any(p.name.startswith(".tmp-") for p in workspace.repo.root.rglob("*"))


@pytest.fixture
def other_file_system(tmp_path) -> Iterator[Path]:
    """A folder on another file system than tmp_path (the tmpfs at /dev/shm)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.fail("this test needs /dev/shm on a file system of its own (a tmpfs)")
    folder = Path(tempfile.mkdtemp(prefix="debrepo-test-", dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_pool_on_another_file_system_still_receives_files(workspace, make_deb, other_file_system):
    """A pool folder that is a link to another disk: the copies, written next to the
    repository root, cannot be renamed across; they are copied into place instead."""
    workspace.repo.root.mkdir(parents=True, exist_ok=True)
    (workspace.repo.root / "pool").symlink_to(other_file_system, target_is_directory=True)

    results = app.add_packages(
        workspace, [make_deb("alpha", "1.0"), make_deb("beta", "2.0")], now=FIXED_NOW
    )

    assert [r.package_name for r in results.records] == ["alpha", "beta"]
    placed = other_file_system / "main/a/alpha/alpha_1.0_amd64.deb"
    assert placed.read_bytes() == deb_bytes("alpha", "1.0")
    assert placed.stat().st_mode & 0o777 == 0o644
    verified = app.verify(workspace)
    assert verified.ok, verified.problems
    # Nothing left behind on either side.
    assert everything_under(other_file_system) == [
        "main/a/alpha/alpha_1.0_amd64.deb",
        "main/b/beta/beta_2.0_amd64.deb",
    ]
    assert not list(workspace.repo.root.glob(".tmp-*"))


def test_a_refused_batch_leaves_the_folders_of_published_packages(workspace, make_deb, tmp_path):
    app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    broken = tmp_path / "alpha_2.0_amd64.deb"
    broken.write_bytes(deb_bytes("alpha", "2.0")[:-100])
    with pytest.raises(InvalidPackageError):
        app.add_packages(workspace, [make_deb("beta", "1.0"), broken], now=FIXED_NOW)
    assert pool_files(workspace) == ["main/a/alpha/alpha_1.0_amd64.deb"]
    assert not (workspace.repo.root / "pool/main/b").exists()
    assert app.verify(workspace, now=FIXED_NOW).ok


def test_a_file_that_cannot_be_moved_into_place_takes_back_the_files_placed_before_it(
    workspace, make_deb
):
    # hello's pool entry is taken by a folder: the batch fails after alpha's file is in place.
    (workspace.repo.root / "pool/main/h/hello/hello_1.0_amd64.deb").mkdir(parents=True)
    files = [make_deb("alpha", "1.0"), make_deb("hello", "1.0"), make_deb("zeta", "1.0")]

    with pytest.raises(DebrepoError) as caught:
        app.add_packages(workspace, files, now=FIXED_NOW)

    message = str(caught.value)
    assert "pool/main/h/hello/hello_1.0_amd64.deb: cannot write" in message
    assert message.endswith("nothing was added")
    assert workspace.store.package_ids() == set()
    assert pool_files(workspace) == []
    assert not (workspace.repo.root / "pool/main/a").exists()
    assert not list(workspace.repo.root.glob(".tmp-*"))


class FailingRecordStore:
    """A metadata store that cannot write (a full disk, a lost connection)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def put_many(self, records):
        raise StoreError("metadata.db: cannot write the metadata store: disk I/O error")


def ingest_alpha_and_beta(make_deb, store, target, *, kind="pool"):
    """Ingest alpha 1.0 and beta 1.0 with `store` and `target` (failing ones, here)."""
    provenance = Provenance(deb_url="file:///x", package_type="manual")
    items = [IngestItem(make_deb(name, "1.0"), provenance) for name in ("alpha", "beta")]
    return ingest_files(
        items,
        store=store,
        target=target,
        destination=Destination(kind, "main", ("amd64",)),
        configs={},
        now=FIXED_NOW,
    )


def test_records_that_cannot_be_written_take_back_the_placed_files(workspace, make_deb):
    with pytest.raises(StoreError, match="disk I/O error; nothing was added"):
        ingest_alpha_and_beta(make_deb, FailingRecordStore(workspace.store), workspace.repo)
    assert workspace.store.package_ids() == set()
    assert pool_files(workspace) == []
    assert not (workspace.repo.root / "pool").exists()


CLOSE_FAILS = """
import resource, signal, sys
from datetime import datetime, timezone
from pathlib import Path
from debrepo.core.records import Provenance
from debrepo.services import ingest

root, deb = sys.argv[1], Path(sys.argv[2])
context = ingest._Context(
    {}, datetime.now(timezone.utc), ingest.Destination("pool", "main", ("amd64",)),
    root, root, root,
)
ingest._init_worker(context)
# Files may not grow past 64 bytes: the copy, buffered, fails when it is closed.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))
outcome = ingest._examine((0, ingest.IngestItem(deb, Provenance("file:///x", "manual"))))
print(outcome.error)
"""


def test_a_copy_whose_last_bytes_cannot_be_written_is_named(make_deb, tmp_path):
    import subprocess
    import sys

    deb = make_deb("alpha", "1.0")
    root = tmp_path / "repo"
    root.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", CLOSE_FAILS, str(root), str(deb)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{deb}: cannot copy it into {root}: File too large"
    assert everything_under(root) == []  # the partial copy is gone


READER_STARTS = """
import os, sys
from debrepo.services import ingest

ingest._die_with_parent(int(sys.argv[1]) if sys.argv[1] != "own" else os.getppid())
print("reading")
"""


@pytest.mark.parametrize("forked_from", ["own", "another"])
def test_a_reader_whose_parent_died_before_it_started_exits(forked_from):
    """The kernel kills a reader when its parent dies only if the parent was alive when
    the reader asked for it: a reader that finds another parent (its own was killed
    during the fork) exits at once rather than wait for work for ever."""
    import subprocess
    import sys

    # The child's parent is this process: any other pid stands for a parent gone.
    parent = "own" if forked_from == "own" else str(os.getpid() + 1)
    done = subprocess.run(
        [sys.executable, "-c", READER_STARTS, parent], capture_output=True, text=True, check=False
    )
    if forked_from == "own":
        assert (done.returncode, done.stdout) == (0, "reading\n"), done.stderr
    else:
        assert (done.returncode, done.stdout, done.stderr) == (1, "", "")


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_readers_started_otherwise_than_by_fork_read_the_batch(tmp_path, start_method):
    """With forkserver (Linux's default from Python 3.14) or spawn, a reader's parent is
    not the process that started the batch: that must not look like an orphan's."""
    import subprocess
    import sys

    folder = many_debs(tmp_path / "incoming", ingest.PARALLEL_FROM)
    script = (  # run again by each spawned reader, up to the __main__ guard
        "import multiprocessing\n"
        "from debrepo.cli import main\n"
        "if __name__ == '__main__':\n"
        f"    multiprocessing.set_start_method({start_method!r})\n"
        f"    main(['--home', {str(tmp_path / 'home')!r}, 'add', '--no-publish', "
        f"{str(folder)!r}])\n"
    )
    (tmp_path / "run.py").write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run.py")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"added {ingest.PARALLEL_FROM - 20} more" in done.stdout


class HalfWritingStore(FailingRecordStore):
    """Stores the first record, then fails, and cannot take it back (a batch written in
    parts whose clean-up failed too)."""

    def put_many(self, records):
        records = list(records)
        self.inner.put_many(records[:1])
        raise StoreError(
            "storing a batch failed, and the 1 records stored before the failure could not "
            f"be removed; delete them by hand: {records[0].package_id}"
        )


def test_a_record_the_store_kept_after_a_failure_keeps_its_file(workspace, make_deb):
    with pytest.raises(StoreError) as caught:
        ingest_alpha_and_beta(make_deb, HalfWritingStore(workspace.store), workspace.repo)
    assert "nothing was added" not in str(caught.value)
    assert workspace.store.package_ids() == {"alpha#1.0"}
    assert pool_files(workspace) == ["main/a/alpha/alpha_1.0_amd64.deb"]  # beta's went


class BlindStore(FailingRecordStore):
    """Fails to write, then cannot even say what it holds (its connection is gone)."""

    def package_ids(self):
        if getattr(self, "failed", False):
            raise StoreError("metadata.db: cannot read the metadata store: disk I/O error")
        return self.inner.package_ids()

    def put_many(self, records):
        self.failed = True
        super().put_many(records)


def test_files_kept_because_the_store_cannot_say_what_it_holds_are_named(
    workspace, make_deb, caplog
):
    with pytest.raises(StoreError, match=r"disk I/O error$"):
        ingest_alpha_and_beta(make_deb, BlindStore(workspace.store), workspace.repo)
    placed = ["main/a/alpha/alpha_1.0_amd64.deb", "main/b/beta/beta_1.0_amd64.deb"]
    assert pool_files(workspace) == placed  # a record may name them: they stay
    assert (
        "the store cannot say which records it holds now, so the files this batch placed "
        "stay: pool/main/a/alpha/alpha_1.0_amd64.deb (and 1 more)"
    ) in caplog.text
