"""What every package source has in common (seed "Package Handler Interface").

A source answers two questions: what is the newest version upstream (`latest`, cheap,
no .deb is downloaded), and give me that version's file (`acquire`, into a scratch
folder the caller owns and removes). `source_for` picks the implementation by the
package configuration's `source.type`.

Nothing a source reads from upstream becomes a path: the scratch file names are fixed,
and the pool name comes from the control file ingest validates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from debrepo.core.control import LONE_SURROGATE, is_unicode_text
from debrepo.core.records import FileFacts, Provenance
from debrepo.errors import ConfigError, DebrepoError
from debrepo.packages_config import PackageConfig

if TYPE_CHECKING:
    from debrepo.sources.http import HttpClient

HASH_NAMES = ("md5", "sha1", "sha256", "sha512")
HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
DEB_FILE = "package.deb"
ADDITIONAL_FILE_LIMIT = 1 << 20  # certificates and signatures are a few KiB
_RELEASE_TEXT = ("version", "url", "pub_date", "notes", "certificate_url", "signature_url")
# Release notes are kept for `show` and the notifications, never published. An upstream
# sets no size for them, and a DynamoDB item holds 400 KiB with every other field.
NOTES_LIMIT = 64 << 10  # bytes of UTF-8


class SourceError(DebrepoError):
    """An upstream source could not be read, or what it served is not what it promised."""


class NotModified(SourceError):
    """The server says the file is unchanged since the validators it was asked with."""


def sendable_header(value: str) -> bool:
    """Whether `value` can go into a request header as it is (printable ASCII)."""
    return value.isascii() and value.isprintable()


def shortened_notes(notes: str) -> str:
    """`notes` as they are if they fit NOTES_LIMIT, else their start and a line saying so."""
    encoded = notes.encode()
    if len(encoded) <= NOTES_LIMIT:
        return notes
    marker = f"\n[shortened by debrepo: {len(encoded)} bytes upstream]"
    kept = encoded[: NOTES_LIMIT - len(marker.encode())].decode("utf-8", "ignore")
    return kept.rstrip() + marker


@dataclass(frozen=True, slots=True)
class Validators:
    """What an HTTP server said identifies the file it served (RFC 9110 validators)."""

    etag: str | None = None
    last_modified: str | None = None

    def conditional_headers(self) -> dict[str, str]:
        """Headers asking for the body only if the file changed since."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True, slots=True)
