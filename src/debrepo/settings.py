"""One frozen Settings object, resolved as: command-line flag > environment > file > default.

Every environment variable debrepo reads is named in `ENVIRONMENT` below. The settings
file is YAML with the same flat keys as `Settings` (see README, "Configuration").
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import ParseResult, urlparse

from debrepo.core.control import architecture_problem, is_unicode_text, quoted_excerpt
from debrepo.errors import ConfigError

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

_Number = TypeVar("_Number", int, float)


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


def _split_list(value: Any, where: str) -> tuple[str, ...]:
    """Names from a YAML list of texts, or from one text separated by spaces or commas;
    anything else (a number, a mapping) is refused rather than read as a name."""
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    if isinstance(value, str):
        return tuple(part for part in re.split(r"[\s,]+", value) if part)
    raise ConfigError(
        f"{where} must be a list of names or a text of names separated by spaces or commas, "
        f"not {quoted_excerpt(str(value))}"
    )


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
    sources = _Sources(flags, environ, cwd)
    home = _home(sources)
    values = _Values(sources, _defaults(home))
    suite, codename = _suite_and_codename(values)
    components, architectures = _components_and_architectures(values)
    valid_days = _valid_days(values)
    by_hash_keep = _by_hash_keep(values)
    key_switch_days = _key_switch_days(values)
    _default_public_url_to_the_bucket(values, environ)
    public_url, key_name = _public_url_and_key_name(values)
    acl_mode = _s3_acl_mode(values)
    lock_ttl = _lock_ttl_seconds(values)
    config_dir = _config_dir(values)
    settings = Settings(
        home=home,
        store=values.location("store", "sqlite"),
        repo=values.location("repo", "file"),
        staging=values.location("staging", "file"),
        key_file=values.local_path("key_file"),
        config_dir=config_dir,
        public_url=public_url,
        origin=values.text("origin"),
        label=values.text("label"),
        suite=suite,
        codename=codename,
        components=components,
        architectures=architectures,
        description=values.text("description"),
        release_version=values.text("release_version"),
        valid_days=valid_days,
        by_hash_keep=by_hash_keep,
        key_name=key_name,
        key_user_id=values.text("key_user_id"),
        key_secret_id=values.optional("key_secret_id"),
        s3_acl_mode=acl_mode,
        sns_topic_arn=values.optional("sns_topic_arn"),
        cloudfront_distribution_id=values.optional("cloudfront_distribution_id"),
        lock_ttl_seconds=lock_ttl,
        key_switch_days=key_switch_days,
    )
    _refuse_a_repository_over_private_files(
        settings, {name: values.where(name) for name in ("repo", "store", "staging", "key_file")}
    )
    return settings


class _Sources:
    """A setting's value from the first that gives it: a flag, an environment variable,
    the settings file; with the words an error uses to name where it came from."""

    def __init__(self, flags: Mapping[str, Any], environ: Mapping[str, str], cwd: Path) -> None:
        self.flags = flags
        self.environ = environ
        self.cwd = cwd
        self.settings_file = self._find_settings_file()
        self.file_values = _read_settings_file(self.settings_file) if self.settings_file else {}

    def given(self, name: str) -> tuple[Any, str] | None:
        """From a flag or a variable: they may name the settings file, so they come first."""
        if name in self.flags:
            return self.flags[name], f"option --{_OPTION_NAMES.get(name, name).replace('_', '-')}"
        variable = ENVIRONMENT.get(name)
        if variable and self.environ.get(variable):
            return self.environ[variable], f"environment variable {variable}"
        return None

    def _find_settings_file(self) -> Path | None:
        """One named must exist; without a name, ./debrepo.yaml is read if there is one."""
        chosen = self.given("settings_file")
        if chosen:
            settings_file = resolved(self.cwd / str(chosen[0]), chosen[1])
            if not settings_file.is_file():
                what = "is not a file" if settings_file.exists() else "not found"
                raise ConfigError(f"{settings_file}: settings file {what} ({chosen[1]})")
            return settings_file
        if (self.cwd / DEFAULT_SETTINGS_FILE).is_file():
            return self.cwd / DEFAULT_SETTINGS_FILE
        return None

    def pick(self, name: str, defaults: Mapping[str, Any]) -> tuple[Any, str]:
        chosen = self.given(name)
        if chosen:
            return chosen
        if name in self.file_values and self.file_values[name] is not None:
            return self.file_values[name], f"{self.settings_file}: {name}"
        return defaults.get(name), f"default {name}"

    def from_file(self, where: str) -> bool:
        return self.settings_file is not None and where.startswith(f"{self.settings_file}: ")

    def base(self, where: str) -> Path:
        """A relative path written in the settings file is taken from the file's folder
        (it must not depend on where the command runs); in a flag or variable, from
        the current directory."""
        if self.settings_file and self.from_file(where):
            return self.settings_file.parent
        return self.cwd


class _Values:
    """Every setting as picked and where from, read as the kind of value it must be."""

    def __init__(self, sources: _Sources, defaults: Mapping[str, Any]) -> None:
        self.sources = sources
        self.raw = {name: sources.pick(name, defaults) for name in defaults}

    def where(self, name: str) -> str:
        return self.raw[name][1]

    def text(self, name: str) -> str:
        value, where = self.raw[name]
        if not isinstance(value, str | int | float) or not str(value).strip():
            raise ConfigError(f"{where} must be non-empty text")
        return str(value).strip()

    def path_text(self, name: str) -> str:
        value = self.text(name)
        if "\0" in value:  # the OS would refuse it with a traceback later
            raise ConfigError(f"{self.where(name)} holds a NUL character")
        return value

    def local_path(self, name: str) -> Path:
        where = self.where(name)
        return resolved(self.sources.base(where) / self.path_text(name), where)

    def location(self, name: str, scheme: str) -> str:
        """A store or folder URL, a relative local path in it anchored as `base` says."""
        value, where = self.path_text(name), self.where(name)
        prefix = f"{scheme}://" if value.startswith(f"{scheme}://") else ""
        path = value[len(prefix) :]
        if not path:  # `file://` alone would be the current directory, wherever that is
            raise ConfigError(f"{where}: {value!r} names no path")
        if (
            not self.sources.from_file(where)
            or "://" in path
            or not path
            or path.startswith(("/", "~"))
        ):
            return value  # s3://, dynamodb://: nothing local; a flag: from cwd when opened
        return f"{prefix}{self.sources.base(where) / path}"

    def number(self, name: str, kind: Callable[[str], _Number], what: str) -> _Number:
        try:
            return kind(self.text(name))
        except ValueError:
            raise ConfigError(f"{self.where(name)} must be {what}") from None

    def optional(self, name: str) -> str:
        value, where = self.raw[name]
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


def _home(sources: _Sources) -> Path:
    """Read before the others: the defaults of the store, repository, staging area and
    key are under it."""
    home_value, home_from = sources.pick("home", {"home": DEFAULT_HOME})
    if not isinstance(home_value, str) or not home_value.strip() or "\0" in home_value:
        raise ConfigError(f"{home_from} must be the path of a folder, not {home_value!r}")
    home = resolved(sources.base(home_from) / home_value, home_from)
    if home.exists() and not home.is_dir():
        raise ConfigError(f"{home}: not a folder ({home_from} must name the home folder)")
    return home


def _suite_and_codename(values: _Values) -> tuple[str, str]:
    suite, codename = values.text("suite"), values.text("codename")
    for name, value in (("suite", suite), ("codename", codename)):
        if not _SUITE_RE.fullmatch(value):
            raise ConfigError(f"{values.where(name)}: {value!r} is not a valid {name} name")
    return suite, codename


def _components_and_architectures(values: _Values) -> tuple[tuple[str, ...], tuple[str, ...]]:
    components = _split_list(values.raw["components"][0], values.where("components"))
    if not components or not all(_COMPONENT_RE.fullmatch(c) for c in components):
        raise ConfigError(f"{values.where('components')}: components must be names such as 'main'")
    architectures = _split_list(values.raw["architectures"][0], values.where("architectures"))
    if not architectures:
        raise ConfigError(f"{values.where('architectures')}: list at least one architecture")
    for name, listed in (("components", components), ("architectures", architectures)):
        if repeated := sorted({item for item in listed if listed.count(item) > 1}):
            raise ConfigError(f"{values.where(name)}: {', '.join(repeated)} listed twice")
    for arch in architectures:
        if architecture_problem(arch) or arch in ("all", "any", "source"):
            raise ConfigError(
                f"{values.where('architectures')}: {arch!r} is not a binary architecture (such "
                "as amd64, arm64; packages of Architecture all go into every one listed)"
            )
    return components, architectures


def _valid_days(values: _Values) -> float:
    """At least an hour: a Release must outlive its own publication and the clients'
    clocks being a little off."""
    valid_days = values.number("valid_days", float, "a number of days")
    if not 1 / 24 <= valid_days <= 3650:
        raise ConfigError(
            f"{values.where('valid_days')} must be between 1/24 (an hour) and 3650 days"
        )
    return valid_days


def _by_hash_keep(values: _Values) -> int:
    by_hash_keep = values.number("by_hash_keep", int, "a whole number")
    if by_hash_keep < MIN_BY_HASH_GENERATIONS:
        raise ConfigError(
            f"{values.where('by_hash_keep')} must keep at least {MIN_BY_HASH_GENERATIONS} "
            "generations"
        )
    return by_hash_keep


def _key_switch_days(values: _Values) -> float:
    key_switch_days = values.number("key_switch_days", float, "a number of days")
    if not 0 <= key_switch_days <= 3650:
        raise ConfigError(f"{values.where('key_switch_days')} must be between 0 and 3650 days")
    return key_switch_days


def _default_public_url_to_the_bucket(values: _Values, environ: Mapping[str, str]) -> None:
    """For an S3 repository, not the loopback default: it would go into index.html and,
    for good, into the APT source of every kiro-repo built without --repo-url."""
    repo_url = url_parts(values.path_text("repo"))
    if values.where("public_url").startswith("default") and repo_url.scheme == "s3":
        region = aws_region(environ)
        values.raw["public_url"] = (
            s3_public_url(repo_url.netloc, repo_url.path, region),
            "default public_url (the bucket's URL)",
        )


def _public_url_and_key_name(values: _Values) -> tuple[str, str]:
    """What the repository says of itself, in its Release, its pages and its keyring,
    must be text every reader takes as written."""
    for name in ("public_url", "origin", "label", "description", "release_version", "key_user_id"):
        # Bytes that are not UTF-8 in an argument or variable arrive as lone surrogates,
        # which no Release, page or request can carry.
        if not is_unicode_text(values.text(name)):
            raise ConfigError(f"{values.where(name)} is not UTF-8 text")
    public_url = values.text("public_url").rstrip("/")
    parsed_url = url_parts(public_url)
    if (
        parsed_url.scheme not in ("http", "https")
        or not parsed_url.netloc
        or any(c.isspace() for c in public_url)
    ):
        raise ConfigError(f"{values.where('public_url')}: {public_url!r} is not an http(s) URL")
    key_name = values.text("key_name")
    if not _KEY_NAME_RE.fullmatch(key_name):
        raise ConfigError(f"{values.where('key_name')}: {key_name!r} is not a valid keyring name")
    for name in ("origin", "label", "description", "release_version", "key_user_id"):
        # Any control character (a carriage return too) would corrupt the signed Release.
        if any(_is_control(c) for c in values.text(name)):
            raise ConfigError(
                f"{values.where(name)} must be a single line without control characters"
            )
    return public_url, key_name


def _s3_acl_mode(values: _Values) -> str:
    acl_mode = values.text("s3_acl_mode")
    if acl_mode not in S3_ACL_MODES:
        raise ConfigError(f"{values.where('s3_acl_mode')} must be one of {', '.join(S3_ACL_MODES)}")
    return acl_mode


def _lock_ttl_seconds(values: _Values) -> int:
    lock_ttl = values.number("lock_ttl_seconds", int, "a whole number of seconds")
    if lock_ttl < 60:
        raise ConfigError(f"{values.where('lock_ttl_seconds')} must be at least 60 seconds")
    return lock_ttl


def _config_dir(values: _Values) -> Path:
    """Only the default may be missing: any .deb can be published without a definition,
    but a folder named on purpose must not, by a typo, pass for "no definitions"."""
    config_dir = values.local_path("config_dir")
    if not values.where("config_dir").startswith("default") and not config_dir.is_dir():
        what = "not a folder" if config_dir.exists() else "no such folder"
        raise ConfigError(
            f"{config_dir}: {what} ({values.where('config_dir')} names the package definitions "
            "folder, config/packages in this repository)"
        )
    return config_dir


def _is_control(character: str) -> bool:
    """C0, DEL, C1 (NEL among them) and the Unicode line and paragraph separators: what
    some reader of a Release or a log takes for the end of a line."""
    code = ord(character)
    return code < 0x20 or 0x7F <= code <= 0x9F or character in "\u2028\u2029"


def local_path(url: str, scheme: str, where: str = "") -> Path | None:
    """The path of `scheme://PATH` or of a bare path, as the backends open it; None for
    other schemes (s3://, dynamodb://). `where` says where `url` was set."""
    if "://" not in url:
        return resolved(Path(url).expanduser(), where)
    if urlparse(url).scheme != scheme:
        return None
    return resolved(Path(url[len(scheme) + 3 :]).expanduser(), where)


def resolved(path: Path, where: str = "") -> Path:
    """`path.resolve()`; a symbolic link loop on the way is a ConfigError naming the
    path and `where` it was set. (Python 3.11 and 3.12 raise RuntimeError for one; from
    3.13 only a strict resolve notices it, as ELOOP.)"""
    try:
        return path.resolve(strict=True)
    except RuntimeError:
        loop = True
    except OSError as exc:  # a missing part is fine: what is missing is said later
        loop = exc.errno == errno.ELOOP
    if not loop:
        try:
            return path.resolve()
        except RuntimeError:
            pass
    setting = f" ({where})" if where else ""
    raise ConfigError(f"{path}: a symbolic link loop{setting}")


def _refuse_a_repository_over_private_files(settings: Settings, sources: dict[str, str]) -> None:
    """Everything under the repository is served to the world: never the signing key,
    the store or the staging area (`repo` set to the home, or `staging` inside it).
    `sources`: where each of repo, store, staging and key_file was set."""
    where = sources["repo"]
    repo = local_path(settings.repo, "file", where)
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
    store = local_path(settings.store, "sqlite", sources["store"])
    if store is not None:
        private["store"] = ("the metadata store (store)", store)
    staging = local_path(settings.staging, "file", sources["staging"])
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
