"""Seed Properties 4, 10, 11 and 12 (and 3 through a real rebuild): publishing from the
SQLite store into a local folder, signed with one key per module.

The published folder is read back from disk and judged by gpgv (the verifier apt
uses), deb822 and hashlib, never by debrepo's own verify command.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import stat
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from debrepo import app
from debrepo.model import PackageRecord
from debrepo.signing.openpgp import OpenPGPSigner
from tests.conftest import CONFIG_DIR, deb_bytes
from tests.property.oracles import (
    ReadGuard,
    WriteRecorder,
    dpkg_table,
    expected_stanza,
    gpgv,
    highest,
    is_package_file,
    is_pool_file,
    packages_paragraphs,
    release_fields,
    scratch_dir,
)
from tests.property.strategies import (
    BINARY_ARCHITECTURES,
    CONVENIENCE_PACKAGE,
    PHASES_WITHOUT_EXPLAIN,
    deb_filename,
    distinct_versions,
    moments,
    package_records,
    record_lists,
    with_content,
)
from tests.property.workspaces import workspace_in

HASHES = (("MD5Sum", "md5sum", "md5"), ("SHA1", "sha1", "sha1"), ("SHA256", "sha256", "sha256"))
SUITE = "stable"  # the default suite (DESIGN, "Repository layout")


def pool_key(record: PackageRecord) -> str:
    name = record.package_name
    return f"pool/main/{name[0]}/{name}/{record.actual_filename}"


def check_signed_release(root: Path, signer: OpenPGPSigner) -> bytes:
    """InRelease and Release.gpg verify with gpgv against the signing key, and sign the
    Release file; returns the Release bytes."""
    keyring = root.parent / "trusted-keyring.gpg"
    keyring.write_bytes(signer.public_key_binary())
    dists = root / "dists" / SUITE
    release = (dists / "Release").read_bytes()
    signed_text = gpgv(keyring, dists / "InRelease")
    assert signed_text.rstrip(b"\n") == release.rstrip(b"\n")
    gpgv(keyring, dists / "Release.gpg", dists / "Release")
    return release


def check_release_lists_published_indices(
    root: Path, release: bytes, architectures: list[str]
) -> dict[str, bytes]:
    """Every index the Release names exists with its size and checksums; returns the
    Packages files by architecture."""
    parsed = release_fields(release)
    dists = root / "dists" / SUITE
    for field, key, algorithm in HASHES:
        names = {entry["name"] for entry in parsed[field]}
        for architecture in architectures:
            for suffix in ("", ".gz", ".xz"):
                assert f"main/binary-{architecture}/Packages{suffix}" in names
        for entry in parsed[field]:
            data = (dists / entry["name"]).read_bytes()
            assert int(entry["size"]) == len(data), entry["name"]
            assert entry[key] == hashlib.new(algorithm, data).hexdigest(), entry["name"]
            by_hash = dists / Path(entry["name"]).parent / "by-hash" / "SHA256"
            assert (by_hash / hashlib.sha256(data).hexdigest()).read_bytes() == data
    return {
        architecture: (dists / "main" / f"binary-{architecture}" / "Packages").read_bytes()
        for architecture in architectures
    }


publish_architectures = st.lists(
    st.sampled_from(("amd64", "arm64", "i386")), min_size=1, max_size=3, unique=True
)


def rebuild_from_store_alone(
    signer: OpenPGPSigner,
    architectures: list[str],
    now: datetime,
    data: st.DataObject,
    *,
    pool_matches_store: bool,
) -> None:
    """Put records straight into a fresh store, no .deb anywhere but the pool, force a
    rebuild with the staging area guarded against package reads, and judge the result.

    With `pool_matches_store` the pool files hold bytes whose checksums the records
    carry, and the publisher may read them; without it they hold arbitrary bytes of
    the recorded size and reading them fails the test too.
    """
    records = data.draw(
        record_lists(
            min_size=1,
            max_size=4,
            architectures=st.sampled_from((*architectures, "all")),
            lean=True,
        )
    )
    with (
        scratch_dir() as directory,
        workspace_in(
            directory, signer, with_package_configs=True, architectures=" ".join(architectures)
        ) as ws,
    ):
        root = Path(ws.repo.root)
        pool = {}
        for index, record in enumerate(records):
            # Arbitrary bytes of a drawn size, derived from the record (not drawn byte by
            # byte: a failing example then shrinks in a few steps rather than hundreds).
            size = data.draw(st.integers(0, 64))
            content = (hashlib.sha512(record.package_id.encode()).digest() * 2)[:size]
            if pool_matches_store:
                record = with_content(record, content)
            else:
                record = record.with_changes(file_size=len(content))
            records[index] = record
            path = root / pool_key(record)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            pool[path] = content
        ws.store.put_many(records)
        staging = ReadGuard(ws.staging, forbid=is_package_file)
        ws.staging = staging
        if not pool_matches_store:
            ws.repo = ReadGuard(ws.repo, forbid=is_pool_file, forbid_stat=False)

        report = app.rebuild(ws, now=now)

        assert staging.violations == []
        assert getattr(ws.repo, "violations", []) == []
        assert report.packages == len(records)  # Property 3 through a real rebuild
        release = check_signed_release(root, signer)
        assert release_fields(release)["Date"] == format_datetime(
            now.astimezone(UTC).replace(microsecond=0)
        )
        packages = check_release_lists_published_indices(root, release, architectures)
        stored = {(r.package_name, r.version): r for r in records}
        listed: Counter[tuple[str, str]] = Counter()
        for architecture, index_bytes in packages.items():
            for paragraph in packages_paragraphs(index_bytes):
                record = stored[paragraph["Package"], paragraph["Version"]]
                assert record.architecture in (architecture, "all")
                assert paragraph == expected_stanza(record, "main")
                assert (root / paragraph["Filename"]).stat().st_size == record.file_size
                listed[paragraph["Package"], paragraph["Version"]] += 1
        assert listed == Counter(
            {
                (r.package_name, r.version): len(architectures) if r.architecture == "all" else 1
                for r in records
            }
        )
        for path, content in pool.items():
            assert path.read_bytes() == content


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(architectures=publish_architectures, now=moments, data=st.data())
def test_property_4_rebuild_publishes_valid_signed_indices_from_the_store(
    signer: OpenPGPSigner, architectures: list[str], now: datetime, data: st.DataObject
) -> None:
    """Feature: unified-multi-package-repo, Property 4: Repository Metadata Generation from DynamoDB Alone

    Records put straight into the store, their files already in the pool and no .deb
    in the staging area (guarded: any package read there fails the test), are enough
    for a force rebuild to publish Packages and Release files that gpgv accepts, whose
    checksums match the files on disk, and that list every stored package with its
    stored metadata.
    """  # noqa: E501
    rebuild_from_store_alone(signer, architectures, now, data, pool_matches_store=True)


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(architectures=publish_architectures, now=moments, data=st.data())
def test_property_4_rebuild_reads_no_package_file(
    signer: OpenPGPSigner, architectures: list[str], now: datetime, data: st.DataObject
) -> None:
    """Feature: unified-multi-package-repo, Property 4: Repository Metadata Generation from DynamoDB Alone

    As above, but the pool files hold arbitrary bytes of the recorded sizes and the
    pool is guarded too: the indices come from the store alone, without reading any
    package file (DESIGN: the repository "can be regenerated from it at any time
    without reading the .deb files").
    """  # noqa: E501
    rebuild_from_store_alone(signer, architectures, now, data, pool_matches_store=False)


def staging_prefix_of_kiro_repo() -> str:
    """Where the build script stages kiro-repo, as config/packages/kiro-repo.yaml says."""
    config = yaml.safe_load((CONFIG_DIR / f"{CONVENIENCE_PACKAGE}.yaml").read_text())
    prefix = config["source"]["staging_prefix"]
    assert isinstance(prefix, str)
    return prefix.rstrip("/") + "/"


@st.composite
def kiro_repo_histories(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """kiro-repo versions (distinct pool file names) and the order they are built in,
    in batches, with an occasional removal of a built version between batches."""
    versions = draw(distinct_versions(min_size=1, max_size=4))
    steps: list[tuple[str, list[str]]] = []
    present: list[str] = []
    queue = list(versions)
    while queue:
        take = draw(st.integers(1, len(queue)))
        batch, queue = queue[:take], queue[take:]
        steps.append(("add", batch))
        present += batch
        if len(present) > 1 and draw(st.booleans()):
            gone = draw(st.sampled_from(present))
            present.remove(gone)
            steps.append(("remove", [gone]))
    return versions, steps


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(
    history=kiro_repo_histories(),
    template=package_records(lean=True),
    others=record_lists(max_size=2, names=st.sampled_from(("kiro", "kiro-cli")), lean=True),
    data=st.data(),
)
def test_property_10_11_12_convenience_copy(
    signer: OpenPGPSigner,
    history: tuple[list[str], list[tuple[str, list[str]]]],
    template: PackageRecord,
    others: list[PackageRecord],
    data: st.DataObject,
) -> None:
    """Feature: unified-multi-package-repo, Property 10: Convenience Copy Points to Latest Version
    Feature: unified-multi-package-repo, Property 11: Convenience Copy Location
    Feature: unified-multi-package-repo, Property 12: Convenience Copy is Regular Object

    As kiro-repo versions are built (staged and recorded, then published) and removed
    in any order, after every publish the repository root holds `kiro-repo.deb`, a
    regular file (not a symbolic link) with content, whose bytes are those of the pool
    file of the highest kiro-repo version according to dpkg.
    """
    versions, steps = history
    table = dpkg_table(versions)

    prefix = staging_prefix_of_kiro_repo()
    contents = {
        v: v.encode() + b"\n" + data.draw(st.binary(min_size=1, max_size=64)) for v in versions
    }
    builds = {
        v: with_content(
            template.with_changes(
                package_name=CONVENIENCE_PACKAGE,
                version=v,
                architecture="all",
                actual_filename=deb_filename(CONVENIENCE_PACKAGE, v, "all"),
            ),
            contents[v],
        )
        for v in versions
    }
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    with (
        scratch_dir() as directory,
        workspace_in(
            directory,
            signer,
            with_package_configs=True,
            architectures=",".join(BINARY_ARCHITECTURES),
        ) as ws,
    ):
        root, staging_root = Path(ws.repo.root), Path(ws.staging.root)
        for record in others:  # other packages, already in the pool
            content = data.draw(st.binary(max_size=64))
            path = root / pool_key(record)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            ws.store.put(with_content(record, content))
        present: list[str] = []
        for kind, batch in steps:
            if kind == "add":
                for version in batch:
                    staged = staging_root / (prefix + builds[version].actual_filename)
                    staged.parent.mkdir(parents=True, exist_ok=True)
                    staged.write_bytes(contents[version])
                ws.store.put_many([builds[v] for v in batch])
                app.rebuild(ws, now=now)
                present += batch
            else:
                (version,) = batch
                app.remove_package(ws, CONVENIENCE_PACKAGE, version, now=now)
                present.remove(version)

            copy = root / "kiro-repo.deb"
            info = copy.lstat()
            assert stat.S_ISREG(info.st_mode) and not copy.is_symlink()
            assert info.st_size > 0
            top = highest(present, table)
            published = copy.read_bytes()
            matching = {
                v
                for v in top
                if published == (root / pool_key(builds[v])).read_bytes() == contents[v]
            }
            assert matching, (present, top, published[:40])
            assert hashlib.sha256(published).hexdigest() in {
                builds[v].sha256_hash for v in matching
            }


# -- successive publishes ----------------------------------------------------------------

HISTORY_NAMES = ("kiro", "libfoo", "g++", "ab")
# Distinct pool file names (the epoch is not in them) and distinct for dpkg.
HISTORY_VERSIONS = ("1.0", "1.0-1", "2.0~rc1", "1:0.9", "10")
HISTORY_ARCHITECTURES = ("amd64", "arm64")
DISTS = f"dists/{SUITE}"
RELEASE_HASHES = (
    ("MD5Sum", "md5sum", "md5"),
    ("SHA1", "sha1", "sha1"),
    ("SHA256", "sha256", "sha256"),
    ("SHA512", "sha512", "sha512"),
)
# Acquire-By-Hash: apt fetches an index under the directory of the strongest hash the
# Release lists for it.
BY_HASH_DIRECTORIES = (("SHA256", "sha256"), ("SHA512", "sha512"))

# What a .deb's control file says besides its identity (all of them are in its entry).
FIELDS = (("Section", "misc"), ("Priority", "optional"), ("Homepage", "https://kiro.dev"))
Package = tuple[str, str, str]  # name, version, architecture
Step = tuple[str, tuple[Package, ...]]


@st.composite
def publish_histories(draw: st.DrawFn) -> list[Step]:
    """Two to four publishes: a first add, then adds (some of amd64 packages only, which
    leave arm64's Packages as it was), removals and publishes with nothing changed."""
    present: dict[tuple[str, str], str] = {}
    versions = st.sampled_from(HISTORY_VERSIONS)

    def new_packages(architectures: tuple[str, ...], most: int) -> tuple[Package, ...]:
        batch: dict[tuple[str, str], str] = {}
        for _ in range(draw(st.integers(1, most))):
            identity = (draw(st.sampled_from(HISTORY_NAMES)), draw(versions))
            if identity not in present and identity not in batch:
                batch[identity] = draw(st.sampled_from(architectures))
        present.update(batch)
        return tuple((name, version, arch) for (name, version), arch in batch.items())

    steps: list[Step] = [("add", new_packages((*HISTORY_ARCHITECTURES, "all"), 3))]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("add", "add-amd64", "remove", "again")))
        if kind == "remove" and present:
            identity = draw(st.sampled_from(sorted(present)))
            steps.append(("remove", ((*identity, present.pop(identity)),)))
        elif kind in ("add", "add-amd64"):
            architectures = ("amd64",) if kind == "add-amd64" else (*HISTORY_ARCHITECTURES, "all")
            batch = new_packages(architectures, 2)
            steps.append(("add", batch) if batch else ("again", ()))
        else:
            steps.append(("again", ()))
    return steps


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def check_release_indices(root: Path, release: bytes) -> dict[str, bytes]:
    """Every index the Release lists is at its plain path and under by-hash/SHA256 and
    by-hash/SHA512 with exactly the size and the four digests the Release gives; the
    .gz and .xz forms decompress to the Packages file. Returns the indices by name."""
    parsed = release_fields(release)
    listed: dict[str, dict[str, str]] = {}
    sizes: dict[str, int] = {}
    for field, key, algorithm in RELEASE_HASHES:
        assert field in parsed, field
        for entry in parsed[field]:
            listed.setdefault(entry["name"], {})[algorithm] = entry[key]
            assert sizes.setdefault(entry["name"], int(entry["size"])) == int(entry["size"])
    assert set(listed) == {
        f"main/binary-{architecture}/Packages{suffix}"
        for architecture in HISTORY_ARCHITECTURES
        for suffix in ("", ".gz", ".xz")
    }
    dists = root / DISTS
    indices = {}
    for name, digests in listed.items():
        assert set(digests) == {algorithm for _, _, algorithm in RELEASE_HASHES}, name
        directory = (dists / name).parent
        places = [dists / name] + [
            directory / "by-hash" / hash_dir / digests[algorithm]
            for hash_dir, algorithm in BY_HASH_DIRECTORIES
        ]
        for place in places:
            data = place.read_bytes()
            assert len(data) == sizes[name], place
            for algorithm, digest in digests.items():
                assert hashlib.new(algorithm, data).hexdigest() == digest, (place, algorithm)
        indices[name] = (dists / name).read_bytes()
    for architecture in HISTORY_ARCHITECTURES:
        plain = indices[f"main/binary-{architecture}/Packages"]
        assert gzip.decompress(indices[f"main/binary-{architecture}/Packages.gz"]) == plain
        assert lzma.decompress(indices[f"main/binary-{architecture}/Packages.xz"]) == plain
    return indices


