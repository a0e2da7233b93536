"""Logic every metadata store shares, on top of a few backend primitives.

A backend implements `_items`, `_item`, `_insert`, `_delete` and the four withdrawal
methods; reading whole records, skipping incomplete ones with a warning, and choosing
the latest version live here once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from debrepo.errors import RecordValidationError
from debrepo.model import PackageRecord, item_problems
from debrepo.ports import Snapshot
from debrepo.versions import latest

log = logging.getLogger("debrepo.store")


class BaseMetadataStore:
    description = "metadata store"

    @property
    def identity(self) -> str:
        return self.description

    # -- primitives -----------------------------------------------------------------
    def _items(self, package_name: str | None = None) -> Iterator[Mapping[str, Any]]:
        raise NotImplementedError

    def _item(self, package_id: str) -> Mapping[str, Any] | None:
        raise NotImplementedError

    def _insert(self, items: list[dict[str, Any]]) -> None:
        """Insert all items atomically; DuplicatePackageError if any package_id exists."""
        raise NotImplementedError

    def _delete(self, package_id: str, withdrawn_at: str | None) -> bool:
        raise NotImplementedError

    def withdraw(self, package_id: str, withdrawn_at: str) -> None:
        raise NotImplementedError

    def clear_withdrawals(self, package_ids: Iterable[str]) -> None:
        raise NotImplementedError

    def withdrawn_at(self, package_id: str) -> str | None:
        raise NotImplementedError

    def withdrawals(self) -> dict[str, str]:
        raise NotImplementedError

    def damage(self) -> list[str]:
        return []  # a managed service (DynamoDB) keeps its own storage whole

    # -- shared behaviour -------------------------------------------------------------
    def put(self, record: PackageRecord) -> None:
        self.put_many([record])

    def put_many(self, records: Iterable[PackageRecord]) -> None:
        items = [record.validate().to_item() for record in records]
        if items:
            self._insert(items)

    def get(self, package_id: str) -> PackageRecord | None:
        item = self._item(package_id)
        return None if item is None else PackageRecord.from_item(item)

    def exists(self, package_id: str) -> bool:
        return self._item(package_id) is not None

    def revision(self, *, seed: bool = True) -> str | None:
        """A token that changes whenever any record changes; None if unknown."""
        return None

    def package_ids(self) -> set[str]:
        return {str(item.get("package_id")) for item in self._items()}

    def all(self) -> list[PackageRecord]:
        return self.snapshot().records

    def snapshot(self) -> Snapshot:
        """Every record at one moment; incomplete items skipped, logged and counted."""
        records: list[PackageRecord] = []
        skipped: list[RecordValidationError] = []
        for item in self._items():
            try:
                records.append(PackageRecord.from_item(item))
            except RecordValidationError as exc:
                skipped.append(exc)
                warn_skipped(exc)
        return Snapshot(records, skipped)

    def by_name(self, package_name: str) -> list[PackageRecord]:
        return [
            r for r in self._complete(self._items(package_name)) if r.package_name == package_name
        ]

    def latest(self, package_name: str) -> PackageRecord | None:
        return latest(self.by_name(package_name), lambda r: r.version)

    def delete(self, package_id: str, *, withdrawn_at: str | None = None) -> bool:
        return self._delete(package_id, withdrawn_at)

    def incomplete(self) -> list[RecordValidationError]:
        """Every stored item that would be skipped, with its problems."""
        found = []
        for item in self._items():
            problems = item_problems(item)
            if problems:
                found.append(RecordValidationError(str(item.get("package_id")), problems))
        return found

    @staticmethod
    def _complete(items: Iterable[Mapping[str, Any]]) -> Iterator[PackageRecord]:
        for item in items:
            try:
                yield PackageRecord.from_item(item)
            except RecordValidationError as exc:
                warn_skipped(exc)


def warn_skipped(exc: RecordValidationError) -> None:
    log.warning(
        "skipping incomplete package record %s: %s",
        exc.package_id,
        "; ".join(exc.problems),
        extra={"package_id": exc.package_id, "problems": list(exc.problems)},
    )
