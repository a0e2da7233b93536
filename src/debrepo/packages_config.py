"""Package definitions from `config/packages/*.yaml` (seed "Package Configuration Files").

`parse_package_config` is pure (text in, typed config or ConfigError out); the loaders
only read files. Every error names the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from debrepo.core.control import (
    LONE_SURROGATE,
    architecture_problem,
    field_value_problem,
    is_unicode_text,
    package_name_problem,
)
from debrepo.errors import ConfigError

SOURCE_TYPES: dict[str, tuple[str, ...]] = {
    "external_download": ("metadata_endpoint",),
    "build_script": ("staging_prefix",),
    "github_release": ("repository", "asset_pattern"),
}
REQUIRED_KEYS = (
    "package_name",
    "description",
    "maintainer",
    "homepage",
    "section",
    "priority",
    "architecture",
    "source",
)
OPTIONAL_KEYS = ("depends", "additional_files", "build")
SOURCE_KEYS = ("type", "metadata_endpoint", "staging_prefix", "repository", "asset_pattern")
BUILD_KEYS = ("script_path", "template_dir")
ADDITIONAL_FILES = ("certificate", "signature")
PRIORITIES = ("required", "important", "standard", "optional", "extra")
DEFINITION_FIELD_LIMIT = 64 << 10  # a long Debian description is a few KiB

# No control character (C1 and the Unicode line separators too: dpkg and apt would
# read the field as ending there).
_MAINTAINER_RE = re.compile(
    r"[^<>\x00-\x1f\x7f-\x9f\u2028\u2029]+ "
    r"<[^<>@\s\x00-\x1f\x7f-\x9f]+@[^<>\s\x00-\x1f\x7f-\x9f]+>"
)
_REPOSITORY_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SECTION_RE = re.compile(r"([a-z0-9-]+/)?[a-z0-9+.-]+")


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """Where new versions of a package come from."""

    type: str
    metadata_endpoint: str | None = None
    staging_prefix: str | None = None
    repository: str | None = None
    asset_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class BuildConfig:
    """How the build script makes the package (documentation for operators)."""

    script_path: str | None = None
    template_dir: str | None = None


@dataclass(frozen=True, slots=True)
class PackageConfig:
    """One package definition. Its Debian fields override the .deb's control file."""

    package_name: str
    description: str
    maintainer: str
    homepage: str
    section: str
    priority: str
    architecture: str
    source: SourceConfig
    depends: str | None = None
    additional_files: tuple[str, ...] = ()
    build: BuildConfig | None = None
    origin: str = ""

    @property
    def stanza_description(self) -> str:
        """The description as a deb822 value: synopsis, then ' '-indented extended lines."""
        return description_as_field(self.description)


def description_as_field(description: str) -> str:
    """Turn free text (first line synopsis, rest extended) into a control field value."""
    lines = description.strip("\n").split("\n")
    extended = [(" " + line) if line.strip() else " ." for line in lines[1:]]
    return "\n".join([lines[0].strip(), *extended])


def _text(
    data: Mapping[str, Any], key: str, origin: str, problems: list[str], prefix: str = ""
) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{origin}: field {prefix}{key} must be non-empty text")
        return ""
    if not is_unicode_text(value):
        problems.append(f"{origin}: field {prefix}{key} {LONE_SURROGATE}")
        return ""
    return value.strip() if key != "description" else value


def _key_name(key: object) -> str:
    """A mapping key as an error message can show it (escaped if not Unicode text)."""
    text = str(key)
    return text if is_unicode_text(text) else ascii(text)


def http_url_problem(url: str, *, credentials: bool = True) -> str | None:
    """Why `url` is not an http(s) URL with a host and a usable port, or None.

    (urlsplit accepts a port such as 99999 and only refuses it when asked for it.)
    """
    if any(c.isspace() or not c.isprintable() for c in url):
        return "must be an http(s) URL (one line, no spaces)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # an unclosed IPv6 bracket, a port out of range
        return f"must be an http(s) URL: {url!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http(s) URL with a host, not {url!r}"
    if port == 0:
        return f"must be an http(s) URL: {url!r} has port 0 (ports are 1-65535)"
    if not credentials and (parts.username is not None or parts.password is not None):
        return f"must be an http(s) URL without credentials, not {url!r}"
    return None


