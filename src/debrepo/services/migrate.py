"""One-time move from the old DynamoDB schema (one Kiro version per item, keyed by
`version`) into debrepo's store (keyed by `package_id`), with a JSONL backup and a
restore.

A table's key cannot change in place, so the old table is only ever read: the new
records go to the configured store (the table Terraform creates), and the old table
stays as it was until the operator removes it. The backup keeps every old item in
DynamoDB's own JSON (with type descriptors), so a restore writes back exactly what was
read.

Old items hold the download URL, size and three checksums, but not what a complete
record needs (SHA512, Installed-Size, the control file's other fields). Each version is
therefore downloaded again from its `deb_url`, checked against the old size and
checksums, and ingested like any other .deb, keeping the old item's `pub_date`,
`processed_timestamp`, `notes` and URLs. Versions already in the store are skipped, so
an interrupted migration is finished by running it again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from debrepo.errors import ConfigError, DebrepoError, LockError, StoreError
from debrepo.model import PackageRecord, make_package_id
from debrepo.ports import MetadataStore, ObjectStore
from debrepo.settings import aws_region

if TYPE_CHECKING:
    from debrepo.packages_config import PackageConfig
    from debrepo.services.ingest import Destination
    from debrepo.sources.http import HttpSettings

log = logging.getLogger("debrepo.migrate")

OLD_KEY = "version"
OLD_HASHES = (("md5_hash", "md5", 32), ("sha1_hash", "sha1", 40), ("sha256_hash", "sha256", 64))
BATCH_LIMIT = 25  # items per BatchWriteItem
UNPROCESSED_RETRIES = 8


class MigrationError(DebrepoError):
    """The old table, an old item or a backup file cannot be used as it is."""


@dataclass(frozen=True, slots=True)
class OldVersion:
    """What an old-schema item says about one version."""

    package_name: str
    version: str
    deb_url: str
    file_size: int | None
    hashes: Mapping[str, str]
    pub_date: str | None = None
    processed_at: datetime | None = None
    certificate_url: str | None = None
    signature_url: str | None = None
    notes: str | None = None

    @property
    def package_id(self) -> str:
        return make_package_id(self.package_name, self.version)


@dataclass
class MigrationReport:
    dry_run: bool
    old_items: int = 0
    backup_file: str | None = None
    already_migrated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # package_ids left out on request
    # package_ids removed on purpose (`debrepo remove`, or --skip by an earlier run): a
    # migration run again must not bring them back
    withdrawn: list[str] = field(default_factory=list)
    to_migrate: list[OldVersion] = field(default_factory=list)
    migrated: list[PackageRecord] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (package_id, error)

    def summary(self) -> str:
        if self.dry_run:
            skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
            removed = f", {len(self.withdrawn)} removed on purpose" if self.withdrawn else ""
            return (
                f"dry run: {self.old_items} old item(s), {len(self.to_migrate)} to migrate, "
                f"{len(self.already_migrated)} already in the store{skipped}{removed}; "
                "nothing was changed"
            )
        parts = [
            f"{self.old_items} old item(s)",
            f"{len(self.migrated)} migrated",
            f"{len(self.already_migrated)} already in the store",
        ]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.withdrawn:
            parts.append(f"{len(self.withdrawn)} removed on purpose")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts)


# -- the old table ----------------------------------------------------------------------


class OldTable:
    """Reads (and, for a restore, writes) a table of the old schema."""

    def __init__(self, table_name: str, *, region: str | None = None, session: Any = None):
        from debrepo.store.dynamodb import _client, _Table, table_name_problem

        problem = table_name_problem(table_name)
        if problem:
            raise ConfigError(f"old table: {problem}")
        self.table_name = table_name
        self._table = _Table(_client(region, None, session, table_name=table_name), table_name)

    @classmethod
    def from_environment(cls, table_name: str, environ: Mapping[str, str]) -> OldTable:
        return cls(table_name, region=aws_region(environ))

    def check_schema(self) -> None:
        """MigrationError unless the table is keyed by `version` alone (the old schema)."""
        from botocore.exceptions import ClientError

        from debrepo.store.dynamodb import _NOT_FOUND

        try:
            described = self._table.call(
                "describe_table", TableName=self.table_name, passthrough=tuple(_NOT_FOUND)
            )["Table"]
        except ClientError:
            # Not "create it": a new table has the new schema, which is not what is read here.
            raise MigrationError(
                f"DynamoDB table {self.table_name} not found in region {self._table.region}: "
                "name the old deployment's table (keyed by 'version'), and check AWS_REGION"
            ) from None
        keys = [k.get("AttributeName") for k in described.get("KeySchema", ())]
        if keys != [OLD_KEY]:
            raise MigrationError(
                f"DynamoDB table {self.table_name} is keyed by {', '.join(map(str, keys))}, "
                f"not by {OLD_KEY!r}: it is not a table of the old schema"
            )

    def scan(self) -> list[dict[str, Any]]:
        """Every item, in DynamoDB's JSON, page after page, strongly consistent."""
        request: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
        items: list[dict[str, Any]] = []
        while True:
            page = self._table.call("scan", **request)
            items.extend(page.get("Items", ()))
            last = page.get("LastEvaluatedKey")
            if not last:
                return items
            request["ExclusiveStartKey"] = last

    def put_all(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Write `items` as they are, 25 per request, retrying what DynamoDB leaves over
        (botocore does not retry UnprocessedItems; boto3's batch_writer re-sends them at
        once and without limit, where this waits between attempts and gives up)."""
        for start in range(0, len(items), BATCH_LIMIT):
            batch = items[start : start + BATCH_LIMIT]
            pending = [{"PutRequest": {"Item": dict(item)}} for item in batch]
            for attempt in range(UNPROCESSED_RETRIES + 1):
                answer = self._table.call(
                    "batch_write_item", RequestItems={self.table_name: pending}
                )
                pending = answer.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
                if attempt == UNPROCESSED_RETRIES:
                    raise StoreError(
                        f"DynamoDB table {self.table_name}: {len(pending)} item(s) still "
                        f"unprocessed after {UNPROCESSED_RETRIES} retries; run the restore again"
                    )
                time.sleep(min(2.0, 0.05 * 2**attempt))


# -- old items (pure) -------------------------------------------------------------------


def _text(item: Mapping[str, Any], name: str, where: str, *, required: bool) -> str | None:
    value = item.get(name)
    if value is None or value == "":
        if required:
            raise MigrationError(f"{where}: field {name} is missing")
        return None
    if not isinstance(value, str):
        raise MigrationError(f"{where}: field {name} is not text")
    return value


def parse_old_item(item: Mapping[str, Any], *, default_package: str) -> OldVersion:
    """An old item (plain values) as an OldVersion; MigrationError naming the field."""
    from decimal import Decimal

    from debrepo.core.control import package_name_problem, version_problem
    from debrepo.sources.http import url_problem

    version = item.get(OLD_KEY)
    if not isinstance(version, str) or not version:
        raise MigrationError(f"old item {dict(item)!r:.120}: field {OLD_KEY} is missing")
    where = f"old item {version}"
    name = _text(item, "package_name", where, required=False) or default_package
    for field_name, problem in (
        (OLD_KEY, version_problem(version)),
        ("package_name", package_name_problem(name)),
    ):
        if problem:
            raise MigrationError(f"{where}: field {field_name}: {problem}")
    deb_url = _text(item, "deb_url", where, required=True)
    assert deb_url is not None
    problem = url_problem(deb_url)
    if problem:
        raise MigrationError(f"{where}: field deb_url: {problem}")
    size = item.get("file_size")
    if size is not None:
        if isinstance(size, Decimal) and size == size.to_integral_value():
            size = int(size)
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MigrationError(f"{where}: field file_size is not a size in bytes")
    hashes = {}
    for attribute, hash_name, digits in OLD_HASHES:
        value = _text(item, attribute, where, required=False)
        if value is None:
            continue
        value = value.lower()
        if len(value) != digits or value.strip("0123456789abcdef"):
            raise MigrationError(f"{where}: field {attribute} is not {digits} hex digits")
        hashes[hash_name] = value
    if "sha256" not in hashes:
        raise MigrationError(
            f"{where}: field sha256_hash is missing; the download could not be checked"
        )
    processed = _text(item, "processed_timestamp", where, required=False)
    processed_at = None
    if processed is not None:
        try:
            processed_at = datetime.fromisoformat(processed)  # 3.11: "Z" too
        except ValueError:
            raise MigrationError(f"{where}: field processed_timestamp is not a date") from None
        if processed_at.tzinfo is None:
            processed_at = processed_at.replace(tzinfo=UTC)
    links = {}
    for attribute in ("certificate_url", "signature_url"):
        link = _text(item, attribute, where, required=False)
        problem = url_problem(link) if link is not None else None
        if problem:
            raise MigrationError(f"{where}: field {attribute}: {problem}")
        links[attribute] = link
    return OldVersion(
        package_name=name,
        version=version,
        deb_url=deb_url,
        file_size=size,
        hashes=hashes,
        pub_date=_text(item, "pub_date", where, required=False),
        processed_at=processed_at,
        certificate_url=links["certificate_url"],
        signature_url=links["signature_url"],
        notes=_text(item, "notes", where, required=False),
    )


# -- the backup -------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    """An attribute value from boto3 (bytes for binaries) as JSON (base64 for them)."""
    ((kind, data),) = value.items()
    if kind == "B":
        return {kind: base64.b64encode(bytes(data)).decode("ascii")}
    if kind == "BS":
        return {kind: [base64.b64encode(bytes(b)).decode("ascii") for b in data]}
    if kind == "L":
        return {kind: [_to_json(v) for v in data]}
    if kind == "M":
        return {kind: {k: _to_json(v) for k, v in data.items()}}
    return value


def _number(text: Any) -> str:
    from decimal import Decimal, InvalidOperation

    if not isinstance(text, str):
        raise ValueError(f"number {text!r} is not a string")
    try:
        if not Decimal(text).is_finite():
            raise InvalidOperation
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    return text


def _binary(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"binary {text!r} is not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"{text[:20]!r} is not base64") from None


def _text_value(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a string")
    return text


def _from_json(value: Any) -> dict[str, Any]:
    """A backed-up attribute value, checked, in the form boto3 writes (bytes for binaries)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"{value!r:.60} is not an attribute value")
    ((kind, data),) = value.items()
    if kind == "S":
        return {kind: _text_value(data)}
    if kind == "N":
        return {kind: _number(data)}
    if kind == "B":
        return {kind: _binary(data)}
    if kind == "BOOL" and isinstance(data, bool):
        return value
    if kind == "NULL" and data is True:
        return value
    if kind == "L" and isinstance(data, list):
        return {kind: [_from_json(v) for v in data]}
    if kind == "M" and isinstance(data, dict):
        return {kind: {_text_value(k): _from_json(v) for k, v in data.items()}}
    if kind in ("SS", "NS", "BS") and isinstance(data, list) and data:
        convert = {"SS": _text_value, "NS": _number, "BS": _binary}[kind]
        return {kind: [convert(v) for v in data]}
    raise ValueError(f"{value!r:.60} is not an attribute value")


