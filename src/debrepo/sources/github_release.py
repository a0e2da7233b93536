"""`source.type: github_release`: the newest release of a GitHub repository (kiro-cli).

The releases API (`GET /repos/{owner}/{repo}/releases`) lists releases; drafts and
pre-releases are ignored and the newest is the one whose tag (without a leading `v`)
is the highest Debian version, on the first page that has one (pages of nightly
pre-releases before it are read through). Its one asset matching `asset_pattern` is the .deb.
When the pattern has a single `*` and what it stands for in the asset's name is a
Debian version (`kiro-cli_1.2.0-1_amd64.deb`), that is the version; otherwise the tag's.
The asset's `size` and `digest` (`sha256:...`) are checked after the download, which
goes through the same client, limits and checks as every other source.

A token from DEBREPO_GITHUB_TOKEN or GITHUB_TOKEN raises the API's rate limit (it is
sent to the API only, never with the download). DEBREPO_GITHUB_API_URL replaces
https://api.github.com (GitHub Enterprise, tests).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from debrepo.core.control import LONE_SURROGATE, is_unicode_text, version_problem
from debrepo.errors import ConfigError
from debrepo.packages_config import PackageConfig
from debrepo.settings import GITHUB_API_URL_VARIABLE, GITHUB_TOKEN_VARIABLES
from debrepo.sources.base import (
    Acquired,
    Release,
    SourceError,
    Validators,
    download_release,
    json_type,
)
from debrepo.sources.http import HttpClient, HttpStatusError, downgrade_problem, url_problem
from debrepo.versions import version_key

API_URL_VARIABLE = GITHUB_API_URL_VARIABLE
TOKEN_VARIABLES = GITHUB_TOKEN_VARIABLES
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 30
MAX_PAGES = 10  # pages of pre-releases looked through for a release before giving up
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOKEN_RE = re.compile(r"[!-~]+")  # printable ASCII without spaces


def tag_version(tag: str) -> str:
    """`v1.2.0` -> `1.2.0`; other tags as they are."""
    return tag[1:] if len(tag) > 1 and tag[0] in "vV" and tag[1].isdigit() else tag


def version_from_asset(pattern: str, name: str) -> str | None:
    """What the single `*` of `pattern` stands for in `name`, if it is a Debian version."""
    if pattern.count("*") != 1 or any(c in pattern for c in "?[]"):
        return None
    prefix, suffix = pattern.split("*")
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    candidate = name[len(prefix) : len(name) - len(suffix)]
    return candidate if candidate and version_problem(candidate) is None else None


def _text(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) and value else None


def _checked_text(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    """`_text`, refusing text that could not be stored (a JSON "\\ud800" escape)."""
    value = _text(entry, key)
    if value is not None and not is_unicode_text(value):
        raise SourceError(f"{where}: field {key} {LONE_SURROGATE}")
    return value


def _shown(text: str) -> str:
    """Upstream text as an error message can carry it."""
    return text if is_unicode_text(text) else ascii(text)


def stable_releases(data: Any, where: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(tag, release) of every published release whose tag is a version, from one page of
    the releases API's JSON."""
    if not isinstance(data, list):
        raise SourceError(f"{where}: expected a JSON array of releases")
    stable: list[tuple[str, Mapping[str, Any]]] = []
    for entry in data:
        if not isinstance(entry, dict) or entry.get("draft") or entry.get("prerelease"):
            continue
        tag = _text(entry, "tag_name")
        if tag and version_problem(tag_version(tag)) is None:
            stable.append((tag, entry))
    return stable


def choose_release(
    data: Any, *, repository: str, asset_pattern: str, package_name: str, where: str
) -> Release:
    """The newest stable release's matching asset, from the releases API's JSON."""
    stable = stable_releases(data, where)
    if not stable:
        raise SourceError(
            f"{where}: {repository} has no published release (drafts, pre-releases and tags "
            "that are not versions are ignored)"
        )
    tag, release = max(stable, key=lambda item: version_key(tag_version(item[0])))
    listed_assets = release.get("assets")
    if listed_assets is None:
        listed_assets = []
    if not isinstance(listed_assets, list):
        raise SourceError(
            f"{where}: release {tag} of {repository}: field assets must be an array, found "
            f"{json_type(listed_assets)}"
        )
    assets = [a for a in listed_assets if isinstance(a, dict)]
    names = [_shown(name) for a in assets if (name := _text(a, "name"))]
    matching = [a for a in assets if fnmatch.fnmatchcase(_text(a, "name") or "", asset_pattern)]
    if not matching:
        listed = ", ".join(names) if names else "none"
        raise SourceError(
            f"{where}: release {tag} of {repository} has no asset matching {asset_pattern!r} "
            f"(assets: {listed})"
        )
    if len(matching) > 1:
        raise SourceError(
            f"{where}: release {tag} of {repository} has {len(matching)} assets matching "
            f"{asset_pattern!r}; make source.asset_pattern match exactly one"
        )
    asset = matching[0]
    name = _checked_text(asset, "name", f"{where}: an asset of release {tag}") or ""
    url = _checked_text(asset, "browser_download_url", f"{where}: asset {name} of release {tag}")
    if url is None:
        raise SourceError(f"{where}: asset {name} of release {tag} has no browser_download_url")
    problem = url_problem(url) or downgrade_problem(url, where, "release list")
    if problem:
        raise SourceError(f"{where}: asset {name} of release {tag}: {problem}")
    size = asset.get("size")
    expected_size = size if isinstance(size, int) and not isinstance(size, bool) else None
    expected: dict[str, str] = {}
    digest = _text(asset, "digest")
    if digest is not None:
        kind, _, value = digest.partition(":")
        if kind == "sha256" and _HEX64.fullmatch(value):
            expected["sha256"] = value
    about = f"{where}: release {tag}"
    body = _checked_text(release, "body", about)
    return Release(
        package_name=package_name,
        version=version_from_asset(asset_pattern, name) or tag_version(tag),
        url=url,
        pub_date=_checked_text(release, "published_at", about)
        or _checked_text(release, "created_at", about),
        notes=body.strip() if body else None,
        expected_size=expected_size,
        expected_hashes=expected,
    )


