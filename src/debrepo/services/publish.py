"""Publishing: one snapshot of the store becomes a signed repository, safely.

The plan (core/plan.py) decides what to write; this module writes it in the order
that keeps every client consistent (pool, by-hash, plain indices, Release.gpg,
Release, InRelease last), skips what has not changed, and only then removes old
by-hash generations. Anything that would make the new Release name a missing or
wrong file is detected before the first write a client could see.

Publisher state (by-hash generations, what the indices were rendered from, pool files
known to be present) is kept in the staging area, which is never public. It is a
cache: if it is lost, the next publish checks the pool object by object, retires
every pool file no record names, and keeps every by-hash file it does not know about.
The pool map, which grows with the repository, is a separate object, so a publish
that only re-signs never reads it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from debrepo.core.control import without_epoch
from debrepo.core.layout import (
    CONVENIENCE_COPY,
    CONVENIENCE_PACKAGE,
    HASH_DIRECTORIES,
    INDEX_HTML,
    PublicKey,
    by_hash_path,
    delivery_for,
    dist_dir,
    staging_key,
)
from debrepo.core.release import (
    RENDER_VERSION,
    Digest,
    IndexFile,
    ReleaseInfo,
    identity_changes,
    index_paths,
    parse_release_digests,
    render_release,
)
from debrepo.errors import (
    DebrepoError,
    ObjectStoreError,
    PublishError,
    PublishRefused,
    VerificationError,
)
from debrepo.ports import MetadataStore, ObjectInfo, ObjectStore, Signer, Snapshot
from debrepo.settings import Settings

if TYPE_CHECKING:
    from debrepo.core.plan import ByHashFile, PoolFile, PublicationPlan
    from debrepo.model import PackageRecord
    from debrepo.packages_config import PackageConfig

log = logging.getLogger("debrepo.publish")

# How the Lambda is told what `rebuild --replace` says, named where the CLI's way is.
LAMBDA_REPLACE = '(the Lambda: {"replace": true})'
STATE_PREFIX = "staging/.state/"
STATE_KEY = f"{STATE_PREFIX}publish-state.json"
POOL_STATE_KEY = f"{STATE_PREFIX}publish-pool.json"
STATE_VERSION = 2
VERIFY_CHUNK = 1 << 20


@dataclass
class PublishReport:
    """What a publish did, for the CLI, logs and tests."""

    packages: int = 0
    skipped_incomplete: list[str] = field(default_factory=list)
    pool_copied: list[str] = field(default_factory=list)
    # New pool files the caller had already put in place (ingest writes there directly).
    pool_placed: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)
    convenience_version: str | None = None
    release_date: str = ""
    resigned_only: bool = False
    requests: int | None = None  # requests sent to remote object stores (S3), if any

    def summary(self) -> str:
        if self.resigned_only:
            return (
                f"{self.packages} package(s), indices unchanged since the last publish; "
                f"Release re-signed ({self.release_date})"
            )
        parts = [
            f"{self.packages} package(s) published",
            f"{len(self.pool_copied) + len(self.pool_placed)} pool file(s) added",
            f"{len(self.written)} file(s) written",
            f"{self.unchanged} unchanged",
        ]
        if self.deleted:
            pool = sum(1 for key in self.deleted if key.startswith("pool/"))
            others = len(self.deleted) - pool
            if pool:
                parts.append(f"{pool} pool file(s) of removed versions deleted")
            if others:
                parts.append(f"{others} old index file(s) deleted")
        if self.requests is not None:
            parts.append(f"{self.requests} storage request(s)")
        if self.skipped_incomplete:
            parts.append(f"{len(self.skipped_incomplete)} incomplete record(s) skipped")
        return ", ".join(parts)


class IndexLayout(NamedTuple):
    """Where the pieces of one published compressed index lie (core.compression.Piece
    fields), and the SHA256 of the file they lie in."""

    sha256: str
    pieces: list[tuple[str, int, int, int]]


class StateFiles(NamedTuple):
    """The publisher's two state objects as read once: a caller holding the lock reads
    them before its ingest, and the publish that follows takes them as they were."""

    state: bytes | None
    pool: bytes | None

    @classmethod
    def read(cls, staging: ObjectStore) -> StateFiles:
        return cls(staging.get(STATE_KEY), staging.get(POOL_STATE_KEY))


class AnnouncedKey(NamedTuple):
    """A key announced to take over signing (`debrepo key announce`): published in the
    keyring beside the signing key, so that clients come to trust it before it signs."""

    armored: str  # its public part
    since: str  # when it was announced (ISO 8601)


class PoolMap(NamedTuple):
    """The publisher's account of the pool, as one object in the staging area: every
    file under pool/ that a publish has seen is in one of the two."""

    pool: dict[str, tuple[int, str]]  # pool key -> (size, SHA256), published now
    retired: dict[str, str]  # see PublishState.retired


@dataclass
class PublishState:
    generations: list[list[str]] = field(default_factory=list)
    # Pool key -> (size, SHA256) of files known to be published. None until loaded
    # (see `pool_from_json`); a version 1 state carried it inline.
    pool: dict[str, tuple[int, str]] | None = None
    pool_count: int = 0
    convenience_sha256: str | None = None
    # What the published indices were rendered from: the store's revision and a digest
    # of every setting that shapes them. Equal on the next publish means equal bytes.
    revision: str | None = None
    fingerprint: str | None = None
    skipped: list[str] = field(default_factory=list)
    # Index key -> (size, ObjectInfo.version, SHA256) right after it was published: the
    # same size and version mean untouched since, without reading it.
    index_stamps: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    # The same for the files at the root (keyring, index.html, kiro-repo.deb): a re-sign
    # that finds one changed since (written over by hand) publishes it again.
    root_stamps: dict[str, tuple[int, str]] = field(default_factory=dict)
    # Pool key no index names any more -> the by-hash generation (`generation_id`) that
    # last named it. The file stays while that generation is kept, for clients that
    # still hold the Release it belonged to. Kept with the pool map (one object), so the
    # two never disagree about a file.
    retired: dict[str, str] = field(default_factory=dict)
    # Compressed index key -> where its pieces lie, so the next publish compresses again
    # only the pieces that changed. Bound to the SHA256 of the file it describes: a
    # publish that failed after its Release but before this state leaves the layout of
    # the file before, which must then not be applied to the new one.
    index_pieces: dict[str, IndexLayout] = field(default_factory=dict)
    # The repository (ObjectStore.description) all of the above describes. Another one
    # (the `repo` setting changed) starts from nothing: its pool is looked up, not taken
    # from this account.
    repo: str | None = None
    # The store (MetadataStore.identity) the last publish was made from. Another
    # one (a mistyped table or path, a new table not yet migrated into) may not drop
    # versions that it lacks: the indices list them and the pool may hold their only copy.
    store: str | None = None
    # When the last publish that rendered the indices ran: a withdrawal recorded before
    # it, of a version it still listed, was undone by an add since.
    published_at: str | None = None
    # Fingerprint -> a key announced to take over signing. Kept here, where every
    # publisher (the CLI, the Lambda) reads it, so no publish drops it from the keyring.
    announced: dict[str, AnnouncedKey] = field(default_factory=dict)
    # When kiro-repo.deb last changed: an announced key takes over only once the kiro-repo
    # that installs it has been out for `key_switch_days`.
    convenience_since: str | None = None
    # The highest kiro-repo ever published (version, SHA256): clients keep it even once
    # it is removed, and apt replaces it only by a higher version, so a key may take
    # over only once a kiro-repo at least as high as this one installs it.
    kiro_repo_high: tuple[str, str] | None = None
    # False when the mark may miss a kiro-repo published before it was kept (a state
    # written by an older debrepo, or lost): a switch then needs the operator's word.
    kiro_repo_high_complete: bool = True

    def describes(self, repo: ObjectStore) -> bool:
        """Whether this account is of `repo` (a state from before debrepo named its
        repository is taken to be)."""
        return self.repo in (None, repo.description)

    def to_json(self) -> bytes:
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "generations": self.generations,
            "pool_count": len(self.pool) if self.pool is not None else self.pool_count,
            "convenience_sha256": self.convenience_sha256,
            "convenience_since": self.convenience_since,
            "kiro_repo_high": list(self.kiro_repo_high) if self.kiro_repo_high else None,
            "kiro_repo_high_complete": self.kiro_repo_high_complete,
            "revision": self.revision,
            "fingerprint": self.fingerprint,
            "skipped": self.skipped,
            "repo": self.repo,
            "store": self.store,
            "published_at": self.published_at,
            "announced": {
                k: {"key": v.armored, "since": v.since} for k, v in sorted(self.announced.items())
            },
            "index_stamps": {k: list(v) for k, v in sorted(self.index_stamps.items())},
            "root_stamps": {k: list(v) for k, v in sorted(self.root_stamps.items())},
            "index_pieces": {
                k: {"sha256": v.sha256, "pieces": [list(piece) for piece in v.pieces]}
                for k, v in sorted(self.index_pieces.items())
            },
        }
        if self.pool is None and self.retired:  # read from an earlier state, not yet moved
            state["retired"] = dict(sorted(self.retired.items()))
        return json.dumps(state, separators=(",", ":")).encode()

    def pool_to_json(self) -> bytes:
        pool = self.pool or {}
        data = {
            "version": STATE_VERSION,
            "pool": dict(sorted(pool.items())),  # (size, SHA256) tuples: JSON arrays
            "retired": dict(sorted(self.retired.items())),
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @staticmethod
    def pool_from_json(raw: bytes | None) -> PoolMap | None:
        """The pool map; None if there is none or it is unreadable."""
        if not raw:
            return None
        try:
            return PublishState.parse_pool(raw)
        except UNREADABLE:
            log.warning("pool map at %s is unreadable; checking the pool", POOL_STATE_KEY)
            return None

    @staticmethod
    def parse_pool(raw: bytes) -> PoolMap:
        """`pool_from_json` that raises on bytes it cannot read."""
        data: Any = json.loads(raw)
        _refuse_a_newer_format(data, POOL_STATE_KEY)
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError("not a pool map of this version")
        return PoolMap(
            pool={str(k): (int(v[0]), str(v[1])) for k, v in data["pool"].items()},
            retired={str(k): str(v) for k, v in (data.get("retired") or {}).items()},
        )

    @classmethod
    def from_json(cls, raw: bytes | None) -> PublishState:
        if not raw:
            return cls()
        try:
            return cls.parse(raw)
        except UNREADABLE:
            log.warning("publisher state at %s is unreadable; starting afresh", STATE_KEY)
            return cls()

    @classmethod
    def parse(cls, raw: bytes) -> PublishState:
        """`from_json` that raises on bytes it cannot read."""
        data: Any = json.loads(raw)
        _refuse_a_newer_format(data, STATE_KEY)
        if not isinstance(data, dict) or data.get("version") not in (1, STATE_VERSION):
            raise ValueError("not a publisher state of a known version")
        pool = None
        if data["version"] == 1:  # written by an earlier debrepo: the pool map inline
            pool = {str(k): (int(v[0]), str(v[1])) for k, v in data.get("pool", {}).items()}
        return cls(
            generations=[list(map(str, g)) for g in data.get("generations", [])],
            pool=pool,
            pool_count=len(pool) if pool is not None else int(data.get("pool_count", 0)),
            convenience_sha256=data.get("convenience_sha256"),
            convenience_since=(
                data.get("convenience_since")
                if isinstance(data.get("convenience_since"), str)
                else None
            ),
            kiro_repo_high=(
                (str(data["kiro_repo_high"][0]), str(data["kiro_repo_high"][1]))
                if isinstance(data.get("kiro_repo_high"), list) and len(data["kiro_repo_high"]) == 2
                else None
            ),
            # Written without the mark (before debrepo kept one): it may miss a removed,
            # higher kiro-repo that clients still hold.
            kiro_repo_high_complete=bool(
                data.get("kiro_repo_high_complete", "kiro_repo_high" in data)
            ),
            revision=data.get("revision"),
            fingerprint=data.get("fingerprint"),
            skipped=[str(s) for s in data.get("skipped") or []],
            repo=data.get("repo") if isinstance(data.get("repo"), str) else None,
            store=data.get("store") if isinstance(data.get("store"), str) else None,
            published_at=(
                data.get("published_at") if isinstance(data.get("published_at"), str) else None
            ),
            index_stamps={
                str(k): (int(v[0]), str(v[1]), str(v[2]))
                for k, v in (data.get("index_stamps") or {}).items()
                if isinstance(v, list) and len(v) == 3
            },
            root_stamps={
                str(k): (int(v[0]), str(v[1]))
                for k, v in (data.get("root_stamps") or {}).items()
                if isinstance(v, list) and len(v) == 2
            },
            index_pieces={
                str(k): IndexLayout(
                    str(v["sha256"]),
                    [(str(p[0]), int(p[1]), int(p[2]), int(p[3])) for p in v["pieces"]],
                )
                for k, v in (data.get("index_pieces") or {}).items()
                if isinstance(v, dict)  # a list: written by a build of this format's first day
            },
            announced={
                str(k).lower(): AnnouncedKey(str(v["key"]), str(v["since"]))
                for k, v in (data.get("announced") or {}).items()
            },
            # Earlier releases of this format kept the retired files here, not with the
            # pool map: read them still, or their files would never be deleted.
            retired={str(k): str(v) for k, v in (data.get("retired") or {}).items()},
        )

    def load_pool(self, raw: bytes | None) -> bool:
        """Take the pool map from its bytes; False if there were none to read."""
        loaded = PublishState.pool_from_json(raw)
        if loaded is None:
            self.pool = {}
            return False
        self.pool = loaded.pool
        self.retired = {**self.retired, **loaded.retired}
        return True


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (as it was before, after).

    A publish builds a few objects per stored version (its record, its pool entry, ...)
    that live until it ends, and makes no garbage cycles worth collecting: each
    collection it would trigger walks all of them again for nothing. Reference counting
    frees everything else as usual."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# What parsing a damaged state or pool map raises (JSON of the wrong shape).
UNREADABLE = (ValueError, TypeError, KeyError, IndexError, AttributeError)


def _refuse_a_newer_format(data: Any, key: str) -> None:
    """A newer debrepo's state is not unreadable: starting afresh over it would drop what
    only it records (an announced key, the highest kiro-repo)."""
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > STATE_VERSION:
        raise PublishError(
            f"{key} was written by a newer debrepo (format {version}; this one knows up to "
            f"{STATE_VERSION}): run the newer debrepo, or upgrade this one; nothing was changed"
        )


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


def published_keyring(signer: Signer, announced: Mapping[str, AnnouncedKey]) -> PublicKey:
    """The keyring the repository root and kiro-repo publish: the signing key's public
    part, then that of each key announced to take over from it."""
    own = signer.fingerprint.lower()
    others = sorted(fpr for fpr in announced if fpr != own)
    if not others:
        return PublicKey(signer.public_key_binary(), signer.public_key_armored(), own)
    from debrepo.signing.openpgp import armor_keyring, keyring_certificates

    try:
        binary = signer.public_key_binary() + b"".join(
            bytes(keyring_certificates(announced[fpr].armored.encode("ascii"))[0]) for fpr in others
        )
    except (VerificationError, UnicodeError):
        raise PublishError(
            f"the publisher state ({STATE_KEY}) holds a damaged announced key: announce it "
            "again (`debrepo key announce FILE`) or withdraw it"
        ) from None
    return PublicKey(binary, armor_keyring(binary), own, tuple(others))


def sha256_of(store: ObjectStore, key: str) -> tuple[int, str]:
    """The size and SHA256 of the object at `key`, read whole."""
    import hashlib  # not needed to re-sign only: start-up time is most of a re-sign

    digest = hashlib.sha256()
    size = 0
    with store.open(key) as reader:
        while chunk := reader.read(VERIFY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class _Start(NamedTuple):
    """The publisher state a publish goes on from, and what it tells of earlier ones."""

    state: PublishState
    first_here: bool  # no account of an earlier publish to this repository
    last_store: str | None  # another store, that the last publish came from
    changing_announcement: bool
    taking_over: AnnouncedKey | None  # the key announced before, that signs now
    public_key: PublicKey


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
        configs: Mapping[str, PackageConfig] | Callable[[], Mapping[str, PackageConfig]],
        progress: Callable[[str, int, int], None] | None = None,
        fence: Callable[..., None] | None = None,
    ) -> None:
        self.store = store
        # Raises if this process no longer holds the publish lock: asked (renewing it)
        # before the signed Release files, the writes that make a publish visible, and
        # (from what it knows, `renew=False`) before every other write another
        # publisher could overwrite.
        self.fence = fence
        self.repo = repo
        self.staging = staging
        self.signer = signer
        self.settings = settings
        # A callable defers reading config/packages until a staged file is needed.
        self._configs = configs
        self.progress = progress
        # Key -> (size, ObjectInfo.version) of what this publisher wrote, as the write
        # answered: the stamps it records then cost no request.
        self._written: dict[str, tuple[int, str]] = {}
        # The published Release as read by this publish (several steps consult it; one
        # request). None: not read yet.
        self._release_read: tuple[bytes | None] | None = None

    def _requests_sent(self) -> int | None:
        counts = [
            getattr(store, "request_count", None)
            for store in {id(self.repo): self.repo, id(self.staging): self.staging}.values()
        ]
        numbers = [c for c in counts if isinstance(c, int)]
        return sum(numbers) if numbers else None

    def publish(
        self,
        *,
        now: datetime,
        just_written: Iterable[str] = (),
        full: bool = False,
        removed: Iterable[str] = (),
        replace: bool = False,
        state_files: StateFiles | None = None,
        announce: tuple[bytes, str] | None = None,
        withdraw_announced: bool = False,
    ) -> PublishReport:
        """Publish the store's current contents (see `_publish`), counting remote requests."""
        before = self._requests_sent()
        with collector_paused():
            report = self._publish(
                now=now,
                just_written=just_written,
                full=full or replace,
                removed=removed,
                replace=replace,
                state_files=state_files,
                announce=announce,
                withdraw_announced=withdraw_announced,
            )
        after = self._requests_sent()
        if before is not None and after is not None:
            report.requests = after - before
        return report

    def _publish(
        self,
        *,
        now: datetime,
        just_written: Iterable[str] = (),
        full: bool = False,
        removed: Iterable[str] = (),
        replace: bool = False,
        state_files: StateFiles | None = None,
        announce: tuple[bytes, str] | None = None,
        withdraw_announced: bool = False,
    ) -> PublishReport:
        """Publish the store's current contents.

        `just_written` names pool or staging keys this process has just written from
        checked bytes; they are neither looked up nor hashed again. `removed` names the
        package_ids this process has just deleted from the store: their disappearance
        from the indices is intended.

        When the store has not changed since the last publish (same revision, same
        settings, same key) and the published indices are intact (their bytes hash to
        what Release lists), rendering them again would give the same bytes: only the
        Release is re-dated and re-signed. `full` renders everything regardless, looks
        every pool file up instead of trusting the publisher state (so one lost behind
        debrepo's back is restored from staging or reported) and refreshes the
        convenience copy.

        What would break clients' view of a repository published before is refused
        unless `replace` says it is meant: dropping versions this store lacks when it
        has no record of publishing there or the last publish came from another store;
        and, when the settings changed since the last publish or there is no record of
        it, a different Origin, Label or Codename, a dropped component or another
        signing key.
        """
        self._written = {}
        self._release_read = None
        if state_files is not None and self.fence is not None:
            # Read before an ingest that may have outlasted a lock lease: still ours?
            self.fence()
        files = state_files or StateFiles.read(self.staging)
        start = self._take_up_state(
            files,
            replace=replace,
            announce=announce,
            withdraw_announced=withdraw_announced,
            now=now,
        )
        state = start.state
        info = release_info(self.settings)
        revision = self.store.revision()
        fingerprint = self._fingerprint(info, start.public_key)
        if (
            not full
            and not start.changing_announcement  # the state must be written, even if alike
            and start.last_store is None
            and revision is not None
            and state.revision == revision
            and state.fingerprint == fingerprint
        ):
            resigned = self._resign_unchanged(info, state, now=now)
            if resigned is not None:
                return resigned

        report = PublishReport()
        snapshot = self.store.snapshot()
        self._refuse_what_clients_would_lose(
            info, snapshot, start, fingerprint, removed=removed, replace=replace, now=now
        )
        report.packages = len(snapshot.records)
        report.skipped_incomplete = [exc.package_id for exc in snapshot.skipped]
        state_before = state.to_json()
        state.store = self.store.identity  # after state_before: a new record is written
        pool_before: bytes | None = None  # a version 1 state carried the pool map inline
        # A version 1 state kept no retired files (their files stayed in the pool): like
        # a lost pool map, it is completed from a listing of the pool below.
        map_incomplete = state.pool is not None
        if state.pool is None:
            pool_before = files.pool
            map_incomplete = not state.load_pool(pool_before)
        pool = state.pool
        assert pool is not None
        plan = self._plan(info, state, snapshot, start.public_key, fingerprint, full=full, now=now)
        if not replace and not start.first_here:
            self._refuse_to_drop_what_nobody_removed(
                info, state, plan, snapshot, removed, map_incomplete=map_incomplete
            )
        # A Release gone from a repository published to before (its folder deleted, or
        # replaced from an old backup): the pool files are looked up, not trusted.
        if full or (not start.first_here and self._published_release() is None):
            present = self.repo.stat_many(list(pool))
            pool = state.pool = {k: v for k, v in pool.items() if present.get(k) == v[0]}
        listed = self._settle_retired(plan, state, map_incomplete=map_incomplete)
        self._still_ours()
        expired = self._update_pool(plan, pool, state, report, set(just_written), listed)
        # Recorded before any index can name the new pool files: whatever happens after,
        # the map never misses a file an index names (`never_published` relies on it).
        # A file it still lists after a failure is merely retired later; one expiring
        # stays listed until it is deleted, or a failure in between would leak it.
        self._still_ours()
        pool_after = state.pool_to_json()  # once: 1.2 MB of JSON at 10,000 versions
        if pool_after != pool_before:
            self.staging.put(POOL_STATE_KEY, pool_after, delivery_for(POOL_STATE_KEY))
        self._still_ours()
        self._write_indices(plan, report, check_existing=full)
        dropped_indices = self._record_indices(plan, state, info)
        self.repo.flush()  # what the new Release names is on disk before it is
        self._write_release(plan, report)
        # Clients see the new Release from here on: what fails now is the clean-up after
        # it, which the next publish finishes; said so, not "not published".
        try:
            self._still_ours()
            self._update_convenience_copy(plan, state, report, refresh=full, now=now)
            self._record_root_stamps(plan, state, report)
            self._still_ours()
            self._delete_what_no_release_names(plan, dropped_indices, expired, state, report)
            state.generations = [list(g) for g in plan.generations]
            state.revision, state.fingerprint = revision, fingerprint
            state.published_at = now.isoformat(timespec="seconds")
            state.skipped = report.skipped_incomplete
            # (An announcement changed the state before state_before was taken.)
            if state.to_json() != state_before or start.changing_announcement:
                self._still_ours()
                self.staging.put(STATE_KEY, state.to_json(), delivery_for(STATE_KEY))
        except (DebrepoError, OSError) as exc:
            raise published_but_unfinished(exc) from exc
        except BaseException as exc:  # interrupted now: callers must not say "not published"
            exc.release_written = True  # type: ignore[attr-defined]
            raise
        return report

    def _take_up_state(
        self,
        files: StateFiles,
        *,
        replace: bool,
        announce: tuple[bytes, str] | None,
        withdraw_announced: bool,
        now: datetime,
    ) -> _Start:
        """The publisher state this publish goes on from, as far as it describes this
        repository, with the announced key changed as asked."""
        raw_state = files.state
        state = PublishState.from_json(raw_state)
        # No account at all of an earlier publish to this repository (a new home, or
        # another `repo`): what is there may be another store's.
        first_here = raw_state is None and files.pool is None
        if not state.describes(self.repo):
            first_here = True
            log.warning(
                "the publisher state describes %s, not %s: publishing as if for the first "
                "time (every pool file is looked up there)",
                state.repo,
                self.repo.description,
            )
            state = PublishState(pool={})
        state.repo = self.repo.description
        if replace:  # the operator's word: no client holds a kiro-repo above the newest
            state.kiro_repo_high_complete = True
        elif raw_state is None and (
            files.pool is not None or self.repo.stat(CONVENIENCE_COPY) is not None
        ):  # published here before, but the record of it is lost
            state.kiro_repo_high_complete = False
        # Published from another store: as for a first publish here, what it lacks is
        # refused below rather than dropped (a state without a store: not yet recorded).
        last_store = state.store if state.store not in (None, self.store.identity) else None
        changing_announcement = announce is not None or withdraw_announced
        if changing_announcement:
            self._change_announced_key(state, announce, now=now)
        # The announced key that signs now takes over: the keyring drops the old one.
        taking_over = state.announced.pop(self.signer.fingerprint.lower(), None)
        public_key = published_keyring(self.signer, state.announced)
        return _Start(state, first_here, last_store, changing_announcement, taking_over, public_key)

    @staticmethod
    def _change_announced_key(
        state: PublishState, announce: tuple[bytes, str] | None, *, now: datetime
    ) -> None:
        """One key announced at a time: `announce` replaces the one announced, None
        withdraws it."""
        before = state.announced
        state.announced = {}
        if announce is not None:
            from debrepo.signing.openpgp import armor_keyring

            binary, announced_fingerprint = announce
            again = before.get(announced_fingerprint.lower())
            # Announced again: its clock runs on, unless its start was unreadable.
            since = again.since if again and _moment(again.since) else None
            state.announced[announced_fingerprint.lower()] = AnnouncedKey(
                armor_keyring(binary).decode("ascii"), since or now.isoformat(timespec="seconds")
            )

    def _refuse_what_clients_would_lose(
        self,
        info: ReleaseInfo,
        snapshot: Snapshot,
        start: _Start,
        fingerprint: str,
        *,
        removed: Iterable[str],
        replace: bool,
        now: datetime,
    ) -> None:
        """Refused before the first write: versions clients would lose, and, unless
        `replace`, a repository that changes under the clients of another store or of
        another shape."""
        from debrepo.core.indexes import unpublished_by_architecture  # the full path only

        state, first_here, last_store = start.state, start.first_here, start.last_store
        left_out = unpublished_by_architecture(snapshot.records, self.settings.architectures)
        if left_out:  # a settings file not read (another folder) must not unpublish them
            raise PublishRefused(
                f"{left_out}: publishing would drop them for every client. Add those "
                "architectures (if debrepo.yaml holds them, run from its folder or pass "
                "--settings), or remove those versions"
            )
        moved = pool_folder_change(state, info.components) if snapshot.records else None
        if moved:
            # Not even with --replace: every pool file would have to move, and every
            # client's index names the old paths.
            refusal = PublishRefused(moved)
            refusal.settled_by_rebuild = False
            raise refusal
        if (first_here or last_store) and not replace:
            self._refuse_to_drop_foreign_versions(info, snapshot.records, removed, last_store)
        if first_here and not replace:
            # No record of what was published: what clients hold is read from the tree.
            self._refuse_to_change_what_clients_hold_to(info)
            self._refuse_a_key_other_than_the_published_one(start.public_key, snapshot)
        elif not replace and state.fingerprint is None:
            # A record of the publishing without the shape it had (the state object lost,
            # the pool map kept): held to the published tree, as above.
            self._refuse_to_change_what_clients_hold_to(info)
            self._refuse_a_key_other_than_the_published_one(start.public_key, snapshot)
        elif not replace and state.fingerprint != fingerprint:
            self._refuse_to_change_what_clients_hold_to(info)
            self._refuse_a_key_clients_do_not_trust(
                state.fingerprint,
                start.public_key,
                snapshot,
                taking_over=start.taking_over,
                state=state,
                now=now,
            )

    def _plan(
        self,
        info: ReleaseInfo,
        state: PublishState,
        snapshot: Snapshot,
        public_key: PublicKey,
        fingerprint: str,
        *,
        full: bool,
        now: datetime,
    ) -> PublicationPlan:
        """What to write. What was published before is reused (whole indices whose
        Packages did not change, unchanged pieces of the others) only if it was rendered
        the same way: not by `full`, which renders everything from nothing, nor after a
        change of the settings or of the rendering (RENDER_VERSION) since."""
        from debrepo.core.plan import plan_publication  # the full path only

        reuse = not full and state.fingerprint == fingerprint
        previous_digests = self._published_digests(state) if reuse else {}
        previous_generations = state.generations
        if full or (not state.generations and _any_release(self.repo)):
            # By-hash files no recorded generation names (the generations were lost, or
            # a publish failed before recording its own): a Release clients still hold
            # may name them, so they count as the generation just before the new one,
            # and go when it does instead of staying forever.
            orphans = self._unaccounted_by_hash(info.suite, state.generations)
            if orphans:
                previous_generations = [orphans, *state.generations]
        return plan_publication(
            snapshot.records,
            info,
            now=now,
            previous_digests=previous_digests,
            reusable=self._reusable_pieces(state, previous_digests),
            previous_generations=previous_generations,
            keep_generations=self.settings.by_hash_keep,
            public_key=public_key,
            public_url=self.settings.public_url,
            keyring_name=self.settings.keyring_name,
            sources_file=self._sources_file(info),
        )

    def _settle_retired(
        self, plan: PublicationPlan, state: PublishState, *, map_incomplete: bool
    ) -> dict[str, int] | None:
        """Tag every retired pool file with a generation the state lists, so that it goes
        with that generation; the pool's sizes when it had to be listed, else None."""
        newest = generation_id(plan.generations[0])
        listed: dict[str, int] | None = None
        if map_incomplete and (state.generations or _any_release(self.repo)):
            # Any file in the pool that the plan does not name may be one a kept
            # generation names: retired as if the newest did, the longest any could
            # need it. (One listing of the pool, only when the map is missing and
            # something was published: a first publish has nothing to look for.)
            live = {f.key for f in plan.pool_files}
            listed = {found.key: found.size for found in self.repo.list("pool/")}
            for key in listed.keys() - live:
                state.retired.setdefault(key, newest)
        # A retired file tagged with a generation the state does not list (the
        # generations were lost, or a publish that tagged it failed before recording
        # its own) may be named by any of them: it is kept as if the one being
        # published did, the longest any could need it.
        published = {generation_id(g) for g in state.generations}
        state.retired = {k: g if g in published else newest for k, g in state.retired.items()}
        return listed

    def _refuse_to_drop_foreign_versions(
        self,
        info: ReleaseInfo,
        records: Sequence[PackageRecord],
        removed: Iterable[str],
        last_store: str | None = None,
    ) -> None:
        """PublishRefused if the published indices list any version this store lacks: with
        no record of publishing there, or a record of publishing from `last_store`, this
        is most likely another store's repository (a mistyped home, table or path, two
        homes on one `repo`, a new table not yet migrated into; the two may share
        versions), and they would silently disappear for every client, their pool files
        deleted a few publishes later. `rebuild --replace` says it is meant."""
        held = {(r.package_name, r.version) for r in records}
        # Removed on purpose (`remove`, a migration's --skip): dropping them is meant.
        for package_id in [*removed, *self.store.withdrawals()]:
            name, _, version = package_id.partition("#")
            held.add((name, version))
        foreign = self._listed_in_indices(info) - held
        if foreign:
            shown = ", ".join(f"{name} {version}" for name, version in sorted(foreign)[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            if last_store is None:
                whose = "holds a repository this store did not publish"
                check = "Check --home and --store (DEBREPO_HOME, DEBREPO_STORE)"
                own = "its record under staging/.state was lost, or the home moved"
            else:
                whose = f"was last published from the store {last_store}"
                check = (
                    "Check --store (DEBREPO_STORE; the Lambda's DYNAMODB_TABLE) and AWS_REGION, "
                    "or put those versions into this store first (from a table of the old "
                    "schema: `debrepo migrate-table`)"
                )
                own = "the store was renamed or restored under another name"
            raise PublishRefused(
                f"{self.repo.description} {whose}: it lists {shown}{more}, which the store "
                f"{self.store.identity} does not hold, and publishing would drop them "
                f"for every client. {check}. If this store did publish it ({own}), or to "
                "replace that repository with this store's contents, run `debrepo rebuild "
                f"--replace` {LAMBDA_REPLACE}"
            )

    def _refuse_to_drop_what_nobody_removed(
        self,
        info: ReleaseInfo,
        state: PublishState,
        plan: PublicationPlan,
        snapshot: Snapshot,
        removed: Iterable[str],
        *,
        map_incomplete: bool,
    ) -> None:
        """PublishRefused if a version the last publish listed would disappear although
        nobody removed it: not deleted by this process, not withdrawn since that publish
        (`remove`, a migration's --skip), not an incomplete record the seed says to
        skip. That is a store that lost records (restored from an older backup, edited
        by hand), and their pool files would be deleted a few publishes later.
        `rebuild --replace` says it is meant.

        What was listed comes from the publisher's pool map (a set difference, when
        nothing moved: the usual case costs nothing), or from the published indices
        when the map is lost. Versions compare without their epoch, as their file
        names do (two that differ only by epoch cannot share a repository).
        """
        if map_incomplete:
            listed = {(name, without_epoch(v)) for name, v in self._listed_in_indices(info)}
        else:
            live = {f.key for f in plan.pool_files}
            listed = {_version_of_pool_key(k) for k in state.pool or {} if k not in live}
        if not listed:
            return
        held = {(r.package_name, without_epoch(r.version)) for r in snapshot.records}
        held.update(_name_version(exc.package_id) for exc in snapshot.skipped)
        held.update(_name_version(package_id) for package_id in removed)
        lost = listed - held
        if lost:  # only then is the table of withdrawals worth reading
            since = state.published_at or ""
            lost -= {  # a withdrawal from before the last publish was undone by an add
                _name_version(package_id)
                for package_id, at in self.store.withdrawals().items()
                if at >= since
            }
        if lost:
            names = [f"{name} {version}" for name, version in sorted(lost)]
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise PublishRefused(
                f"publishing would drop {shown} from every client: the store "
                f"{self.store.identity} no longer holds those versions, though nobody removed "
                "them (a store restored from an older backup, a record deleted by hand?). "
                "Add them back (`debrepo add` of their files; the pool still holds them), or "
                f"drop them on purpose with `debrepo rebuild --replace` {LAMBDA_REPLACE}"
            )

    def _listed_in_indices(self, info: ReleaseInfo) -> set[tuple[str, str]]:
        """(Package, Version) of every entry of the published Packages files."""
        listed: set[tuple[str, str]] = set()
        for path in index_paths(info):
            if path.endswith("/Packages"):
                listed.update(self._versions_in(f"dists/{info.suite}/{path}"))
        return listed

    def _versions_in(self, key: str) -> set[tuple[str, str]]:
        """(Package, Version) of every stanza of the index at `key`, or of the first of
        its compressed copies there (other tools may publish only those). An index that
        cannot be read is refused: read as empty, it would hide what clients would lose."""
        for suffix, unpack in _UNPACKERS:
            raw = self.repo.get(key + suffix)
            if raw is None:
                continue
            try:
                return _listed_versions(unpack(raw))
            except ValueError as exc:
                raise PublishRefused(
                    f"{self.repo.description}: {key}{suffix} cannot be read ({exc}), so "
                    "what its clients would lose by this publish is unknown. Restore it, "
                    f"or run `debrepo rebuild --replace` {LAMBDA_REPLACE} to publish over it"
                ) from None
        return set()

    def _refuse_to_change_what_clients_hold_to(self, info: ReleaseInfo) -> None:
        """PublishRefused if the settings changed since the last publish in a way apt
        refuses or that drops a component (usually a settings file that was not read);
        `rebuild --replace` says it is meant."""
        published = self._published_release()
        changes = identity_changes(published, info) if published is not None else []
        if changes:
            raise PublishRefused(
                f"the settings differ from the published Release: {'; '.join(changes)}, "
                "and apt refuses such a change on every client until `apt update "
                "--allow-releaseinfo-change` (or loses that component). If debrepo.yaml "
                "holds the published values, run from its folder or pass --settings; to "
                "make the change on purpose, run `debrepo rebuild --replace` "
                f"{LAMBDA_REPLACE}"
            )

    def _refuse_a_key_clients_do_not_trust(
        self,
        last_shape: str | None,
        public_key: PublicKey,
        snapshot: Snapshot,
        *,
        taking_over: AnnouncedKey | None = None,
        state: PublishState | None = None,
        now: datetime | None = None,
    ) -> None:
        """PublishRefused if the signing key differs from the one the last publish used
        (a rotated secret, another key file), unless it was announced long enough ago
        (`taking_over`: its announcement, with the state and the time): every client that
        trusts only the old key would fail `apt update` with NO_PUBKEY. `rebuild
        --replace` says a change is meant."""
        try:
            shape = json.loads(last_shape or "{}")
            last_key, announced = shape.get("key"), shape.get("announced") or []
        except (ValueError, AttributeError):
            return  # unreadable: nothing to hold the key to
        signing = public_key.fingerprint.lower()
        if not isinstance(last_key, str) or last_key.lower() == signing:
            return
        if signing in [str(fpr).lower() for fpr in announced]:
            if taking_over is None or state is None or now is None:
                raise PublishRefused(
                    f"the signing key {signing.upper()} was announced, but that announcement "
                    "is no longer recorded (withdrawn, replaced by another, or the publisher "
                    "state is missing or from another home): "
                    f"put the key {last_key.upper()} back, or switch at once with `debrepo "
                    f"rebuild --replace` {LAMBDA_REPLACE}"
                )
            self._refuse_an_early_switch(public_key, snapshot, taking_over, state, now)
            log.info("signing key %s takes over from %s", signing.upper(), last_key.upper())
            return
        raise PublishRefused(
            f"the signing key {public_key.fingerprint.upper()} is not the key "
            f"{last_key.upper()} the repository was last signed with, which clients "
            "trust: each would fail `apt update` (NO_PUBKEY) until it gets the new "
            "keyring. If the key file or secret is wrong, restore it. To change the key "
            "without breaking clients, put the old one back, announce the new one "
            "(`debrepo key announce FILE`) and build a new kiro-repo first; to change it "
            f"at once, run `debrepo rebuild --replace` {LAMBDA_REPLACE}, then "
            "`debrepo build-repo-package --version NEXT`"
        )

    def _refuse_an_early_switch(
        self,
        public_key: PublicKey,
        snapshot: Snapshot,
        taking_over: AnnouncedKey,
        state: PublishState,
        now: datetime,
    ) -> None:
        """PublishError unless the newest kiro-repo is published, installs the announced
        key about to sign and is at least as high as any kiro-repo published before (the
        one clients may hold), and both the announcement and that kiro-repo have been out
        for `key_switch_days`: clients need the time to upgrade before the key signs."""
        from debrepo.core.plan import newest_convenience_package, pool_files_for

        signing = public_key.fingerprint.upper()
        back = "put the old key back until then"
        newest = newest_convenience_package(
            pool_files_for(snapshot.records, self.settings.component)
        )
        problem = self._kiro_repo_problem(newest, state, signing.lower())
        if problem:
            raise PublishRefused(
                f"the signing key {signing} was announced, but {problem}; {back}, and "
                "switch once clients have upgraded"
            )
        clocks: dict[str, str | None] = {"its announcement": taking_over.since}
        if newest is not None:
            clocks["the kiro-repo that installs it"] = state.convenience_since
        read = {what: _moment(when) for what, when in clocks.items()}
        starts = {what: when for what, when in read.items() if when is not None}
        unknown = [what for what in read if what not in starts]
        if unknown:
            raise PublishRefused(
                f"the signing key {signing} was announced, but when {' and '.join(unknown)} "
                "came out is not recorded (a state from an earlier debrepo, or edited): "
                "announce the key again and build a new kiro-repo version, which start the "
                f"clock; {back}"
            )
        what, start = max(starts.items(), key=lambda item: item[1])
        days = self.settings.key_switch_days
        ready = start + timedelta(days=days)
        if now < ready:
            raise PublishRefused(
                f"the signing key {signing} was announced, but clients get {days:g} days "
                f"(key_switch_days) from {what} to trust it before it signs: it may sign "
                f"from {ready.isoformat(timespec='seconds')}; {back}, or switch at once "
                f"with `debrepo rebuild --replace` {LAMBDA_REPLACE}"
            )

    def _kiro_repo_problem(
        self, newest: PoolFile | None, state: PublishState, fingerprint: str
    ) -> str | None:
        """Why the newest kiro-repo does not carry `fingerprint` to every client that
        keeps kiro-repo up to date, or None."""
        from debrepo.services.repo_package import installed_keyring
        from debrepo.signing.openpgp import fingerprints_in
        from debrepo.versions import compare_versions

        high = state.kiro_repo_high
        if not state.kiro_repo_high_complete:
            known = f" (the highest known is {high[0]})" if high else ""
            return (
                "debrepo cannot tell the highest kiro-repo ever published here (the publisher "
                "state was written by an older debrepo, or lost), and clients keep the highest "
                f"they installed{known}: build a kiro-repo version higher than any ever "
                "published here, then, once sure, switch with `debrepo rebuild --replace`"
            )
        if newest is None:
            if high is None:
                return None  # never one: clients set up by hand fetch the keyring
            return (
                f"no kiro-repo is published now, while clients may hold kiro-repo {high[0]}: "
                f"build a version above {high[0]} (it installs every key of the keyring)"
            )
        version = newest.record.version
        if high is not None and (
            compare_versions(version, high[0]) < 0
            or (compare_versions(version, high[0]) == 0 and newest.record.sha256_hash != high[1])
        ):
            return (
                f"the newest kiro-repo ({version}) would not replace kiro-repo {high[0]} as "
                f"published before, which clients may hold: build a version above {high[0]}"
            )
        deb = self.repo.get(newest.key)
        if deb is None or state.convenience_sha256 != newest.record.sha256_hash:
            return f"the newest kiro-repo ({version}) is not published yet: publish it first"
        try:
            installed = installed_keyring(deb, self.settings.keyring_name)
        except ValueError as exc:
            return f"the newest kiro-repo ({version}) cannot be read ({exc})"
        if installed is None or fingerprint not in fingerprints_in(installed):
            return (
                f"the newest kiro-repo ({version}) does not install it: its users would fail "
                "`apt update` (NO_PUBKEY); run `debrepo build-repo-package --version NEXT` "
                "(a new kiro-repo installs every key of the keyring)"
            )
        return None

    def _refuse_a_key_other_than_the_published_one(
        self, public_key: PublicKey, snapshot: Snapshot
    ) -> None:
        """`_refuse_a_key_clients_do_not_trust` for a repository with no record of its
        last publish: the key is the first one its published keyring holds, if any (the
        others were announced, when is not known here)."""
        published = self.repo.get(f"{self.settings.keyring_name}.gpg")
        if published is None or published == public_key.binary:
            return
        from debrepo.signing.openpgp import fingerprints_in

        held = fingerprints_in(published)
        if held:
            shape = {"key": held[0], "announced": held[1:]}
            self._refuse_a_key_clients_do_not_trust(json.dumps(shape), public_key, snapshot)

    def _unaccounted_by_hash(self, suite: str, generations: Sequence[Sequence[str]]) -> list[str]:
        recorded = {key for generation in generations for key in generation}
        return sorted(
            found.key
            for found in self.repo.list(f"{dist_dir(suite)}/")
            if "/by-hash/" in found.key and found.key not in recorded
        )

    def _published_release(self) -> bytes | None:
        """The Release published before this publish wrote its own (read once)."""
        if self._release_read is None:
            self._release_read = (self.repo.get(f"dists/{self.settings.suite}/Release"),)
        return self._release_read[0]

    def _published_digests(self, state: PublishState) -> dict[str, Digest]:
        """Digests of the published indices that still have the bytes Release lists
        (whose compressed forms the plan may then reuse instead of compressing again)."""
        dists = f"dists/{self.settings.suite}"
        raw = self._published_release()
        if raw is None:
            return {}
        return {
            path: digest
            for path, digest in parse_release_digests(raw).items()
            if self._index_intact(f"{dists}/{path}", digest, state)
        }

    def _reusable_pieces(
        self, state: PublishState, intact: Mapping[str, Digest]
    ) -> dict[str, dict[str, tuple[bytes, int]]]:
        """The compressed pieces of the published indices, by index path, where the
        index still has the bytes its recorded layout was recorded for."""
        import hashlib  # see sha256_of

        from debrepo.core.compression import Piece, reusable_pieces

        dists = f"dists/{self.settings.suite}"
        found = {}
        for path, digest in intact.items():
            layout = state.index_pieces.get(f"{dists}/{path}")
            # A single piece changes with any change to the index, and an unchanged
            # index is reused whole: then reading the old one would only cost a request.
            if layout is None or len(layout.pieces) < 2 or layout.sha256 != digest.sha256:
                continue
            packed = self.repo.get(f"{dists}/{path}")
            if packed is None or hashlib.sha256(packed).hexdigest() != digest.sha256:
                continue
            pieces = [Piece(*piece) for piece in layout.pieces]
            found[path] = reusable_pieces(packed, pieces, path[path.rindex(".") :])
        return found

    def _stamps(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Key -> (size, ObjectInfo.version) of each of `keys` that exists."""
        stamps = {}
        for key in keys:
            if key in self._written:  # as its write answered: no second request
                stamps[key] = self._written[key]
                continue
            info = self.repo.stat(key)
            if info is not None and info.version is not None:
                stamps[key] = (info.size, info.version)
        return stamps

    def _index_stamps(self, plan: PublicationPlan) -> dict[str, tuple[int, str, str]]:
        return {
            key: (*stamp, index.digest.sha256)
            for key, index in zip(plan.index_keys, plan.indices, strict=True)
            for stamp in self._stamps([key]).values()
        }

    def _index_intact(
        self, key: str, digest: Digest, state: PublishState, *, restamp: bool = False
    ) -> bool:
        """Whether the published index `key` still has the bytes `digest` describes:
        untouched since this publisher wrote it, or else hashed again.

        `restamp`: an index vouched for by hashing gets a stamp in `state`, so that the
        next re-sign need not read it (a full publish stamps what it writes itself).
        """
        stamp = state.index_stamps.get(key)
        before: ObjectInfo | None = None
        if stamp is not None and stamp[2] == digest.sha256:
            before = self.repo.stat(key)
            if before is None:
                return False
            if (before.size, before.version) == stamp[:2]:
                return before.size == digest.size
        if restamp and before is None:
            before = self.repo.stat(key)
        import hashlib  # see sha256_of

        data = self.repo.get(key)
        if data is None or hashlib.sha256(data).hexdigest() != digest.sha256:
            return False
        version = before.version if restamp and before is not None else None
        if version is not None:
            after = self.repo.stat(key)
            # Unchanged across the read: the stamp names the very bytes just hashed.
            if after is not None and (after.size, after.version) == (len(data), version):
                state.index_stamps[key] = (len(data), version, digest.sha256)
        return True

    def settings_changed(self) -> str | None:
        """See `settings_changed`, with this publisher's signing key."""
        return settings_changed(
            repo=self.repo, staging=self.staging, settings=self.settings, signer=self.signer
        )

    def _fingerprint(self, info: ReleaseInfo, public_key: PublicKey) -> str:
        return publication_shape(self.settings, info, public_key)

    def _resign_unchanged(
        self, info: ReleaseInfo, state: PublishState, *, now: datetime
    ) -> PublishReport | None:
        """Re-date and re-sign the Release over intact, unchanged indices; None if the
        published tree is not intact and a full publish is needed."""
        dists = f"dists/{info.suite}"
        release = self._published_release()
        if release is None:
            return None
        state_before = state.to_json()
        # Recorded by a re-sign too: a state an earlier debrepo wrote gains it on the first
        # run, not only on the first change.
        state.store = self.store.identity
        digests = parse_release_digests(release)
        indices = []
        for path in index_paths(info):
            digest = digests.get(path)
            key = f"{dists}/{path}"
            if digest is None or not self._index_intact(key, digest, state, restamp=True):
                return None
            directory = key.rsplit("/", 1)[0]
            for hash_dir, hash_name in HASH_DIRECTORIES.items():
                if self.repo.stat(by_hash_path(directory, hash_dir, digest.get(hash_name))) is None:
                    return None
            indices.append(IndexFile(path, digest, None))
        root_files = [
            f"{self.settings.keyring_name}.gpg",
            f"{self.settings.keyring_name}.asc",
            INDEX_HTML,
        ]
        if state.convenience_sha256:
            root_files.append(CONVENIENCE_COPY)
        if self._stamps(root_files) != state.root_stamps:
            return None  # one missing, or written since (by hand): published again
        for package_id in state.skipped:
            log.warning(
                "skipping incomplete package record %s (unchanged since last publish)", package_id
            )
        plan_release = render_release(info, indices, now)
        report = PublishReport(packages=state.pool_count, resigned_only=True)
        # Stamps refreshed by hashing are kept. (A version 1 state, which carries the pool
        # map inline, is only ever rewritten whole, by a full publish.)
        if state.pool is None and state.to_json() != state_before:
            self._still_ours()
            self.staging.put(STATE_KEY, state.to_json(), delivery_for(STATE_KEY))
        report.skipped_incomplete = list(state.skipped)
        report.unchanged = len(indices) + len(root_files)
        self._write_signed_release(plan_release, f"{dists}/Release", report)
        return report

    # -- wave 1: pool ------------------------------------------------------------------
    def _update_pool(
        self,
        plan: PublicationPlan,
        pool: dict[str, tuple[int, str]],
        state: PublishState,
        report: PublishReport,
        trusted: set[str],
        listed: dict[str, int] | None,
    ) -> list[str]:
        """Make the plan's pool files present and retire the others; returns the retired
        files no kept generation names any more, deleted once the new Release is out."""
        newest = generation_id(plan.generations[0])
        retired_now = self._place_pool_files(plan, pool, report, trusted, state.retired, listed)
        for key in {f.key for f in plan.pool_files} & state.retired.keys():
            del state.retired[key]  # named again (its file replaced above): to be kept
        last_named_by = generation_id(state.generations[0]) if state.generations else newest
        state.retired.update(dict.fromkeys(retired_now, last_named_by))
        kept = {generation_id(g) for g in plan.generations}
        return sorted(k for k, generation in state.retired.items() if generation not in kept)

    def _staged_key(self, pool_file: PoolFile) -> str:
        record = pool_file.record
        from debrepo.core.records import staging_prefix_for

        if callable(self._configs):
            self._configs = self._configs()
        prefix = staging_prefix_for(record.package_name, self._configs.get(record.package_name))
        return staging_key(prefix, record.actual_filename)

    def _place_pool_files(
        self,
        plan: PublicationPlan,
        pool: dict[str, tuple[int, str]],
        report: PublishReport,
        trusted: set[str],
        retired: dict[str, str],
        listed: dict[str, int] | None = None,
    ) -> list[str]:
        """Make every pool file of the plan present; returns the pool keys published
        before that the plan no longer names (the caller decides when they go).

        `listed` is a listing of the whole pool (key to size) when the caller made one:
        it answers for the files the state does not know, instead of a lookup each.
        """
        unknown: list[PoolFile] = []
        other_bytes: list[PoolFile] = []  # known to hold another file of the same name
        for pool_file in plan.pool_files:
            record = pool_file.record
            expected = (record.file_size, record.sha256_hash)
            if pool.get(pool_file.key) == expected:
                continue
            if pool_file.key in trusted:
                pool[pool_file.key] = expected
                report.pool_placed.append(pool_file.key)
                continue
            if pool_file.key in pool or pool_file.key in retired:
                other_bytes.append(pool_file)
            else:
                unknown.append(pool_file)
        # Unknown to the state (first publish over an existing pool, lost state, migrated
        # records): a file of the recorded size is taken as it is. Reading it would mean
        # downloading every package; `debrepo verify` hashes them.
        # A file just staged for a record replaces whatever lies at its pool key.
        restaged = {f.key for f in unknown if trusted and self._staged_key(f) in trusted}
        if listed is None:
            sizes = self.repo.stat_many([f.key for f in unknown if f.key not in restaged])
        else:
            sizes = listed
        missing = other_bytes
        for pool_file in unknown:
            record = pool_file.record
            if pool_file.key not in restaged and sizes.get(pool_file.key) == record.file_size:
                pool[pool_file.key] = (record.file_size, record.sha256_hash)
            else:
                missing.append(pool_file)

        problems: list[str] = []
        in_place: list[PoolFile] = []
        for pool_file in missing:
            record = pool_file.record
            staged = self._staged_key(pool_file)
            info = self.staging.stat(staged)
            if info is None and self._holds(pool_file):
                # Written straight into the pool by `add --no-publish` over a file that
                # held another version's bytes: nothing to copy.
                in_place.append(pool_file)
            elif info is None:
                problems.append(
                    f"{record.package_id}: {pool_file.key} is missing or holds other bytes, and "
                    f"{staged} is not in the staging area {self.staging.description} (put the "
                    f".deb back at "
                    f"{pool_file.key}: `debrepo add` of that very file does, or remove "
                    f"{record.package_name} {record.version})"
                )
            elif staged not in trusted and sha256_of(self.staging, staged) != (
                record.file_size,
                record.sha256_hash,
            ):
                problems.append(
                    f"{record.package_id}: staged file {staged} does not match the stored size "
                    "and SHA256; rebuild or re-add that version"
                )
        if problems:
            raise PublishRefused(
                "; ".join(problems[:5])
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                + ""
            )
        for pool_file in in_place:
            pool[pool_file.key] = (pool_file.record.file_size, pool_file.record.sha256_hash)
        missing = [f for f in missing if f not in in_place]
        for done, pool_file in enumerate(missing, start=1):
            self.repo.copy_from(
                self.staging,
                self._staged_key(pool_file),
                pool_file.key,
                delivery_for(pool_file.key),
            )
            pool[pool_file.key] = (pool_file.record.file_size, pool_file.record.sha256_hash)
            report.pool_copied.append(pool_file.key)
            if self.progress:
                self.progress("pool", done, len(missing))
        live = {f.key for f in plan.pool_files}
        gone = [k for k in pool if k not in live]
        for key in gone:
            del pool[key]
        return gone

    def _holds(self, pool_file: PoolFile) -> bool:
        """Whether the pool file already has its record's bytes (read and hashed)."""
        record = pool_file.record
        info = self.repo.stat(pool_file.key)
        if info is None or info.size != record.file_size:
            return False
        return sha256_of(self.repo, pool_file.key) == (record.file_size, record.sha256_hash)

    # -- waves 2 and 3: by-hash, plain indices, root files -------------------------------
    def _put_if_changed(self, key: str, data: bytes, report: PublishReport) -> None:
        if self.repo.same_bytes(key, data):
            report.unchanged += 1
        else:
            version = self.repo.put(key, data, delivery_for(key))
            if version is not None:
                self._written[key] = (len(data), version)
            report.written.append(key)

    def _write_indices(
        self, plan: PublicationPlan, report: PublishReport, *, check_existing: bool = False
    ) -> None:
        """By-hash files, then plain indices and root files. A by-hash file already there
        is trusted (its name is its hash) unless `check_existing`: then its bytes are
        compared and a damaged one is written again."""
        # An index's by-hash bytes are sent once, under its first hash; its other by-hash
        # name shares them (a hard link locally, a server-side copy on S3). The plain path
        # is written on its own: hand edits of it must not reach the by-hash files.
        sent: dict[str, str] = {}  # plain key -> a by-hash key just written with its bytes
        plain_bytes: dict[str, bytes | None] = {}
        for by_hash in plan.by_hash:
            delivery = delivery_for(by_hash.key)
            if self.repo.stat(by_hash.key) is not None and (
                not check_existing or self._by_hash_intact(by_hash, plain_bytes)
            ):
                report.unchanged += 1
                continue
            if by_hash.plain_key in sent:
                self.repo.copy_from(
                    self.repo, sent[by_hash.plain_key], by_hash.key, delivery, shared=True
                )
            elif by_hash.data is not None:
                self.repo.put(by_hash.key, by_hash.data, delivery)
                sent[by_hash.plain_key] = by_hash.key
            else:
                self.repo.copy_from(
                    self.repo, by_hash.plain_key, by_hash.key, delivery, shared=True
                )
            report.written.append(by_hash.key)
        for key, index in zip(plan.index_keys, plan.indices, strict=True):
            if index.data is None:
                report.unchanged += 1
            else:
                self._put_if_changed(key, index.data, report)
        for upload in plan.root_files:
            self._put_if_changed(upload.key, upload.data, report)

    def _record_indices(
        self, plan: PublicationPlan, state: PublishState, info: ReleaseInfo
    ) -> list[str]:
        """Record the indices just written, for the next publish to check and reuse;
        returns those the last publish wrote that the new Release no longer lists (an
        architecture or component dropped). A client of an older Release reads its
        by-hash copy, kept with its generation, so the plain file goes with the Release.
        Not those of another suite: its Release stays, for clients not yet moved."""
        suite_folder = f"{dist_dir(info.suite)}/"
        dropped_indices = sorted(
            key
            for key in state.index_stamps.keys() - set(plan.index_keys)
            if key.startswith(suite_folder)
        )
        state.index_stamps = self._index_stamps(plan)
        state.index_pieces = {
            key: IndexLayout(index.digest.sha256, list(index.pieces))
            if index.pieces is not None
            else state.index_pieces[key]
            for key, index in zip(plan.index_keys, plan.indices, strict=True)
            if index.pieces is not None or key in state.index_pieces
        }
        return dropped_indices

    def _by_hash_intact(self, by_hash: ByHashFile, plain_bytes: dict[str, bytes | None]) -> bool:
        expected = by_hash.data
        if expected is None:  # reused: the plain index was found intact
            if by_hash.plain_key not in plain_bytes:
                plain_bytes[by_hash.plain_key] = self.repo.get(by_hash.plain_key)
            expected = plain_bytes[by_hash.plain_key]
        return expected is not None and self.repo.same_bytes(by_hash.key, expected)

    def _sources_file(self, info: ReleaseInfo) -> str | None:
        """The APT source kiro-repo installs, from its templates, for the install page;
        None when they cannot be read (then the page renders the default template, the
        same file for an unchanged checkout)."""
        from debrepo.packages_config import load_package_config
        from debrepo.services.repo_package import (
            RepoPackageTemplates,
            sources_file,
            template_dir_for,
        )

        try:
            # kiro-repo's definition alone (it may name its own templates): loading every
            # definition would warn, in a rebuild run outside the project, of definitions
            # a rebuild does not use.
            definition = self.settings.config_dir / f"{CONVENIENCE_PACKAGE}.yaml"
            config: PackageConfig | None = None
            if not callable(self._configs):
                config = self._configs.get(CONVENIENCE_PACKAGE)
            elif definition.is_file():
                config = load_package_config(definition)
            folder = (
                template_dir_for(config, self.settings.config_dir)
                if config is not None
                else self.settings.config_dir.parent.parent / "templates" / CONVENIENCE_PACKAGE
            )
            return sources_file(
                RepoPackageTemplates.load(folder),
                repo_url=self.settings.public_url,
                suite=info.suite,
                component=info.components[0],
                key_name=self.settings.key_name,
            )
        except DebrepoError as exc:
            log.debug("the install page renders the default APT source: %s", exc)
            return None

    def _still_ours(self) -> None:
        """Before a write another publisher could overwrite (the state, a plain index, a
        deletion): LockError if the lock may have gone to another process meanwhile.
        Asks no one; the Release files ask the lock's backend (`fence()`)."""
        if self.fence is not None:
            self.fence(renew=False)

    # -- wave 4: the signed Release files, InRelease last ---------------------------------
    def _write_release(self, plan: PublicationPlan, report: PublishReport) -> None:
        self._write_signed_release(plan.release, plan.release_key, report)

    def _write_signed_release(
        self, release: bytes, release_key: str, report: PublishReport
    ) -> None:
        if self.fence is not None:
            self.fence()
        self._release_read = None  # replaced below
        detached = self.signer.detached_signature(release)
        inline = self.signer.clearsign(release)
        base = release_key.rsplit("/", 1)[0]
        for key, data in (
            (f"{base}/Release.gpg", detached),
            (release_key, release),
            (f"{base}/InRelease", inline),
        ):
            self.repo.put(key, data, delivery_for(key))
            report.written.append(key)
        for line in release.decode().splitlines():
            if line.startswith("Date: "):
                report.release_date = line[6:]

    # -- after InRelease: convenience copy ---------------------------------------------
    def _update_convenience_copy(
        self,
        plan: PublicationPlan,
        state: PublishState,
        report: PublishReport,
        *,
        refresh: bool,
        now: datetime,
    ) -> None:
        source = plan.convenience_source
        if source is None:
            if self.repo.stat(CONVENIENCE_COPY) is not None:
                self.repo.delete(CONVENIENCE_COPY)
                report.deleted.append(CONVENIENCE_COPY)
            state.convenience_sha256 = state.convenience_since = None
            return
        record = source.record
        report.convenience_version = record.version
        from debrepo.versions import compare_versions

        high = state.kiro_repo_high
        if high is None or compare_versions(record.version, high[0]) > 0:
            state.kiro_repo_high = (record.version, record.sha256_hash)
        info = self.repo.stat(CONVENIENCE_COPY)
        if (
            not refresh
            and source.key not in report.pool_copied
            and info is not None
            and info.size == record.file_size
            and state.convenience_sha256 == record.sha256_hash
            and state.root_stamps.get(CONVENIENCE_COPY) == (info.size, info.version)
        ):
            report.unchanged += 1
            return
        delivery = delivery_for(CONVENIENCE_COPY)._replace(
            metadata=(("package", record.package_name), ("version", record.version)),
        )
        try:
            self.repo.copy_from(self.repo, source.key, CONVENIENCE_COPY, delivery)
        except ObjectStoreError as exc:
            raise PublishError(
                f"cannot update {CONVENIENCE_COPY} from {source.key}: {exc}"
            ) from None
        if state.convenience_sha256 != record.sha256_hash:
            state.convenience_since = now.isoformat(timespec="seconds")
        state.convenience_sha256 = record.sha256_hash
        report.written.append(CONVENIENCE_COPY)

    def _record_root_stamps(
        self, plan: PublicationPlan, state: PublishState, report: PublishReport
    ) -> None:
        """So that a re-sign can tell a root file lost or written since (by hand)."""
        convenience_rewritten = CONVENIENCE_COPY in report.written
        stamps = self._stamps(
            [u.key for u in plan.root_files] + ([CONVENIENCE_COPY] if convenience_rewritten else [])
        )
        if state.convenience_sha256 and not convenience_rewritten:
            left_alone = state.root_stamps.get(CONVENIENCE_COPY)  # it matched this stamp
            if left_alone is not None:
                stamps[CONVENIENCE_COPY] = left_alone
        state.root_stamps = stamps

    # -- wave 5: deletions, once the new Release is out --------------------------------
    def _delete_what_no_release_names(
        self,
        plan: PublicationPlan,
        dropped_indices: Sequence[str],
        expired: Sequence[str],
        state: PublishState,
        report: PublishReport,
    ) -> None:
        """By-hash generations past those kept, plain indices the Release no longer lists,
        pool files only past generations named; the pool map lists a file until it is gone."""
        for key in [*plan.obsolete_by_hash, *dropped_indices, *expired]:
            self.repo.delete(key)
            report.deleted.append(key)
        if expired:
            for key in expired:
                del state.retired[key]
            self.staging.put(POOL_STATE_KEY, state.pool_to_json(), delivery_for(POOL_STATE_KEY))


def _moment(text: str | None) -> datetime | None:
    """A time recorded in the state; None if missing, unreadable or without a zone."""
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _name_version(package_id: str) -> tuple[str, str]:
    name, _, version = package_id.partition("#")
    return name, without_epoch(version)


def _version_of_pool_key(key: str) -> tuple[str, str]:
    """(name, version without epoch) of `.../NAME/NAME_VERSION_ARCH.deb`."""
    *_, name, filename = key.split("/")
    return name, filename[len(name) + 1 :].rsplit("_", 1)[0]


def store_changed_since_publish(
    store: MetadataStore,
    staging: ObjectStore,
    *,
    dry_run: bool = False,
    repo: ObjectStore | None = None,
) -> bool:
    """Whether the store holds changes no publish has included yet (False if the
    backend cannot tell). With `repo`: also when the last publish went to another
    repository (two configurations sharing a staging area), so this one is brought up
    to date."""
    state = PublishState.from_json(staging.get(STATE_KEY))
    if repo is not None and not state.describes(repo):
        return True
    revision = store.revision(seed=not dry_run)  # a dry run writes nothing, not even this
    if revision is None:
        return False
    return state.revision != revision


def publication_shape(settings: Settings, info: ReleaseInfo, public_key: PublicKey) -> str:
    """Everything besides the records that shapes the published bytes, as canonical
    JSON (kept whole rather than hashed: it is short, and readable in the state)."""
    shape = {
        "render": RENDER_VERSION,
        "release": [
            info.origin, info.label, info.suite, info.codename, info.version,
            list(info.architectures), list(info.components), info.description,
            info.valid_for.total_seconds(),
        ],
        "public_url": settings.public_url,
        "keyring": settings.keyring_name,
        "key": public_key.fingerprint,
        "by_hash_keep": settings.by_hash_keep,
    }  # fmt: skip
    if public_key.announced:  # absent otherwise: the shapes published before stay equal
        shape["announced"] = list(public_key.announced)
    return json.dumps(shape, sort_keys=True, separators=(",", ":"))


SETTINGS_CHANGED = "the settings or the signing key changed since the last publish"
RENDERING_CHANGED = "this debrepo renders the indices otherwise than the last publish did"


def settings_changed(
    *, repo: ObjectStore, staging: ObjectStore, settings: Settings, signer: Signer | None
) -> str | None:
    """Why a publish is due even with nothing new in the store, or None: a setting that
    shapes the published bytes (a changed Valid-Until), the signing key (one put into
    the secret; unless `signer` is None: then the settings alone, and no key is loaded)
    or the rendering (RENDER_VERSION, after an upgrade) differs from what the last
    publish here used."""
    state = PublishState.from_json(staging.get(STATE_KEY))
    if state.fingerprint is None or not state.describes(repo):
        return None  # no account of a publish here to compare with
    if signer is not None:
        public_key = published_keyring(signer, state.announced)
    else:  # the key and keyring as last published: only the settings can differ
        try:
            last = json.loads(state.fingerprint)
            public_key = PublicKey(b"", b"", last["key"], tuple(last.get("announced", ())))
        except (ValueError, TypeError, KeyError):
            return SETTINGS_CHANGED  # an unreadable shape: a publish writes a readable one
    shape = publication_shape(settings, release_info(settings), public_key)
    if state.fingerprint == shape:
        return None
    # Only the rendering (a debrepo upgrade): say so, rather than send anyone looking
    # for a changed setting or key.
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        before, after = json.loads(state.fingerprint), json.loads(shape)
        if before.pop("render") != after.pop("render") and before == after:
            return RENDERING_CHANGED
    return SETTINGS_CHANGED


def pool_folder_change(state: PublishState, components: Sequence[str]) -> str | None:
    """Why `components` cannot be published where `state` published: the first one names
    the pool folder of every published file. None if it is the same (or unknown)."""
    published = _pool_component(state.fingerprint)
    if published in (None, components[0]):
        return None
    return (
        f"components: the first component names the pool folder, and this repository's "
        f"is pool/{published}/; keep {published} first in components (now "
        f"{', '.join(components)})"
    )


def _pool_component(shape: str | None) -> str | None:
    """The first component a publish recorded in its shape (`Publisher._fingerprint`):
    the one that names its pool folder; None if unknown."""
    try:
        release = json.loads(shape or "null")["release"]
        component = release[6][0]
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    return component if isinstance(component, str) else None


def generation_id(generation: Sequence[str]) -> str:
    """One text for a by-hash generation (the keys of its files), to recognise it by."""
    return " ".join(sorted(generation))


def never_published(*, repo: ObjectStore, staging: ObjectStore, key: str) -> bool:
    """True if no index, current or kept, can name pool file `key`: it was added without
    publishing since. Asked before the publish that follows a removal, whose state no
    longer tells.

    It takes positive evidence: the publisher's pool map is readable and neither lists
    the file nor keeps it for a kept generation (every publish accounts for every file
    in the pool); or there is no publisher state and no Release anywhere under dists/.
    Otherwise the answer is False: a leftover file costs space (the next publish finds
    it), a deleted published one breaks every client whose index names it.
    """
    known = _known_pool(staging)
    if known is not None:
        return key not in known.pool and key not in known.retired
    if (
        staging.stat(STATE_KEY) is None
        and staging.stat(POOL_STATE_KEY) is None
        and not _any_release(repo)
    ):
        return True
    log.warning(
        "keeping %s: the publisher state under %s is missing, unreadable or from an "
        "earlier debrepo, so whether a published index names it is unknown (the next "
        "publish retires it if none does)",
        key,
        STATE_KEY.rsplit("/", 1)[0],
    )
    return False


def published_but_unfinished(exc: DebrepoError | OSError) -> PublishError:
    """A failure after the new Release went out: the publish is visible to clients, its
    clean-up (convenience copy, old files, publisher state) is not done."""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        exc = PublishError(f"{where}{exc.strerror or exc}")
    error = PublishError(
        f"{exc}; the new Release is published (clients see it), but the publish did not "
        "finish: fix that, then run `debrepo rebuild`"
    )
    error.exit_code = exc.exit_code
    error.release_written = True
    return error


def release_went_out(exc: BaseException) -> bool:
    """Whether `exc` (an error, or an interruption) stopped a publish after its new
    Release was written: clients see that publish, only its clean-up is owed."""
    return getattr(exc, "release_written", False) is True


def publish_failed(
    exc: DebrepoError | OSError, outcome: str, *, then: str = "run `debrepo rebuild`"
) -> PublishError:
    """The error of a publish that failed after the store changed: what failed, what
    the store holds now (`outcome`), and how to publish it. One that failed after its
    Release went out (`published_but_unfinished`) says so instead of `outcome`."""
    if isinstance(exc, PublishError) and exc.release_written:
        return exc
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        exc = PublishError(f"{where}{exc.strerror or exc}")
    error = PublishError(f"{exc}; {outcome}: fix that, then {then}")
    error.exit_code = exc.exit_code
    return error


def _gunzip(data: bytes) -> bytes:
    import gzip
    import zlib

    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"not a whole gzip file: {exc}") from None


def _unxz(data: bytes) -> bytes:
    import lzma

    try:
        return lzma.decompress(data)
    except (lzma.LZMAError, EOFError) as exc:
        raise ValueError(f"not a whole xz file: {exc}") from None


def _unlzma(data: bytes) -> bytes:
    import lzma

    try:
        return lzma.decompress(data, format=lzma.FORMAT_ALONE)
    except (lzma.LZMAError, EOFError) as exc:
        raise ValueError(f"not a whole lzma file: {exc}") from None


def _bunzip2(data: bytes) -> bytes:
    import bz2

    try:
        return bz2.decompress(data)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"not a whole bzip2 file: {exc}") from None


def _unzstd(data: bytes) -> bytes:
    import zstandard

    try:
        reader = zstandard.ZstdDecompressor().decompressobj()
        unpacked = reader.decompress(data)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a zstd file: {exc}") from None
    if not reader.eof:
        raise ValueError("not a whole zstd file: cut short")
    return unpacked


# Every compression apt reads a Packages index in, plain first.
_UNPACKERS: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    ("", bytes),
    (".gz", _gunzip),
    (".xz", _unxz),
    (".bz2", _bunzip2),
    (".lzma", _unlzma),
    (".zst", _unzstd),
)


