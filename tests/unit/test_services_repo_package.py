"""services/repo_package.py: the kiro-repo .deb, reproducible, lintian-clean, deb822 source."""

from __future__ import annotations

import dataclasses
import gzip
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from debian import deb822

from debrepo import app
from debrepo.debfile import inspect_deb
from debrepo.errors import ConfigError
from debrepo.packages_config import load_package_configs
from debrepo.services.repo_package import (
    RepoPackageTemplates,
    build_repo_package,
    template_dir_for,
)
from debrepo.signing.openpgp import OpenPGPSigner, generate_secret_key
from tests.conftest import CONFIG_DIR, FIXED_NOW, PROJECT_ROOT, settings_for
from tests.tools import require_tool

REPO_URL = "https://apt.example.com/kiro"


@pytest.fixture(scope="module")
def signer() -> OpenPGPSigner:
    return OpenPGPSigner(generate_secret_key("Test <test@example.com>"), source="test")


@pytest.fixture(scope="module")
def config():
    return load_package_configs(CONFIG_DIR)["kiro-repo"]


@pytest.fixture(scope="module")
def templates(config):
    return RepoPackageTemplates.load(template_dir_for(config, CONFIG_DIR))


@pytest.fixture
def build(signer, config, templates):
    def make(**overrides: object) -> bytes:
        arguments: dict[str, object] = {
            "version": "1.2.0",
            "repo_url": REPO_URL,
            "suite": "stable",
            "component": "main",
            "key_name": "kiro",
            "public_key": signer.public_key_binary(),
            "fingerprint": signer.fingerprint,
            "config": config,
            "templates": templates,
            "built_at": FIXED_NOW,
        }
        arguments.update(overrides)
        return build_repo_package(**arguments)  # type: ignore[arg-type]

    return make


def extract(tmp_path: Path, data: bytes) -> Path:
    dpkg_deb = require_tool("dpkg-deb")
    deb = tmp_path / "kiro-repo.deb"
    deb.write_bytes(data)
    root = tmp_path / "root"
    subprocess.run([dpkg_deb, "--extract", str(deb), str(root)], check=True)
    subprocess.run([dpkg_deb, "--control", str(deb), str(root / "DEBIAN")], check=True)
    return root


def test_same_inputs_same_bytes(build):
    assert build() == build()


def test_different_inputs_different_bytes(build):
    first = build()
    assert build(version="1.2.1") != first
    assert build(repo_url="https://mirror.example.com") != first
    assert build(built_at=FIXED_NOW + timedelta(days=1)) != first


def test_lintian_reports_no_errors_or_warnings(tmp_path, build):
    lintian = require_tool("lintian")
    deb = tmp_path / "kiro-repo_1.2.0_all.deb"
    deb.write_bytes(build())
    result = subprocess.run(
        [lintian, "--fail-on", "error,warning", "--no-tag-display-limit", str(deb)],
        capture_output=True,
        text=True,
        check=False,
    )
    tags = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert result.returncode == 0, result.stdout + result.stderr
    assert tags == []


def test_sources_file_is_deb822_with_signed_by(tmp_path, build, signer):
    root = extract(tmp_path, build())
    sources_path = root / "etc/apt/sources.list.d/kiro.sources"
    text = sources_path.read_text(encoding="utf-8")
    paragraphs = list(deb822.Deb822.iter_paragraphs(text.splitlines()))
    assert len(paragraphs) == 1
    source = paragraphs[0]
    assert source["Types"] == "deb"
    assert source["URIs"] == REPO_URL
    assert source["Suites"] == "stable"
    assert source["Components"] == "main"
    keyring = "/usr/share/keyrings/kiro-archive-keyring.gpg"
    assert source["Signed-By"] == keyring
    assert (root / keyring.lstrip("/")).read_bytes() == signer.public_key_binary()
    assert (root / "DEBIAN/conffiles").read_text(encoding="utf-8").split() == [
        "/etc/apt/sources.list.d/kiro.sources"
    ]


def test_control_fields_and_documentation(tmp_path, build, config, signer):
    data = build()
    deb = tmp_path / "k.deb"
    deb.write_bytes(data)
    fields = dict(inspect_deb(deb).control)
    assert fields["Package"] == "kiro-repo"
    assert fields["Version"] == "1.2.0"
    assert fields["Architecture"] == "all"
    assert fields["Maintainer"] == config.maintainer
    assert fields["Description"].split("\n")[0] == config.description
    root = extract(tmp_path, data)
    changelog = gzip.decompress(
        (root / "usr/share/doc/kiro-repo/changelog.gz").read_bytes()
    ).decode()
    assert changelog.startswith("kiro-repo (1.2.0) stable; urgency=medium")
    assert signer.fingerprint.upper() in changelog
    assert (root / "usr/share/doc/kiro-repo/copyright").is_file()


