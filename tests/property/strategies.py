"""Hypothesis strategies for the property tests: Debian names, versions, package records,
field lists, Release descriptions and package configuration mappings.

Everything here is written from Debian policy and the seed's schema, not from debrepo's
own validation code, so the tests can disagree with it.

Two corners of the Debian grammar are left out of the general strategies by default:
`..` inside a package name or version, and `:` inside the upstream part of a version
(after an epoch). Both are valid Debian, but give a pool file name debrepo refuses;
`test_property_22_*` in test_index_properties.py covers them on their own, so one
known gap does not mask every other property.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import Phase
from hypothesis import strategies as st

from debrepo.core.release import ReleaseInfo
from debrepo.model import PackageRecord

# Hypothesis phases without "explain": after a failure is shrunk, that phase re-runs the
# test hundreds of times to annotate which inputs mattered, which for the tests that
# build a repository per example costs minutes instead of seconds.
PHASES_WITHOUT_EXPLAIN = tuple(phase for phase in Phase if phase is not Phase.explain)

KNOWN_PACKAGES = ("kiro", "kiro-repo", "kiro-cli")
CONVENIENCE_PACKAGE = "kiro-repo"
ARCHITECTURES = ("amd64", "arm64", "all", "i386", "armhf", "riscv64", "ppc64el", "s390x")
BINARY_ARCHITECTURES = tuple(a for a in ARCHITECTURES if a != "all")
PACKAGE_TYPES = ("external_download", "build_script", "github_release", "manual")
PRIORITIES = ("required", "important", "standard", "optional", "extra")
SECTIONS = ("editors", "misc", "devel", "utils", "net", "libs", "contrib/misc", "non-free/net")

# What every stored package carries (seed "Attribute Schema", Property 2).
SEED_REQUIRED_FIELDS = (
    "package_name",
    "version",
    "architecture",
    "deb_url",
    "actual_filename",
    "file_size",
    "md5_hash",
    "sha1_hash",
    "sha256_hash",
    "section",
    "priority",
    "maintainer",
    "homepage",
    "description",
    "pub_date",
    "processed_timestamp",
    "package_type",
)
# The fields of every Packages entry (seed Property 8).
SEED_STANZA_FIELDS = (
    "Package",
    "Version",
    "Architecture",
    "Maintainer",
    "Section",
    "Priority",
    "Homepage",
    "Description",
    "Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
)
# Fields a Packages stanza takes from named record attributes or computes itself;
# a record's extra control fields never repeat them.
STANZA_OWNED_FIELDS = frozenset(
    name.lower()
    for name in (
        *SEED_STANZA_FIELDS,
        "Depends",
        "Installed-Size",
        "SHA512",
        "Description-md5",
    )
)
# Real control fields a .deb may carry besides the ones above.
EXTRA_FIELD_NAMES = (
    "Multi-Arch",
    "Recommends",
    "Suggests",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Provides",
    "Pre-Depends",
    "Enhances",
    "Source",
    "Built-Using",
    "Essential",
    "Original-Maintainer",
    "Bugs",
    "Tag",
    "Origin",
    "X-Kiro-Channel",
)

# -- names and versions (Debian policy 5.6.1, 5.6.12) ------------------------------------

_NAME_START = string.ascii_lowercase + string.digits
_NAME_REST = _NAME_START + "+.-"
_VERSION_CHARS = string.ascii_letters + string.digits + ".+~"


# Names where a pool layout is easy to get wrong: Debian's own archive puts `lib*`
# packages under a four-letter directory (pool/main/libf/libfoo/), the seed (Property 7)
# and DESIGN under the first letter alone; two characters is the shortest valid name;
# '+', '.' and '-' are the punctuation policy allows.
NOTABLE_NAMES = (
    "libfoo",
    "lib2",
    "lib",
    "libc6",
    "libstdc++6",
    "lib-x",
    "lib.so",
    "ab",
    "a0",
    "0a",
    "g+",
    "c-",
    "x.",
    "g++",
    "a.b",
    "a+b-c.d",
    "python3.11",
    "0ad",
)


@functools.cache
def notable_package_names(*, allow_double_dot: bool = False) -> st.SearchStrategy[str]:
    """Valid names starting with `lib`, of two characters, or holding '+', '.' or '-'."""
    lib = st.builds(str.__add__, st.just("lib"), st.text(_NAME_REST, max_size=8))
    two = st.builds(str.__add__, st.sampled_from(_NAME_START), st.sampled_from(_NAME_REST))
    punctuated = st.builds(
        lambda first, left, mark, right: first + left + mark + right,
        st.sampled_from(_NAME_START),
        st.text(_NAME_REST, max_size=6),
        st.sampled_from("+.-"),
        st.text(_NAME_REST, max_size=6),
    )
    generated = st.one_of(lib, two, punctuated)
    if not allow_double_dot:
        generated = generated.filter(lambda name: ".." not in name)
    return st.sampled_from(NOTABLE_NAMES) | generated


@functools.cache
def package_names(*, allow_double_dot: bool = False) -> st.SearchStrategy[str]:
    """Binary package names `[a-z0-9][a-z0-9+.-]+`, often the seed's own packages, often
    a notable one (see notable_package_names)."""
    generated = st.builds(
        str.__add__, st.sampled_from(_NAME_START), st.text(_NAME_REST, min_size=1, max_size=20)
    )
    if not allow_double_dot:
        generated = generated.filter(lambda name: ".." not in name)
    return st.one_of(
        st.sampled_from(KNOWN_PACKAGES),
        generated,
        notable_package_names(allow_double_dot=allow_double_dot),
    )


@functools.cache
def _realistic_upstream() -> st.SearchStrategy[str]:
    numbers = st.lists(st.integers(0, 30), min_size=1, max_size=4).map(
        lambda parts: ".".join(map(str, parts))
    )
    suffix = st.sampled_from(
        ("", "", "~rc1", "~rc2", "~beta1", "~~", "~", "+git20240101", "+dfsg", "a", "+b1", ".0")
    )
    return st.builds(str.__add__, numbers, suffix)


_EPOCHS = st.none() | st.integers(0, 30)
_REVISIONS = (
    st.none()
    | st.sampled_from(("1", "2", "0ubuntu1", "1+deb12u1", "1~bpo1"))
    | st.text(_VERSION_CHARS, min_size=1, max_size=6)
)
_DIGITS = st.sampled_from(string.digits)
# Upstream characters after the first digit: a hyphen only when a revision follows
# (split at the last hyphen), a colon only after an epoch (split at the first colon).
_UPSTREAM_TAILS = {
    (hyphen, colon): st.text(
        _VERSION_CHARS + ("-" if hyphen else "") + (":" if colon else ""), max_size=10
    )
    for hyphen in (False, True)
    for colon in (False, True)
}


@st.composite
def _versions(draw: st.DrawFn, allow_upstream_colon: bool) -> str:
    epoch = draw(_EPOCHS)
    revision = draw(_REVISIONS)
    tail = _UPSTREAM_TAILS[revision is not None, epoch is not None and allow_upstream_colon]
    realistic = draw(st.booleans())
    upstream = draw(_realistic_upstream()) if realistic else draw(_DIGITS) + draw(tail)
    version = upstream
    if epoch is not None:
        version = f"{epoch}:{version}"
    if revision is not None:
        version = f"{version}-{revision}"
    return version


@functools.cache
def debian_versions(
    *, allow_double_dot: bool = False, allow_upstream_colon: bool = False
) -> st.SearchStrategy[str]:
    """Valid Debian versions: `[epoch:]upstream[-revision]`, with `~`, `+`, letters."""
    strategy = _versions(allow_upstream_colon)
    if not allow_double_dot:
        strategy = strategy.filter(lambda version: ".." not in version)
    return strategy


@st.composite
def respellings_of(draw: st.DrawFn, version: str) -> str:
    """`version` spelled otherwise but equal as dpkg compares: numbers with leading
    zeros, an explicit epoch 0, a revision 0, a 0 after a trailing letter (possibly
    none of these: then the same spelling)."""
    other = version
    if draw(st.booleans()):
        other = re.sub(r"(?<![0-9])(?=[0-9])", "0", other)  # 1.2 -> 01.02, 1:2 -> 01:02
    if ":" not in other and draw(st.booleans()):
        other = "0:" + other
    if "-" not in version and draw(st.booleans()):
        other += "-0"
    elif other[-1:].isalpha() and draw(st.booleans()):
        other += "0"
    return other


def version_without_epoch(version: str) -> str:
    """What dpkg puts in a .deb file name: the version after the epoch, if any."""
    _, colon, rest = version.partition(":")
    return rest if colon else version


def _pairwise_distinct_for_dpkg(versions: list[str]) -> bool:
    from debrepo.versions import version_key

    keys = [version_key(v) for v in versions]
    return all(a != b for i, a in enumerate(keys) for b in keys[i + 1 :])


def distinct_versions(*, min_size: int, max_size: int) -> st.SearchStrategy[list[str]]:
    """Versions one package can hold together: distinct pool file names (an epoch is not
    in them) and distinct as dpkg compares (1.0 and 1.00 are one version)."""
    return st.lists(
        debian_versions(), min_size=min_size, max_size=max_size, unique_by=version_without_epoch
    ).filter(_pairwise_distinct_for_dpkg)


def deb_filename(name: str, version: str, architecture: str) -> str:
    return f"{name}_{version_without_epoch(version)}_{architecture}.deb"


# -- text values --------------------------------------------------------------------------

# Letters, digits, punctuation, symbols and spaces in any script; no control characters
# or line separators, so what deb822 writes is what apt and deb822 read back.
_TEXT = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))


@functools.cache
def single_line(*, max_size: int = 24) -> st.SearchStrategy[str]:
    """A non-empty one-line value without surrounding whitespace."""
    return st.text(_TEXT, min_size=1, max_size=max_size).map(str.strip).filter(bool)


_CONTINUATION_LINES = st.lists(
    st.one_of(st.just("."), single_line(max_size=30)).map(lambda line: " " + line)
    | single_line(max_size=20).map(lambda line: "   " + line),  # verbatim (indented) text
    min_size=1,
    max_size=4,
)


@functools.cache
def multiline_values(*, first_line_empty: bool = False) -> st.SearchStrategy[str]:
    """A deb822 multi-line value: a first line, then lines indented by one space
    (" ." for an empty line). With `first_line_empty` the value starts on line two."""
    first = st.just("") if first_line_empty else single_line(max_size=30)
    return st.builds(lambda head, body: "\n".join([head, *body]), first, _CONTINUATION_LINES)


@functools.cache
def descriptions() -> st.SearchStrategy[str]:
    """Package descriptions in deb822 form: "synopsis\\n extended\\n ."."""
    return single_line(max_size=30) | multiline_values()


@functools.cache
def field_values() -> st.SearchStrategy[str]:
    return st.one_of(
        single_line(),
        multiline_values(),
        multiline_values(first_line_empty=True),  # Conffiles-style, value starts on line two
    )


# Policy 5.1: US-ASCII without control characters, space and ':'; not starting with '#'
# or '-'.
_FIELD_NAME_START = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ":#-")
_FIELD_NAME_REST = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != ":")


@functools.cache
def field_names() -> st.SearchStrategy[str]:
    generated = st.builds(
        str.__add__,
        st.sampled_from(_FIELD_NAME_START),
        st.text(_FIELD_NAME_REST, max_size=15),
    )
    return st.sampled_from(EXTRA_FIELD_NAMES) | generated


@functools.cache
def extra_control_fields(max_size: int = 3) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """Other fields of a .deb's control file: unique names, none a stanza computes."""
    free = st.tuples(
        field_names().filter(lambda n: n.lower() not in STANZA_OWNED_FIELDS | PARSED_FIELDS),
        field_values(),
    )
    parsed = parsed_fields().filter(lambda pair: pair[0].lower() not in STANZA_OWNED_FIELDS)
    return st.lists(free | parsed, max_size=max_size, unique_by=lambda pair: pair[0].lower()).map(
        tuple
    )