def _listed_versions(packages: bytes) -> set[tuple[str, str]]:
    """(Package, Version) of every stanza of a Packages file, whoever wrote it."""
    from debian import deb822

    text = packages.decode("utf-8", "replace").splitlines()
    return {
        (stanza["Package"], stanza["Version"])
        for stanza in deb822.Packages.iter_paragraphs(text, use_apt_pkg=False)
        if "Package" in stanza and "Version" in stanza
    }


def _any_release(repo: ObjectStore) -> bool:
    """Whether any suite, configured or not, has a Release or InRelease."""
    return any(
        info.key.rsplit("/", 1)[-1] in ("Release", "InRelease")
        and info.key.count("/") == 2  # dists/<suite>/..., not a component's Release
        for info in repo.list("dists/")
    )


def pool_file_keeper(
    repo: ObjectStore, files: StateFiles, store: MetadataStore
) -> Callable[[str, str, int, str], str | None]:
    """A check for ingest: why a new file of (size, SHA256) for `package_id` may not
    replace pool file `key`, or None.

    Not when `key` holds other bytes that an index may name: a published file whose
    record the store lost (or whose removal no publish has included yet), or any file
    of a repository this publisher has no account of (a mistyped --home next to the
    right --repo would corrupt another store's release). A file the account retired (a
    removed version kept for older indices) is replaced, as re-adding that version
    always did, with a warning when its bytes differ. The usual case costs no lookup in
    the pool.
    """
    state = PublishState.from_json(files.state)
    ours = state.describes(repo)
    known = _known_pool_in(files) if ours else None
    if known is None and ours and files.state and state.pool is not None:
        # A version 1 state: its pool map is inline, and it retired nothing (the files
        # of removed versions stayed in the pool, to be replaced when added again).
        known = PoolMap(pool=state.pool, retired={})
    if known is None and not _any_release(repo):
        return lambda key, package_id, size, sha256: None  # nothing published there

    def problem(key: str, package_id: str, size: int, sha256: str) -> str | None:
        if known is not None and key not in known.pool:
            held = repo.stat(key) if key in known.retired else None
            if held is not None and (held.size != size or sha256_of(repo, key)[1] != sha256):
                log.warning(
                    "%s was removed before: these are other bytes under the same file name, "
                    "which a client still holding an index from before cannot download "
                    "until its next `apt update` (a new version number avoids that)",
                    package_id.replace("#", " "),
                )
            return None  # retired, or never published
        if known is not None:
            same = known.pool[key] == (size, sha256)
        else:
            info = repo.stat(key)
            same = info is None or (info.size == size and sha256_of(repo, key) == (size, sha256))
        if same:
            return None
        what = f"{key} already holds other bytes than {package_id.replace('#', ' ')}"
        stored = store.get(package_id)
        if stored is not None and (stored.file_size, stored.sha256_hash) == (size, sha256):
            # Added again to mend it, but nothing here says the file is this repository's.
            return (
                f"{what} as this store records it, and no publisher state of this "
                f"repository ({repo.description}) tells a damaged copy from another store's "
                "file: check --home and --repo; if the file is this repository's, delete it "
                "and add the .deb again"
            )
        if store.withdrawn_at(package_id) is not None:
            return (
                f"{what}, which the published index still names: its removal is not "
                "published yet (`debrepo rebuild` publishes it; then add it again)"
            )
        return (
            f"{what}, which an index may name (a published version whose record the "
            "store lost, or a repository published from another store?)"
        )

    return problem


def _known_pool(staging: ObjectStore) -> PoolMap | None:
    """The pool map as the last publish left it, with retired files an earlier state
    format kept outside it; None if unknown."""
    raw = staging.get(STATE_KEY)
    return _known_pool_in(StateFiles(raw, staging.get(POOL_STATE_KEY) if raw else None))


def _known_pool_in(files: StateFiles) -> PoolMap | None:
    if not files.state:
        return None
    try:
        state = PublishState.parse(files.state)
        if state.pool is not None:  # version 1: no record of the files it left behind
            return None
        if not files.pool:
            return None
        known = PublishState.parse_pool(files.pool)
    except UNREADABLE:
        return None
    return known._replace(retired={**state.retired, **known.retired})
