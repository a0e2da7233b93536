"""Ingest: .deb files in, records in the store and files in the staging area out.

All or nothing: every file is read and checked first (in worker processes when there
are many), and only when all of them are good are they moved into staging and their
records written, in one transaction. A bad file changes nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from debrepo.core.layout import DEB_CONTENT_TYPE, SHORT_LIVED, Delivery, staging_key
from debrepo.core.records import Provenance, build_record, staging_prefix_for
from debrepo.debfile import DebInspection, inspect_deb
from debrepo.errors import DuplicatePackageError, InvalidPackageError
from debrepo.model import PackageRecord
from debrepo.objects.filesystem import FilesystemObjectStore
from debrepo.packages_config import PackageConfig
from debrepo.ports import MetadataStore, ObjectStore

STAGING_DELIVERY = Delivery(DEB_CONTENT_TYPE, SHORT_LIVED)
PARALLEL_FROM = 64  # files; below this a process pool costs more than it saves
MAX_LISTED_ERRORS = 5


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One file to ingest and what its source says about it."""

    path: Path
    provenance: Provenance


def _inspect(job: tuple[str, str]) -> tuple[DebInspection | None, str | None]:
    """Worker: inspect one .deb, copying it to `temp`; errors come back as text."""
    path, temp = job
    try:
        with open(temp, "wb") as copy:  # noqa: PTH123 - hot path, avoid Path overhead
            return inspect_deb(Path(path), copy_to=copy), None
    except InvalidPackageError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{path}: cannot copy: {exc.strerror}"


def _scratch_parent(staging: ObjectStore) -> Path | None:
    # Same filesystem as staging, so moving a checked file into place is a rename.
    return staging.root if isinstance(staging, FilesystemObjectStore) else None


def ingest_files(
    items: Sequence[IngestItem],
    *,
    store: MetadataStore,
    staging: ObjectStore,
    configs: dict[str, PackageConfig],
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> list[PackageRecord]:
    """Check, stage and record every file, or raise and change nothing."""
    if not items:
        return []
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-ingest-", dir=_scratch_parent(staging)))
    try:
        jobs = [(str(item.path), str(scratch / f"{index}.deb")) for index, item in enumerate(items)]
        results: list[tuple[DebInspection | None, str | None]] = []
        if len(jobs) >= PARALLEL_FROM and (os.cpu_count() or 1) > 1:
            workers = min(os.cpu_count() or 1, 8)
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(
                    _inspect, jobs, chunksize=max(1, len(jobs) // (workers * 8))
                ):
                    results.append(result)
                    if progress:
                        progress(1)
        else:
            for job in jobs:
                results.append(_inspect(job))
                if progress:
                    progress(1)

        errors: list[str] = []
        records: list[PackageRecord] = []
        existing = store.package_ids()
        seen: dict[str, Path] = {}
        for item, (inspection, error) in zip(items, results, strict=True):
            if error is not None or inspection is None:
                errors.append(error or f"{item.path}: unreadable")
                continue
            name = dict((k.lower(), v) for k, v in inspection.control).get("package", "")
            try:
                record = build_record(
                    inspection.control,
                    inspection.facts,
                    item.provenance,
                    configs.get(name),
                    processed_at=now,
                    source=str(item.path),
                )
            except InvalidPackageError as exc:
                errors.append(str(exc))
                continue
            if record.package_id in existing:
                errors.append(f"{item.path}: {DuplicatePackageError(record.package_id)}")
                continue
            if record.package_id in seen:
                errors.append(
                    f"{item.path}: {record.package_name} {record.version} "
                    f"is also in {seen[record.package_id]}"
                )
                continue
            seen[record.package_id] = item.path
            records.append(record)
        if errors:
            more = (
                f" (and {len(errors) - MAX_LISTED_ERRORS} more)"
                if len(errors) > MAX_LISTED_ERRORS
                else ""
            )
            raise InvalidPackageError(
                "; ".join(errors[:MAX_LISTED_ERRORS]) + more + "; nothing was added"
            )

        # Files first, then records: a crash in between leaves an unreferenced staged
        # file (harmless, overwritten by a retry), never a record without its file.
        # With no errors, records[i] came from items[i], whose copy is jobs[i][1].
        for record, (_, copy) in zip(records, jobs, strict=True):
            prefix = staging_prefix_for(record.package_name, configs.get(record.package_name))
            staging.put_file(
                staging_key(prefix, record.actual_filename), Path(copy), STAGING_DELIVERY, move=True
            )
        store.put_many(records)
        return records
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