@functools.cache
def field_lists() -> st.SearchStrategy[list[tuple[str, str]]]:
    """Any valid control paragraph as (name, value) pairs: unique names, deb822 values."""
    value = st.one_of(
        field_values(),
        st.just(""),
        st.text(_TEXT, max_size=20),  # surrounding spaces are kept by both writers
    )
    free = st.tuples(field_names().filter(lambda n: n.lower() not in PARSED_FIELDS), value)
    return st.lists(free | parsed_fields(), max_size=12, unique_by=lambda pair: pair[0].lower())


# -- record attributes ------------------------------------------------------------------


@functools.cache
def hex_digests(digits: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=digits // 2, max_size=digits // 2).map(bytes.hex)


_HOST_LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
hosts = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_HOST_LABEL, min_size=1, max_size=3),
    st.sampled_from(("dev", "com", "org", "example")),
)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(("https", "http")),
    hosts,
    st.text(string.ascii_letters + string.digits + "-_./", max_size=12),
)
maintainers = st.builds(
    lambda name, local, host: f"{name} <{local}@{host}>",
    single_line(max_size=30).filter(lambda name: "<" not in name and ">" not in name),
    st.text(string.ascii_lowercase + string.digits + "._+-", min_size=1, max_size=12),
    hosts,
)
sections = st.sampled_from(SECTIONS) | st.builds(
    lambda area, name: area + name,
    st.sampled_from(("", "contrib/", "non-free/", "x-kiro/")),
    st.text(string.ascii_lowercase + string.digits + "+.-", min_size=1, max_size=12),
)


