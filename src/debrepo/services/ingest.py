"""Ingest: .deb files in, records in the store and the files where they belong.

A file is read exactly once: while it is hashed and checked, its bytes are copied to a
temporary name next to its destination (the pool, or the staging area for packages the
build script makes), named after the package its control file declares. All or
nothing: only when every file of the batch is good are the copies moved into place
and the records written, in one transaction. A bad file changes nothing.

Large batches are read by worker processes; each file costs a directory and a file
creation whatever the language, so spreading them over the cores is what pays.
Copies wait in one folder of the target (`.tmp-ingest-*`) until committed, so that an
interrupted batch leaves nothing behind: the folder goes with the batch, or, after a
kill, with the next ingest into that target.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from debrepo.core.control import (
    architecture_problem,
    canonical_filename,
    field_lookup,
    package_name_problem,
    version_problem,
    without_epoch,
)
from debrepo.core.layout import delivery_for, pool_path, staging_key
from debrepo.core.records import Provenance, build_record, staging_prefix_for
from debrepo.debfile import inspect_deb
from debrepo.errors import (
    DuplicatePackageError,
    InvalidPackageError,
    ObjectStoreError,
    PackageContentError,
    PackageReadError,
    StoreError,
)
from debrepo.model import PackageRecord
from debrepo.objects.filesystem import FilesystemObjectStore
from debrepo.packages_config import PackageConfig
from debrepo.ports import MetadataStore, ObjectStore
from debrepo.scratch import drop_scratch, new_scratch
from debrepo.versions import dpkg_identity

if TYPE_CHECKING:
    from debrepo.settings import Settings

log = logging.getLogger("debrepo.ingest")

PARALLEL_FROM = 64  # files; below this a process pool costs more than it saves
INCOMING_PREFIX = ".tmp-ingest-"  # a temporary name: never listed, never published
MAX_LISTED_ERRORS = 5


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One file to ingest and what its source says about it."""

    path: Path
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class Destination:
    """Where ingested files go: the repository's pool, or the staging area, of a
    repository publishing `component` for `architectures` (and `all`)."""

    kind: Literal["pool", "staging"]
    component: str
    architectures: tuple[str, ...]

    @classmethod
    def of(cls, kind: Literal["pool", "staging"], settings: Settings) -> Destination:
        return cls(kind, settings.component, settings.architectures)

    def key_for(self, name: str, filename: str, config: PackageConfig | None) -> str:
        if self.kind == "pool":
            return pool_path(self.component, name, filename)
        return staging_key(staging_prefix_for(name, config), filename)


@dataclass(frozen=True, slots=True)
class _Context:
    configs: dict[str, PackageConfig]
    now: datetime
    destination: Destination
    local_root: str | None  # the target store's folder, when workers can write into it
    incoming: str | None  # where they write, in that folder, until the commit
    scratch: str


@dataclass(frozen=True, slots=True)
class _Outcome:
    record: PackageRecord | None
    error: str | None
    key: str = ""
    copy: str = ""
    refused: bool = False  # for what the file holds (not a failure to read or copy it)


_worker_context: _Context | None = None
_worker_store: FilesystemObjectStore | None = None


def _init_reader_process(context: _Context, parent: int | None) -> None:
    # Ctrl-C and SIGTERM are the parent's to handle (it stops the batch and clears its
    # folder); a reader whose parent dies, however, goes with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    _init_worker(context)


def _init_worker(context: _Context) -> None:
    global _worker_context, _worker_store  # one of each per worker process
    _worker_context = context
    _worker_store = FilesystemObjectStore(Path(context.local_root)) if context.local_root else None


