"""One frozen Settings object, resolved as: command-line flag > environment > file > default.

Every environment variable debrepo reads is named in `ENVIRONMENT` below. The settings
file is YAML with the same flat keys as `Settings` (see README, "Configuration").
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import ParseResult, urlparse

from debrepo.core.control import architecture_problem
from debrepo.errors import ConfigError
from debrepo.packages_config import is_unicode_text

ENVIRONMENT: dict[str, str] = {
    "home": "DEBREPO_HOME",
    "settings_file": "DEBREPO_SETTINGS",
    "store": "DEBREPO_STORE",
    "repo": "DEBREPO_REPO",
    "staging": "DEBREPO_STAGING",
    "key_file": "DEBREPO_KEY_FILE",
    "config_dir": "DEBREPO_CONFIG_DIR",
    "public_url": "DEBREPO_PUBLIC_URL",
    "origin": "DEBREPO_ORIGIN",
    "label": "DEBREPO_LABEL",
    "suite": "DEBREPO_SUITE",
    "codename": "DEBREPO_CODENAME",
    "components": "DEBREPO_COMPONENTS",
    "architectures": "DEBREPO_ARCHITECTURES",
    "description": "DEBREPO_DESCRIPTION",
    "release_version": "DEBREPO_RELEASE_VERSION",
    "valid_days": "DEBREPO_VALID_DAYS",
    "by_hash_keep": "DEBREPO_BY_HASH_KEEP",
    "key_switch_days": "DEBREPO_KEY_SWITCH_DAYS",
    "key_name": "DEBREPO_KEY_NAME",
    "key_user_id": "DEBREPO_KEY_USER_ID",
    "key_secret_id": "DEBREPO_KEY_SECRET_ID",
    "s3_acl_mode": "DEBREPO_S3_ACL_MODE",
    "sns_topic_arn": "DEBREPO_SNS_TOPIC_ARN",
    "cloudfront_distribution_id": "DEBREPO_CLOUDFRONT_DISTRIBUTION_ID",
    "lock_ttl_seconds": "DEBREPO_LOCK_TTL_SECONDS",
}
S3_ACL_MODES = ("bucket-policy", "public-read")

# Read by the GitHub releases source (sources/github_release.py).
GITHUB_API_URL_VARIABLE = "DEBREPO_GITHUB_API_URL"
GITHUB_TOKEN_VARIABLES = ("DEBREPO_GITHUB_TOKEN", "GITHUB_TOKEN")

DEFAULT_SETTINGS_FILE = "debrepo.yaml"
DEFAULT_HOME = ".debrepo"
MIN_BY_HASH_GENERATIONS = 3

_SUITE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_COMPONENT_RE = re.compile(r"[a-z0-9][a-z0-9-]*")
_KEY_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.-]*")


class Settings(NamedTuple):
    """Where things live and how the repository describes itself."""

    home: Path
    store: str
    repo: str
    staging: str
    key_file: Path
    config_dir: Path
    public_url: str
    origin: str
    label: str
    suite: str
    codename: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    description: str
    release_version: str
    valid_days: float
    by_hash_keep: int
    key_name: str
    key_user_id: str
    key_secret_id: str = ""
    s3_acl_mode: str = "bucket-policy"
    sns_topic_arn: str = ""
    cloudfront_distribution_id: str = ""
    lock_ttl_seconds: int = 1200
    # Days an announced key waits, after its announcement and after the kiro-repo that
    # installs it, before it may sign (clients upgrade in the meantime).
    key_switch_days: float = 7.0

    @property
    def component(self) -> str:
        """The component packages are published into (the first one listed)."""
        return self.components[0]

    @property
    def keyring_name(self) -> str:
        return f"{self.key_name}-archive-keyring"


def _defaults(home: Path) -> dict[str, Any]:
    return {
        "store": f"sqlite://{home / 'metadata.db'}",
        "repo": f"file://{home / 'repo'}",
        "staging": f"file://{home}",
        "key_file": str(home / "keys" / "signing-key.asc"),
        "config_dir": "config/packages",
        "public_url": "http://127.0.0.1:8080",
        "origin": "Kiro",
        "label": "Kiro",
        "suite": "stable",
        "codename": "stable",
        "components": "main",
        "architectures": "amd64",
        "description": "Kiro IDE APT repository",
        "release_version": "1.0",
        "valid_days": "7",
        "by_hash_keep": "3",
        "key_switch_days": "7",
        "key_name": "kiro",
        "key_user_id": "Kiro Repository Signing Key <support@kiro.dev>",
        "key_secret_id": "",
        "s3_acl_mode": "bucket-policy",
        "sns_topic_arn": "",
        "cloudfront_distribution_id": "",
        "lock_ttl_seconds": "1200",
    }


def shown_default(name: str) -> str | None:
    """A setting's default as `--help` states it; None for one that depends on others
    (under the home; public_url: the bucket's URL for an S3 repository)."""
    if name == "home":
        return DEFAULT_HOME
    if name == "settings_file":
        return f"./{DEFAULT_SETTINGS_FILE}"
    if name in ("store", "repo", "staging", "key_file", "public_url"):
        return None
    return _defaults(Path(DEFAULT_HOME)).get(name) or None


def aws_region(environ: Mapping[str, str]) -> str | None:
    """The region AWS clients use here: the Lambda runtime and most tools set AWS_REGION,
    while boto3 reads only AWS_DEFAULT_REGION."""
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None


def s3_public_url(bucket: str, prefix: str, region: str | None) -> str:
    """Where clients reach a repository published to s3://bucket/prefix with no CDN in
    front: the bucket's virtual-hosted URL (regional when the region is known), or the
    path-style one for a bucket name with dots, which S3's certificate does not cover."""
    endpoint = f"s3.{region}.amazonaws.com" if region else "s3.amazonaws.com"
    prefix = prefix.strip("/")
    base = f"https://{endpoint}/{bucket}" if "." in bucket else f"https://{bucket}.{endpoint}"
    return base + (f"/{prefix}" if prefix else "")


def url_parts(url: str) -> ParseResult:
    """urlparse(url), or an empty result for a URL it refuses (a bad IPv6 host, a port
    that is not a number), so that callers check one shape."""
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        return urlparse("")
    return parsed


# Settings whose command-line option is not named after them.
_OPTION_NAMES = {"settings_file": "settings"}


def _read_settings_file(path: Path) -> dict[str, Any]:
    import yaml  # deferred: ~15 ms of start-up that most commands do not need

    from debrepo.yamlfiles import strict_loader

    class TextLoader(strict_loader()):  # type: ignore[misc]
        """Scalars stay the text written (plain YAML makes `release_version: 1.10` the
        number 1.1, and `0755` 493); only an empty value or `null` means unset."""

    kept = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}  # `<<:` still merges
    TextLoader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag in kept]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=TextLoader)  # noqa: S506
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: settings file is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        raise ConfigError(
            f"{path}: not valid YAML{where}{f': {problem}' if problem else ''}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    known = set(Settings._fields)
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return data


def _split_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(part for part in re.split(r"[\s,]+", str(value)) if part)


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings; ConfigError names the flag, variable or file key at fault."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None and v != ()}
    environ = os.environ if environ is None else environ
    if cwd is None:
        try:
            cwd = Path.cwd()
        except OSError as exc:
            raise ConfigError(
                f"cannot tell the current folder ({exc.strerror}; deleted since the shell "
                "entered it?): change to an existing folder, where debrepo.yaml and relative "
                "paths are read from"
            ) from None

    def pick_raw(name: str) -> tuple[Any, str] | None:
        if name in flags:
            return flags[name], f"option --{_OPTION_NAMES.get(name, name).replace('_', '-')}"
        variable = ENVIRONMENT.get(name)
        if variable and environ.get(variable):
            return environ[variable], f"environment variable {variable}"
        return None

    settings_file: Path | None = None
    chosen = pick_raw("settings_file")
    if chosen:
        settings_file = (cwd / str(chosen[0])).resolve()
        if not settings_file.is_file():
            what = "is not a file" if settings_file.exists() else "not found"
            raise ConfigError(f"{settings_file}: settings file {what} ({chosen[1]})")
    elif (cwd / DEFAULT_SETTINGS_FILE).is_file():
        settings_file = cwd / DEFAULT_SETTINGS_FILE
    file_values = _read_settings_file(settings_file) if settings_file else {}

    def pick(name: str, defaults: Mapping[str, Any]) -> tuple[Any, str]:
        chosen = pick_raw(name)
        if chosen:
            return chosen
        if name in file_values and file_values[name] is not None:
            return file_values[name], f"{settings_file}: {name}"
        return defaults.get(name), f"default {name}"

    def from_file(where: str) -> bool:
        return settings_file is not None and where.startswith(f"{settings_file}: ")

    def base(where: str) -> Path:
        """A relative path written in the settings file is taken from the file's folder
        (it must not depend on where the command runs); in a flag or variable, from
        the current directory."""
        return settings_file.parent if settings_file and from_file(where) else cwd

    home_value, home_from = pick("home", {"home": DEFAULT_HOME})
    if not isinstance(home_value, str) or not home_value.strip() or "\0" in home_value:
        raise ConfigError(f"{home_from} must be the path of a folder, not {home_value!r}")
    home = (base(home_from) / home_value).resolve()
    if home.exists() and not home.is_dir():
        raise ConfigError(f"{home}: not a folder ({home_from} must name the home folder)")
    defaults = _defaults(home)
    raw = {name: pick(name, defaults) for name in defaults}

    def text(name: str) -> str:
        value, where = raw[name]
        if not isinstance(value, str | int | float) or not str(value).strip():
            raise ConfigError(f"{where} must be non-empty text")
        return str(value).strip()

    def path_text(name: str) -> str:
        value = text(name)
        if "\0" in value:  # the OS would refuse it with a traceback later
            raise ConfigError(f"{raw[name][1]} holds a NUL character")
        return value

    def location(name: str, scheme: str) -> str:
        """A store or folder URL, a relative local path in it anchored as `base` says."""
        value, where = path_text(name), raw[name][1]
        prefix = f"{scheme}://" if value.startswith(f"{scheme}://") else ""
        path = value[len(prefix) :]
        if not path:  # `file://` alone would be the current directory, wherever that is
            raise ConfigError(f"{where}: {value!r} names no path")
        if not from_file(where) or "://" in path or not path or path.startswith(("/", "~")):
            return value  # s3://, dynamodb://: nothing local; a flag: from cwd when opened
        return f"{prefix}{base(where) / path}"

    suite, codename = text("suite"), text("codename")
    for name, value in (("suite", suite), ("codename", codename)):
        if not _SUITE_RE.fullmatch(value):
            raise ConfigError(f"{raw[name][1]}: {value!r} is not a valid {name} name")
    components = _split_list(raw["components"][0])
    if not components or not all(_COMPONENT_RE.fullmatch(c) for c in components):
        raise ConfigError(f"{raw['components'][1]}: components must be names such as 'main'")
    architectures = _split_list(raw["architectures"][0])
    if not architectures:
        raise ConfigError(f"{raw['architectures'][1]}: list at least one architecture")
    for name, listed in (("components", components), ("architectures", architectures)):
        if repeated := sorted({item for item in listed if listed.count(item) > 1}):
            raise ConfigError(f"{raw[name][1]}: {', '.join(repeated)} listed twice")
    for arch in architectures:
        if architecture_problem(arch) or arch in ("all", "any", "source"):
            raise ConfigError(
                f"{raw['architectures'][1]}: {arch!r} is not a binary architecture (such as "
                "amd64, arm64; packages of Architecture all go into every one listed)"
            )
    try:
        valid_days = float(text("valid_days"))
    except ValueError:
        raise ConfigError(f"{raw['valid_days'][1]} must be a number of days") from None
    # At least an hour: a Release must outlive its own publication and the clients'
    # clocks being a little off.
    if not 1 / 24 <= valid_days <= 3650:
        raise ConfigError(f"{raw['valid_days'][1]} must be between 1/24 (an hour) and 3650 days")
    try:
        by_hash_keep = int(text("by_hash_keep"))
    except ValueError:
        raise ConfigError(f"{raw['by_hash_keep'][1]} must be a whole number") from None
    if by_hash_keep < MIN_BY_HASH_GENERATIONS:
        raise ConfigError(
            f"{raw['by_hash_keep'][1]} must keep at least {MIN_BY_HASH_GENERATIONS} generations"
        )
    try:
        key_switch_days = float(text("key_switch_days"))
    except ValueError:
        raise ConfigError(f"{raw['key_switch_days'][1]} must be a number of days") from None
    if not 0 <= key_switch_days <= 3650:
        raise ConfigError(f"{raw['key_switch_days'][1]} must be between 0 and 3650 days")
    repo_url = url_parts(path_text("repo"))
    if raw["public_url"][1].startswith("default") and repo_url.scheme == "s3":
        # Not the loopback default: it would go into index.html and, for good, into the
        # APT source of every kiro-repo built without --repo-url.
        region = aws_region(environ)
        raw["public_url"] = (
            s3_public_url(repo_url.netloc, repo_url.path, region),
            "default public_url (the bucket's URL)",
        )
    for name in ("public_url", "origin", "label", "description", "release_version", "key_user_id"):
        # Bytes that are not UTF-8 in an argument or variable arrive as lone surrogates,
        # which no Release, page or request can carry.
        if not is_unicode_text(text(name)):
            raise ConfigError(f"{raw[name][1]} is not UTF-8 text")
    public_url = text("public_url").rstrip("/")
    parsed_url = url_parts(public_url)
    if (
        parsed_url.scheme not in ("http", "https")
        or not parsed_url.netloc
        or any(c.isspace() for c in public_url)
    ):
        raise ConfigError(f"{raw['public_url'][1]}: {public_url!r} is not an http(s) URL")
    key_name = text("key_name")
    if not _KEY_NAME_RE.fullmatch(key_name):
        raise ConfigError(f"{raw['key_name'][1]}: {key_name!r} is not a valid keyring name")
    for name in ("origin", "label", "description", "release_version", "key_user_id"):
        # Any control character (a carriage return too) would corrupt the signed Release.
        if any(_is_control(c) for c in text(name)):
            raise ConfigError(f"{raw[name][1]} must be a single line without control characters")

    def optional(name: str) -> str:
        value, where = raw[name]
        if value is None or value == "":
            return ""
        if (
            not isinstance(value, str)
            or any(_is_control(c) for c in value)
            or value != value.strip()
        ):
            raise ConfigError(f"{where} must be one line of text without surrounding spaces")
        if not is_unicode_text(value):
            raise ConfigError(f"{where} is not UTF-8 text")
        return value

    acl_mode = text("s3_acl_mode")
    if acl_mode not in S3_ACL_MODES:
        raise ConfigError(f"{raw['s3_acl_mode'][1]} must be one of {', '.join(S3_ACL_MODES)}")
    try:
        lock_ttl = int(text("lock_ttl_seconds"))
    except ValueError:
        raise ConfigError(
            f"{raw['lock_ttl_seconds'][1]} must be a whole number of seconds"
        ) from None
    if lock_ttl < 60:
        raise ConfigError(f"{raw['lock_ttl_seconds'][1]} must be at least 60 seconds")

    config_dir = (base(raw["config_dir"][1]) / path_text("config_dir")).resolve()
    if not raw["config_dir"][1].startswith("default") and not config_dir.is_dir():
        # Named on purpose, so a typo must not pass for "no definitions" (only the
        # default may be missing: any .deb can be published without a definition).
        what = "not a folder" if config_dir.exists() else "no such folder"
        raise ConfigError(
            f"{config_dir}: {what} ({raw['config_dir'][1]} names the package definitions "
            "folder, config/packages in this repository)"
        )

    settings = Settings(
        home=home,
        store=location("store", "sqlite"),
        repo=location("repo", "file"),
        staging=location("staging", "file"),
        key_file=(base(raw["key_file"][1]) / path_text("key_file")).resolve(),
        config_dir=config_dir,
        public_url=public_url,
        origin=text("origin"),
        label=text("label"),
        suite=suite,
        codename=codename,
        components=components,
        architectures=architectures,
        description=text("description"),
        release_version=text("release_version"),
        valid_days=valid_days,
        by_hash_keep=by_hash_keep,
        key_name=key_name,
        key_user_id=text("key_user_id"),
        key_secret_id=optional("key_secret_id"),
        s3_acl_mode=acl_mode,
        sns_topic_arn=optional("sns_topic_arn"),
        cloudfront_distribution_id=optional("cloudfront_distribution_id"),
        lock_ttl_seconds=lock_ttl,
        key_switch_days=key_switch_days,
    )
    _refuse_a_repository_over_private_files(
        settings, {name: raw[name][1] for name in ("repo", "store", "staging", "key_file")}
    )
    return settings


def _is_control(character: str) -> bool:
    """C0, DEL, C1 (NEL among them) and the Unicode line and paragraph separators: what
    some reader of a Release or a log takes for the end of a line."""
    code = ord(character)
    return code < 0x20 or 0x7F <= code <= 0x9F or character in "\u2028\u2029"


def local_path(url: str, scheme: str) -> Path | None:
    """The path of `scheme://PATH` or of a bare path, as the backends open it; None for
    other schemes (s3://, dynamodb://)."""
    if "://" not in url:
        return Path(url).expanduser().resolve()
    if urlparse(url).scheme != scheme:
        return None
    return Path(url[len(scheme) + 3 :]).expanduser().resolve()


def _refuse_a_repository_over_private_files(settings: Settings, sources: dict[str, str]) -> None:
    """Everything under the repository is served to the world: never the signing key,
    the store or the staging area (`repo` set to the home, or `staging` inside it).
    `sources`: where each of repo, store, staging and key_file was set."""
    where = sources["repo"]
    repo = local_path(settings.repo, "file")
    if repo is None:
        bucket = urlparse(settings.repo)
        prefix = bucket.path.strip("/")
        staged = urlparse(settings.staging)
        if staged.scheme == "s3" and staged.netloc == bucket.netloc:
            area = "/".join(p for p in (staged.path.strip("/"), "staging") if p)
            if prefix == area or prefix.startswith(f"{area}/"):
                raise ConfigError(
                    f"{where}: s3://{bucket.netloc}/{prefix} is inside the private staging "
                    f"area (s3://{bucket.netloc}/{area}/, {sources['staging']}); choose "
                    "another prefix"
                )
            # The bucket policy makes everything under dists/ and pool/ readable by all.
            for public in ("dists", "pool"):
                folder = "/".join(p for p in (prefix, public) if p)
                if area == folder or area.startswith(f"{folder}/"):
                    raise ConfigError(
                        f"{sources['staging']}: the staging area s3://{bucket.netloc}/{area}/ "
                        f"is inside the repository's public s3://{bucket.netloc}/{folder}/ "
                        f"({where}); choose another prefix"
                    )
        return
    private: dict[str, tuple[str, Path]] = {}
    if not settings.key_secret_id:
        private["key_file"] = ("the signing key (key_file)", settings.key_file)
    store = local_path(settings.store, "sqlite")
    if store is not None:
        private["store"] = ("the metadata store (store)", store)
    staging = local_path(settings.staging, "file")
    if staging is not None:
        private["staging"] = ("the staging area (staging)", staging / "staging")
    for name, (what, path) in private.items():
        if path == repo or repo in path.parents:
            raise ConfigError(
                f"{where}: {repo} holds {what} at {path} ({sources[name]}), which would be "
                "published; the repository folder must hold nothing but what apt reads"
            )
    if staging is not None and (staging / "staging") in repo.parents:
        raise ConfigError(
            f"{where}: {repo} is inside the staging area {staging / 'staging'} "
            f"({sources['staging']}); choose another folder"
        )