def write_backup(items: Sequence[Mapping[str, Any]], path: Path) -> None:
    """One old item per line, in DynamoDB's JSON; never replaces an existing file.

    Written under a temporary name, flushed to disk, read back and only then given its
    name, so a file at `path` is always a complete backup.
    """
    if path.exists():
        raise MigrationError(f"{path}: already exists; choose a new backup file name")
    directory = path.parent
    if not directory.is_dir():
        raise MigrationError(f"{path}: folder {directory} does not exist")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for item in items:
                line = {name: _to_json(value) for name, value in item.items()}
                handle.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if read_backup(Path(temp)) != [dict(item) for item in items]:
            raise MigrationError(f"{path}: the backup read back differs from what was written")
        os.link(temp, path)  # fails rather than replace a file created meanwhile
    except OSError as exc:
        raise MigrationError(f"{path}: cannot write the backup: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(temp).unlink()


def read_backup(path: Path) -> list[dict[str, Any]]:
    """The items of a backup file, checked whole before any is used; MigrationError
    naming the line that is not an item, or a version that appears twice."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise MigrationError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise MigrationError(f"{path}: not a text file") from None
    items = []
    lines_of: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict) or not raw:
                raise ValueError("not an item")
            item = {_text_value(name): _from_json(value) for name, value in raw.items()}
        except ValueError as exc:
            raise MigrationError(f"{path}:{number}: not an item in DynamoDB JSON ({exc})") from None
        version = item.get(OLD_KEY, {}).get("S")
        if not version:
            raise MigrationError(f"{path}:{number}: the item has no {OLD_KEY} (a string)")
        if version in lines_of:
            raise MigrationError(
                f"{path}:{number}: version {version} is also on line {lines_of[version]}"
            )
        lines_of[version] = number
        items.append(item)
    return items


# -- the migration ----------------------------------------------------------------------


def plan_migration(
    old_items: Sequence[Mapping[str, Any]],
    *,
    store: MetadataStore,
    default_package: str,
    skip: Sequence[str] = (),
) -> MigrationReport:
    """What a migration would do; MigrationError listing every unusable old item.

    Old items whose `version` is in `skip` are left out unread."""
    from debrepo.store.dynamodb import _plain

    report = MigrationReport(dry_run=True, old_items=len(old_items))
    listed = {raw.get(OLD_KEY, {}).get("S") for raw in old_items}
    unknown = [version for version in skip if version not in listed]
    if unknown:
        raise MigrationError(
            f"--skip {', '.join(unknown)}: no such version in the old table; nothing was migrated"
        )
    existing = store.package_ids()
    withdrawn = store.withdrawals()
    problems: list[str] = []
    seen: set[str] = set()
    for raw in old_items:
        version = raw.get(OLD_KEY, {}).get("S")
        if version in skip:
            # Named as the item names its package (left unread otherwise: it may be the
            # broken one), so that sync leaves out that package's version, not kiro's.
            name = raw.get("package_name", {}).get("S") or default_package
            package_id = make_package_id(str(name), str(version))
            if package_id in existing:
                log.warning(
                    "--skip %s: %s is in the store already (migrated before); `debrepo "
                    "remove` takes it out",
                    version,
                    package_id.replace("#", " "),
                )
                report.already_migrated.append(package_id)
            else:
                report.skipped.append(package_id)
            continue
        try:
            old = parse_old_item(
                {k: _plain(v) for k, v in raw.items()}, default_package=default_package
            )
        except (MigrationError, StoreError) as exc:
            problems.append(str(exc))
            continue
        if old.package_id in seen:
            problems.append(f"old item {old.version}: {old.package_id} appears twice")
            continue
        seen.add(old.package_id)
        if old.package_id in existing:
            report.already_migrated.append(old.package_id)
        elif old.package_id in withdrawn:
            report.withdrawn.append(old.package_id)
        else:
            report.to_migrate.append(old)
    if problems:
        if len(problems) > 5:  # every one said, so that one round of fixes is enough
            for problem in problems:
                log.error("%s", problem)
        more = f" (and {len(problems) - 5} more, each logged above)" if len(problems) > 5 else ""
        raise MigrationError("; ".join(problems[:5]) + more + "; nothing was migrated")
    from debrepo.versions import version_key

    report.to_migrate.sort(key=lambda o: (o.package_name, version_key(o.version)))
    return report


def migrate_versions(
    report: MigrationReport,
    *,
    store: MetadataStore,
    repo: ObjectStore,
    configs: Mapping[str, PackageConfig],
    destination: Destination,
    now: datetime,
    lock: Callable[[], AbstractContextManager[None]],
    http_settings: HttpSettings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    pool_check: Callable[[], Callable[[str, str, int, str], str | None]] | None = None,
) -> list[str]:
    """Download, check and ingest every planned version, one at a time; returns the
    keys written. A version that fails is reported and the others go on.

    `pool_check()`, called under the lock, gives ingest's `may_place`: a download never
    replaces a pool file an index may name with other bytes (the old deployment's own
    file of that version, if upstream changed it since), as `add` and `sync` never do.

    Downloads (the long part) run outside the repository lock; each version is stored
    under it, so a scheduled publish can run in between and no lock outlives its lease.
    A version that appeared in the store meanwhile counts as already migrated.
    """
    from debrepo.scratch import drop_scratch, new_scratch
    from debrepo.services.ingest import IngestItem, ingest_files
    from debrepo.sources.base import Release, download_release
    from debrepo.sources.http import HttpClient

    report.dry_run = False
    written: list[str] = []
    scratch_root = new_scratch("debrepo-migrate-")
    try:
        with HttpClient(http_settings) as http:
            for done, old in enumerate(report.to_migrate, start=1):
                config = configs.get(old.package_name)
                release = Release(
                    package_name=old.package_name,
                    version=old.version,
                    url=old.deb_url,
                    pub_date=old.pub_date,
                    notes=old.notes,
                    certificate_url=old.certificate_url,
                    signature_url=old.signature_url,
                    expected_size=old.file_size,
                    expected_hashes=dict(old.hashes),
                )
                provenance = release.provenance(
                    package_type=config.source.type if config else "external_download",
                    architecture=config.architecture if config else None,
                )
                scratch = Path(tempfile.mkdtemp(dir=scratch_root))
                acquired = None
                try:
                    acquired = download_release(http, release, scratch, additional_files=())
                    with lock():
                        if store.exists(old.package_id):
                            report.already_migrated.append(old.package_id)
                            continue
                        (record,) = ingest_files(
                            [IngestItem(acquired.deb_path, provenance)],
                            store=store,
                            target=repo,
                            destination=destination,
                            configs=dict(configs),
                            now=old.processed_at or now,
                            may_place=pool_check() if pool_check else None,
                        )
                        # Skipped by an earlier run, wanted now: no longer withdrawn.
                        store.clear_withdrawals([record.package_id])
                except LockError:
                    raise  # holds for every version alike: stop, a re-run goes on from here
                except DebrepoError as exc:
                    message = str(exc)
                    if acquired is not None:  # the downloaded file, named by its URL
                        message = message.replace(str(acquired.deb_path), old.deb_url)
                    message = message.replace(str(scratch), "(download)")
                    log.error("cannot migrate %s: %s", old.package_id, message)
                    report.failed.append((old.package_id, message))
                else:
                    report.migrated.append(record)
                    written.append(record_key(record, destination.component))
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
                    if progress:
                        progress("migrate", done, len(report.to_migrate))
    finally:
        drop_scratch(scratch_root)
    return written


def record_key(record: PackageRecord, component: str) -> str:
    from debrepo.core.layout import pool_path

    return pool_path(component, record.package_name, record.actual_filename)