_RELATION_NAMES = ("libc6", "libgtk-3-0", "libnss3", "xdg-utils", "python3", "kiro", "zlib1g")


@functools.cache
def relations(
    *, alternatives: bool = True, operators: tuple[str, ...] = ("<<", "<=", "=", ">=", ">>")
) -> st.SearchStrategy[str]:
    """A Depends value: `a (>= 1.0), b | c` (without alternatives: a Conflicts value)."""
    relation = st.builds(
        lambda name, constraint: name + constraint,
        st.sampled_from(_RELATION_NAMES) | package_names(),
        st.just("")
        | st.builds(
            lambda operator, version: f" ({operator} {version})",
            st.sampled_from(operators),
            _realistic_upstream(),
        ),
    )
    group = st.lists(relation, min_size=1, max_size=2 if alternatives else 1).map(" | ".join)
    return st.lists(group, min_size=1, max_size=3).map(", ".join)


# Fields apt and dpkg parse (policy 5.6.8, 5.6.10, 7.1): a value they reject breaks apt.
_DEPENDENCY_FIELDS = ("Depends", "Pre-Depends", "Recommends", "Suggests")
_EXCLUSION_FIELDS = ("Conflicts", "Breaks", "Replaces", "Enhances", "Built-Using")
_FLAG_FIELDS = ("Essential", "Protected", "Important", "Build-Essential")
PARSED_FIELDS = frozenset(
    name.lower()
    for name in (
        *_DEPENDENCY_FIELDS,
        *_EXCLUSION_FIELDS,
        *_FLAG_FIELDS,
        "Static-Built-Using",
        "Provides",
        "Multi-Arch",
    )
)