class Release:
    """The newest version a source offers, as described upstream (nothing downloaded)."""

    package_name: str
    version: str
    url: str
    pub_date: str | None = None
    notes: str | None = None
    certificate_url: str | None = None
    signature_url: str | None = None
    expected_size: int | None = None
    # hash name (md5, sha1, sha256, sha512) -> lowercase hex, as upstream states it
    expected_hashes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # What goes into the store must be text SQLite can hold: every source checks
        # its fields by name; this is for a source that forgets one.
        for name in _RELEASE_TEXT:
            value = getattr(self, name)
            if isinstance(value, str) and not is_unicode_text(value):
                raise SourceError(
                    f"{self.package_name}: field {name} of the release upstream describes "
                    f"{LONE_SURROGATE}"
                )

    def provenance(self, *, package_type: str, architecture: str | None) -> Provenance:
        """Where this release's .deb came from, and what ingesting it must find inside."""
        return Provenance(
            deb_url=self.url,
            package_type=package_type,
            pub_date=self.pub_date,
            expected_name=self.package_name,
            expected_version=self.version,
            expected_architecture=architecture,
            certificate_url=self.certificate_url,
            signature_url=self.signature_url,
            notes=shortened_notes(self.notes) if self.notes is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Acquired:
    """A release's files, downloaded into a scratch folder and checked against `release`."""

    release: Release
    deb_path: Path
    facts: FileFacts
    certificate_path: Path | None = None
    signature_path: Path | None = None
    validators: Validators | None = None  # of the .deb, as its server gave them
    whole: bool = True  # False: only the connection closing ended the .deb's body


class PackageSource(Protocol):
    """Where new versions of one configured package come from."""

    config: PackageConfig

    def latest(self) -> Release | None:
        """The newest upstream version, or None when this source offers nothing to fetch."""

    def acquire(
        self, release: Release, scratch_dir: Path, *, unchanged_since: Validators | None = None
    ) -> Acquired:
        """Download `release` into `scratch_dir` and check it against what upstream said;
        NotModified if the server says its .deb is unchanged since `unchanged_since`."""


SourceFactory = Callable[..., PackageSource]


def _factories() -> dict[str, SourceFactory]:
    # Imported here: the implementations import this module.
    from debrepo.sources.build_script import BuildScriptSource
    from debrepo.sources.external_download import ExternalDownloadSource
    from debrepo.sources.github_release import GitHubReleaseSource

    return {
        "external_download": ExternalDownloadSource,
        "build_script": BuildScriptSource,
        "github_release": GitHubReleaseSource,
    }


def source_for(
    config: PackageConfig,
    *,
    http: HttpClient,
    environ: Mapping[str, str],
    factories: Mapping[str, SourceFactory] | None = None,
) -> PackageSource:
    """The source for `config`; ConfigError naming the configuration file for an unknown type."""
    known = _factories() if factories is None else factories
    factory = known.get(config.source.type)
    if factory is None:
        raise ConfigError(
            f"{config.origin or config.package_name}: source.type {config.source.type!r} has no "
            f"package source; use one of {', '.join(sorted(known))}"
        )
    return factory(config, http=http, environ=environ)


def json_type(value: object) -> str:
    """What a JSON value is, for an error message: "an object", "a number"..."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def check_expected(release: Release, facts: FileFacts) -> None:
    """SourceError if the downloaded file's size or a checksum differs from upstream's."""
    if release.expected_size is not None and facts.size != release.expected_size:
        raise SourceError(
            f"{release.url}: downloaded {facts.size} bytes, but upstream says "
            f"{release.expected_size}; the download is incomplete or the file was replaced"
        )
    for name in HASH_NAMES:
        expected = release.expected_hashes.get(name)
        actual: str = getattr(facts, name)
        if expected is not None and expected != actual:
            raise SourceError(
                f"{release.url}: {name.upper()} of the download is {actual}, but upstream "
                f"says {expected}; refusing the file"
            )


def stated_differences(release: Release, size: int, hashes: Mapping[str, str | None]) -> list[str]:
    """What upstream states about `release` that differs from a stored file of the same
    version (`size`, and checksums by name as in HASH_NAMES), e.g. `sha256 abc... (stored
    def...)`; empty when nothing it states differs."""
    found = []
    if release.expected_size is not None and release.expected_size != size:
        found.append(f"size {release.expected_size} (stored {size})")
    for name in HASH_NAMES:
        stated, stored = release.expected_hashes.get(name), hashes.get(name)
        if stated is not None and stored is not None and stated != stored:
            found.append(f"{name} {stated[:12]}... (stored {stored[:12]}...)")
    return found


def download_release(
    http: HttpClient,
    release: Release,
    scratch_dir: Path,
    *,
    additional_files: tuple[str, ...],
    unchanged_since: Validators | None = None,
) -> Acquired:
    """Fetch the .deb (and the certificate and signature the config asks for) into scratch.

    The .deb goes to a fixed name; its size and checksums are computed while it streams
    and compared with whatever upstream stated. With `unchanged_since`, a server saying
    the .deb has not changed since raises NotModified and nothing is downloaded.
    """
    deb = scratch_dir / DEB_FILE
    fetched = http.download_file(release.url, deb, unchanged_since=unchanged_since)
    facts = fetched.facts
    check_expected(release, facts)
    extra: dict[str, Path | None] = {"certificate": None, "signature": None}
    for kind, url in (
        ("certificate", release.certificate_url),
        ("signature", release.signature_url),
    ):
        if url is None or kind not in additional_files:
            continue
        path = scratch_dir / kind
        size = http.download(url, path, max_bytes=ADDITIONAL_FILE_LIMIT).size
        if size == 0:
            raise SourceError(f"{url}: the {kind} file is empty")
        extra[kind] = path
    return Acquired(
        release,
        deb,
        facts,
        extra["certificate"],
        extra["signature"],
        fetched.validators,
        # What upstream states was checked: the size, or a checksum naming the very file.
        fetched.whole or release.expected_size is not None or bool(release.expected_hashes),
    )
