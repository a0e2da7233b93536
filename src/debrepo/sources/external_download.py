"""`source.type: external_download`: a metadata endpoint such as Kiro's (seed "Kiro Package
Handler").

Two shapes of the endpoint's JSON are understood:

- flat (the seed's): `{"version", "url", "pub_date", "notes", "certificate", "signature"}`;
- live Kiro: `{"currentRelease": "0.9.2", "releases": [{"updateTo": {"version", "url",
  "pub_date", "notes", ...}}, ...]}`, taking the release whose version is
  `currentRelease` (its .deb when several files share the version; when several .debs
  do, the one whose URL names the configured architecture, e.g. `linux-x64` for amd64).

Either may state the file's `size` and checksums (`md5`, `sha1`, `sha256`, `sha512`, or
the same names with `_hash`), which the download must then match. A relative `url` is
resolved against the endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from debrepo.core.control import LONE_SURROGATE, is_unicode_text, version_problem
from debrepo.errors import ConfigError
from debrepo.model import is_one_line
from debrepo.packages_config import PackageConfig
from debrepo.sources.base import (
    HASH_NAMES,
    HEX_LENGTHS,
    Acquired,
    Release,
    SourceError,
    Validators,
    download_release,
    json_type,
)
from debrepo.sources.http import (
    HttpClient,
    downgrade_problem,
    traversal_problem,
    url_problem,
)


def _optional_text(
    entry: Mapping[str, Any], key: str, where: str, *, one_line: bool = False
) -> str | None:
    value = entry.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SourceError(f"{where}: field {key} must be a string, found {json_type(value)}")
    if not is_unicode_text(value):  # a JSON "\ud800" escape: SQLite could not store it
        raise SourceError(f"{where}: field {key} {LONE_SURROGATE}")
    if one_line and not is_one_line(value):
        # Refused now, before a download it would be refused after.
        raise SourceError(f"{where}: field {key} must be one line without control characters")
    return value


def _optional_url(entry: Mapping[str, Any], key: str, where: str, base: str) -> str | None:
    value = _optional_text(entry, key, where)
    if value is None:
        return None
    try:
        url = urljoin(base, value.strip())
    except ValueError as exc:  # an unclosed IPv6 bracket
        raise SourceError(f"{where}: field {key}: {value.strip()!r} is not a URL: {exc}") from None
    problem = (
        traversal_problem(value.strip())
        or url_problem(url)
        or downgrade_problem(url, base, "metadata")
    )
    if problem:
        raise SourceError(f"{where}: field {key}: {problem}")
    return url


def _expected_checksums(entry: Mapping[str, Any], where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in HASH_NAMES:
        for key in (name, f"{name}_hash"):
            value = entry.get(key)
            if value is None:
                continue
            text = value.strip().lower() if isinstance(value, str) else ""
            if len(text) != HEX_LENGTHS[name] or any(c not in "0123456789abcdef" for c in text):
                raise SourceError(f"{where}: field {key} is not a {name.upper()} hex digest")
            if found.setdefault(name, text) != text:
                raise SourceError(f"{where}: fields {name} and {name}_hash disagree")
    return found


def _expected_size(entry: Mapping[str, Any], where: str) -> int | None:
    for key in ("size", "file_size"):
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SourceError(f"{where}: field {key} must be a whole number of bytes")
        return value
    return None


def _names_a_deb(url: Any) -> bool:
    """Whether `url` is text whose path ends in .deb."""
    if not isinstance(url, str):
        return False
    try:
        path = urlsplit(url).path
    except ValueError:  # not a URL: chosen all the same, then refused naming it
        path = url.partition("?")[0].partition("#")[0]
    return path.endswith(".deb")


# How download URLs name Debian architectures (`kiro-ide-0.9.2-stable-linux-x64.deb`).
# Not "x86" for i386: it would also match inside "x86_64".
_ARCHITECTURE_ALIASES = {
    "amd64": ("amd64", "x86_64", "x86-64", "x64"),
    "arm64": ("arm64", "aarch64"),
    "armhf": ("armhf", "armv7l", "armv7"),
    "i386": ("i386", "i686", "ia32"),
}


def _names_architecture(url: str, architecture: str) -> bool:
    """Whether `url`'s path names `architecture` (or a usual alias) as a word of its own."""
    try:
        path = urlsplit(url).path.lower()
    except ValueError:
        return False
    names = _ARCHITECTURE_ALIASES.get(architecture, (architecture,))
    alternatives = "|".join(re.escape(name) for name in names)
    pattern = rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])"
    return re.search(pattern, path) is not None