def _examine(job: tuple[int, IngestItem]) -> _Outcome:
    """Read one .deb, copying it next to its destination, and build its record."""
    index, item = job
    context, local = _worker_context, _worker_store
    assert context is not None
    placed: dict[str, str] = {}
    handles: list[BinaryIO] = []

    def open_copy(control: list[tuple[str, str]]) -> BinaryIO:
        name = field_lookup(control, "Package") or ""
        version = field_lookup(control, "Version") or ""
        architecture = field_lookup(control, "Architecture") or ""
        for problem in (
            package_name_problem(name),
            version_problem(version),
            architecture_problem(architecture),
        ):
            if problem:
                raise InvalidPackageError(f"{item.path}: control file: {problem}")
        filename = canonical_filename(name, version, architecture)
        try:
            placed["key"] = context.destination.key_for(name, filename, context.configs.get(name))
        except ValueError as exc:
            raise InvalidPackageError(f"{item.path}: {exc}") from None
        if local is not None:
            placed["copy"], handle = local.reserve(placed["key"], incoming=context.incoming)
        else:
            placed["copy"] = os.path.join(context.scratch, f"{index}.deb")
            handle = open(placed["copy"], "wb")  # noqa: SIM115 - closed in the finally below
        handles.append(handle)
        return handle

    try:
        # Straight into the pool, a large copy may bypass the page cache; a scratch copy
        # is read back at once for the upload, so it goes through the cache.
        inspection = inspect_deb(
            item.path, open_copy=open_copy, name=str(item.path), direct_copy=local is not None
        )
    except InvalidPackageError as exc:  # a read failure says nothing of the bytes
        _discard(placed.get("copy"))
        refused = not isinstance(exc, PackageReadError)
        return _Outcome(None, str(exc), placed.get("key", ""), refused=refused)
    except ObjectStoreError as exc:
        _discard(placed.get("copy"))
        return _Outcome(None, f"{item.path}: cannot copy: {exc}", placed.get("key", ""))
    except OSError as exc:
        _discard(placed.get("copy"))
        return _Outcome(None, _copy_failed(item, context, exc), placed.get("key", ""))
    finally:
        closed = _close_all(handles)
    if closed is not None:  # the copy's last bytes could not be written (a full disk)
        _discard(placed.get("copy"))
        return _Outcome(None, _copy_failed(item, context, closed), placed["key"])
    name = field_lookup(inspection.control, "Package") or ""
    try:
        record = build_record(
            inspection.control,
            inspection.facts,
            item.provenance,
            context.configs.get(name),
            processed_at=context.now,
            source=str(item.path),
        )
    except InvalidPackageError as exc:
        _discard(placed.get("copy"))
        return _Outcome(None, str(exc), placed["key"], refused=True)
    return _Outcome(record, None, placed["key"], placed["copy"])


def _copy_failed(item: IngestItem, context: _Context, error: OSError) -> str:
    """The copy's error, naming where it was written: a full disk is that one's."""
    into = context.local_root or context.scratch
    return f"{item.path}: cannot copy it into {into}: {error.strerror}"


def _close_all(handles: Sequence[BinaryIO]) -> OSError | None:
    """Close every handle; the first error, if any."""
    error: OSError | None = None
    for handle in handles:
        try:
            handle.close()
        except OSError as exc:
            error = error or exc
    return error


def _id_without_epoch(package_id: str) -> str:
    name, _, version = package_id.partition("#")
    return f"{name}#{without_epoch(version)}"


def _discard(path: str | None) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _examine_all(
    items: Sequence[IngestItem], context: _Context, progress: Callable[[int], None] | None
) -> list[_Outcome]:
    jobs = list(enumerate(items))
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) < PARALLEL_FROM or workers < 2:
        _init_worker(context)
        outcomes = []
        for job in jobs:
            outcomes.append(_examine(job))
            if progress:
                progress(1)
        return outcomes
    from concurrent.futures import ProcessPoolExecutor  # deferred: only large batches fork

    outcomes = []
    chunk = 32  # small chunks keep both workers busy to the end; IPC per chunk is cheap
    import multiprocessing

    # Only a forked reader's parent is this process (with forkserver, the default from
    # Python 3.14, it is the server).
    parent = os.getpid() if multiprocessing.get_start_method() == "fork" else None
    pool = ProcessPoolExecutor(
        workers, initializer=_init_reader_process, initargs=(context, parent)
    )
    try:
        for outcome in pool.map(_examine, jobs, chunksize=chunk):
            outcomes.append(outcome)
            if progress:
                progress(1)
    except BaseException:
        pool.shutdown(cancel_futures=True)  # interrupted or failed: no more files started
        raise
    pool.shutdown()
    return outcomes