@functools.cache
def parsed_fields() -> st.SearchStrategy[tuple[str, str]]:
    """One of the fields apt and dpkg parse, with a value they accept."""
    return st.one_of(
        st.tuples(st.sampled_from(_DEPENDENCY_FIELDS), relations()),
        st.tuples(st.sampled_from(_EXCLUSION_FIELDS), relations(alternatives=False)),
        st.tuples(st.just("Provides"), relations(alternatives=False, operators=("=",))),
        st.tuples(st.just("Multi-Arch"), st.sampled_from(("no", "same", "foreign", "allowed"))),
        st.tuples(st.sampled_from(_FLAG_FIELDS), st.sampled_from(("yes", "no"))),
    )


timestamps = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
).map(lambda moment: moment.isoformat(timespec="seconds").replace("+00:00", "Z"))
# Free text the store must keep exactly, though no index shows it.
any_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
# Free text shown on one line (list, show, notifications): no control characters.
one_line_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc",)), min_size=1, max_size=20
)


_ARCHITECTURE = st.sampled_from(ARCHITECTURES)
_PRIORITY = st.sampled_from(PRIORITIES)
_PACKAGE_TYPE = st.sampled_from(PACKAGE_TYPES)
_FILE_SIZE = st.integers(0, 2**40)
_OPTIONAL_INSTALLED_SIZE = st.none() | st.integers(0, 10**8)
_OPTIONAL_SHA512 = st.none() | hex_digests(128)