def _choose_deb(
    debs: list[Mapping[str, Any]], architecture: str | None, current: str, where: str
) -> Mapping[str, Any]:
    """The one .deb of several for this repository's architecture; SourceError naming the
    candidates when none or more than one fits (taking the first would download a build
    for another architecture, refused after the download, on every run)."""
    if len(debs) == 1:
        return debs[0]
    urls = [str(entry.get("url")) for entry in debs]
    listed = ", ".join(repr(url) for url in urls[:4]) + (", ..." if len(urls) > 4 else "")
    if not architecture or architecture == "all":
        raise SourceError(
            f"{where}: release {current!r} lists {len(debs)} .deb files "
            f"({listed}) and the package definition's architecture "
            f"{architecture or '(none)'!s} does not tell which to take"
        )
    fitting = [
        entry
        for entry, url in zip(debs, urls, strict=True)
        if _names_architecture(url, architecture)
    ]
    if len(fitting) == 1:
        return fitting[0]
    how_many = "none names" if not fitting else f"{len(fitting)} name"
    raise SourceError(
        f"{where}: release {current!r} lists {len(debs)} .deb files ({listed}) "
        f"and {how_many} architecture {architecture} in its URL; cannot tell which to take"
    )


def _current_release(
    data: Mapping[str, Any], where: str, architecture: str | None
) -> Mapping[str, Any]:
    current = data.get("currentRelease")
    if not isinstance(current, str) or not current.strip():
        raise SourceError(f"{where}: field currentRelease must be a version string")
    releases = data.get("releases")
    if not isinstance(releases, list):
        raise SourceError(f"{where}: field releases must be an array of {{'updateTo': ...}}")
    candidates = [
        entry["updateTo"]
        for entry in releases
        if isinstance(entry, dict)
        and isinstance(entry.get("updateTo"), dict)
        and entry["updateTo"].get("version") == current
    ]
    if not candidates:
        raise SourceError(
            f"{where}: currentRelease {current!r} is not among the {len(releases)} release(s) "
            "listed"
        )
    debs = [c for c in candidates if _names_a_deb(c.get("url"))]
    if debs:
        return _choose_deb(debs, architecture, current, where)
    if len(candidates) == 1:
        only: Mapping[str, Any] = candidates[0]
        return only
    raise SourceError(
        f"{where}: release {current!r} lists {len(candidates)} files and none is a .deb"
    )


def parse_metadata(
    data: Any, *, endpoint: str, package_name: str, architecture: str | None = None
) -> Release:
    """The release the endpoint's JSON describes; SourceError naming what is wrong.

    `architecture` (the package definition's) picks among several .debs of a release.
    """
    if not isinstance(data, dict):
        raise SourceError(f"{endpoint}: expected a JSON object, found {json_type(data)}")
    entry: Mapping[str, Any] = (
        _current_release(data, endpoint, architecture) if "currentRelease" in data else data
    )
    version = entry.get("version")
    if version is None:
        raise SourceError(f"{endpoint}: the metadata has no version")
    if not isinstance(version, str):
        raise SourceError(f"{endpoint}: field version must be a string, found {json_type(version)}")
    problem = version_problem(version.strip())
    if problem:
        raise SourceError(f"{endpoint}: field version: {problem}")
    if entry.get("url") in (None, ""):
        raise SourceError(f"{endpoint}: the metadata has no url for version {version.strip()}")
    url = _optional_url(entry, "url", endpoint, endpoint)
    assert url is not None
    return Release(
        package_name=package_name,
        version=version.strip(),
        url=url,
        pub_date=_optional_text(entry, "pub_date", endpoint, one_line=True),
        notes=_optional_text(entry, "notes", endpoint),
        certificate_url=_optional_url(entry, "certificate", endpoint, endpoint),
        signature_url=_optional_url(entry, "signature", endpoint, endpoint),
        expected_size=_expected_size(entry, endpoint),
        expected_hashes=_expected_checksums(entry, endpoint),
    )


class ExternalDownloadSource:
    """Asks the configured metadata endpoint for the current release and downloads it."""

    def __init__(
        self, config: PackageConfig, *, http: HttpClient, environ: Mapping[str, str]
    ) -> None:
        if not config.source.metadata_endpoint:
            raise ConfigError(
                f"{config.origin}: source.type external_download requires source.metadata_endpoint"
            )
        self.config = config
        self.endpoint = config.source.metadata_endpoint
        self.http = http

    def latest(self) -> Release:
        data = self.http.get_json(self.endpoint)
        return parse_metadata(
            data,
            endpoint=self.endpoint,
            package_name=self.config.package_name,
            architecture=self.config.architecture,
        )

    def acquire(
        self, release: Release, scratch_dir: Path, *, unchanged_since: Validators | None = None
    ) -> Acquired:
        return download_release(
            self.http,
            release,
            scratch_dir,
            additional_files=self.config.additional_files,
            unchanged_since=unchanged_since,
        )
