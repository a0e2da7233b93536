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
        from debian import deb822

        fields = deb822.Release(release)  # field names in any case, as apt reads them
        return cls(_moment(fields.get("Date")), _moment(fields.get("Valid-Until")))

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


def _moment(value: str | None) -> datetime | None:
    """An RFC 1123 date of a Release, in UTC; None if absent or unreadable."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None
