"""The operations behind every command, as plain functions taking Settings.

The CLI and the Lambda handler only turn their input into these calls and
their results into output. Anything that publishes holds the repository lock.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

from debrepo.core.control import canonical_filename
from debrepo.core.layout import CONVENIENCE_PACKAGE, PublicKey, staging_key
from debrepo.errors import (
    ConfigError,
    DebrepoError,
    DuplicatePackageError,
    InvalidPackageError,
    PackageNotFoundError,
    PublishError,
    PublishRefused,
    SecretUnavailableError,
    SigningError,
)
from debrepo.factory import (
    local_folder,
    local_store_file,
    open_lock,
    open_object_store,
    open_signer,
    open_store,
    publish_in_progress,
)
from debrepo.folders import make_folders, nearest_existing, refuse_a_home_others_control
from debrepo.model import PackageRecord, make_package_id
from debrepo.ports import MetadataStore, ObjectStore
from debrepo.services.publish import (
    POOL_STATE_KEY,
    STATE_KEY,
    UNREADABLE,
    AnnouncedKey,
    Publisher,
    PublishReport,
    PublishState,
    StateFiles,
    pool_folder_change,
    publish_failed,
    published_keyring,
    release_went_out,
    store_changed_since_publish,
)
from debrepo.settings import Settings, resolved
from debrepo.signing.openpgp import (
    OpenPGPSigner,
    generate_secret_key,
    refuse_a_folder_others_control,
)
from debrepo.versions import latest

if TYPE_CHECKING:
    from debrepo.packages_config import PackageConfig
    from debrepo.services.ingest import Destination, IngestItem
    from debrepo.services.migrate import MigrationReport
    from debrepo.services.sync import PackageNotifier, SyncReport
    from debrepo.services.verify import VerifyReport
    from debrepo.sources.http import HttpSettings

# Commands import what only they use inside their function: `debrepo rebuild` is run
# from timers and its start-up time is most of its cost.

log = logging.getLogger("debrepo")

Progress = Callable[[str, int, int], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Workspace:
    """The backends one command works with, opened on first use."""

    settings: Settings
    progress: Progress | None = None
    # For commands that read or change what exists: a missing store is then an error
    # (a mistyped --home) instead of a new, empty repository being started.
    existing_only: bool = False
    # While the publish lock is held: what tells whether it still is (see factory.Lock).
    _fence: Callable[..., None] | None = field(default=None, init=False, repr=False)

    @cached_property
    def store(self) -> MetadataStore:
        return open_store(
            self.settings.store,
            published_from=self.published_from,
            must_exist=self.existing_only,
        )

    def published_from(self) -> str | None:
        """Where the publisher state says a repository was published from a store, or
        None."""
        folder = local_folder(self.settings.staging)
        if folder is not None:  # looked at without creating the folder
            found = (folder / STATE_KEY).is_file()
            return f"{STATE_KEY} in {folder}" if found else None
        found = self.staging.stat(STATE_KEY) is not None
        return f"{STATE_KEY} in {self.staging.description}" if found else None

    def store_to_be_started(self) -> bool:
        """Whether the store is a local file not started yet, where nothing was published
        from one (what the first `add` creates)."""
        path = local_store_file(self.settings.store)
        if path is None or path.is_dir():  # a folder: opening it says what is wrong
            return False
        empty = not path.exists() or path.stat().st_size == 0  # as open_store counts it
        return empty and self.published_from() is None

    @cached_property
    def repo(self) -> ObjectStore:
        return open_object_store(self.settings.repo, "repository", acl_mode=self._acl_mode())

    @cached_property
    def staging(self) -> ObjectStore:
        return open_object_store(self.settings.staging, "staging area", acl_mode=self._acl_mode())

    def _acl_mode(self) -> Literal["public-read", "bucket-policy"]:
        return "public-read" if self.settings.s3_acl_mode == "public-read" else "bucket-policy"

    @cached_property
    def signer(self) -> OpenPGPSigner:
        """The key that signs: generated on first use, refused if another user could
        have chosen it."""
        settings = self.settings
        if not settings.key_secret_id:
            # Refused here, before a key is made in it, and again at the publish lock.
            refuse_a_home_others_control(settings.home)
            if not settings.key_file.exists():
                self._refuse_a_new_key_if_published()
        return open_signer(settings)

    @cached_property
    def key_to_compare(self) -> OpenPGPSigner:
        """The key as it is, to show or compare: whoever's file it is, nothing is signed."""
        if "signer" in self.__dict__:
            return self.signer
        return open_signer(self.settings, to_sign=False)

    def _refuse_a_new_key_if_published(self) -> None:
        """A new key is generated on first use, but never for a repository already
        signed with another: every client would fail with NO_PUBKEY."""
        settings = self.settings
        for published in (f"{settings.keyring_name}.gpg", f"dists/{settings.suite}/InRelease"):
            if self.repo.stat(published) is not None:
                raise SigningError(
                    f"{settings.key_file}: no signing key, but {self.repo.description} is "
                    f"already published ({published}) with one; restore the key file or point "
                    "--key-file (DEBREPO_KEY_FILE) at it. To replace the key on purpose: "
                    "`debrepo key generate`, then `debrepo rebuild --replace`"
                )

    def store_exists(self) -> bool:
        """Whether the store holds anything yet (always, for a store that is not a file)."""
        try:
            open_store(self.settings.store, must_exist=True)
        except ConfigError:
            return False
        return True

    def state_files(self) -> StateFiles:
        """The publisher's state objects, read without creating a staging folder."""
        folder = local_folder(self.settings.staging)
        if folder is None:
            return StateFiles.read(self.staging)

        def read(key: str) -> bytes | None:
            try:
                return (folder / key).read_bytes()
            except FileNotFoundError:
                return None

        return StateFiles(read(STATE_KEY), read(POOL_STATE_KEY))

    def announced_keys(self) -> dict[str, AnnouncedKey]:
        """The keys announced to take over signing, from the publisher state."""
        return PublishState.from_json(self.state_files().state).announced

    def keyring(self) -> PublicKey:
        """The keyring the next publish publishes: the signing key, then any announced
        key."""
        return published_keyring(self.signer, self.announced_keys())

    def keyring_to_install(self) -> bytes:
        """The keyring a kiro-repo built now installs: the one published next, plus any
        key of the keyring published now that it lacks. With the key file switched to
        an announced key before the switch is published (or refused), the keys clients
        are told to trust stay in it whichever key signs next."""
        from debrepo.signing.openpgp import fingerprints_in, keyring_certificates

        keyring = self.keyring().binary
        published = self.repo.get(f"{self.settings.keyring_name}.gpg")
        if not published or published == keyring:
            return keyring
        held = set(fingerprints_in(keyring))
        try:
            certificates = keyring_certificates(published)
        except DebrepoError:
            return keyring  # unreadable: nobody trusts anything from it
        missing = [c for c in certificates if str(c.fingerprint).lower() not in held]
        return keyring + b"".join(bytes(c) for c in missing)

    def existing_signer(self) -> OpenPGPSigner:
        """The signer, for commands that only show or export the key: never generated."""
        settings = self.settings
        if not settings.key_secret_id and not settings.key_file.exists():
            if self.store_exists():  # else nothing was published here (and nothing is made)
                self._refuse_a_new_key_if_published()  # the key must be found, not made
            raise ConfigError(
                f"{settings.key_file}: no signing key here; check --home (DEBREPO_HOME) and "
                "--key-file, or create one with `debrepo key generate` (the first `debrepo "
                "add` or `build-repo-package` also does)"
            )
        return self.key_to_compare

    @cached_property
    def configs(self) -> dict[str, PackageConfig]:
        settings = self.settings
        if not settings.config_dir.is_dir():  # the default (load_settings checks the others)
            # Not an error (any .deb can be published without a definition), but kiro and
            # the others would then be recorded without their definitions' fields, for good.
            log.warning(
                "no package definitions at %s: packages are recorded from their control "
                "files alone (run from the project root or set DEBREPO_CONFIG_DIR)",
                self.settings.config_dir,
            )
            return {}
        from debrepo.packages_config import load_package_configs

        return load_package_configs(self.settings.config_dir)

    @contextmanager
    def lock(self, wait_seconds: float = 0.0) -> Iterator[None]:
        if self.existing_only:
            self.store  # noqa: B018 - a missing store fails before a lock file is created
        with open_lock(self.settings)(wait_seconds) as fence:
            self._fence = fence
            try:
                yield
            finally:
                self._fence = None

    def publish(
        self,
        *,
        now: datetime,
        just_written: Sequence[str] = (),
        full: bool = False,
        removed: Sequence[str] = (),
        replace: bool = False,
        state_files: StateFiles | None = None,
        announce: tuple[bytes, str] | None = None,
        withdraw_announced: bool = False,
    ) -> PublishReport:
        """Publish the store's contents, then invalidate the CDN in front, if any."""
        report = self.publisher().publish(
            now=now,
            just_written=just_written,
            full=full,
            removed=removed,
            replace=replace,
            state_files=state_files,
            announce=announce,
            withdraw_announced=withdraw_announced,
        )
        self.settle_cdn(
            changed=bool(report.written or report.deleted),
            new_pool_keys=[*report.pool_placed, *report.pool_copied],
        )
        return report

    def settle_cdn(self, *, changed: bool = False, new_pool_keys: Sequence[str] = ()) -> None:
        """Invalidate the CDN in front (if any) after a change, or when an earlier
        invalidation failed and is still owed."""
        if self.settings.cloudfront_distribution_id:
            from debrepo.aws import invalidate_after_publish

            invalidate_after_publish(
                self.settings, self.staging, changed=changed, new_pool_keys=new_pool_keys
            )

    def publisher(self) -> Publisher:
        return Publisher(
            store=self.store,
            repo=self.repo,
            staging=self.staging,
            signer=self.signer,
            settings=self.settings,
            configs=lambda: self.configs,
            progress=self.progress,
            fence=self._fence,
        )