def parse_package_config(text: str, origin: str) -> PackageConfig:
    """Parse and validate one package configuration; `origin` names it in errors."""
    import yaml  # deferred: ~15 ms of start-up that most commands do not need

    from debrepo.yamlfiles import strict_loader

    try:
        data = yaml.load(text, Loader=strict_loader())  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{origin}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of fields, found {type(data).__name__}")

    problems: list[str] = []
    missing = [key for key in REQUIRED_KEYS if data.get(key) is None]
    if missing:
        problems.append(f"{origin}: missing required field(s): {', '.join(missing)}")
    unknown = sorted(set(map(_key_name, data)) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        problems.append(f"{origin}: unknown field(s): {', '.join(unknown)}")

    values = {key: _text(data, key, origin, problems) for key in REQUIRED_KEYS if key != "source"}
    name = values["package_name"]
    if name and (problem := package_name_problem(name)):
        problems.append(f"{origin}: field package_name: {problem}")
    if values["architecture"] and (problem := architecture_problem(values["architecture"])):
        problems.append(f"{origin}: field architecture: {problem}")
    if values["maintainer"] and not _MAINTAINER_RE.fullmatch(values["maintainer"]):
        problems.append(f"{origin}: field maintainer must look like 'Name <email@example.com>'")
    homepage = values["homepage"]
    if homepage and (problem := http_url_problem(homepage)):
        problems.append(f"{origin}: field homepage {problem}")
    if values["section"] and not _SECTION_RE.fullmatch(values["section"]):
        problems.append(f"{origin}: field section {values['section']!r} is not a Debian section")
    if values["priority"] and values["priority"] not in PRIORITIES:
        problems.append(f"{origin}: field priority must be one of {', '.join(PRIORITIES)}")
    if values["description"]:
        described = description_as_field(values["description"])
        if problem := field_value_problem("Description", described):
            problems.append(f"{origin}: field description: {problem}")

    depends = data.get("depends")
    if depends is not None and (not isinstance(depends, str) or "\n" in depends.strip()):
        problems.append(f"{origin}: field depends must be one line of text")
        depends = None
    elif depends is not None and not is_unicode_text(depends):
        problems.append(f"{origin}: field depends {LONE_SURROGATE}")
        depends = None
    elif depends is not None and (problem := field_value_problem("Depends", depends.strip())):
        problems.append(f"{origin}: field depends: {problem}")
        depends = None

    for key, value in (*values.items(), ("depends", depends)):
        # These replace the control file's fields in the package's index entry, which
        # apt cannot read over 1 MiB: one such entry would break `apt update` for every
        # client (a control file is held to 512 KiB when a .deb is read).
        size = len(value.encode("utf-8", "surrogatepass")) if isinstance(value, str) else 0
        if size > DEFINITION_FIELD_LIMIT:
            problems.append(
                f"{origin}: field {key} is {size} bytes long, over the limit of "
                f"{DEFINITION_FIELD_LIMIT} (apt cannot read a package entry over 1 MiB)"
            )

    additional = data.get("additional_files") or []
    if not isinstance(additional, list) or not all(a in ADDITIONAL_FILES for a in additional):
        problems.append(
            f"{origin}: field additional_files must be a list of {', '.join(ADDITIONAL_FILES)}"
        )
        additional = []

    source = _parse_source(data.get("source"), origin, problems)
    build = _parse_build(data.get("build"), origin, problems)

    if problems:
        raise ConfigError("; ".join(problems))
    assert source is not None
    return PackageConfig(
        package_name=name,
        description=values["description"].strip("\n"),
        maintainer=values["maintainer"],
        homepage=values["homepage"],
        section=values["section"],
        priority=values["priority"],
        architecture=values["architecture"],
        source=source,
        depends=depends.strip() if isinstance(depends, str) else None,
        additional_files=tuple(additional),
        build=build,
        origin=origin,
    )


def _parse_source(raw: Any, origin: str, problems: list[str]) -> SourceConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{origin}: field source must be a mapping with a type")
        return None
    unknown = sorted(set(map(_key_name, raw)) - set(SOURCE_KEYS))
    if unknown:
        problems.append(f"{origin}: unknown field(s) in source: {', '.join(unknown)}")
    values = {key: _text(raw, key, origin, problems, "source.") for key in SOURCE_KEYS}
    kind = values["type"]
    if not kind:
        problems.append(f"{origin}: missing required field source.type")
        return None
    if kind not in SOURCE_TYPES:
        problems.append(
            f"{origin}: field source.type {kind!r} is not one of {', '.join(SOURCE_TYPES)}"
        )
        return None
    for key in SOURCE_TYPES[kind]:
        if not values[key]:
            problems.append(f"{origin}: source.type {kind} requires field source.{key}")
    endpoint = values["metadata_endpoint"]
    if endpoint and (problem := http_url_problem(endpoint, credentials=False)):
        problems.append(f"{origin}: field source.metadata_endpoint {problem}")
    prefix = values["staging_prefix"]
    if prefix and (
        prefix.startswith("/")
        or not prefix.endswith("/")
        or any(part in ("", ".", "..") for part in prefix[:-1].split("/"))
    ):
        problems.append(
            f"{origin}: field source.staging_prefix must be a relative prefix ending in '/', "
            "without empty, '.' or '..' parts"
        )
    repository = values["repository"]
    if repository and not _REPOSITORY_RE.fullmatch(repository):
        problems.append(f"{origin}: field source.repository must look like 'owner/name'")
    return SourceConfig(type=kind, **{key: values[key] or None for key in SOURCE_KEYS[1:]})


def _parse_build(raw: Any, origin: str, problems: list[str]) -> BuildConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{origin}: field build must be a mapping")
        return None
    unknown = sorted(set(map(_key_name, raw)) - set(BUILD_KEYS))
    if unknown:
        problems.append(f"{origin}: unknown field(s) in build: {', '.join(unknown)}")
    return BuildConfig(
        script_path=_text(raw, "script_path", origin, problems, "build.") or None,
        template_dir=_text(raw, "template_dir", origin, problems, "build.") or None,
    )


def load_package_config(path: Path) -> PackageConfig:
    """Read and validate one file; its name must be `<package_name>.yaml`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read package configuration: {exc}") from None
    config = parse_package_config(text, str(path))
    if path.stem != config.package_name:
        raise ConfigError(
            f"{path}: package_name {config.package_name!r} must match the file name "
            f"({config.package_name}.yaml)"
        )
    return config


def load_package_configs(directory: Path) -> dict[str, PackageConfig]:
    """Every package configuration in `directory`, by package name."""
    if not directory.is_dir():
        raise ConfigError(
            f"{directory}: package configuration directory not found; run from the project "
            "root or set DEBREPO_CONFIG_DIR"
        )
    configs: dict[str, PackageConfig] = {}
    for path in sorted(directory.glob("*.y*ml")):
        config = load_package_config(path)
        if config.package_name in configs:
            raise ConfigError(
                f"{path}: package {config.package_name} is already defined in "
                f"{configs[config.package_name].origin}"
            )
        configs[config.package_name] = config
    return configs
