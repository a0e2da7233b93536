"""The publication plan: everything a publish writes, in the order clients can bear.

`plan_publication` is pure. Given one snapshot of the store and what the published
repository held before, it returns every object to write, in four waves that the
publisher executes strictly in order:

1. pool files (new package files; nothing references them yet),
2. by-hash indices (content-addressed, so they never overwrite anything in use),
3. plain index paths (clients that ignore by-hash), root extras (key, page),
4. Release.gpg, Release, then InRelease last: the moment a client sees a new
   InRelease, every file it names already exists.

Old by-hash generations beyond the retention count are deleted only after that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from debrepo.core.compression import Reusable
from debrepo.core.indexes import start_indices
from debrepo.core.layout import (
    CONVENIENCE_PACKAGE,
    HASH_DIRECTORIES,
    INDEX_HTML,
    PublicKey,
    by_hash_path,
    dist_dir,
    pool_path,
)
from debrepo.core.release import Digest, IndexFile, ReleaseInfo, render_release
from debrepo.core.site import render_index_html
from debrepo.errors import PublishError
from debrepo.model import PackageRecord
from debrepo.versions import latest


@dataclass(frozen=True, slots=True)
class PoolFile:
    key: str
    record: PackageRecord


@dataclass(frozen=True, slots=True)
class Upload:
    """Bytes to put at `key` (the publisher skips an object that already holds them)."""

    key: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ByHashFile:
    """A content-addressed copy of an index; `data` is None if it must already exist."""

    key: str
    data: bytes | None
    plain_key: str


@dataclass(frozen=True, slots=True)
class PublicationPlan:
    pool_files: tuple[PoolFile, ...]
    by_hash: tuple[ByHashFile, ...]
    indices: tuple[IndexFile, ...]
    index_keys: tuple[str, ...]
    root_files: tuple[Upload, ...]
    release: bytes
    release_key: str
    convenience_source: PoolFile | None
    generations: tuple[tuple[str, ...], ...]
    obsolete_by_hash: tuple[str, ...]


def pool_files_for(records: Sequence[PackageRecord], component: str) -> list[PoolFile]:
    """The pool key of every record; two records may never claim one file."""
    claimed: dict[str, PackageRecord] = {}
    files: list[PoolFile] = []
    for record in records:
        key = pool_path(component, record.package_name, record.actual_filename)
        other = claimed.get(key)
        if other is not None:
            raise PublishError(
                f"{record.package_id} and {other.package_id} both map to {key}; "
                "remove one of them from the store"
            )
        claimed[key] = record
        files.append(PoolFile(key, record))
    return files


def newest_convenience_package(pool_files: Sequence[PoolFile]) -> PoolFile | None:
    """The pool file of the highest kiro-repo version (seed Property 10)."""
    return latest(
        (f for f in pool_files if f.record.package_name == CONVENIENCE_PACKAGE),
        lambda f: f.record.version,
    )


def newest_per_package(records: Sequence[PackageRecord]) -> list[PackageRecord]:
    """The highest version of each package, by package name."""
    groups: dict[str, list[PackageRecord]] = {}
    for record in records:
        groups.setdefault(record.package_name, []).append(record)
    newest = []
    for name in sorted(groups):
        group = groups[name]
        best = group[0] if len(group) == 1 else latest(group, lambda r: r.version)
        if best is not None:
            newest.append(best)
    return newest


def plan_publication(
    records: Sequence[PackageRecord],
    info: ReleaseInfo,
    *,
    now: datetime,
    previous_digests: Mapping[str, Digest],
    reusable: Mapping[str, Reusable] | None = None,
    previous_generations: Sequence[Sequence[str]],
    keep_generations: int,
    public_key: PublicKey,
    public_url: str,
    keyring_name: str,
    sources_file: str | None = None,
) -> PublicationPlan:
    """Everything to publish for `records` (one consistent snapshot of the store)."""
    from concurrent.futures import ThreadPoolExecutor  # not needed to re-sign only

    component = info.components[0]
    with ThreadPoolExecutor(max_workers=4) as pool:
        finish_indices = start_indices(records, info, previous_digests, pool, reusable)
        # The rest of the plan is Python work: done while the threads compress.
        pool_files = pool_files_for(records, component)
        index_html = render_index_html(
            public_url=public_url,
            label=info.label,
            suite=info.suite,
            component=component,
            keyring_name=keyring_name,
            fingerprint=public_key.fingerprint,
            latest=newest_per_package(records),
            announced=public_key.announced,
            sources_file=sources_file,
            architectures=info.architectures,
        )
        indices = finish_indices()
    dists = dist_dir(info.suite)

    by_hash: list[ByHashFile] = []
    for index in indices:
        directory = f"{dists}/{index.path.rsplit('/', 1)[0]}"
        for hash_dir, hash_name in HASH_DIRECTORIES.items():
            key = by_hash_path(directory, hash_dir, index.digest.get(hash_name))
            by_hash.append(ByHashFile(key, index.data, f"{dists}/{index.path}"))

    current = tuple(sorted({f.key for f in by_hash}))
    generations: list[tuple[str, ...]] = [current]
    for generation in previous_generations:
        if tuple(sorted(generation)) != current:
            generations.append(tuple(generation))
    kept, dropped = generations[:keep_generations], generations[keep_generations:]
    still_used = {key for generation in kept for key in generation}
    obsolete = sorted({key for generation in dropped for key in generation} - still_used)

    root_files = (
        Upload(f"{keyring_name}.gpg", public_key.binary),
        Upload(f"{keyring_name}.asc", public_key.armored),
        Upload(INDEX_HTML, index_html),
    )
    return PublicationPlan(
        pool_files=tuple(pool_files),
        by_hash=tuple(by_hash),
        indices=tuple(indices),
        index_keys=tuple(f"{dists}/{index.path}" for index in indices),
        root_files=root_files,
        release=render_release(info, indices, now),
        release_key=f"{dists}/Release",
        convenience_source=newest_convenience_package(pool_files),
        generations=tuple(kept),
        obsolete_by_hash=tuple(obsolete),
    )