@dataclass
class AddResult:
    records: list[PackageRecord]
    report: PublishReport | None = None
    written_keys: list[str] = field(default_factory=list)
    # Given again with the very bytes already stored: skipped, nothing changed.
    already_stored: list[PackageRecord] = field(default_factory=list)
    # Of those, the ones whose missing file was put back from the file given.
    put_back: list[PackageRecord] = field(default_factory=list)
    # The publish was refused and the records taken back (some may have stayed).
    taken_back: bool = False


def _keys(ws: Workspace, destination: Destination, records: Sequence[PackageRecord]) -> list[str]:
    return [
        destination.key_for(r.package_name, r.actual_filename, ws.configs.get(r.package_name))
        for r in records
    ]


class ExpandedPaths(list[Path]):
    """What `expand_paths` returned: expanding it again would only repeat a `stat` per
    file (the CLI expands first, to size its progress bar)."""


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given, each once; a directory stands for the .deb files directly inside
    it, sorted."""
    if isinstance(paths, ExpandedPaths):
        return paths
    expanded: list[tuple[str, Path]] = []  # (absolute name, as given)
    for path in paths:
        try:
            mode = path.stat().st_mode
        except OSError as exc:  # said before a first use creates the home and its key
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise
            raise InvalidPackageError(f"{path}: {_not_a_file(path)}; nothing was added") from None
        if stat.S_ISDIR(mode):
            folder = os.path.abspath(path)  # noqa: PTH100 - once per folder, not per file
            names = _debs_in(path)
            expanded.extend((os.path.join(folder, name), path / name) for name in names)  # noqa: PTH118
        elif not stat.S_ISREG(mode):  # a FIFO or device would block or lie
            raise InvalidPackageError(f"{path}: not a regular file; nothing was added")
        else:
            expanded.append((os.path.abspath(path), path))  # noqa: PTH100 - no syscall
    # A file named twice (by hand, or inside a folder given too) is added once.
    seen: set[str] = set()
    unique = ExpandedPaths()
    for absolute, path in expanded:
        if absolute not in seen:
            seen.add(absolute)
            unique.append(path)
    return unique


def _debs_in(folder: Path) -> list[str]:
    """Names of the .deb files directly in `folder`, sorted; refuses one that is not a
    regular file (d_type: no stat per file)."""
    with os.scandir(folder) as scanned:
        entries = list(scanned)
    chosen = sorted(
        (e for e in entries if e.name.endswith(".deb") and not _is_folder(e)), key=lambda e: e.name
    )
    _say_what_a_folder_leaves_out(folder, entries)
    for entry in chosen:
        if not _is_file(entry):  # said, not skipped: the operator meant it to be added
            what = _not_a_file(Path(entry.path))
            raise InvalidPackageError(f"{entry.path}: {what}; nothing was added")
    if not chosen:
        raise ConfigError(f"{folder}: directory holds no .deb files")
    return [entry.name for entry in chosen]


def _is_folder(entry: os.DirEntry[str]) -> bool:
    """`entry.is_dir()`, False for a symbolic link loop (refused as a .deb, not raised)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _not_a_file(path: Path) -> str:
    """Why `path`, given as a .deb to add, is none."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        return "a broken symbolic link" if path.is_symlink() else "no such file"
    return "not a regular file"


def _say_what_a_folder_leaves_out(folder: Path, entries: Sequence[os.DirEntry[str]]) -> None:
    """A folder stands for the .deb files directly in it: say what else looks like one
    (sub-folders are not searched, `X.DEB` is not a .deb name), rather than skip it
    unseen."""
    folders = sum(1 for e in entries if _is_folder(e))
    other_case = sorted(
        e.name for e in entries if e.name.lower().endswith(".deb") and not e.name.endswith(".deb")
    )
    if folders or other_case:
        left = [f"{folders} sub-folder(s) (not searched)"] if folders else []
        if other_case:
            left.append(f"{', '.join(other_case[:3])}{' ...' if len(other_case) > 3 else ''}")
        log.warning(
            "%s: not added: %s; only the files named *.deb directly in it are",
            folder,
            " and ".join(left),
        )


def file_urls(paths: Sequence[Path]) -> list[str]:
    """`file://` URLs of `paths`: each folder resolved (symbolic links, `..`), the file
    name kept as it is, quoted as `Path.as_uri()` quotes. A folder is resolved once, not
    once per file: thousands of files are added at a time."""
    from urllib.parse import quote_from_bytes

    folder_urls: dict[str, str] = {}
    urls = []
    for path in paths:
        text = str(path)
        cut = text.rfind("/") + 1
        folder, name = text[:cut], text[cut:]
        if folder not in folder_urls:
            base = path.parent.resolve().as_uri()
            folder_urls[folder] = base if base.endswith("/") else base + "/"
        urls.append(folder_urls[folder] + quote_from_bytes(os.fsencode(name)))
    return urls


def _publish_stored(
    ws: Workspace, result: AddResult, now: datetime, state_files: StateFiles | None = None
) -> PublishReport:
    """Publish what was just stored; if that fails, say that it was stored all the same
    (adding the same files again only publishes) and how to publish it."""
    if result.records:
        stored = ", ".join(f"{r.package_name} {r.version}" for r in result.records[:3])
        more = f" and {len(result.records) - 3} more" if len(result.records) > 3 else ""
        outcome = f"{stored}{more} stored but not published"
    else:  # everything was stored already: the publish was for changes left unpublished
        outcome = "the store's unpublished changes are still unpublished"
    try:
        return ws.publish(now=now, just_written=result.written_keys, state_files=state_files)
    except PublishRefused as exc:
        if not result.records:
            raise
        _take_back(ws, result, exc)
    except (DebrepoError, OSError) as exc:
        raise publish_failed(exc, outcome) from exc
    except BaseException as exc:  # interrupted: the records are in the store all the same
        _say_interrupted(exc, outcome)
        raise


def _say_interrupted(exc: BaseException, outcome: str) -> None:
    """What an interrupted publish leaves: `outcome` of the store's change, unless the
    new Release already went out (then only the publish's clean-up is owed)."""
    if release_went_out(exc):
        outcome = (
            "the new Release is published (clients see it), but the publish was "
            "interrupted before it finished"
        )
    log.error("%s: run `debrepo rebuild`", outcome)


def _take_back(ws: Workspace, result: AddResult, refusal: PublishRefused) -> NoReturn:
    """Undo a store whose publish a safety check refused (a mistyped --home next to the
    right --repo, settings that differ from the published Release): the records, and the
    files just written where no index, current or kept, can name their pool file."""
    from debrepo.core.plan import pool_files_for
    from debrepo.objects.filesystem import FilesystemObjectStore
    from debrepo.services.publish import never_published

    result.taken_back = True
    what = ", ".join(f"{r.package_name} {r.version}" for r in result.records[:3])
    try:
        for record in result.records:
            ws.store.delete(record.package_id)
    except DebrepoError as exc:
        raise publish_failed(
            refusal, f"{what} stored but not published, and taking them back failed ({exc})"
        ) from exc
    for record, key in zip(result.records, result.written_keys, strict=True):
        (pool_file,) = pool_files_for([record], ws.settings.component)
        try:
            if never_published(repo=ws.repo, staging=ws.staging, key=pool_file.key):
                (ws.repo if key == pool_file.key else ws.staging).delete(key)
        except (DebrepoError, OSError) as exc:  # no record names it: harmless, but said
            log.warning("could not remove %s, which no record names now: %s", key, exc)
    for target in (ws.repo, ws.staging):
        if isinstance(target, FilesystemObjectStore):  # the folders made for them
            target.remove_empty_folders(result.written_keys)
    hint = (
        " (`--no-publish` stores them without publishing, for that rebuild to include)"
        if refusal.settled_by_rebuild
        else ""
    )
    raise PublishRefused(refusal.reason, outcome=f"nothing was added{hint}") from refusal


def add_packages(
    ws: Workspace,
    paths: Sequence[Path],
    *,
    publish: bool = True,
    now: datetime | None = None,
    wait_seconds: float = 0.0,
    file_progress: Callable[[int], None] | None = None,
) -> AddResult:
    """Ingest .deb files (all or none), then publish unless told not to.

    A file whose version is already stored with the same bytes is skipped; if nothing
    new remains, the publish runs only when the store holds changes no publish has
    included yet (an earlier `add` stopped before its publish finished)."""
    from debrepo.core.records import Provenance
    from debrepo.services.ingest import Destination, IngestItem

    now = now or utc_now()
    files = expand_paths(paths)
    items = [
        IngestItem(path, Provenance(deb_url=url, package_type="manual"))
        for path, url in zip(files, file_urls(files), strict=True)
    ]
    configs = ws.configs  # broken or missing definitions fail before anything is created
    if publish:
        ws.signer  # noqa: B018 - a missing or unreadable key fails now, before anything is stored
        # Stored records whose publish could not be written would wait for a `rebuild`.
        _refuse_unwritable(ws, "nothing was added")
    with ws.lock(wait_seconds):
        return _store_then_publish(
            ws,
            items,
            target=ws.repo,
            destination=Destination.of("pool", ws.settings),
            configs=configs,
            stored_at=now,
            publish_at=now if publish else None,
            progress=file_progress,
        )


def _store_then_publish(
    ws: Workspace,
    items: Sequence[IngestItem],
    *,
    target: ObjectStore,
    destination: Destination,
    configs: dict[str, PackageConfig],
    stored_at: datetime,
    publish_at: datetime | None,
    progress: Callable[[int], None] | None = None,
) -> AddResult:
    """Ingest `items` (under the caller's lock), then publish at `publish_at` (None: do
    not) if anything new was stored or the store holds changes no publish included."""
    from debrepo.services.ingest import ingest_files
    from debrepo.services.publish import pool_file_keeper

    already: list[PackageRecord] = []
    restored: list[PackageRecord] = []
    # Read once, for the check of the pool files and for the publish (under the lock).
    state_files = StateFiles.read(ws.staging) if target is ws.repo else None
    if state_files is not None:
        # Before a file goes under the other folder (a put-back needs no publish).
        state = PublishState.from_json(state_files.state)
        moved = pool_folder_change(state, ws.settings.components)
        if moved and state.describes(ws.repo):
            raise PublishRefused(moved, outcome="nothing was added")
    records = ingest_files(
        items,
        store=ws.store,
        target=target,
        destination=destination,
        configs=configs,
        now=stored_at,
        progress=progress,
        already_stored=already,
        put_back=restored,
        may_place=pool_file_keeper(ws.repo, state_files, ws.store) if state_files else None,
    )
    result = AddResult(
        records,
        written_keys=_keys(ws, destination, records),
        already_stored=already,
        put_back=restored,
    )
    try:
        if publish_at is not None and (
            records or store_changed_since_publish(ws.store, ws.staging, repo=ws.repo)
        ):
            result.report = _publish_stored(ws, result, publish_at, state_files)
    finally:
        if records and not result.taken_back:  # taken back: as withdrawn as before
            _clear_withdrawals(ws, records)
    return result


def _clear_withdrawals(ws: Workspace, records: Sequence[PackageRecord]) -> None:
    """Versions stored again are wanted again: not after the take-back of a refused
    publish, which leaves them as they were."""
    try:
        ws.store.clear_withdrawals([record.package_id for record in records])
    except DebrepoError as exc:
        log.warning("the store still lists some of these versions as removed: %s", exc)


def rebuild(
    ws: Workspace,
    *,
    now: datetime | None = None,
    wait_seconds: float = 0.0,
    full: bool = False,
    replace: bool = False,
) -> PublishReport:
    """Regenerate every index from the store alone and re-sign (the seed's force rebuild).

    Reads no .deb. If the store has not changed since the last publish and the
    published indices are intact, their bytes would come out the same: only the Release
    is re-dated and re-signed. `full` renders everything again and also looks every
    pool file up, copying a missing one back from the staging area (or refusing to
    publish an index that would name it). `replace` (a full rebuild too) publishes the
    store's contents even where that drops versions it lacks or changes what clients
    check the Release against (see `Publisher._publish`).
    """
    with ws.lock(wait_seconds):
        return ws.publish(now=now or utc_now(), full=full, replace=replace)


def build_kiro_repo(
    ws: Workspace,
    *,
    version: str,
    repo_url: str | None = None,
    publish_after: bool = True,
    now: datetime | None = None,
    output: Path | None = None,
    wait_seconds: float = 0.0,
) -> AddResult:
    """Build kiro-repo_<version>_all.deb, stage it, record it and (by default) publish."""
    from hashlib import sha256

    from debrepo.core.records import Provenance, staging_prefix_for
    from debrepo.services.ingest import Destination, IngestItem
    from debrepo.services.repo_package import (
        RepoPackageTemplates,
        build_repo_package,
        check_inputs,
        template_dir_for,
    )

    now = now or utc_now()
    check_inputs(version, repo_url or ws.settings.public_url)  # before a key or store is made
    if output is not None:
        check_output_path(ws, output)
    if repo_url and repo_url.rstrip("/") != ws.settings.public_url.rstrip("/"):
        # Both ways in stay valid, but new users who follow the page use the other URL.
        log.warning(
            "--repo-url %s is not the public URL %s (public_url) that the install page "
            "(index.html) tells users to fetch from; pass --public-url %s too, or set it in "
            "the settings",
            repo_url,
            ws.settings.public_url,
            repo_url,
        )
    config = ws.configs.get(CONVENIENCE_PACKAGE)
    if config is None:
        raise ConfigError(
            f"{ws.settings.config_dir / 'kiro-repo.yaml'}: kiro-repo is not configured"
        )
    templates = RepoPackageTemplates.load(template_dir_for(config, ws.settings.config_dir))
    settings = ws.settings
    package_id = make_package_id(CONVENIENCE_PACKAGE, version)
    stored = ws.store.get(package_id)
    if stored is None and ws.store.withdrawn_at(package_id) is not None:
        log.warning(
            "kiro-repo %s was removed before: this build has other bytes under the same file "
            "name, which a client still holding an index from before cannot download until "
            "its next `apt update` (a new version number avoids that)",
            version,
        )
    built_at = now
    if stored is not None:
        # Built again with the time of the stored build: the same inputs give the same
        # bytes, skipped as stored (a re-run of the build script after an interruption).
        with contextlib.suppress(ValueError):  # unreadable: the bytes differ, refused below
            built_at = datetime.fromisoformat(stored.processed_timestamp)
    data = build_repo_package(
        version=version,
        repo_url=repo_url or settings.public_url,
        suite=settings.suite,
        component=settings.component,
        key_name=settings.key_name,
        public_key=ws.keyring_to_install(),  # with an announced key: clients learn it here
        fingerprint=ws.signer.fingerprint,
        config=config,
        templates=templates,
        built_at=built_at,
    )
    if stored is not None and sha256(data).hexdigest() != stored.sha256_hash:
        raise DuplicatePackageError(package_id)  # other inputs (URL, key, templates)
    filename = canonical_filename(CONVENIENCE_PACKAGE, version, "all")  # as the pool names it
    import tempfile

    with tempfile.TemporaryDirectory(prefix="debrepo-build-") as scratch:
        built = Path(scratch) / filename
        built.write_bytes(data)
        key = staging_key(staging_prefix_for(CONVENIENCE_PACKAGE, config), filename)
        provenance = Provenance(
            deb_url=f"{ws.staging.description.rstrip('/')}/{key}",
            package_type=config.source.type,
            expected_name=CONVENIENCE_PACKAGE,
            expected_version=version,
            notes=f"APT source for {repo_url or settings.public_url}",
        )
        with ws.lock(wait_seconds):
            if stored is None:  # a new record: its pool file must not replace other bytes
                _refuse_other_published_bytes(ws, package_id, filename, data)
            result = _store_then_publish(
                ws,
                [IngestItem(built, provenance)],
                target=ws.staging,
                destination=Destination.of("staging", settings),
                configs=ws.configs,
                stored_at=built_at,
                publish_at=now if publish_after else None,
            )
    if output is not None:  # only a package that was stored: a refused one is no release
        write_output(ws, output, data)
    return result


def _refuse_other_published_bytes(
    ws: Workspace, package_id: str, filename: str, data: bytes
) -> None:
    """What ingest checks for `add`, for a build staged first: its publish would copy it
    over a pool file that an index may name with other bytes (its record was lost)."""
    from hashlib import sha256

    from debrepo.core.layout import pool_path
    from debrepo.services.publish import pool_file_keeper

    key = pool_path(ws.settings.component, CONVENIENCE_PACKAGE, filename)
    may_place = pool_file_keeper(ws.repo, StateFiles.read(ws.staging), ws.store)
    problem = may_place(key, package_id, len(data), sha256(data).hexdigest())
    if problem:
        raise InvalidPackageError(f"{problem}; nothing was added")


def check_output_path(ws: Workspace, output: Path) -> None:
    """ConfigError if writing `output` could destroy what debrepo keeps: the signing key,
    the store, or any file of the home, the repository or the staging area; or if
    another user planted the way there (`_planted_by_another`)."""
    target = resolved(output.expanduser(), "--output")
    kept = {ws.settings.key_file.resolve(): "the signing key file"}
    store = local_store_file(ws.settings.store)
    if store is not None:
        for path in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
            kept[path] = "the metadata store"
    guarded = {
        ws.settings.home.resolve(): "the home folder",
        ws.settings.config_dir.resolve(): "the package definitions folder",
    }
    for url, what in (
        (ws.settings.repo, "the repository"),
        (ws.settings.staging, "the staging area"),
    ):
        folder = local_folder(url)
        if folder is not None:
            guarded.setdefault(folder, what)
    if target in kept:
        raise ConfigError(f"--output {output}: that is {kept[target]}; choose another file")
    for folder, what in sorted(guarded.items(), key=lambda item: -len(item[0].parts)):
        if target.is_relative_to(folder):
            raise ConfigError(
                f"--output {output}: that is inside {what} ({folder}), which debrepo manages; "
                "choose a file outside it"
            )
    planted = _planted_by_another(output.expanduser())
    if planted:
        raise ConfigError(
            f"--output {output}: {planted}; refusing to write through it (choose a file in "
            "a folder of your own)"
        )


_DESCRIPTORS = {"/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"/(?:dev|proc/self)/fd/([0-9]+)")


def write_output(ws: Workspace, output: Path, data: bytes) -> None:
    """Write `data` to `output`: a regular file (or a new one) whole or not at all, by a
    temporary file renamed over it (over what a symbolic link names, not the link); a
    descriptor (/dev/stdout, /dev/fd/N) through itself; a FIFO or device as it is."""
    check_output_path(ws, output)
    target = output.expanduser()
    try:
        # /dev/stdout names this process's descriptor, maybe a file the shell opened
        # (`> out`): written through the descriptor itself, at its offset, as a program
        # writing to stdout would (opening the name again would write elsewhere in it).
        descriptor = _DESCRIPTORS.get(str(target)) or (
            int(found.group(1)) if (found := _FD_PATH.fullmatch(str(target))) else None
        )
        if descriptor is not None:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            return
        if target.exists() and not target.is_file():  # a FIFO, a device
            with target.open("ab") as stream:
                stream.write(data)
            return
        target = target.resolve()
        # A new file (O_EXCL) of a name nobody can guess: a predictable one in a shared
        # folder such as /tmp could be a planted symlink, and the write would follow it.
        temporary = target.with_name(f".{target.name}.tmp-{os.urandom(6).hex()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
    except (OSError, OverflowError) as exc:  # OverflowError: /dev/fd/<no such number>
        strerror = getattr(exc, "strerror", None)
        raise DebrepoError(f"{output}: cannot write: {strerror or exc}") from None


def _planted_by_another(path: Path) -> str | None:
    """What the kernel's protected_symlinks and protected_fifos refuse, whatever those
    settings say here: in a sticky folder every user may write (/tmp), a symbolic link
    or FIFO that is neither this user's nor the folder owner's was put there by someone
    else, who chose where the write would go. `path` is walked as the kernel walks it,
    through every link on the way (40 at most, as Linux)."""
    pending = list(path.absolute().parts[1:])
    current, links = Path("/"), 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            current = current.parent
            continue
        entry = current / name
        try:
            info, folder = entry.lstat(), current.stat()
        except OSError:  # missing: nothing planted there (or the write will say why)
            return None
        link = stat.S_ISLNK(info.st_mode)
        if (
            (link or stat.S_ISFIFO(info.st_mode))
            and folder.st_mode & stat.S_ISVTX
            and folder.st_mode & stat.S_IWOTH
            and info.st_uid not in (os.geteuid(), folder.st_uid)
        ):
            kind = "symbolic link" if link else "FIFO"
            return f"{entry} is a {kind} of another user (uid {info.st_uid}) in {current}"
        if not link:
            current = entry
            continue
        links += 1
        if links > 40:
            return None  # a loop: the write fails on it by itself
        target = entry.readlink()
        if target.is_absolute():
            current, target = Path("/"), target.relative_to("/")
        pending[:0] = [part for part in target.parts if part != "."]
    return None


def list_packages(ws: Workspace, package_name: str | None = None) -> list[PackageRecord]:
    from debrepo.core.indexes import sort_records  # not needed to re-sign only

    records = ws.store.by_name(package_name) if package_name else ws.store.all()
    return sort_records(records)


def find_package(ws: Workspace, package_name: str, version: str | None = None) -> PackageRecord:
    """One version, or the latest of a package when no version is given."""
    if version is None and "#" in package_name:
        package_name, version = package_name.split("#", 1)
    if version is not None:
        record = ws.store.get(make_package_id(package_name, version))
    else:
        record = latest(ws.store.by_name(package_name), lambda r: r.version)
    if record is None:
        wanted = f"{package_name} {version}" if version else package_name
        raise PackageNotFoundError(f"{wanted} is not in the store {ws.store.description}")
    return record


def remove_package(
    ws: Workspace,
    package_name: str,
    version: str,
    *,
    publish_after: bool = True,
    now: datetime | None = None,
    wait_seconds: float = 0.0,
) -> tuple[PackageRecord, PublishReport | None]:
    """Delete a version from the store, republish (unless not `publish_after`), then
    delete its staged file.

    Its pool file stays as long as a kept by-hash generation of the indices names it
    (a client may hold a Release from before): the publish that drops the last of those
    generations deletes it. One that no index ever named goes at once.
    """
    from debrepo.core.plan import pool_files_for
    from debrepo.services.ingest import Destination
    from debrepo.services.publish import never_published

    with ws.lock(wait_seconds):
        try:
            record = find_package(ws, package_name, version)
        except PackageNotFoundError as exc:
            if store_changed_since_publish(ws.store, ws.staging):  # a removal stopped halfway?
                raise PackageNotFoundError(
                    f"{exc}; the store holds changes no publish has included yet: "
                    "`debrepo rebuild` publishes them"
                ) from None
            raise
        if publish_after:  # a publish that would fail must not follow a deletion
            from debrepo.core.indexes import unpublished_by_architecture

            ws.signer  # noqa: B018 - only a publish needs it: a bad one fails now
            others = [r for r in ws.store.snapshot().records if r.package_id != record.package_id]
            left_out = unpublished_by_architecture(others, ws.settings.architectures)
            if left_out:
                raise PublishError(
                    f"{left_out}; nothing was removed (remove each with --no-publish, then "
                    "run `debrepo rebuild`)"
                )
            _refuse_unwritable(ws, "nothing was removed")
        (pool_file,) = pool_files_for([record], ws.settings.component)
        unnamed = never_published(repo=ws.repo, staging=ws.staging, key=pool_file.key)
        # On purpose: `sync` must not fetch it again while upstream still offers it.
        removed_at = (now or utc_now()).isoformat(timespec="seconds")
        ws.store.delete(record.package_id, withdrawn_at=removed_at)
        report = None
        # A file no index names goes with its record, whatever the publish does (once
        # the record is gone nothing accounts for it); not when the record is put back.
        delete_unnamed = unnamed
        try:
            if publish_after:
                try:
                    report = ws.publish(now=now or utc_now(), removed=[record.package_id])
                except PublishRefused as exc:
                    # Refused for another reason (a version lost by hand, a changed key):
                    # the removal waits until that is settled rather than half done.
                    delete_unnamed = False
                    _put_back(ws, record, exc, published=not unnamed)
                except (DebrepoError, OSError) as exc:
                    what = f"{record.package_name} {record.version} was removed from the store"
                    raise publish_failed(exc, f"{what} but is still published") from exc
                except BaseException as exc:  # interrupted: the record is gone all the same
                    _say_interrupted(
                        exc,
                        f"{record.package_name} {record.version} was removed from the "
                        "store but is still published",
                    )
                    raise
            # Not needed any more, published or not: the pool keeps the copy clients
            # may still fetch, and no publish would ever delete this one.
            staged_key = _keys(ws, Destination.of("staging", ws.settings), [record])[0]
            try:
                ws.staging.delete(staged_key)
            except DebrepoError as exc:  # the removal is done: only a leftover
                log.warning(
                    "%s %s is removed%s, but its staged copy %s stays: %s",
                    record.package_name,
                    record.version,
                    " and published" if publish_after else "",
                    staged_key,
                    exc,
                )
        finally:
            if delete_unnamed:
                try:
                    ws.repo.delete(pool_file.key)
                except DebrepoError as exc:
                    log.warning(
                        "could not remove %s, which no record names now: %s", pool_file.key, exc
                    )
    return record, report


def _refuse_unwritable(ws: Workspace, outcome: str) -> None:
    """PublishError, changing nothing, when a local folder the publish writes is not
    writable (S3 tells only when asked to write)."""
    from debrepo.objects.filesystem import FilesystemObjectStore

    for store, inside in ((ws.repo, f"dists/{ws.settings.suite}"), (ws.staging, "staging/.state")):
        if isinstance(store, FilesystemObjectStore) and (problem := store.unwritable([inside])):
            raise PublishError(f"{problem}; {outcome}")


def _put_back(
    ws: Workspace, record: PackageRecord, refusal: PublishRefused, *, published: bool
) -> NoReturn:
    what = f"{record.package_name} {record.version}"
    try:
        ws.store.put(record)
        ws.store.clear_withdrawals([record.package_id])  # the deletion recorded one
    except DebrepoError as exc:
        raise publish_failed(
            refusal, f"{what} was removed from the store, and putting it back failed ({exc})"
        ) from exc
    where = "stored and published" if published else "stored"
    raise PublishRefused(
        refusal.reason, outcome=f"nothing was removed: {what} is still {where}"
    ) from refusal


def verify(ws: Workspace, *, quick: bool = False, now: datetime | None = None) -> VerifyReport:
    from debrepo.services.verify import verify_repository

    # The key to compare the published one with: from Secrets Manager when configured
    # (the AWS deployment), else the key file if there is one (none generated here).
    # A secret this role cannot fetch is a warning (verify often runs with less
    # permission than the publisher); a fetched secret or a key file that holds no
    # usable key is a problem: the next publish would fail on it.
    signer: OpenPGPSigner | None = None
    unavailable: str | None = None
    broken_key: str | None = None
    key_file = ws.settings.key_file
    try:  # a monitoring account may not read the key, or even its folder
        readable = key_file.exists() and os.access(key_file, os.R_OK, effective_ids=True)
        present = readable or key_file.exists()
    except PermissionError:
        readable, present = False, True
    if present and not readable and not ws.settings.key_secret_id:
        unavailable = (
            f"the published key was not compared with the signing key: this user cannot "
            f"read {key_file}"
        )
    elif ws.settings.key_secret_id or present:
        try:
            signer = ws.key_to_compare  # verify compares the key; it signs nothing
        except SecretUnavailableError as exc:
            unavailable = f"the published key was not compared with the signing key: {exc}"
        except DebrepoError as exc:
            broken_key = f"the signing key cannot be loaded: {exc}"
    else:
        unavailable = (
            f"the published key was not compared with the signing key: there is none at "
            f"{ws.settings.key_file} (check --key-file, or restore it before the next publish)"
        )
    announced: dict[str, AnnouncedKey] | None = None  # None: not known
    accounted: set[str] | None = None  # every pool file the publisher knows of
    try:
        files = ws.state_files()
        state = PublishState.parse(files.state) if files.state is not None else None
        if state is not None and not state.describes(ws.repo):
            state = None  # describes another repository: nothing it says applies here
        if state is not None:
            announced = state.announced
            if (pool_map := PublishState.pool_from_json(files.pool)) is not None:
                accounted = {*pool_map.pool, *pool_map.retired}
    except UNREADABLE:
        unreadable = (
            "the publisher state is unreadable: announced keys and stray pool files unchecked"
        )
        unavailable = f"{unavailable}; {unreadable}" if unavailable else unreadable
    except (OSError, DebrepoError) as exc:
        state_unread = f"the publisher state could not be read: {exc}"
        unavailable = f"{unavailable}; {state_unread}" if unavailable else state_unread
    publishing = publish_in_progress(ws.settings)
    report = verify_repository(
        store=ws.store,
        repo=ws.repo,
        settings=ws.settings,
        signer=signer,
        announced=announced,
        accounted_pool_files=accounted,
        staging=ws.staging,
        now=now or utc_now(),
        check_pool_hashes=not quick,
        progress=ws.progress,
    )
    publishing = publishing or publish_in_progress(ws.settings)
    if publishing:
        # Between its waves the files and the Release in place disagree, by design.
        report.warnings.insert(
            0,
            f"a publish ran during this check ({publishing}): a file that differs from "
            "the Release may be that publish's, half done; run `debrepo verify` again once "
            "it has finished",
        )
    if unavailable:
        report.warnings.insert(0, unavailable)
    if broken_key:
        report.problems.insert(0, broken_key)
    return report


def next_key_file(ws: Workspace) -> Path:
    """Where `key generate --next` keeps the key announced to take over signing."""
    return ws.settings.key_file.with_name(f"next-{ws.settings.key_file.name}")


def generate_key(ws: Workspace, *, force: bool = False, path: Path | None = None) -> OpenPGPSigner:
    """Create the signing key file, or another (`path`), refusing to replace one unless
    `force`."""
    path = path or ws.settings.key_file
    if path.exists() and not force:
        raise ConfigError(
            f"{path}: a signing key already exists; pass --force to replace it (clients "
            "that trust the old key will reject the repository until they get the new one; "
            "`debrepo key generate --next` changes it without that)"
        )
    import tempfile  # not needed to re-sign only

    refuse_a_home_others_control(ws.settings.home)
    secret = generate_secret_key(ws.settings.key_user_id)
    try:
        refuse_a_folder_others_control(nearest_existing(path.parent), path)
        make_folders(path.parent, 0o700)
        # A new file of a name nobody could have prepared (mode 0600, O_EXCL): a fixed
        # temporary name would take over a leftover's mode, or follow its symlink.
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the new signing key: {exc.strerror}") from None
    temp = Path(temp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secret)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the new signing key: {exc.strerror}") from None
        if path.exists():
            # Replaced on purpose, but perhaps the only copy of the key clients trust:
            # kept, under a name no other copy has, never readable by others.
            try:
                kept = _keep_a_copy(path)
            except OSError as exc:
                raise ConfigError(
                    f"{path}: cannot keep a copy of the key being replaced: {exc.strerror}"
                ) from None
            log.warning("kept the key being replaced at %s", kept)
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return OpenPGPSigner(secret, source=str(path))


def _keep_a_copy(path: Path) -> Path:
    """Copy `path` to a new `<name>.replaced-<UTC time>[-N]` beside it, created 0600."""
    data = path.read_bytes()
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    for attempt in itertools.count():
        kept = path.with_name(f"{path.name}.replaced-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return kept
    raise AssertionError("unreachable")  # pragma: no cover


def generate_next_key(ws: Workspace, *, force: bool = False) -> tuple[OpenPGPSigner, Path]:
    """Create the key to take over signing beside the key file (`next_key_file`); it is
    announced by the caller. Checks first what would make the announcement fail."""
    ws.store  # noqa: B018 - a missing store fails before a key is made
    signing = ws.existing_signer().fingerprint.lower()  # so does a missing key to take over from
    path = next_key_file(ws)
    if path.exists():
        from debrepo.signing.openpgp import public_part, read_key_file

        try:
            fingerprint: str | None = public_part(read_key_file(path), source=str(path))[1]
        except (OSError, DebrepoError):
            fingerprint = None
        if fingerprint is not None and fingerprint.lower() == signing:
            # Left by the last rotation, copied over the key file: it signs, and is kept
            # there; a new next key takes its place.
            return generate_key(ws, force=True, path=path), path
        if fingerprint is not None and fingerprint.lower() in ws.announced_keys():
            raise ConfigError(
                f"{path} holds the announced key {fingerprint.upper()}, which a kiro-repo may "
                "install already: to replace it, withdraw it first (`debrepo key announce "
                "--withdraw`), then pass --force"
            )
        if not force:
            raise ConfigError(
                f"{path}: a key is there already: announce it with `debrepo key announce "
                f"{path}`, or pass --force to replace it"
            )
    return generate_key(ws, force=force, path=path), path


def announce_key(
    ws: Workspace,
    key_file: Path | None,
    *,
    now: datetime | None = None,
    wait_seconds: float = 0.0,
) -> tuple[str | None, list[str], PublishReport]:
    """Publish the public part of the secret key in `key_file` in the keyring, beside
    the signing key, so that clients trust it before it takes over; None withdraws the
    announced key. The fingerprint announced, those no longer announced (one key is
    announced at a time), and the publish."""
    from debrepo.signing.openpgp import public_part, read_key_file

    ws.store  # noqa: B018 - a missing store fails before a signing key is made
    announce: tuple[bytes, str] | None = None
    if key_file is not None:
        announce = public_part(read_key_file(key_file), source=str(key_file))
        if announce[1].lower() == ws.signer.fingerprint.lower():
            raise ConfigError(
                f"{key_file} holds the signing key {announce[1].upper()} itself; announce "
                "the key that is to take over from it"
            )
    with ws.lock(wait_seconds):
        before = ws.announced_keys()
        dropped = [fpr for fpr in before if announce is None or fpr != announce[1].lower()]
        report = ws.publish(
            now=now or utc_now(), announce=announce, withdraw_announced=announce is None
        )
    return (announce[1] if announce else None), dropped, report


def sync(
    ws: Workspace,
    *,
    dry_run: bool = False,
    only_package: str | None = None,
    now: datetime | None = None,
    wait_seconds: float = 0.0,
    notifier: PackageNotifier | None = None,
    http_settings: HttpSettings | None = None,
    retry_refused: bool = False,
) -> SyncReport:
    """Fetch what is new from every package's source, store it and publish (the seed's
    Normal Workflow); re-sign an unchanged repository past half its Valid-Until window.

    The repository lock is taken after the downloads, to store them and publish. A
    dry run asks the sources and reports what would be fetched and published, but
    downloads, stores, signs and publishes nothing (and so takes no lock).
    """

    from debrepo.notify import notifier_for
    from debrepo.services.ingest import Destination
    from debrepo.services.sync import run_sync

    if not ws.configs:
        raise ConfigError(
            f"{ws.settings.config_dir}: no package definitions, so nothing to sync; run from "
            "the project root or set DEBREPO_CONFIG_DIR"
        )
    moment = now or utc_now()

    def publish(at: datetime, written: Sequence[str]) -> PublishReport:
        return ws.publish(now=at, just_written=written)

    def run(store: MetadataStore, *, empty: bool = False) -> SyncReport:
        def settings_changed() -> str | None:
            if empty:
                return None  # nothing stored, so nothing published from here either
            if not dry_run:
                return ws.publisher().settings_changed()
            # A dry run reads no secret (a monitoring role may not) and makes no key: the
            # settings are compared, and the key only when it is a readable file here.
            from debrepo.services.publish import settings_changed as differ

            signer = None
            if not ws.settings.key_secret_id and ws.settings.key_file.exists():
                try:
                    signer = ws.signer
                except DebrepoError as exc:
                    log.warning("the signing key was not compared with the published one: %s", exc)
            return differ(repo=ws.repo, staging=ws.staging, settings=ws.settings, signer=signer)

        return run_sync(
            lock=contextlib.nullcontext if dry_run else lambda: ws.lock(wait_seconds),
            idle=ws.settle_cdn,  # an invalidation an earlier run still owes
            settings_changed=settings_changed,
            store=store,
            repo=ws.repo,
            staging=ws.staging,
            configs=ws.configs,
            publish=publish,
            notifier=notifier or notifier_for(ws.settings.sns_topic_arn),
            now=moment,
            suite=ws.settings.suite,
            destination=Destination.of("pool", ws.settings),
            dry_run=dry_run,
            only_package=only_package,
            environ=os.environ,
            http_settings=http_settings,
            retry_refused=retry_refused,
        )

    if dry_run and ws.store_to_be_started():
        # Nothing stored yet, or a mistyped --home: read as an empty store, and none is
        # created (a dry run changes nothing).
        import tempfile

        with tempfile.TemporaryDirectory(prefix="debrepo-dry-run-") as scratch:
            return run(open_store(f"sqlite://{scratch}/metadata.db"), empty=True)
    if dry_run:
        return run(ws.store)
    # A missing or unusable key (a secret created without a value) fails now, before
    # anything is downloaded or stored, not at the publish after it.
    ws.signer  # noqa: B018
    return run(ws.store)


def migrate_table(
    ws: Workspace,
    *,
    old_table: str,
    backup_file: Path | None,
    dry_run: bool = False,
    default_package: str = "kiro",
    skip_versions: Sequence[str] = (),
    publish_after: bool = True,
    now: datetime | None = None,
    wait_seconds: float = 0.0,
    http_settings: HttpSettings | None = None,
) -> tuple[MigrationReport, PublishReport | None]:
    """The seed's one-time migration: back up the old-schema table, then download, check
    and store every version it lists that the store lacks, and publish once.

    The old table is only read. Every old item is checked before anything is fetched; a
    version whose download fails its old size or checksums is reported, the others go
    on; `skip_versions` are left out (e.g. a version whose download is gone for good).
    A dry run scans, backs up (if asked) and reports, and changes nothing.
    """
    from debrepo.services.ingest import Destination
    from debrepo.services.migrate import (
        OldTable,
        migrate_versions,
        plan_migration,
        write_backup,
    )
    from debrepo.services.publish import pool_file_keeper

    if backup_file is None and not dry_run:
        raise ConfigError("--backup-file is required to migrate (a dry run may go without)")
    table = OldTable.from_environment(old_table, os.environ)
    table.check_schema()
    items = table.scan()
    if backup_file is not None:
        write_backup(items, backup_file)
        log.info("backed up %d old item(s) to %s", len(items), backup_file)
    report = plan_migration(
        items, store=ws.store, default_package=default_package, skip=skip_versions
    )
    report.backup_file = str(backup_file) if backup_file is not None else None
    if dry_run:
        return report, None
    if publish_after:
        ws.signer  # noqa: B018 - a missing or unreadable key fails now, not after the downloads
    moment = now or utc_now()
    written = migrate_versions(
        report,
        store=ws.store,
        repo=ws.repo,
        configs=ws.configs,
        destination=Destination.of("pool", ws.settings),
        now=moment,
        lock=lambda: ws.lock(wait_seconds),
        http_settings=http_settings,
        progress=ws.progress,
        pool_check=lambda: pool_file_keeper(ws.repo, StateFiles.read(ws.staging), ws.store),
    )
    # Left out on purpose: not fetched by sync, and not something a publish may keep
    # listing (the old deployment's indices name them), even a later scheduled one.
    for package_id in report.skipped:
        ws.store.withdraw(package_id, moment.isoformat(timespec="seconds"))
    published = None
    if publish_after:
        # Also when nothing was migrated this time: a run that stored every version but
        # failed to publish is finished by running it again.
        # Versions left out (--skip) or failed may be listed by the old deployment's
        # indices, which this store's first publish replaces: dropping them is meant.
        left_out = [*report.skipped, *report.withdrawn]
        left_out += [package_id for package_id, _ in report.failed]
        with ws.lock(wait_seconds):
            published = ws.publish(now=moment, just_written=written, removed=left_out)
    return report, published


def restore_table(table_name: str, backup_file: Path) -> int:
    """Write every item of a migration backup back into an old-schema table, as it was;
    returns how many. Items already there are replaced by their backed-up state."""
    from debrepo.services.migrate import OldTable, read_backup

    items = read_backup(backup_file)
    table = OldTable.from_environment(table_name, os.environ)
    table.check_schema()
    table.put_all(items)
    return len(items)
