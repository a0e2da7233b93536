"""The pure parts of the sources: the Kiro endpoint's two shapes, the choice of a GitHub
release and asset, the registry, and the age of a published Release."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from debrepo.core.release import rfc1123
from debrepo.core.validity import ReleaseAge
from debrepo.errors import ConfigError
from debrepo.packages_config import SourceConfig, load_package_configs
from debrepo.sources.base import NOTES_LIMIT, Release, SourceError, shortened_notes, source_for
from debrepo.sources.build_script import BuildScriptSource
from debrepo.sources.external_download import ExternalDownloadSource, parse_metadata
from debrepo.sources.github_release import (
    GitHubReleaseSource,
    choose_release,
    tag_version,
    version_from_asset,
)
from debrepo.sources.http import HttpClient
from tests.conftest import CONFIG_DIR
from tests.sources.conftest import (
    GITHUB_RECORDING,
    KIRO_FLAT_RECORDING,
    KIRO_LIVE_RECORDING,
)

ENDPOINT = "https://download.kiro.dev/linux/metadata.json"
SHA256 = "a" * 64


def parse(document: Any) -> Release:
    return parse_metadata(document, endpoint=ENDPOINT, package_name="kiro")


def test_flat_shape_of_the_seed() -> None:
    release = parse(json.loads(KIRO_FLAT_RECORDING.read_text()))
    assert release == Release(
        package_name="kiro",
        version="0.9.2",
        url="https://download.kiro.dev/linux/kiro_0.9.2_amd64.deb",
        pub_date="2026-11-18T21:04:11Z",
        notes="Faster indexing of large workspaces; spec sessions survive restarts.",
        certificate_url="https://download.kiro.dev/linux/kiro_0.9.2_amd64.deb.pem",
        signature_url="https://download.kiro.dev/linux/kiro_0.9.2_amd64.deb.sig",
    )


def test_live_shape_takes_the_deb_of_the_current_release() -> None:
    # The recording lists the tar.gz of 0.9.2 first, then its .deb, then 0.9.1.
    release = parse(json.loads(KIRO_LIVE_RECORDING.read_text()))
    assert release.version == "0.9.2"
    assert release.url == (
        "https://prod.download.desktop.kiro.dev/releases/stable/linux-x64/signed/0.9.2/deb/"
        "kiro-ide-0.9.2-stable-linux-x64.deb"
    )
    assert release.pub_date == "2026-11-18T21:04:11.000Z"
    assert release.notes == "https://kiro.dev/changelog/ide/0-9-2/"
    assert release.certificate_url is None and release.signature_url is None


def test_live_shape_follows_current_release_not_list_order() -> None:
    document = json.loads(KIRO_LIVE_RECORDING.read_text())
    document["currentRelease"] = "0.9.1"
    assert parse(document).url.endswith("/0.9.1/deb/kiro-ide-0.9.1-stable-linux-x64.deb")


def _release_of_several_debs(*urls: str) -> dict[str, Any]:
    return {
        "currentRelease": "0.9.3",
        "releases": [{"updateTo": {"version": "0.9.3", "url": url}} for url in urls],
    }


@pytest.mark.parametrize("arm_first", [True, False])
def test_live_shape_takes_the_deb_named_for_the_configured_architecture(arm_first: bool) -> None:
    base = "https://prod.download.desktop.kiro.dev/releases/stable"
    arm = f"{base}/linux-arm64/signed/0.9.3/deb/kiro-ide-0.9.3-stable-linux-arm64.deb"
    x64 = f"{base}/linux-x64/signed/0.9.3/deb/kiro-ide-0.9.3-stable-linux-x64.deb"
    document = _release_of_several_debs(*((arm, x64) if arm_first else (x64, arm)))
    for architecture, url in (("amd64", x64), ("arm64", arm)):
        release = parse_metadata(
            document, endpoint=ENDPOINT, package_name="kiro", architecture=architecture
        )
        assert release.url == url


@pytest.mark.parametrize(
    ("urls", "architecture", "message"),
    [
        # x86_64 is no i386 build, although it contains "x86"
        (("k_x86_64.deb", "k_aarch64.deb"), "i386", "and none names architecture i386"),
        (("a/k_amd64.deb", "b/k_amd64.deb"), "amd64", "and 2 name architecture amd64"),
        (("k_amd64.deb", "k_arm64.deb"), "all", "architecture all does not tell which"),
        (("k_amd64.deb", "k_arm64.deb"), None, "architecture (none) does not tell which"),
    ],
)
def test_several_debs_without_one_for_the_architecture_are_refused_naming_them(
    urls: tuple[str, ...], architecture: str | None, message: str
) -> None:
    with pytest.raises(SourceError) as caught:
        parse_metadata(
            _release_of_several_debs(*urls),
            endpoint=ENDPOINT,
            package_name="kiro",
            architecture=architecture,
        )
    text = str(caught.value)
    assert text.startswith(f"{ENDPOINT}: release '0.9.3' lists 2 .deb files ('{urls[0]}'")
    assert message in text


def test_relative_urls_are_resolved_against_the_endpoint() -> None:
    release = parse({"version": "1.0.0", "url": "files/kiro_1.0.0_amd64.deb", "signature": "/s"})
    assert release.url == "https://download.kiro.dev/linux/files/kiro_1.0.0_amd64.deb"
    assert release.signature_url == "https://download.kiro.dev/s"


def test_upstream_checksums_and_size_are_kept() -> None:
    release = parse(
        {"version": "1.0.0", "url": "k.deb", "sha256": SHA256.upper(), "md5_hash": "b" * 32}
        | {"size": 1234}
    )
    assert release.expected_hashes == {"md5": "b" * 32, "sha256": SHA256}
    assert release.expected_size == 1234


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([{"version": "1"}], "expected a JSON object, found an array"),
        ("0.9.2", "expected a JSON object, found a string"),
        ({"url": "https://x/k.deb"}, "the metadata has no version"),
        ({"version": 0.9, "url": "https://x/k.deb"}, "field version must be a string"),
        ({"version": "latest!", "url": "https://x/k.deb"}, "is not a Debian version"),
        ({"version": "0.9.2"}, "the metadata has no url for version 0.9.2"),
        ({"version": "0.9.2", "url": ""}, "the metadata has no url"),
        ({"version": "0.9.2", "url": "ftp://x/k.deb"}, "is not an http(s) URL"),
        ({"version": "0.9.2", "url": "../../../etc/passwd"}, "tries to leave its directory"),
        ({"version": "0.9.2", "url": "k.deb", "notes": ["a"]}, "field notes must be a string"),
        (
            {"version": "0.9.2", "url": "k.deb", "pub_date": "2025\n05"},
            "field pub_date must be one line without control characters",
        ),
        ({"version": "0.9.2", "url": "k.deb", "sha256": "abc"}, "field sha256 is not a SHA256"),
        (
            {"version": "0.9.2", "url": "k.deb", "sha256": SHA256, "sha256_hash": "c" * 64},
            "fields sha256 and sha256_hash disagree",
        ),
        ({"version": "0.9.2", "url": "k.deb", "size": "12"}, "field size must be a whole number"),
        ({"currentRelease": 92, "releases": []}, "currentRelease must be a version string"),
        ({"currentRelease": "0.9.2"}, "field releases must be an array"),
        (
            {"currentRelease": "0.9.3", "releases": [{"updateTo": {"version": "0.9.2"}}]},
            "currentRelease '0.9.3' is not among the 1 release",
        ),
        (
            {
                "currentRelease": "0.9.2",
                "releases": [
                    {"updateTo": {"version": "0.9.2", "url": "a.tar.gz"}},
                    {"updateTo": {"version": "0.9.2", "url": "a.rpm"}},
                ],
            },
            "release '0.9.2' lists 2 files and none is a .deb",
        ),
    ],
)
def test_bad_metadata_is_a_clear_error(document: Any, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse(document)
    assert str(caught.value).startswith(f"{ENDPOINT}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"version": "0.9.2", "url": "http://[::1/kiro.deb"},
            "field url: 'http://[::1/kiro.deb' is not a URL: Invalid IPv6 URL",
        ),
        (
            {"version": "0.9.2", "url": "k.deb", "certificate": "https://a.example:99999/k.pem"},
            "field certificate: 'https://a.example:99999/k.pem' is not a URL: Port out of range",
        ),
        (
            {"version": "0.9.2", "url": "k.deb", "signature": "//[::1/k.sig"},
            "field signature: '//[::1/k.sig' is not a URL: Invalid IPv6 URL",
        ),
        ({"version": "0.9.2", "url": "k\ud800.deb"}, "field url holds a lone surrogate"),
        ({"version": "0.9.2", "url": "k.deb", "notes": "\udcff"}, "field notes holds a lone"),
        (
            {
                "currentRelease": "0.9.2",
                "releases": [
                    {"updateTo": {"version": "0.9.2", "url": "a.tar.gz"}},
                    {"updateTo": {"version": "0.9.2", "url": "http://[::1/a.deb"}},
                ],
            },
            "field url: 'http://[::1/a.deb' is not a URL: Invalid IPv6 URL",
        ),
    ],
)
def test_bad_urls_and_text_in_metadata_are_clear_errors(document: Any, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse(document)
    assert str(caught.value).startswith(f"{ENDPOINT}: {message}")
    str(caught.value).encode("utf-8")


def test_a_release_never_carries_text_the_store_cannot_hold() -> None:
    with pytest.raises(SourceError) as caught:
        Release(package_name="kiro", version="0.9.2", url="https://k.example/k.deb", notes="\ud800")
    assert str(caught.value) == (
        "kiro: field notes of the release upstream describes holds a lone surrogate (such as a "
        "\\ud800 escape), which is not Unicode text"
    )


def _recorded_releases() -> list[dict[str, Any]]:
    releases: list[dict[str, Any]] = json.loads(GITHUB_RECORDING.read_text())
    return releases


def choose(data: Any, pattern: str = "kiro-cli_*_amd64.deb") -> Release:
    return choose_release(
        data,
        repository="kiro-dev/kiro-cli",
        asset_pattern=pattern,
        package_name="kiro-cli",
        where="https://api.github.com/repos/kiro-dev/kiro-cli/releases",
    )


def test_github_newest_stable_release_and_its_matching_asset() -> None:
    # The recording holds a draft v1.3.0, a pre-release v1.3.0-rc.1, v1.2.0 and v1.1.0.
    release = choose(_recorded_releases())
    assert release.version == "1.2.0"
    assert release.url == (
        "https://github.com/kiro-dev/kiro-cli/releases/download/v1.2.0/kiro-cli_1.2.0_amd64.deb"
    )
    assert release.expected_size == 18_734_112
    assert release.expected_hashes == {
        "sha256": "4f1c2b7e9a0d3c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6"
    }
    assert release.pub_date == "2026-11-12T14:20:38Z"
    assert release.notes is not None and release.notes.startswith("## What's Changed")


def test_github_order_of_the_list_does_not_matter() -> None:
    assert choose(list(reversed(_recorded_releases()))).version == "1.2.0"


def test_github_version_comes_from_the_asset_name_when_it_is_one() -> None:
    releases = _recorded_releases()
    stable = next(r for r in releases if r["tag_name"] == "v1.2.0")
    stable["assets"][0]["name"] = "kiro-cli_1.2.0-2_amd64.deb"
    assert choose(releases).version == "1.2.0-2"
    assert choose(releases, "kiro-cli_1.2.0-*_amd64.deb").version == "2"
    assert choose(releases, "kiro-cli_?.?.?-2_amd64.deb").version == "1.2.0"  # from the tag


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rs: {"message": "Not Found"}, "expected a JSON array of releases"),
        (lambda rs: [r for r in rs if r["draft"] or r["prerelease"]], "has no published release"),
        (
            lambda rs: [r | {"assets": r["assets"][2:]} for r in rs],
            "release v1.2.0 of kiro-dev/kiro-cli has no asset matching 'kiro-cli_*_amd64.deb' "
            "(assets: kiro-cli-1.2.0-x86_64-linux.tar.gz, SHA256SUMS)",
        ),
        (
            lambda rs: [r | {"assets": r["assets"] + r["assets"][:1]} for r in rs],
            "release v1.2.0 of kiro-dev/kiro-cli has 2 assets matching",
        ),
    ],
)
def test_github_bad_releases_are_clear_errors(mutate: Any, message: str) -> None:
    with pytest.raises(SourceError, match=r"^https://api\.github\.com/.*: ") as caught:
        choose(mutate(_recorded_releases()))
    assert message in str(caught.value)


def test_tag_and_asset_versions() -> None:
    assert tag_version("v1.2.0") == "1.2.0"
    assert tag_version("V2") == "2"
    assert tag_version("version-1") == "version-1"
    assert tag_version("1.0") == "1.0"
    assert version_from_asset("kiro-cli_*_amd64.deb", "kiro-cli_1.2.0_amd64.deb") == "1.2.0"
    assert version_from_asset("kiro-cli_*_amd64.deb", "kiro-cli_latest_amd64.deb") is None
    assert version_from_asset("kiro-cli_*_*.deb", "kiro-cli_1.2.0_amd64.deb") is None


def test_registry_picks_the_source_by_type_and_names_the_file_for_unknown_ones() -> None:
    configs = load_package_configs(CONFIG_DIR)
    environ = {"DEBREPO_GITHUB_API_URL": "http://127.0.0.1:9/api/", "GITHUB_TOKEN": "t0ken"}
    with HttpClient() as http:
        kinds = {
            name: type(source_for(config, http=http, environ=environ))
            for name, config in configs.items()
        }
        github = source_for(configs["kiro-cli"], http=http, environ=environ)
        ftp = replace(configs["kiro"], source=SourceConfig(type="ftp_mirror"))
        with pytest.raises(ConfigError) as caught:
            source_for(ftp, http=http, environ={})
    assert kinds == {
        "kiro": ExternalDownloadSource,
        "kiro-repo": BuildScriptSource,
        "kiro-cli": GitHubReleaseSource,
    }
    assert isinstance(github, GitHubReleaseSource)
    assert github.releases_url == (
        "http://127.0.0.1:9/api/repos/kiro-dev/kiro-cli/releases?per_page=30"
    )
    assert github.token == "t0ken"
    assert str(caught.value) == (
        f"{CONFIG_DIR / 'kiro.yaml'}: source.type 'ftp_mirror' has no package source; use one "
        "of build_script, external_download, github_release"
    )
    assert caught.value.exit_code == 2


def test_build_script_source_offers_nothing_to_fetch() -> None:
    configs = load_package_configs(CONFIG_DIR)
    with HttpClient() as http:
        source = source_for(configs["kiro-repo"], http=http, environ={})
    assert source.latest() is None


NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _release_text(date: datetime | None, valid_until: datetime | None) -> bytes:
    lines = ["Origin: Kiro", "Suite: stable"]
    if date is not None:
        lines.append(f"Date: {rfc1123(date)}")
    if valid_until is not None:
        lines.append(f"Valid-Until: {rfc1123(valid_until)}")
    lines.append("SHA256:\n 0123 12 main/binary-amd64/Packages")
    return ("\n".join(lines) + "\n").encode()


def test_release_age_is_stale_past_half_of_its_window() -> None:
    age = ReleaseAge.parse(_release_text(NOW, NOW + timedelta(days=7)))
    assert age.date == NOW and age.valid_until == NOW + timedelta(days=7)
    assert age.refresh_after == NOW + timedelta(days=3.5)
    assert not age.stale(NOW + timedelta(days=3.5) - timedelta(seconds=1))
    assert age.stale(NOW + timedelta(days=3.5))
    assert age.stale(NOW + timedelta(days=30))


def test_release_age_without_valid_until_never_goes_stale() -> None:
    age = ReleaseAge.parse(_release_text(NOW, None))
    assert age.refresh_after is None
    assert not age.stale(NOW + timedelta(days=3650))


def test_release_age_with_an_unreadable_date_is_stale() -> None:
    broken = _release_text(None, NOW + timedelta(days=7)) + b"Date: yesterday-ish\n"
    age = ReleaseAge.parse(broken)
    assert age.date is None
    assert age.stale(NOW)


def test_release_age_reads_field_names_in_any_case_as_apt_does() -> None:
    text = _release_text(NOW, NOW + timedelta(days=7))
    age = ReleaseAge.parse(text.replace(b"Date:", b"date:").replace(b"Valid-Until", b"VALID-UNTIL"))
    assert age == ReleaseAge(NOW, NOW + timedelta(days=7))


@pytest.mark.parametrize("key", ["url", "certificate", "signature"])
def test_metadata_read_over_https_may_not_send_a_download_over_http(key: str) -> None:
    # As a redirect from https to http is refused: anyone on the path could swap the file.
    document = {"version": "0.9.2", "url": "kiro.deb", key: "http://download.kiro.dev/k"}
    with pytest.raises(SourceError) as caught:
        parse(document)
    assert str(caught.value) == (
        f"{ENDPOINT}: field {key}: 'http://download.kiro.dev/k' is not https, as the metadata "
        "that names it is; refusing it"
    )
    plain = "http://download.kiro.dev/linux/metadata.json"
    release = parse_metadata(document, endpoint=plain, package_name="kiro")
    assert "http://download.kiro.dev/k" in (
        release.url,
        release.certificate_url,
        release.signature_url,
    )


def test_a_release_listed_over_https_may_not_send_its_asset_over_http() -> None:
    releases = _recorded_releases()
    for release in releases:
        for asset in release["assets"]:
            asset["browser_download_url"] = asset["browser_download_url"].replace(
                "https://", "http://"
            )
    with pytest.raises(SourceError) as caught:
        choose(releases)
    assert str(caught.value) == (
        "https://api.github.com/repos/kiro-dev/kiro-cli/releases: asset "
        "kiro-cli_1.2.0_amd64.deb of release v1.2.0: 'http://github.com/kiro-dev/kiro-cli/"
        "releases/download/v1.2.0/kiro-cli_1.2.0_amd64.deb' is not https, as the release "
        "list that names it is; refusing it"
    )


@settings(max_examples=100)
@given(
    head=st.text(min_size=1, max_size=50),
    filler=st.sampled_from(["a", "ü", "✓", "𝄞"]),
    extra=st.integers(min_value=-3, max_value=5),
)
def test_release_notes_are_kept_whole_up_to_the_limit_and_cut_on_a_character_beyond(
    head: str, filler: str, extra: int
) -> None:
    """Generated, but not one of the seed's numbered properties (hence no Feature tag):
    notes of any length and script, around the store's limit."""
    notes = head + filler * ((NOTES_LIMIT - len(head.encode())) // len(filler.encode()) + extra)
    kept = shortened_notes(notes)
    size = len(notes.encode())
    if size <= NOTES_LIMIT:
        assert kept == notes
    else:
        assert len(kept.encode()) <= NOTES_LIMIT
        body, _, marker = kept.rpartition("\n")
        assert marker == f"[shortened by debrepo: {size} bytes upstream]"
        assert notes.startswith(body) and len(body.encode()) > NOTES_LIMIT - 100
