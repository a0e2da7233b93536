"""kiro-repo: the package that points apt at this repository.

It installs `/etc/apt/sources.list.d/<name>.sources` (deb822, with `Signed-By:`) and
the repository's public key `/usr/share/keyrings/<name>-archive-keyring.gpg`, built
from the templates in `templates/kiro-repo/` with the repository URL as a parameter.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from string import Template

from debrepo.core.control import version_problem
from debrepo.core.debwriter import DebMember, build_deb, installed_size_kib
from debrepo.core.layout import CONVENIENCE_PACKAGE
from debrepo.core.site import apt_source_values
from debrepo.errors import ConfigError
from debrepo.packages_config import PackageConfig
from debrepo.settings import url_parts

TEMPLATE_FILES = ("kiro.sources", "description", "copyright", "changelog", "lintian-overrides")


@dataclass(frozen=True, slots=True)
class RepoPackageTemplates:
    sources: str
    description: str
    copyright: str
    changelog: str
    lintian_overrides: str

    @classmethod
    def load(cls, directory: Path) -> RepoPackageTemplates:
        texts = {}
        for name in TEMPLATE_FILES:
            path = directory / name
            try:
                texts[name] = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"{path}: cannot read the kiro-repo template: {exc.strerror}"
                ) from None
        return cls(
            sources=texts["kiro.sources"],
            description=texts["description"],
            copyright=texts["copyright"],
            changelog=texts["changelog"],
            lintian_overrides=texts["lintian-overrides"],
        )


def template_dir_for(config: PackageConfig, config_dir: Path) -> Path:
    """The template directory named in the config, relative to the project root."""
    relative = (
        config.build.template_dir
        if config.build and config.build.template_dir
        else "templates/kiro-repo/"
    )
    path = Path(relative)
    return path if path.is_absolute() else config_dir.parent.parent / path


def _fill(template: str, values: dict[str, str], name: str) -> str:
    try:
        return Template(template).substitute(values)
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"kiro-repo template {name}: unknown or malformed placeholder {exc}"
        ) from None


def sources_file(
    templates: RepoPackageTemplates, *, repo_url: str, suite: str, component: str, key_name: str
) -> str:
    """The APT source kiro-repo installs, which the install page also gives for a set-up
    by hand: the same bytes, or dpkg would ask about the file when kiro-repo is installed
    over it. ConfigError if the template needs what only a build knows (${version})."""
    values = apt_source_values(
        repo_url=repo_url, suite=suite, component=component, key_name=key_name
    )
    return _fill(templates.sources, values, "kiro.sources")


def check_inputs(version: str, repo_url: str) -> None:
    """ConfigError naming --version or --repo-url if the package cannot be built from them."""
    if problem := version_problem(version):
        raise ConfigError(f"--version: {problem}")
    parsed = url_parts(repo_url)
    if parsed.scheme not in ("http", "https", "file") or (
        parsed.scheme != "file" and not parsed.netloc
    ):
        raise ConfigError(f"--repo-url: {repo_url!r} is not an http(s) or file URL")
    if any(c.isspace() for c in repo_url):
        raise ConfigError(f"--repo-url: {repo_url!r} contains whitespace")


def build_repo_package(
    *,
    version: str,
    repo_url: str,
    suite: str,
    component: str,
    key_name: str,
    public_key: bytes,
    fingerprint: str,
    config: PackageConfig,
    templates: RepoPackageTemplates,
    built_at: datetime,
) -> bytes:
    """The kiro-repo .deb (pure: same arguments, same bytes)."""
    check_inputs(version, repo_url)
    # The APT source's placeholders as the install page fills them: the same file.
    values = apt_source_values(
        repo_url=repo_url, suite=suite, component=component, key_name=key_name
    )
    keyring_path = values["keyring_path"]
    values |= {
        "version": version,
        "maintainer": config.maintainer,
        "homepage": config.homepage,
        "fingerprint": fingerprint.upper(),
        "date": format_datetime(built_at.astimezone(UTC)),
        "year": str(built_at.astimezone(UTC).year),
    }
    doc = f"usr/share/doc/{CONVENIENCE_PACKAGE}"
    changelog = _fill(templates.changelog, values, "changelog").encode("utf-8")
    sources = _fill(templates.sources, values, "kiro.sources")
    members = [
        DebMember(f"etc/apt/sources.list.d/{key_name}.sources", sources.encode()),
        DebMember(keyring_path.lstrip("/"), public_key),
        DebMember(f"{doc}/copyright", _fill(templates.copyright, values, "copyright").encode()),
        DebMember(f"{doc}/changelog.gz", gzip.compress(changelog, compresslevel=9, mtime=0)),
        DebMember(
            f"usr/share/lintian/overrides/{CONVENIENCE_PACKAGE}",
            _fill(templates.lintian_overrides, values, "lintian-overrides").encode(),
        ),
    ]
    extended = [
        (" " + line) if line.strip() else " ."
        for line in _fill(templates.description, values, "description").strip("\n").split("\n")
    ]
    control = [
        ("Package", CONVENIENCE_PACKAGE),
        ("Version", version),
        ("Architecture", "all"),
        ("Multi-Arch", "foreign"),
        ("Priority", config.priority),
        ("Section", config.section),
        ("Maintainer", config.maintainer),
        ("Installed-Size", str(installed_size_kib(members))),
        ("Homepage", config.homepage),
        ("Description", "\n".join([config.description.splitlines()[0], *extended])),
    ]
    return build_deb(
        control,
        members,
        mtime=int(built_at.timestamp()),
        conffiles=[f"/etc/apt/sources.list.d/{key_name}.sources"],
    )


def installed_keyring(deb: bytes, keyring_name: str) -> bytes | None:
    """The keyring a kiro-repo package installs, None if it installs none; ValueError
    if the archive cannot be read."""
    from debian.debfile import DebFile

    member = f"usr/share/keyrings/{keyring_name}.gpg"
    try:
        data = DebFile(fileobj=io.BytesIO(deb)).data
        return data.get_content(member) if data.has_file(member) else None
    except Exception as exc:  # python-debian raises many kinds on a damaged archive
        raise ValueError(str(exc) or type(exc).__name__) from None