# The free-text attributes of a record. "rich" explores any text; "lean" picks from a
# few realistic values, for tests about identity and counting rather than text, where
# generating rich text for every record would only cost time.
_RICH_TEXT = {
    "section": sections,
    "maintainer": maintainers,
    "homepage": urls,
    "description": descriptions(),
    "deb_url": urls | one_line_text,
    "depends": st.none() | relations(),
    "certificate_url": st.none() | urls,
    "signature_url": st.none() | urls,
    "notes": st.none() | any_text,
    "control_fields": extra_control_fields(),
}
_LEAN_TEXT = {
    "section": st.sampled_from(SECTIONS),
    "maintainer": st.sampled_from(
        ("Kiro Team <support@kiro.dev>", "Jane Doe <jane@example.com>", "Ĵörg Æ <j@x.org>")
    ),
    "homepage": st.sampled_from(("https://kiro.dev", "http://example.com/pkg")),
    "description": st.sampled_from(
        (
            "Kiro IDE - AI-powered development environment",
            "short\n A longer description\n .\n   with a verbatim line",
            "Kiro CLI\n Command-line tools.",
        )
    ),
    "deb_url": st.sampled_from(("https://download.kiro.dev/linux/kiro.deb", "file:///tmp/x.deb")),
    "depends": st.sampled_from((None, "libc6 (>= 2.31), xdg-utils | kiro")),
    "certificate_url": st.sampled_from((None, "https://download.kiro.dev/cert.pem")),
    "signature_url": st.sampled_from((None, "https://download.kiro.dev/sig.bin")),
    "notes": st.sampled_from((None, "Release notes\nline two")),
    "control_fields": st.sampled_from(
        ((), (("Multi-Arch", "foreign"),), (("Recommends", "git"), ("X-Extra", "a\n b")))
    ),
}


@st.composite
def package_records(
    draw: st.DrawFn,
    *,
    names: st.SearchStrategy[str] | None = None,
    versions: st.SearchStrategy[str] | None = None,
    architectures: st.SearchStrategy[str] | None = None,
    lean: bool = False,
) -> PackageRecord:
    """A complete, valid PackageRecord as the seed's schema describes it."""
    name = draw(names if names is not None else package_names())
    version = draw(versions if versions is not None else debian_versions())
    architecture = draw(architectures if architectures is not None else _ARCHITECTURE)
    text = {key: draw(strategy) for key, strategy in (_LEAN_TEXT if lean else _RICH_TEXT).items()}
    return PackageRecord(
        package_name=name,
        version=version,
        architecture=architecture,
        section=text["section"],
        priority=draw(_PRIORITY),
        maintainer=text["maintainer"],
        homepage=text["homepage"],
        description=text["description"],
        deb_url=text["deb_url"],
        actual_filename=deb_filename(name, version, architecture),
        file_size=draw(_FILE_SIZE),
        md5_hash=draw(hex_digests(32)),
        sha1_hash=draw(hex_digests(40)),
        sha256_hash=draw(hex_digests(64)),
        pub_date=draw(timestamps),
        processed_timestamp=draw(timestamps),
        package_type=draw(_PACKAGE_TYPE),
        depends=text["depends"],
        certificate_url=text["certificate_url"],
        signature_url=text["signature_url"],
        notes=text["notes"],
        installed_size=draw(_OPTIONAL_INSTALLED_SIZE),
        sha512_hash=draw(_OPTIONAL_SHA512),
        control_fields=text["control_fields"],
    )


def record_lists(
    *, min_size: int = 0, max_size: int = 8, **record_options: Any
) -> st.SearchStrategy[list[PackageRecord]]:
    """Records one store can hold and one repository can publish together: unique
    package_id (the store's key) and unique pool file name."""
    return st.lists(
        package_records(**record_options),
        min_size=min_size,
        max_size=max_size,
        unique_by=(lambda r: r.package_id, lambda r: r.actual_filename),
    )


def with_content(record: PackageRecord, content: bytes) -> PackageRecord:
    """The record of a .deb whose bytes are `content`: size and checksums computed here."""
    return record.with_changes(
        file_size=len(content),
        md5_hash=hashlib.md5(content).hexdigest(),
        sha1_hash=hashlib.sha1(content).hexdigest(),
        sha256_hash=hashlib.sha256(content).hexdigest(),
        sha512_hash=hashlib.sha512(content).hexdigest(),
    )


