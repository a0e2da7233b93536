"""Publishing: one snapshot of the store becomes a signed repository, safely.

The plan (core/plan.py) decides what to write; this module writes it in the order
that keeps every client consistent (pool, by-hash, plain indices, Release.gpg,
Release, InRelease last), skips what has not changed, and only then removes old
by-hash generations. Anything that would make the new Release name a missing or
wrong file is detected before the first write a client could see.

Publisher state (by-hash generations, pool files known to be present) is kept in the
staging area, which is never public. It is a cache: if it is lost, the next publish
checks the pool object by object and keeps every by-hash file it does not know about.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from debrepo.core.indexes import Digest, ReleaseInfo, parse_release_digests
from debrepo.core.layout import CONVENIENCE_COPY, delivery_for, staging_key
from debrepo.core.plan import PoolFile, PublicationPlan, PublicKey, plan_publication
from debrepo.core.records import staging_prefix_for
from debrepo.errors import ObjectStoreError, PublishError
from debrepo.packages_config import PackageConfig
from debrepo.ports import MetadataStore, ObjectStore, Signer
from debrepo.settings import Settings

log = logging.getLogger("debrepo.publish")

STATE_KEY = "staging/.state/publish-state.json"
STATE_VERSION = 1
VERIFY_CHUNK = 1 << 20


@dataclass
class PublishReport:
    """What a publish did, for the CLI, logs and tests."""

    packages: int = 0
    skipped_incomplete: list[str] = field(default_factory=list)
    pool_copied: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)
    convenience_version: str | None = None
    release_date: str = ""

    def summary(self) -> str:
        parts = [
            f"{self.packages} package(s) published",
            f"{len(self.pool_copied)} pool file(s) added",
            f"{len(self.written)} file(s) written",
            f"{self.unchanged} unchanged",
        ]
        if self.deleted:
            parts.append(f"{len(self.deleted)} old by-hash file(s) removed")
        if self.skipped_incomplete:
            parts.append(f"{len(self.skipped_incomplete)} incomplete record(s) skipped")
        return ", ".join(parts)


@dataclass
class PublishState:
    generations: list[list[str]] = field(default_factory=list)
    pool: dict[str, tuple[int, str]] = field(default_factory=dict)
    convenience_sha256: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "generations": self.generations,
                "pool": {key: list(value) for key, value in sorted(self.pool.items())},
                "convenience_sha256": self.convenience_sha256,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | None) -> PublishState:
        if not raw:
            return cls()
        try:
            data: dict[str, Any] = json.loads(raw)
            if data.get("version") != STATE_VERSION:
                raise ValueError("unknown version")
            return cls(
                generations=[list(map(str, g)) for g in data.get("generations", [])],
                pool={str(k): (int(v[0]), str(v[1])) for k, v in data.get("pool", {}).items()},
                convenience_sha256=data.get("convenience_sha256"),
            )
        except (ValueError, TypeError, KeyError, IndexError):
            log.warning("publisher state at %s is unreadable; starting afresh", STATE_KEY)
            return cls()


def release_info(settings: Settings) -> ReleaseInfo:
    return ReleaseInfo(
        origin=settings.origin,
        label=settings.label,
        suite=settings.suite,
        codename=settings.codename,
        version=settings.release_version,
        architectures=settings.architectures,
        components=settings.components,
        description=settings.description,
        valid_for=timedelta(days=settings.valid_days),
    )


def _published_digests(repo: ObjectStore, suite: str) -> dict[str, Digest]:
    """Digests of the published indices that are still there with the listed size."""
    raw = repo.get(f"dists/{suite}/Release")
    if raw is None:
        return {}
    digests = parse_release_digests(raw)
    present = {}
    for path, digest in digests.items():
        info = repo.stat(f"dists/{suite}/{path}")
        if info is not None and info.size == digest.size:
            present[path] = digest
    return present


def _sha256_of(store: ObjectStore, key: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with store.open(key) as reader:
        while chunk := reader.read(VERIFY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class Publisher:
    """Executes a publication plan against a repository and a staging area."""

    def __init__(
        self,
        *,
        store: MetadataStore,
        repo: ObjectStore,
        staging: ObjectStore,
        signer: Signer,
        settings: Settings,
        configs: dict[str, PackageConfig],
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.store = store
        self.repo = repo
        self.staging = staging
        self.signer = signer
        self.settings = settings
        self.configs = configs
        self.progress = progress

    def publish(self, *, now: datetime, just_written: Iterable[str] = ()) -> PublishReport:
        """Publish the store's current contents.

        `just_written` names pool or staging keys this process has just written from
        checked bytes; they are neither looked up nor hashed again.
        """
        report = PublishReport()
        snapshot = self.store.snapshot()
        report.packages = len(snapshot.records)
        report.skipped_incomplete = [exc.package_id for exc in snapshot.skipped]
        state = PublishState.from_json(self.staging.get(STATE_KEY))
        state_before = state.to_json()
        public_key = PublicKey(
            self.signer.public_key_binary(),
            self.signer.public_key_armored(),
            self.signer.fingerprint,
        )
        plan = plan_publication(
            snapshot.records,
            release_info(self.settings),
            now=now,
            previous_digests=_published_digests(self.repo, self.settings.suite),
            previous_generations=state.generations,
            keep_generations=self.settings.by_hash_keep,
            public_key=public_key,
            public_url=self.settings.public_url,
            keyring_name=self.settings.keyring_name,
        )
        self._place_pool_files(plan, state, report, set(just_written))
        self._write_indices(plan, report)
        self._write_release(plan, report)
        self._update_convenience_copy(plan, state, report)
        for key in plan.obsolete_by_hash:
            self.repo.delete(key)
            report.deleted.append(key)
        state.generations = [list(g) for g in plan.generations]
        if state.to_json() != state_before:
            self.staging.put(STATE_KEY, state.to_json(), delivery_for(STATE_KEY))
        return report

    # -- wave 1: pool ------------------------------------------------------------------
    def _staged_key(self, pool_file: PoolFile) -> str:
        record = pool_file.record
        prefix = staging_prefix_for(record.package_name, self.configs.get(record.package_name))
        return staging_key(prefix, record.actual_filename)

    def _place_pool_files(
        self, plan: PublicationPlan, state: PublishState, report: PublishReport, trusted: set[str]
    ) -> None:
        missing: list[PoolFile] = []
        for pool_file in plan.pool_files:
            record = pool_file.record
            expected = (record.file_size, record.sha256_hash)
            if state.pool.get(pool_file.key) == expected:
                continue
            if pool_file.key in trusted:
                state.pool[pool_file.key] = expected
                continue
            if self._staged_key(pool_file) not in trusted:
                # Not published by us as far as the state knows: believe a file already
                # there only if its bytes are the recorded ones.
                info = self.repo.stat(pool_file.key)
                if (
                    info is not None
                    and info.size == record.file_size
                    and _sha256_of(self.repo, pool_file.key) == expected
                ):
                    state.pool[pool_file.key] = expected
                    continue
            missing.append(pool_file)

        problems: list[str] = []
        for pool_file in missing:
            record = pool_file.record
            staged = self._staged_key(pool_file)
            info = self.staging.stat(staged)
            if info is None:
                problems.append(
                    f"{record.package_id}: {pool_file.key} is not published and {staged} is not "
                    f"in the staging area {self.staging.description}"
                )
            elif staged not in trusted and _sha256_of(self.staging, staged) != (
                record.file_size,
                record.sha256_hash,
            ):
                problems.append(
                    f"{record.package_id}: staged file {staged} does not match the stored size "
                    "and SHA256; rebuild or re-add that version"
                )
        if problems:
            raise PublishError(
                "; ".join(problems[:5])
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                + "; nothing was published"
            )
        for done, pool_file in enumerate(missing, start=1):
            self.repo.copy_from(
                self.staging,
                self._staged_key(pool_file),
                pool_file.key,
                delivery_for(pool_file.key),
            )
            state.pool[pool_file.key] = (pool_file.record.file_size, pool_file.record.sha256_hash)
            report.pool_copied.append(pool_file.key)
            if self.progress:
                self.progress("pool", done, len(missing))
        live = {f.key for f in plan.pool_files}
        for key in [k for k in state.pool if k not in live]:
            del state.pool[key]

    # -- waves 2 and 3: by-hash, plain indices, root files -------------------------------
    def _put_if_changed(self, key: str, data: bytes, report: PublishReport) -> None:
        if self.repo.same_bytes(key, data):
            report.unchanged += 1
        else:
            self.repo.put(key, data, delivery_for(key))
            report.written.append(key)

    def _write_indices(self, plan: PublicationPlan, report: PublishReport) -> None:
        for by_hash in plan.by_hash:
            if self.repo.stat(by_hash.key) is not None:
                report.unchanged += 1
            elif by_hash.data is not None:
                self.repo.put(by_hash.key, by_hash.data, delivery_for(by_hash.key))
                report.written.append(by_hash.key)
            else:
                self.repo.copy_from(
                    self.repo, by_hash.plain_key, by_hash.key, delivery_for(by_hash.key)
                )
                report.written.append(by_hash.key)
        for key, index in zip(plan.index_keys, plan.indices, strict=True):
            if index.data is None:
                report.unchanged += 1
            else:
                self._put_if_changed(key, index.data, report)
        for upload in plan.root_files:
            self._put_if_changed(upload.key, upload.data, report)

    # -- wave 4: the signed Release files, InRelease last ---------------------------------
    def _write_release(self, plan: PublicationPlan, report: PublishReport) -> None:
        release = plan.release
        detached = self.signer.detached_signature(release)
        inline = self.signer.clearsign(release)
        base = plan.release_key.rsplit("/", 1)[0]
        for key, data in (
            (f"{base}/Release.gpg", detached),
            (plan.release_key, release),
            (f"{base}/InRelease", inline),
        ):
            self.repo.put(key, data, delivery_for(key))
            report.written.append(key)
        for line in release.decode().splitlines():
            if line.startswith("Date: "):
                report.release_date = line[6:]

    # -- after InRelease: convenience copy ---------------------------------------------
    def _update_convenience_copy(
        self, plan: PublicationPlan, state: PublishState, report: PublishReport
    ) -> None:
        source = plan.convenience_source
        if source is None:
            if self.repo.stat(CONVENIENCE_COPY) is not None:
                self.repo.delete(CONVENIENCE_COPY)
                report.deleted.append(CONVENIENCE_COPY)
            state.convenience_sha256 = None
            return
        record = source.record
        report.convenience_version = record.version
        info = self.repo.stat(CONVENIENCE_COPY)
        if (
            info is not None
            and info.size == record.file_size
            and state.convenience_sha256 == record.sha256_hash
        ):
            report.unchanged += 1
            return
        try:
            self.repo.copy_from(
                self.repo, source.key, CONVENIENCE_COPY, delivery_for(CONVENIENCE_COPY)
            )
        except ObjectStoreError as exc:
            raise PublishError(
                f"cannot update {CONVENIENCE_COPY} from {source.key}: {exc}"
            ) from None
        state.convenience_sha256 = record.sha256_hash
        report.written.append(CONVENIENCE_COPY)
