"""Downloads a sync refused for what they hold, remembered so that later runs do not
download the same file only to refuse it again: a scheduled run would otherwise fetch
a kiro .deb of hundreds of MB every time, for as long as upstream offers it.

A refusal is remembered per package with the version and URL upstream offered, what
judged it (the package definition and debrepo's version), the file's size and SHA256,
and its server's validators (ETag, Last-Modified). A later sync offered the same
version at the same URL, judged alike, asks the server whether the file changed (a
conditional GET: a 304 answer transfers nothing), or sends no request at all when
upstream states the refused file's SHA256. Anything else fetches the file again, and
so does `debrepo sync --retry-refused`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from debrepo import __version__
from debrepo.core.layout import delivery_for
from debrepo.errors import DebrepoError
from debrepo.packages_config import PackageConfig
from debrepo.ports import ObjectStore
from debrepo.sources.base import Release, Validators, sendable_header

log = logging.getLogger("debrepo.sync")

REFUSED_KEY = "staging/.state/refused-downloads.json"
# Where the message reaches the Lambda's operator (SNS, CloudWatch), its own way.
LAMBDA_RETRY_REFUSED = '(the Lambda: {"retry_refused": true})'


class StillRefusedError(DebrepoError):
    """A version refused earlier whose file upstream still serves unchanged."""


def judged_by(config: PackageConfig) -> str:
    """What a refusal depends on besides the file: the package's definition (wherever
    it was read from) and debrepo's version. Either changing may change the verdict."""
    definition = repr(dataclasses.replace(config, origin=""))
    return hashlib.sha256(f"{__version__}\n{definition}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Refusal:
    """One package's last download refused for what it held."""

    version: str
    url: str
    judged_by: str
    reason: str
    refused_at: str
    size: int
    sha256: str
    etag: str | None = None
    last_modified: str | None = None

    def applies_to(self, release: Release, config: PackageConfig) -> bool:
        """Whether upstream offers what was refused, to be judged the same way."""
        return (
            release.version == self.version
            and release.url == self.url
            and judged_by(config) == self.judged_by
        )

    def stated_unchanged(self, release: Release) -> bool:
        """Whether upstream's own checksums name the refused file (no request needed)."""
        size_matches = release.expected_size in (None, self.size)
        return release.expected_hashes.get("sha256") == self.sha256 and size_matches

    def same_verdict(self, other: Refusal) -> bool:
        """Whether `other` refused the same file, offered and judged alike, for the same
        reason (the validators a server gives may change with nothing else)."""
        return (
            dataclasses.replace(
                other, refused_at=self.refused_at, etag=self.etag, last_modified=self.last_modified
            )
            == self
        )

    @property
    def validators(self) -> Validators | None:
        if self.etag or self.last_modified:
            return Validators(self.etag, self.last_modified)
        return None

    def again(self, why: str) -> StillRefusedError:
        return StillRefusedError(
            f"{self.version} was refused on {self.refused_at} and is not downloaded again "
            f"({why}): {self.reason}; it is fetched again once upstream changes the file "
            "or its URL, or the package definition or debrepo changes, or with "
            f"`debrepo sync --retry-refused` {LAMBDA_RETRY_REFUSED}"
        )

    def note(self) -> str:
        """For a dry run, which downloads nothing and so cannot tell."""
        return f"refused on {self.refused_at}; fetched only if upstream changed the file"


def read_refusals(staging: ObjectStore) -> dict[str, Refusal]:
    """The refusals remembered, by package name; none if the file is unreadable (the
    files are fetched again and judged again: nothing is lost but the time)."""
    try:
        raw = staging.get(REFUSED_KEY)
    except DebrepoError as exc:  # an optimisation only: the run goes on without it
        log.warning("cannot read the downloads refused before (fetched again): %s", exc)
        return {}
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
        return {name: _checked(fields) for name, fields in data.items()}
    except (ValueError, TypeError, AttributeError):
        log.warning("%s is unreadable; downloads refused before are fetched again", REFUSED_KEY)
        return {}


def _checked(fields: dict[str, object]) -> Refusal:
    """TypeError unless `fields` are a Refusal's, of the right types."""
    refusal = Refusal(**fields)  # type: ignore[arg-type]
    texts = (refusal.version, refusal.url, refusal.judged_by, refusal.reason, refusal.refused_at)
    headers = [v for v in (refusal.etag, refusal.last_modified) if v is not None]
    if (
        not all(isinstance(text, str) for text in (*texts, refusal.sha256))
        or type(refusal.size) is not int
        # sent back as they are: header values must be printable ASCII
        or not all(isinstance(v, str) and sendable_header(v) for v in headers)
    ):
        raise TypeError(fields)
    return refusal


def write_refusals(staging: ObjectStore, refusals: Mapping[str, Refusal]) -> None:
    """Record `refusals` (under the repository lock); a failure is logged, since it only
    costs a later run a download."""
    try:
        if not refusals:
            staging.delete(REFUSED_KEY)
            return
        data = {name: dataclasses.asdict(refusals[name]) for name in sorted(refusals)}
        raw = json.dumps(data, indent=1, sort_keys=True).encode()
        staging.put(REFUSED_KEY, raw, delivery_for(REFUSED_KEY))
    except DebrepoError as exc:
        log.error("cannot record the downloads refused (the next sync fetches them): %s", exc)