def write_rank(key: str) -> int | None:
    """Where a write belongs in a publish (DESIGN "No Hash Sum mismatch"): pool files,
    then by-hash indices, then plain indices, then Release.gpg, Release, InRelease.
    None for the root files (keyring, page, convenience copy), which no Release names."""
    if key.startswith("pool/"):
        return 0
    if key.startswith(f"{DISTS}/") and "/by-hash/" in key:
        return 1
    if key == f"{DISTS}/Release.gpg":
        return 3
    if key == f"{DISTS}/Release":
        return 4
    if key == f"{DISTS}/InRelease":
        return 5
    if key.startswith(f"{DISTS}/"):
        return 2
    return None


def check_write_order(
    events: list[tuple[str, str, Any]], existed: set[str], indices: dict[str, bytes], release: bytes
) -> None:
    """InRelease is written once, and everything it names (indices at their plain and
    by-hash paths, the pool files they list, Release and Release.gpg) was written before
    it or was there before the publish and is left alone; nothing is deleted before it;
    the writes before it come in the order pool, by-hash, plain, Release.gpg, Release."""
    writes = [
        (i, key) for i, (operation, key, _) in enumerate(events) if operation in ("put", "copy")
    ]
    (inrelease_at,) = [i for i, key in writes if key == f"{DISTS}/InRelease"]
    before = {key for i, key in writes if i < inrelease_at}
    after = {key for i, key in writes if i > inrelease_at}
    parsed = release_fields(release)
    digests = {
        (entry["name"], algorithm): entry[key]
        for field, key, algorithm in RELEASE_HASHES
        for entry in parsed[field]
    }
    named = {f"{DISTS}/Release", f"{DISTS}/Release.gpg"}
    for name, data in indices.items():
        directory = f"{DISTS}/{name}".rsplit("/", 1)[0]
        named.add(f"{DISTS}/{name}")
        for hash_dir, algorithm in BY_HASH_DIRECTORIES:
            named.add(f"{directory}/by-hash/{hash_dir}/{digests[name, algorithm]}")
        if name.endswith("/Packages"):
            named.update(p["Filename"] for p in packages_paragraphs(data))
    assert {f"{DISTS}/Release", f"{DISTS}/Release.gpg"} <= before
    for key in named:
        assert key in before or key in existed, f"{key} is named by InRelease but not there"
        assert key not in after, f"{key} written after InRelease"
    for i, (operation, key, _) in enumerate(events):
        if operation == "delete":
            assert i > inrelease_at, f"{key} deleted before InRelease was written"
            assert key not in named, f"{key} is named by InRelease but deleted"
    ranks = [
        rank for i, key in writes if i <= inrelease_at if (rank := write_rank(key)) is not None
    ]
    assert ranks == sorted(ranks), [key for i, key in writes if i <= inrelease_at]


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(history=publish_histories())
def test_property_4_9_13_successive_publishes(signer: OpenPGPSigner, history: list[Step]) -> None:
    """Feature: unified-multi-package-repo, Property 4: Repository Metadata Generation from DynamoDB Alone
    Feature: unified-multi-package-repo, Property 9: All Packages Included in Packages File
    Feature: unified-multi-package-repo, Property 13: Release File Contains Packages Checksums

    Packages added (`add`) and removed (`remove`) over several publishes to an amd64 and
    arm64 repository, some changing amd64 alone, some changing nothing (`rebuild`, which
    only re-signs). After every publish: InRelease and Release.gpg verify with gpgv;
    every index the Release lists is at its plain and by-hash paths with the size and
    MD5, SHA1, SHA256 and SHA512 the Release gives, and its compressed forms decompress
    to it; each Packages file lists exactly the stored packages of its architecture
    (and `all`), with their stored fields, and is byte for byte what rendering from the
    store alone gives. The publish wrote everything InRelease names before InRelease
    (pool, by-hash, plain indices, Release.gpg, Release, in that order), deleted
    nothing before it, and left untouched the indices of an architecture whose Packages
    did not change (DESIGN "Incremental publish").
    """  # noqa: E501
    from debrepo.core.indexes import build_indices
    from debrepo.services.publish import release_info

    architectures = ",".join(HISTORY_ARCHITECTURES)
    with (
        scratch_dir() as directory,
        workspace_in(directory, signer, architectures=architectures) as ws,
    ):
        recorder = WriteRecorder(ws.repo)
        ws.__dict__["repo"] = recorder
        root = Path(recorder.root)
        present: set[Package] = set()
        previous: dict[str, bytes] = {}
        for number, (kind, packages) in enumerate(history):
            now = datetime(2026, 11, 24, 12, tzinfo=UTC) + timedelta(hours=number)
            existed = files_under(root)
            mark = len(recorder.events)
            if kind == "add":
                paths = []
                for name, version, architecture in packages:
                    path = directory / "incoming" / deb_filename(name, version, architecture)
                    path.parent.mkdir(exist_ok=True)
                    path.write_bytes(deb_bytes(name, version, architecture, extra_fields=FIELDS))
                    paths.append(path)
                app.add_packages(ws, paths, now=now)
                present.update(packages)
            elif kind == "remove":
                ((name, version, architecture),) = packages
                app.remove_package(ws, name, version, now=now)
                present.remove((name, version, architecture))
            else:
                report = app.rebuild(ws, now=now)
                assert report.resigned_only
            events = recorder.events[mark:]

            release = check_signed_release(root, signer)
            assert release_fields(release)["Date"] == format_datetime(now)
            indices = check_release_indices(root, release)
            records = ws.store.all()
            assert {(r.package_name, r.version, r.architecture) for r in records} == present
            rebuilt = {i.path: i.data for i in build_indices(records, release_info(ws.settings))}
            assert rebuilt == indices
            for architecture in HISTORY_ARCHITECTURES:
                paragraphs = packages_paragraphs(indices[f"main/binary-{architecture}/Packages"])
                wanted = [r for r in records if r.architecture in (architecture, "all")]
                assert sorted(sorted(p.items()) for p in paragraphs) == sorted(
                    sorted(expected_stanza(r, "main").items()) for r in wanted
                )
            check_write_order(events, existed, indices, release)
            written = {key for operation, key, _ in events if operation in ("put", "copy")}
            for name, data in indices.items():
                if previous.get(name) == data:
                    directory_key = f"{DISTS}/{name}".rsplit("/", 1)[0]
                    assert f"{DISTS}/{name}" not in written, f"unchanged {name} written again"
                    assert not any(k.startswith(f"{directory_key}/by-hash/") for k in written)
            if kind == "again":
                assert previous == indices
                assert written == {f"{DISTS}/{n}" for n in ("Release.gpg", "Release", "InRelease")}
            previous = indices