def _die_with_parent(parent: int | None) -> None:
    """Linux: have the kernel kill this process when its parent (`parent`, the pid it
    was forked from; None: not known) exits, even by SIGKILL, instead of leaving it
    blocked on a queue nobody will write to again."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    # The kernel signals only a parent's death after the call: one between the fork and
    # here (the parent killed while starting its readers) shows as a new parent.
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def ingest_files(
    items: Sequence[IngestItem],
    *,
    store: MetadataStore,
    target: ObjectStore,
    destination: Destination,
    configs: dict[str, PackageConfig],
    now: datetime,
    progress: Callable[[int], None] | None = None,
    already_stored: list[PackageRecord] | None = None,
    put_back: list[PackageRecord] | None = None,
    may_place: Callable[[str, str, int, str], str | None] | None = None,
) -> list[PackageRecord]:
    """Check, place and record every file, or raise and change nothing.

    A version already in the store is refused; with `already_stored`, a file with the
    very bytes of that version (same size and SHA256) is skipped instead and its stored
    record appended there, so running an `add` again, for instance after a crash, does
    what is left rather than fail on what was done. If that version's file is missing
    from `target`, it is put back from the file given and the record also appended to
    `put_back`. `may_place(key, package_id, size, sha256)` says why a new file may not
    replace what `target` holds at `key` (None: it may); one it refuses refuses the batch.
    """
    if not items:
        return []
    local_root = incoming = None
    if isinstance(target, FilesystemObjectStore):
        local_root = str(target.root)
        _clear_abandoned_batches(local_root)
        target.make_root()
        try:
            incoming = tempfile.mkdtemp(prefix=INCOMING_PREFIX, dir=local_root)
        except OSError as exc:
            raise ObjectStoreError(
                f"{local_root}: cannot write: {exc.strerror}; nothing was added"
            ) from None
    try:
        scratch = str(new_scratch("debrepo-ingest-"))
    except BaseException:
        if incoming:  # not left at the repository root for the next ingest to clear
            shutil.rmtree(incoming, ignore_errors=True)
        raise
    outcomes: list[_Outcome] = []
    committed = False
    try:
        context = _Context(configs, now, destination, local_root, incoming, scratch)
        outcomes = _examine_all(items, context, progress)
        checked = _check_batch(
            items,
            outcomes,
            existing=store.package_ids(),
            stored_record=store.get,
            architectures=destination.architectures,
            skip_stored=already_stored is not None,
        )
        if checked.errors:
            raise checked.refusal()

        mending: list[tuple[_Outcome, str]] = []  # (file, how it differs), said once allowed
        if already_stored is not None:
            mending = _mend_or_drop(checked.skipped, target, already_stored, put_back)
        putting_back = {id(outcome) for outcome, _how in mending}
        left_out = {id(outcome) for outcome, _stored in checked.skipped} - putting_back
        outcomes = [outcome for outcome in outcomes if id(outcome) not in left_out]
        to_place = [(outcome, outcome.record) for outcome in outcomes if outcome.record]
        records = [record for outcome, record in to_place if id(outcome) not in putting_back]
        if may_place is not None:
            _refuse_what_may_not_be_placed(to_place, may_place)
        for outcome, damage in mending:
            log.warning(
                "%s %s: put back from the file given (the bytes stored)", outcome.key, damage
            )
        _place_and_store(to_place, records, store=store, target=target)
        committed = True
        return records
    finally:
        if not committed:
            for outcome in outcomes:
                _discard(outcome.copy or None)
            if isinstance(target, FilesystemObjectStore):
                # The folders made for copies that were not kept (an empty pool/x/name/).
                target.remove_empty_folders([outcome.key for outcome in outcomes if outcome.key])
        if incoming:
            shutil.rmtree(incoming, ignore_errors=True)
        drop_scratch(Path(scratch))


@dataclass(frozen=True, slots=True)
class _BatchCheck:
    errors: list[str]
    refused: int  # errors for a file's own bytes, not for the store, the settings or the disk
    skipped: list[tuple[_Outcome, PackageRecord]]  # stored already with these very bytes

    def refusal(self) -> InvalidPackageError:
        """PackageContentError only when every error is for a file's own bytes: those
        bytes offered again are refused again, so a source need not offer them again."""
        more = len(self.errors) - MAX_LISTED_ERRORS
        refusal = PackageContentError if self.refused == len(self.errors) else InvalidPackageError
        return refusal(
            "; ".join(self.errors[:MAX_LISTED_ERRORS])
            + (f" (and {more} more)" if more > 0 else "")
            + "; nothing was added"
        )


def _check_batch(
    items: Sequence[IngestItem],
    outcomes: Sequence[_Outcome],
    *,
    existing: set[str],
    stored_record: Callable[[str], PackageRecord | None],
    architectures: Sequence[str],
    skip_stored: bool,
) -> _BatchCheck:
    """Every reason to refuse the batch, against what is stored (`existing`, read with
    `stored_record`) and within the batch, found before anything is placed. With
    `skip_stored`, a version stored with these very bytes is skipped, not refused."""
    errors: list[str] = []
    # Versions that differ only by epoch share a file name (dpkg drops the epoch):
    # one must never replace the other's published file.
    existing_files = {_id_without_epoch(package_id): package_id for package_id in existing}
    # Versions of each name, to find one spelled otherwise but equal as dpkg compares
    # (1.0, 1.00, 1.0-0): apt would list one version with two files. Keyed by
    # dpkg's identity, and only for the names in this batch.
    batch_names = {o.record.package_name for o in outcomes if o.record is not None}
    versions_of: dict[str, dict[object, str]] = {name: {} for name in batch_names}
    for package_id in existing:
        name, _, version = package_id.partition("#")
        if name in versions_of:
            versions_of[name][dpkg_identity(version)] = version
    seen: dict[str, Path] = {}
    seen_architecture: dict[str, str] = {}
    seen_files: dict[str, Path] = {}
    skipped: list[tuple[_Outcome, PackageRecord]] = []
    refused = 0
    for item, outcome in zip(items, outcomes, strict=True):
        record = outcome.record
        if record is None:
            errors.append(outcome.error or f"{item.path}: unreadable")
            refused += outcome.refused
            continue
        same_file = _id_without_epoch(record.package_id)
        if record.architecture != "all" and record.architecture not in architectures:
            errors.append(
                f"{item.path}: {record.package_name} {record.version} is built for "
                f"{record.architecture}, which this repository does not publish "
                f"(architectures: {', '.join(architectures)}); add it to the "
                "architectures setting first"
            )
        elif record.package_id in existing:
            stored = stored_record(record.package_id)
            if stored is not None and stored.architecture != record.architecture:
                errors.append(
                    _one_architecture_per_version(
                        item.path, record, f"stored for {stored.architecture}"
                    )
                )
            elif stored is None or not skip_stored or not _same_file(stored, record):
                sha256s = (
                    (stored.sha256_hash, record.sha256_hash)
                    if stored is not None and not _same_file(stored, record)
                    else None
                )
                duplicate = DuplicatePackageError(record.package_id, sha256s=sha256s)
                errors.append(f"{item.path}: {duplicate}")
            elif record.package_id not in seen:
                seen[record.package_id] = item.path
                skipped.append((outcome, stored))
            else:
                errors.append(_also_in(item.path, record, seen[record.package_id]))
        elif record.package_id in seen:
            first = seen_architecture[record.package_id]
            errors.append(
                _one_architecture_per_version(
                    item.path, record, f"also in {seen[record.package_id]} for {first}"
                )
                if first != record.architecture
                else _also_in(item.path, record, seen[record.package_id])
            )
        elif same_file in existing_files or same_file in seen_files:
            other = existing_files.get(same_file) or str(seen_files[same_file])
            errors.append(
                f"{item.path}: {record.package_name} {record.version} would be published "
                f"as {record.actual_filename}, the file of {other}; versions that differ "
                "only by epoch cannot share a repository"
            )
        elif (
            equal := versions_of[record.package_name].get(identity := dpkg_identity(record.version))
        ) not in (None, record.version):
            errors.append(
                f"{item.path}: {record.package_name} {record.version} is the same version "
                f"as {record.package_name} {equal} (already stored or added), as dpkg and "
                "apt compare versions; apt would see one version with two files"
            )
        else:
            seen[record.package_id] = item.path
            seen_architecture[record.package_id] = record.architecture
            seen_files[same_file] = item.path
            versions_of[record.package_name][identity] = record.version
    return _BatchCheck(errors, refused, skipped)


def _also_in(path: Path, record: PackageRecord, first: Path) -> str:
    return f"{path}: {record.package_name} {record.version} is also in {first}"


def _mend_or_drop(
    skipped: Sequence[tuple[_Outcome, PackageRecord]],
    target: ObjectStore,
    already_stored: list[PackageRecord],
    put_back: list[PackageRecord] | None,
) -> list[tuple[_Outcome, str]]:
    """The files stored already to put back, with how `target`'s copy differs; the
    copies of the others are dropped. Put back when gone or holding other bytes than
    the record names: the publish trusts its map of the pool, so nothing else would
    mend it."""
    mending: list[tuple[_Outcome, str]] = []
    for outcome, stored in skipped:
        already_stored.append(stored)
        damage = _damage(target, outcome.key, stored)
        if damage is not None:
            mending.append((outcome, damage))
            if put_back is not None:
                put_back.append(stored)
        else:
            _discard(outcome.copy)
    return mending


def _refuse_what_may_not_be_placed(
    to_place: Sequence[tuple[_Outcome, PackageRecord]],
    may_place: Callable[[str, str, int, str], str | None],
) -> None:
    """Files put back are asked about too: the file in the way may be another store's,
    published (a mistyped --home next to the right --repo), not a damaged copy of ours."""
    held = [
        found
        for outcome, record in to_place
        if (
            found := may_place(outcome.key, record.package_id, record.file_size, record.sha256_hash)
        )
    ]
    if held:
        others = f" (and {len(held) - 1} more)" if len(held) > 1 else ""
        raise InvalidPackageError(f"{held[0]}{others}; nothing was added")


def _place_and_store(
    to_place: Sequence[tuple[_Outcome, PackageRecord]],
    records: list[PackageRecord],
    *,
    store: MetadataStore,
    target: ObjectStore,
) -> None:
    """Files first, then records: a crash in between leaves an unreferenced file
    (invisible to apt, replaced by a retry), never a record without its file. A
    failure in between takes back the files already placed."""
    placed: dict[str, str] = {}  # pool or staging key -> package_id
    storing = False
    try:
        for outcome, record in to_place:
            if isinstance(target, FilesystemObjectStore):
                target.commit_reserved(outcome.copy, outcome.key)
            else:
                target.put_file(
                    outcome.key, Path(outcome.copy), delivery_for(outcome.key), move=True
                )
            placed[outcome.key] = record.package_id
        storing = True
        if records:
            store.put_many(records)
    except BaseException as exc:
        # Records that made it into the store anyway (a batch written in parts whose
        # clean-up failed too; a write that succeeded but whose answer was lost) keep
        # their files; if the store cannot tell, every file stays.
        kept = _stored_now(store) if storing else set()
        if kept is not None:
            _take_back(target, [k for k, package_id in placed.items() if package_id not in kept])
        elif placed:
            first, more = next(iter(placed)), len(placed) - 1
            log.warning(
                "the store cannot say which records it holds now, so the files this batch "
                "placed stay: %s%s; `debrepo verify` names any that no record names, and an "
                "add of the same .deb adopts it",
                first,
                f" (and {more} more)" if more else "",
            )
        added = None if kept is None else kept & set(placed.values())
        if isinstance(exc, ObjectStoreError | StoreError) and added == set():
            raise type(exc)(f"{exc}; nothing was added") from None
        raise


def _same_file(stored: PackageRecord, record: PackageRecord) -> bool:
    return stored.sha256_hash == record.sha256_hash and stored.file_size == record.file_size


def _stored_now(store: MetadataStore) -> set[str] | None:
    try:
        return store.package_ids()
    except Exception:  # the store that just failed may fail again
        return None


def _one_architecture_per_version(path: Path, record: PackageRecord, other: str) -> str:
    """`other`: where the version is for another architecture ("stored for amd64")."""
    return (
        f"{path}: {record.package_name} {record.version} is {other}, and a repository holds "
        f"one .deb per package name and version (package_id {record.package_id!r}); give "
        f"the {record.architecture} build a version of its own"
    )


def _damage(target: ObjectStore, key: str, stored: PackageRecord) -> str | None:
    """How `key` differs from the bytes `stored` names ("was missing", "holds other
    bytes"), or None. Read whole only when the size agrees: this runs for a file added
    again, which is how a lost or damaged pool file is mended."""
    held = target.stat(key)
    if held is None:
        return "was missing"
    if held.size != stored.file_size:
        return "holds other bytes"
    from debrepo.services.publish import sha256_of  # the rare path: a file added again

    same = sha256_of(target, key) == (stored.file_size, stored.sha256_hash)
    return None if same else "holds other bytes"


def _take_back(target: ObjectStore, keys: Sequence[str]) -> None:
    """Delete the files a failed batch had already placed: no record names them."""
    left: list[str] = []
    for key in keys:
        try:
            target.delete(key)
        except ObjectStoreError:
            left.append(key)
    if left:
        more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
        log.warning(
            "could not remove %s%s, placed by the failed batch: no record names it, "
            "and the next add of that version replaces it",
            left[0],
            more,
        )


def _clear_abandoned_batches(root: str) -> None:
    """Remove the copies of batches killed before they could clear them. Ingests run
    under the repository lock, so no other batch is writing there now."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ObjectStoreError(f"{root}: cannot read: {exc.strerror}") from None
    for name in names:
        if name.startswith(INCOMING_PREFIX):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