def _reset_time(reset: str) -> str:
    """The x-ratelimit-reset header (seconds since the epoch) as a UTC time."""
    if not (reset.isascii() and reset.isdigit()):
        return "an unknown time"
    try:
        moment = datetime.fromtimestamp(int(reset), UTC)
    except (OverflowError, OSError, ValueError):  # beyond what a datetime holds
        return f"an unknown time (x-ratelimit-reset {reset[:40]} is out of range)"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _rate_limit_message(exc: HttpStatusError, token: bool) -> str | None:
    """A clear message for GitHub's rate-limit answers, or None for other errors."""
    if exc.status not in (403, 429):
        return None
    hint = "" if token else "; set GITHUB_TOKEN (or DEBREPO_GITHUB_TOKEN) for a higher limit"
    if exc.headers.get("x-ratelimit-remaining") == "0":
        when = _reset_time(exc.headers.get("x-ratelimit-reset", ""))
        return f"{exc.url}: GitHub API rate limit exhausted; it resets at {when}{hint}"
    if "retry-after" in exc.headers:
        return (
            f"{exc.url}: GitHub API secondary rate limit; retry after "
            f"{exc.headers['retry-after']} seconds{hint}"
        )
    return None


class GitHubReleaseSource:
    """The newest stable release of `source.repository`, through the GitHub REST API."""

    def __init__(
        self, config: PackageConfig, *, http: HttpClient, environ: Mapping[str, str]
    ) -> None:
        repository, pattern = config.source.repository, config.source.asset_pattern
        if not repository or not pattern:
            raise ConfigError(
                f"{config.origin}: source.type github_release requires source.repository "
                "and source.asset_pattern"
            )
        self.config = config
        self.repository = repository
        self.asset_pattern = pattern
        self.http = http
        self.api_url = (environ.get(API_URL_VARIABLE) or DEFAULT_API_URL).rstrip("/")
        if problem := url_problem(self.api_url):
            raise ConfigError(f"{API_URL_VARIABLE}: {problem}")
        variable = next((v for v in TOKEN_VARIABLES if environ.get(v)), None)
        self.token = environ[variable] if variable else None
        if variable and self.token and not _TOKEN_RE.fullmatch(self.token):
            # Sent as a header: a line break would end it early, or let the token
            # write headers of its own. Not shown: it is a secret.
            raise ConfigError(
                f"{variable}: not a GitHub token (it holds a space, a line break or a character "
                "other than printable ASCII); set it to the token alone"
            )

    @property
    def releases_url(self) -> str:
        return f"{self.api_url}/repos/{self.repository}/releases?per_page={PER_PAGE}"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def latest(self) -> Release:
        url = self.releases_url
        # Newest first: the first page with a published release has the newest. Pages of
        # nightly pre-releases before it are read through, up to MAX_PAGES.
        data: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            page_url = url if page == 1 else f"{url}&page={page}"
            entries = self._page(page_url)
            found = stable_releases(entries, page_url)  # also refuses what is not a list
            data.extend(entries)
            if found or len(entries) < PER_PAGE:
                break
        return choose_release(
            data,
            repository=self.repository,
            asset_pattern=self.asset_pattern,
            package_name=self.config.package_name,
            where=url,
        )

    def _page(self, url: str) -> Any:
        try:
            return self.http.get_json(url, headers=self._headers())
        except HttpStatusError as exc:
            message = _rate_limit_message(exc, self.token is not None)
            if message:
                raise SourceError(message) from None
            if exc.status == 404:
                raise SourceError(
                    f"{url}: repository {self.repository} not found; check "
                    f"source.repository in {self.config.origin or self.config.package_name}"
                ) from None
            if exc.status in (401, 403):
                which = "the token (GITHUB_TOKEN or DEBREPO_GITHUB_TOKEN) was refused"
                if self.token is None:
                    which = "GitHub refused the request without a token"
                raise SourceError(
                    f"{exc}: {which}: check that it is valid and may read {self.repository}"
                ) from None
            raise

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
