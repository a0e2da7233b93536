"""Sync: the seed's Normal Workflow (`debrepo sync`, the scheduled Lambda run).

For each configured package, its source says what the newest upstream version is.
A version already in the store is skipped without downloading anything (Property 18);
a new one is downloaded into a scratch folder, checked against what upstream said,
read once more by ingest (control file against the metadata, then into the pool),
and recorded. Then the repository is published once for everything new.

Failures stay with their package (seed "Package Handler Error Handling"): each is
logged with the package's name and reported, the other packages carry on, and the
run fails only when every package that was checked failed. A failed package leaves
nothing behind: ingest is all-or-nothing and the scratch folder is always removed.

With nothing new, nothing is published, unless the published Release is past half of
its Valid-Until window (or missing, or the store holds changes no publish has seen
yet): then the repository is re-published, which for an unchanged store only re-dates
and re-signs the Release. A repository without new releases never expires.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from debrepo.core.layout import delivery_for
from debrepo.core.records import iso_timestamp
from debrepo.core.release import rfc1123
from debrepo.core.validity import ReleaseAge
from debrepo.errors import (
    OUTCOME_REPORTED,
    ConfigError,
    DebrepoError,
    InvalidPackageError,
    PackageContentError,
    RecordValidationError,
)
from debrepo.model import PackageRecord, make_package_id
from debrepo.packages_config import PackageConfig
from debrepo.ports import MetadataStore, ObjectStore
from debrepo.scratch import drop_scratch, new_scratch
from debrepo.services.ingest import Destination, IngestItem, ingest_files
from debrepo.services.publish import (
    PublishReport,
    StateFiles,
    pool_file_keeper,
    publish_failed,
    store_changed_since_publish,
)
from debrepo.services.refused import Refusal, judged_by, read_refusals, write_refusals
from debrepo.sources.base import (
    NOTES_LIMIT,
    Acquired,
    NotModified,
    PackageSource,
    Release,
    source_for,
    stated_differences,
)
from debrepo.sources.http import HttpClient, HttpSettings

log = logging.getLogger("debrepo.sync")

# Versions stored by a sync whose publish then failed: announced by the first sync after
# a publish that includes them, so subscribers hear of every version once.
OWED_NOTIFICATIONS_KEY = "staging/.state/notifications-owed.json"
SCRATCH_FAMILY = "debrepo-sync-"  # downloads waiting to be stored, one folder each

PublishFn = Callable[[datetime, Sequence[str]], PublishReport]
MakeSource = Callable[[PackageConfig, HttpClient], PackageSource]


class PackageNotifier(Protocol):
    """Told about every package version a sync has published (SNS, log lines)."""

    def package_published(self, record: PackageRecord) -> None: ...


class Outcome(StrEnum):
    NEW = "new"
    ALREADY_STORED = "already stored"
    NOTHING_UPSTREAM = "nothing upstream"
    WOULD_FETCH = "would fetch"
    WITHDRAWN = "removed on purpose"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PackageOutcome:
    """What the sync did for one configured package."""

    package_name: str
    source_type: str
    outcome: Outcome
    version: str | None = None
    url: str | None = None
    message: str = ""
    record: PackageRecord | None = None

    def line(self) -> str:
        name = self.package_name
        if self.outcome is Outcome.NEW:
            return f"{name}: stored {self.version} from {self.url}"
        if self.outcome is Outcome.ALREADY_STORED:
            note = f" ({self.message})" if self.message else ""
            return f"{name}: {self.version} is already stored; nothing to fetch{note}"
        if self.outcome is Outcome.WOULD_FETCH:
            note = f" ({self.message})" if self.message else ""
            return f"{name}: would fetch {self.version} from {self.url}{note}"
        if self.outcome is Outcome.NOTHING_UPSTREAM:
            return f"{name}: nothing to fetch ({self.message})"
        if self.outcome is Outcome.WITHDRAWN:
            return (
                f"{name}: {self.version} was removed with `debrepo remove` ({self.message}); "
                "not fetched again (`debrepo add` of its .deb takes it back)"
            )
        return f"{name}: failed: {self.message}"


@dataclass
class SyncReport:
    """Per-package outcomes and what was (or, in a dry run, would be) published."""

    packages: list[PackageOutcome] = field(default_factory=list)
    dry_run: bool = False
    release_before: ReleaseAge | None = None
    publish_reason: str | None = None
    published: PublishReport | None = None
    refreshed: bool = False  # published only to renew the Release's Valid-Until

    @property
    def new_records(self) -> list[PackageRecord]:
        return [o.record for o in self.packages if o.record is not None]

    @property
    def failures(self) -> list[PackageOutcome]:
        return [o for o in self.packages if o.outcome is Outcome.FAILED]

    @property
    def all_failed(self) -> bool:
        """Every package that was checked failed (packages with no upstream do not count)."""
        checked = [o for o in self.packages if o.outcome is not Outcome.NOTHING_UPSTREAM]
        return bool(checked) and all(o.outcome is Outcome.FAILED for o in checked)

    def summary(self) -> str:
        if self.dry_run:
            if self.publish_reason:
                return f"dry run: would publish ({self.publish_reason}); nothing was changed"
            return "dry run: nothing new, nothing to publish; nothing was changed"
        if self.published is None:
            until = self.release_before.valid_until if self.release_before else None
            due = self.release_before.refresh_after if self.release_before else None
            fresh = f"; the Release is valid until {rfc1123(until)}" if until else ""
            resign = f", re-signed after {rfc1123(due)}" if due else ""
            return f"nothing new, nothing published{fresh}{resign}"
        if self.refreshed:
            return f"nothing new; {self.publish_reason}: Release re-signed and re-published"
        return f"{self.publish_reason}; published"


class SyncFailedError(DebrepoError):
    """Every package that was checked failed; `report` says how."""

    def __init__(self, report: SyncReport) -> None:
        self.report = report
        details = "; ".join(f"{o.package_name}: {o.message}" for o in report.failures)
        super().__init__(f"sync failed for every package checked: {details}")


def select_configs(
    configs: Mapping[str, PackageConfig], only_package: str | None
) -> list[PackageConfig]:
    if only_package is None:
        return [configs[name] for name in sorted(configs)]
    if only_package not in configs:
        known = ", ".join(sorted(configs)) or "none"
        raise ConfigError(
            f"package {only_package!r} is not defined in the package configuration "
            f"(defined: {known})"
        )
    return [configs[only_package]]


@dataclass(frozen=True)
class _Fetched:
    """A new version downloaded into its own scratch folder, not yet stored."""

    config: PackageConfig
    release: Release
    acquired: Acquired
    scratch: Path


@dataclass
class _Run:
    store: MetadataStore
    repo: ObjectStore
    configs: Mapping[str, PackageConfig]
    now: datetime
    destination: Destination
    dry_run: bool
    scratch_root: Path | None
    written: list[str] = field(default_factory=list)
    # Under the lock: whether a download may replace what the pool holds at its path.
    may_place: Callable[[str, str, int, str], str | None] | None = None
    refused_before: Mapping[str, Refusal] = field(default_factory=dict)
    refused_now: dict[str, Refusal] = field(default_factory=dict)

    def fetch(self, config: PackageConfig, source: PackageSource) -> PackageOutcome | _Fetched:
        """Ask the source; download a version the store lacks (not under the lock)."""
        name, kind = config.package_name, config.source.type
        release = source.latest()
        if release is None:
            return PackageOutcome(name, kind, Outcome.NOTHING_UPSTREAM, message=_idle(kind))
        package_id = make_package_id(name, release.version)
        try:
            stored = self.store.get(package_id)
        except RecordValidationError:  # stored, incomplete: publish skips it, with a warning
            return PackageOutcome(name, kind, Outcome.ALREADY_STORED, release.version, release.url)
        if stored is not None:
            hashes = {
                "md5": stored.md5_hash,
                "sha1": stored.sha1_hash,
                "sha256": stored.sha256_hash,
                "sha512": stored.sha512_hash,
            }
            differs = stated_differences(release, stored.file_size, hashes)
            note = ""
            if differs:  # upstream replaced the file of a version: worth a word, not a change
                note = (
                    f"upstream now states {', '.join(differs)}; the stored file stays, "
                    "published versions being immutable"
                )
                log.warning("%s %s: %s", name, release.version, note, extra=_reported(name))
            return PackageOutcome(
                name, kind, Outcome.ALREADY_STORED, release.version, release.url, message=note
            )
        respelled = self._stored_otherwise(config, release)
        if respelled is not None:
            return respelled
        withdrawn = self._withdrawn(config, release)
        if withdrawn is not None:
            return withdrawn
        refused = self.refused_before.get(name)
        if refused is not None and not refused.applies_to(release, config):
            refused = None
        if refused is not None and refused.stated_unchanged(release):
            # Known without a request, so a dry run says it too rather than "would fetch".
            raise refused.again("upstream states the SHA256 of the file refused")
        if self.dry_run:
            note = refused.note() if refused else ""
            return PackageOutcome(
                name, kind, Outcome.WOULD_FETCH, release.version, release.url, message=note
            )
        scratch = new_scratch(SCRATCH_FAMILY, self.scratch_root, label=f"{name}-")
        try:
            # Asked without the keyword when there is nothing to ask: any source will do.
            validators = refused.validators if refused else None
            since = {"unchanged_since": validators} if validators else {}
            return _Fetched(config, release, source.acquire(release, scratch, **since), scratch)
        except NotModified:
            drop_scratch(scratch)
            assert refused is not None
            raise refused.again("its server says the file has not changed") from None
        except BaseException:
            drop_scratch(scratch)
            raise

    def _stored_otherwise(self, config: PackageConfig, release: Release) -> PackageOutcome | None:
        """The outcome for a version the store holds under another spelling: one dpkg
        takes for the same (`1:0.9.04` for `1:0.9.4`), or the same file with the epoch
        its name cannot carry (`kiro-cli_1.2.0_amd64.deb` holding `1:1.2.0`). Without
        this, every run would download it again only to have it refused."""
        from debrepo.core.control import without_epoch
        from debrepo.versions import dpkg_identity

        name, wanted = config.package_name, dpkg_identity(release.version)
        for stored in self.store.by_name(name):
            same = dpkg_identity(stored.version) == wanted
            same_file = (
                ":" in stored.version
                and ":" not in release.version
                and stored.deb_url == release.url
                and dpkg_identity(without_epoch(stored.version)) == wanted
            )
            if same or same_file:
                note = f"upstream calls it {release.version}; stored as {stored.version}"
                return PackageOutcome(
                    name,
                    config.source.type,
                    Outcome.ALREADY_STORED,
                    stored.version,
                    release.url,
                    message=note,
                )
        return None

    def _withdrawn(self, config: PackageConfig, release: Release) -> PackageOutcome | None:
        """The outcome for a version removed on purpose (`remove`, a migration's --skip)."""
        when = self.store.withdrawn_at(make_package_id(config.package_name, release.version))
        if when is None:
            return None
        return PackageOutcome(
            config.package_name,
            config.source.type,
            Outcome.WITHDRAWN,
            release.version,
            release.url,
            message=when,
        )

    def store_fetched(self, fetched: _Fetched) -> PackageOutcome:
        """Ingest a download (under the lock); its scratch folder goes in any case."""
        config, release = fetched.config, fetched.release
        name, kind = config.package_name, config.source.type
        stored: list[PackageRecord] = []
        try:
            if not self.store.exists(make_package_id(name, release.version)):
                withdrawn = self._withdrawn(config, release)  # removed while it downloaded
                if withdrawn is not None:
                    return withdrawn
            records = ingest_files(
                [
                    IngestItem(
                        fetched.acquired.deb_path,
                        release.provenance(
                            package_type=config.source.type, architecture=config.architecture
                        ),
                    )
                ],
                store=self.store,
                target=self.repo,
                destination=self.destination,
                configs=dict(self.configs),
                now=self.now,
                already_stored=stored,
                may_place=self.may_place,
            )
        except InvalidPackageError as exc:
            # Name the download, not the scratch file nobody will find again.
            reason = str(exc).replace(str(fetched.acquired.deb_path), release.url)
            # Refused again if offered again; not so a body that may have been cut short.
            if isinstance(exc, PackageContentError) and fetched.acquired.whole:
                self.refused_now[name] = _refusal(fetched, reason, self.now)
            raise type(exc)(reason) from None
        finally:
            drop_scratch(fetched.scratch)
        if not records:  # stored meanwhile, with these very bytes, by another run
            return PackageOutcome(name, kind, Outcome.ALREADY_STORED, release.version, release.url)
        (record,) = records
        self.written.append(
            self.destination.key_for(record.package_name, record.actual_filename, config)
        )
        if release.notes is not None and record.notes != release.notes:
            log.warning(  # not in the outcome line: said on the terminal too
                "%s %s: stored the first %d KiB of its release notes (%d KiB upstream)",
                name,
                record.version,
                NOTES_LIMIT >> 10,
                (len(release.notes.encode()) + 1023) >> 10,
                extra={"package": name},
            )
        return PackageOutcome(name, kind, Outcome.NEW, record.version, release.url, record=record)


def _refusal(fetched: _Fetched, reason: str, now: datetime) -> Refusal:
    facts, validators = fetched.acquired.facts, fetched.acquired.validators
    return Refusal(
        version=fetched.release.version,
        url=fetched.release.url,
        judged_by=judged_by(fetched.config),
        reason=reason,
        refused_at=iso_timestamp(now),
        size=facts.size,
        sha256=facts.sha256,
        etag=validators.etag if validators else None,
        last_modified=validators.last_modified if validators else None,
    )


def _remember_refusals(staging: ObjectStore, run: _Run, outcomes: Sequence[PackageOutcome]) -> None:
    """Record this run's refusals, and forget those of packages that got past them."""
    known = read_refusals(staging)
    kept = {name: refusal for name, refusal in known.items() if name in run.configs}
    for outcome in outcomes:
        name = outcome.package_name
        if name in run.refused_now:
            refusal = run.refused_now[name]
            if name in known and known[name].same_verdict(refusal):  # refused since then
                refusal = dataclasses.replace(refusal, refused_at=known[name].refused_at)
            kept[name] = refusal
        elif outcome.outcome not in (Outcome.FAILED, Outcome.NOTHING_UPSTREAM):
            kept.pop(name, None)
    if kept != known:
        write_refusals(staging, kept)


def _reported(package_name: str) -> dict[str, object]:
    """Log extras of a line the package's outcome also says: for CloudWatch, where the
    outcome is not printed; a terminal, which prints the outcome, leaves it out."""
    return {"package": package_name, OUTCOME_REPORTED: True}


def _isolated(
    config: PackageConfig, step: Callable[[], PackageOutcome | _Fetched]
) -> PackageOutcome | _Fetched:
    """One package's step; its failure is that package's outcome, logged with its name."""
    name = config.package_name
    try:
        result = step()
    except DebrepoError as exc:
        log.error("%s: sync failed: %s", name, exc, extra=_reported(name))
        return PackageOutcome(name, config.source.type, Outcome.FAILED, message=str(exc))
    except Exception as exc:  # isolate the unexpected too; the traceback goes to the log
        log.exception("%s: sync failed unexpectedly", name, extra={"package": name})
        return PackageOutcome(
            name,
            config.source.type,
            Outcome.FAILED,
            message=f"unexpected {type(exc).__name__}: {exc}",
        )
    if isinstance(result, PackageOutcome):
        log.info("%s", result.line(), extra={"package": name})
    return result


def _idle(kind: str) -> str:
    if kind == "build_script":
        return "versions come from the build script: debrepo build-repo-package"
    return "the source offers no version"


def run_sync(
    *,
    store: MetadataStore,
    repo: ObjectStore,
    staging: ObjectStore,
    configs: Mapping[str, PackageConfig],
    publish: PublishFn,
    notifier: PackageNotifier,
    now: datetime,
    suite: str,
    destination: Destination,
    dry_run: bool = False,
    only_package: str | None = None,
    http_settings: HttpSettings | None = None,
    environ: Mapping[str, str] | None = None,
    scratch_root: Path | None = None,
    make_source: MakeSource | None = None,
    lock: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    idle: Callable[[], None] = lambda: None,
    settings_changed: Callable[[], str | None] = lambda: None,
    retry_refused: bool = False,
) -> SyncReport:
    """Check every configured package (or `only_package`), store what is new, publish.

    `publish(now, just_written_keys)` is called at most once, and only when something
    new was stored, the store holds changes no publish has seen, `settings_changed()`
    says why (the signing key, a setting that shapes the published bytes, or how they
    are rendered), or the published Release is missing or past half of its validity;
    never to publish a first, empty repository when every package failed. Raises
    SyncFailedError (after publishing what needed it) when every package that was
    checked failed.

    Sources are asked and downloads made before `lock` (the repository lock) is taken,
    once, to store them, decide, publish and notify: a slow upstream never keeps
    another `add` or `sync` waiting, and nothing can change between the store and the
    publish. `idle` runs under the lock when nothing was published (a CDN invalidation
    an earlier run still owes).

    A download refused for what it holds is not fetched again while upstream serves
    it unchanged (services/refused.py), unless `retry_refused`.
    """
    selected = select_configs(configs, only_package)
    environ = os.environ if environ is None else environ
    report = SyncReport(dry_run=dry_run)
    run = _Run(store, repo, configs, now, destination, dry_run, scratch_root)
    if not retry_refused:
        run.refused_before = read_refusals(staging)
    results: list[PackageOutcome | _Fetched] = []
    try:
        with HttpClient(http_settings) as http:
            for config in selected:

                def ask(config: PackageConfig = config) -> PackageOutcome | _Fetched:
                    source = (
                        make_source(config, http)
                        if make_source
                        else source_for(config, http=http, environ=environ)
                    )
                    return run.fetch(config, source)

                results.append(_isolated(config, ask))
        with lock():  # one hold: store, decide, publish and notify
            if any(isinstance(result, _Fetched) for result in results):
                run.may_place = pool_file_keeper(repo, StateFiles.read(staging), store)
            for index, result in enumerate(results):
                if isinstance(result, _Fetched):
                    results[index] = _isolated(
                        result.config, functools.partial(run.store_fetched, result)
                    )
            report.packages = [r for r in results if isinstance(r, PackageOutcome)]
            if not dry_run:
                _remember_refusals(staging, run, report.packages)
            return _publish_and_notify(
                report,
                run,
                store,
                repo,
                staging,
                publish,
                notifier,
                now,
                suite,
                dry_run,
                idle,
                settings_changed,
            )
    finally:  # downloads never stored (the lock could not be had, or an interruption)
        for result in results:
            if isinstance(result, _Fetched):
                drop_scratch(result.scratch)


def _publish_and_notify(
    report: SyncReport,
    run: _Run,
    store: MetadataStore,
    repo: ObjectStore,
    staging: ObjectStore,
    publish: PublishFn,
    notifier: PackageNotifier,
    now: datetime,
    suite: str,
    dry_run: bool,
    idle: Callable[[], None],
    settings_changed: Callable[[], str | None],
) -> SyncReport:
    raw_release = repo.get(f"dists/{suite}/Release")
    report.release_before = ReleaseAge.parse(raw_release) if raw_release is not None else None
    new = report.new_records
    would_fetch = [o for o in report.packages if o.outcome is Outcome.WOULD_FETCH]
    if new or would_fetch:
        report.publish_reason = f"{len(new) or len(would_fetch)} new version(s)"
    elif store_changed_since_publish(store, staging, dry_run=dry_run, repo=repo):
        report.publish_reason = "the store changed since the last publish"
    elif report.release_before is None:
        report.publish_reason = "nothing is published yet"
    elif changed := settings_changed():
        report.publish_reason = changed
    elif report.release_before.stale(now):
        report.refreshed = True
        due = report.release_before.refresh_after
        report.publish_reason = (
            f"the Release is past half of its validity window ({rfc1123(due)})"
            if due
            else "the Release has no readable Date"
        )

    if (
        report.all_failed
        and not new
        and report.release_before is None
        and not dry_run
        and not store.package_ids()
    ):
        # A first run that failed for every package (upstream down, a typo in the
        # configuration) would publish an empty signed repository for nothing.
        report.publish_reason = None
    if dry_run:
        if report.all_failed:
            raise SyncFailedError(report)
        return report
    owed = _read_owed(staging)
    if new:
        # Owed until sent, from before the publish: a run killed during it (a Lambda's
        # timeout) leaves them for the first sync after a publish that includes them.
        _write_owed(staging, [*owed, *(r.package_id for r in new)])
    if report.publish_reason:
        try:
            report.published = publish(now, list(run.written))
        except BaseException as exc:  # an interruption too: the versions are stored
            if not isinstance(exc, DebrepoError | OSError) or not new:
                raise
            stored = ", ".join(f"{r.package_name} {r.version}" for r in new)
            raise publish_failed(
                exc,
                f"{stored} stored but not published",
                then="run `debrepo rebuild` (or let the next sync publish it)",
            ) from exc
    # Published now, or the store had nothing unpublished: what was owed went out too.
    announced = {r.package_id for r in new}
    later = [store.get(package_id) for package_id in owed if package_id not in announced]
    undelivered: list[str] = []
    for record in [*new, *(r for r in later if r is not None)]:
        # A notification that cannot go now must not undo a good publish: the next
        # sync sends it again.
        try:
            notifier.package_published(record)
        except DebrepoError as exc:
            log.error(
                "cannot notify about %s (the next sync tries again): %s", record.package_id, exc
            )
            undelivered.append(record.package_id)
        except Exception:
            log.exception("cannot notify about %s (the next sync tries again)", record.package_id)
            undelivered.append(record.package_id)
    if undelivered:
        _write_owed(staging, undelivered)
    elif owed or new:
        try:
            staging.delete(OWED_NOTIFICATIONS_KEY)
        except DebrepoError as exc:  # the publish stands; the next sync sends them again
            log.error("cannot clear %s (sent already): %s", OWED_NOTIFICATIONS_KEY, exc)
    if report.published is None:
        idle()
    if report.all_failed:
        raise SyncFailedError(report)
    return report


def _read_owed(staging: ObjectStore) -> list[str]:
    raw = staging.get(OWED_NOTIFICATIONS_KEY)
    if raw is None:
        return []
    try:
        owed = json.loads(raw)
    except ValueError:
        owed = None
    if not isinstance(owed, list) or not all(isinstance(i, str) for i in owed):
        log.warning("%s is unreadable; the notifications it held are lost", OWED_NOTIFICATIONS_KEY)
        staging.delete(OWED_NOTIFICATIONS_KEY)  # or this warning would come every run
        return []
    return owed


def _write_owed(staging: ObjectStore, package_ids: Sequence[str]) -> None:
    data = json.dumps(sorted(set(package_ids))).encode()
    try:
        staging.put(OWED_NOTIFICATIONS_KEY, data, delivery_for(OWED_NOTIFICATIONS_KEY))
    except DebrepoError as exc:  # the publish error matters more; this one is logged
        log.error("cannot record the notifications owed for %s: %s", ", ".join(package_ids), exc)
