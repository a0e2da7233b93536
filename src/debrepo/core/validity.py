"""How far a published Release is through its Valid-Until window: `sync` re-signs an
unchanged repository from half-way on, and `verify` warns when that has not happened.

Apart from core/release.py, which stays clear of email.utils for the re-sign's start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class ReleaseAge:
    """Date and Valid-Until of a published Release (None where absent or unreadable)."""

    date: datetime | None
    valid_until: datetime | None

    @classmethod
    def parse(cls, release: bytes) -> ReleaseAge:
        found: dict[str, datetime | None] = {"Date": None, "Valid-Until": None}
        for line in release.decode("utf-8", "replace").splitlines():
            name, colon, value = line.partition(":")
            if colon and name in found and value.strip():
                try:
                    found[name] = parsedate_to_datetime(value.strip()).astimezone(UTC)
                except (TypeError, ValueError):
                    found[name] = None
        return cls(found["Date"], found["Valid-Until"])

    @property
    def refresh_after(self) -> datetime | None:
        """Half-way through the validity window; None if the Release never expires."""
        if self.valid_until is None:
            return None
        if self.date is None:
            return self.valid_until  # no Date to measure from: treat as due
        return self.date + (self.valid_until - self.date) / 2

    def stale(self, now: datetime) -> bool:
        if self.valid_until is not None and self.date is None:
            return True
        due = self.refresh_after
        return due is not None and now >= due