# -- Release ------------------------------------------------------------------------------

suite_names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,12}\Z")
component_names = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,10}\Z")
moments = st.builds(
    lambda naive, offset_minutes: naive.replace(tzinfo=timezone(timedelta(minutes=offset_minutes))),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(-14 * 60, 14 * 60),
)


_RELEASE_ARCHITECTURES = st.lists(
    st.sampled_from(BINARY_ARCHITECTURES), min_size=1, max_size=4, unique=True
).map(tuple)
_RELEASE_COMPONENTS = st.lists(component_names, min_size=1, max_size=3, unique=True).map(tuple)
_VALIDITY = st.floats(min_value=0.01, max_value=3650).map(lambda days: timedelta(days=days))


@st.composite
def release_infos(draw: st.DrawFn) -> ReleaseInfo:
    """What a Release file says about its repository, as an operator may configure it."""
    return ReleaseInfo(
        origin=draw(single_line()),
        label=draw(single_line()),
        suite=draw(suite_names),
        codename=draw(suite_names),
        version=draw(single_line(max_size=10)),
        architectures=draw(_RELEASE_ARCHITECTURES),
        components=draw(_RELEASE_COMPONENTS),
        description=draw(single_line()),
        valid_for=draw(_VALIDITY),
    )


# -- package configuration files (seed "Package Configuration Files") --------------------

SOURCE_REQUIREMENTS = {
    "external_download": ("metadata_endpoint",),
    "build_script": ("staging_prefix",),
    "github_release": ("repository", "asset_pattern"),
}
CONFIG_REQUIRED_KEYS = (
    "package_name",
    "description",
    "maintainer",
    "homepage",
    "section",
    "priority",
    "architecture",
    "source",
)

_REPO_PART = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=12).filter(
    lambda part: part not in (".", "..")
)


_SOURCE_TYPE = st.sampled_from(sorted(SOURCE_REQUIREMENTS))
_PREFIX_PARTS = st.lists(_REPO_PART, min_size=1, max_size=3)


@st.composite
def source_configs(draw: st.DrawFn) -> dict[str, str]:
    kind = draw(_SOURCE_TYPE)
    source = {"type": kind}
    if kind == "external_download":
        source["metadata_endpoint"] = draw(urls)
    elif kind == "build_script":
        parts = draw(_PREFIX_PARTS)
        source["staging_prefix"] = "/".join(parts) + "/"
    else:
        source["repository"] = f"{draw(_REPO_PART)}/{draw(_REPO_PART)}"
        source["asset_pattern"] = draw(single_line(max_size=30))
    return source


_CONFIG_TEXT_LINES = st.lists(single_line(max_size=40) | st.just(""), max_size=4)


@st.composite
def config_descriptions(draw: st.DrawFn) -> str:
    """Free text as written in YAML: a summary line, then paragraphs."""
    lines = [draw(single_line(max_size=40))]
    for line in draw(_CONFIG_TEXT_LINES):
        lines.append(line)
    while lines[-1] == "":
        lines.pop()
    return "\n".join(lines)


_ADDITIONAL_FILES = st.lists(st.sampled_from(("certificate", "signature")), unique=True)


@st.composite
def package_config_mappings(draw: st.DrawFn) -> dict[str, Any]:
    """The mapping of a valid config/packages/<name>.yaml."""
    data: dict[str, Any] = {
        "package_name": draw(package_names()),
        "description": draw(config_descriptions()),
        "maintainer": draw(maintainers),
        "homepage": draw(urls),
        "section": draw(sections),
        "priority": draw(_PRIORITY),
        "architecture": draw(_ARCHITECTURE),
        "source": draw(source_configs()),
    }
    if draw(st.booleans()):
        data["depends"] = draw(relations())
    if draw(st.booleans()):
        data["additional_files"] = draw(_ADDITIONAL_FILES)
    if draw(st.booleans()):
        data["build"] = {
            "script_path": "scripts/" + draw(_REPO_PART) + ".sh",
            "template_dir": "templates/" + draw(_REPO_PART) + "/",
        }
    return data


# Any value YAML can hold, to put where a field should be.
yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(_TEXT, max_size=20)
    | st.dates(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