def test_trailing_slash_of_the_url_is_dropped(tmp_path, build):
    root = extract(tmp_path, build(repo_url=REPO_URL + "/"))
    text = (root / "etc/apt/sources.list.d/kiro.sources").read_text(encoding="utf-8")
    assert f"URIs: {REPO_URL}\n" in text


def test_file_url_is_accepted(tmp_path, build):
    root = extract(tmp_path, build(repo_url="file:///srv/repo"))
    text = (root / "etc/apt/sources.list.d/kiro.sources").read_text(encoding="utf-8")
    assert "URIs: file:///srv/repo\n" in text


@pytest.mark.parametrize("version", ["", "1.0 beta", "v1.0", "1.0-", "a:1.0", "1.0_2"])
def test_bad_version_is_refused(build, version):
    with pytest.raises(ConfigError, match=r"^--version: "):
        build(version=version)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/repo", "http://", "example.com/repo", "https://example.com/a b"],
)
def test_bad_url_is_refused(build, url):
    with pytest.raises(ConfigError, match=r"^--repo-url: "):
        build(repo_url=url)


def test_missing_template_names_the_file(tmp_path, templates):
    with pytest.raises(ConfigError) as caught:
        RepoPackageTemplates.load(tmp_path)
    assert str(tmp_path / "kiro.sources") in str(caught.value)


def test_template_with_an_unknown_placeholder(build, templates):
    broken = dataclasses.replace(templates, copyright="Copyright ${owner}\n")
    with pytest.raises(ConfigError, match=r"kiro-repo template copyright: unknown or malformed"):
        build(templates=broken)


def test_template_dir_defaults_and_absolute_paths(config, tmp_path):
    assert template_dir_for(config, CONFIG_DIR) == PROJECT_ROOT / "templates/kiro-repo/"
    without_build = dataclasses.replace(config, build=None)
    assert template_dir_for(without_build, CONFIG_DIR) == PROJECT_ROOT / "templates/kiro-repo"
    build_config = dataclasses.replace(config.build, template_dir=str(tmp_path))
    absolute = dataclasses.replace(config, build=build_config)
    assert template_dir_for(absolute, CONFIG_DIR) == tmp_path


def test_build_kiro_repo_records_stages_and_writes_output(workspace, tmp_path):
    output = tmp_path / "out.deb"
    result = app.build_kiro_repo(
        workspace, version="2:3.0", publish_after=False, output=output, now=FIXED_NOW
    )
    (record,) = result.records
    assert record.package_id == "kiro-repo#2:3.0"
    assert record.actual_filename == "kiro-repo_3.0_all.deb"
    assert record.package_type == "build_script"
    assert workspace.staging.get("staging/kiro-repo/kiro-repo_3.0_all.deb") == output.read_bytes()
    assert workspace.repo.stat("pool/main/k/kiro-repo/kiro-repo_3.0_all.deb") is None
    assert result.report is None


def test_kiro_repo_is_described_in_the_index_as_in_its_control_file(workspace, tmp_path):
    """The definition gives the synopsis, the templates the extended text: the index
    keeps both, so that `apt show` says what `dpkg -s` says once it is installed."""
    output = tmp_path / "out.deb"
    (record,) = app.build_kiro_repo(
        workspace, version="1.0.0", publish_after=False, output=output, now=FIXED_NOW
    ).records
    shown = subprocess.run(
        ["dpkg-deb", "--field", str(output), "Description"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert record.description == shown.rstrip("\n")
    assert record.description.startswith(workspace.configs["kiro-repo"].description + "\n ")


def test_build_kiro_repo_is_refused_without_its_configuration(tmp_path):
    config_dir = tmp_path / "config" / "packages"
    config_dir.mkdir(parents=True)
    ws = app.Workspace(settings_for(tmp_path / "home", config_dir=str(config_dir)))
    with pytest.raises(ConfigError, match=r"kiro-repo is not configured"):
        app.build_kiro_repo(ws, version="1.0", now=FIXED_NOW)


def test_the_install_page_names_the_files_kiro_repo_installs(tmp_path):
    """Set up by hand from the page, then kiro-repo installed: the same source file and
    keyring are replaced, not doubled (a second source for the same URL makes apt warn)."""
    import re
    from html import unescape

    ws = app.Workspace(settings_for(tmp_path / "home", key_name="acme"))
    app.build_kiro_repo(ws, version="1.0.0", repo_url=REPO_URL, now=FIXED_NOW)
    page = unescape((tmp_path / "home/repo/index.html").read_text(encoding="utf-8"))
    named = set(re.findall(r"/(?:etc|usr)/[\w./-]+", page))
    listing = subprocess.run(
        [require_tool("dpkg-deb"), "--contents", str(tmp_path / "home/repo/kiro-repo.deb")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    assert named == {
        "/etc/apt/sources.list.d/acme.sources",
        "/usr/share/keyrings/acme-archive-keyring.gpg",
    }
    assert named <= installed
