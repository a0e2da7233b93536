"""Debian control data: field order, name/version/architecture rules, control file parsing.

Pure functions only. The field order is apt's canonical order for Packages stanzas
(apt-pkg/tagfile-order.c), the order `apt-ftparchive packages` writes; fields apt does
not know keep their original order after the known ones.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from debrepo.errors import InvalidPackageError

APT_PACKAGES_FIELD_ORDER: tuple[str, ...] = (
    "Package",
    "Package-Type",
    "Architecture",
    "Subarchitecture",
    "Version",
    "Revision",
    "Package-Revision",
    "Package_Revision",
    "Kernel-Version",
    "Built-Using",
    "Static-Built-Using",
    "Built-For-Profiles",
    "Auto-Built-Package",
    "Multi-Arch",
    "Status",
    "Priority",
    "Class",
    "Build-Essential",
    "Protected",
    "Important",
    "Essential",
    "Installer-Menu-Item",
    "Section",
    "Source",
    "Origin",
    "Maintainer",
    "Original-Maintainer",
    "Bugs",
    "Config-Version",
    "Conffiles",
    "Triggers-Awaited",
    "Triggers-Pending",
    "Installed-Size",
    "Provides",
    "Pre-Depends",
    "Depends",
    "Recommends",
    "Recommended",
    "Suggests",
    "Optional",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Enhances",
    "Filename",
    "MSDOS-Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
    "SHA512",
    "Homepage",
    "Description",
    "Tag",
    "Task",
)
_FIELD_RANK = {name.lower(): rank for rank, name in enumerate(APT_PACKAGES_FIELD_ORDER)}

# A field value deb822 can write and apt can read: continuation lines start with a
# space or tab, none is empty, nothing ends in a newline, and no character that ends a
# value early appears: NUL (apt stops reading a Packages file there, silently dropping
# the rest), CR, and the other characters Python's line splitting breaks lines at
# (VT, FF, FS, GS, RS, NEL, LS, PS), which deb822 readers of the file, debrepo's own
# included, would take for the end of a line: a value holding one could smuggle in a
# field of its own. Other control characters (ESC, ...) dpkg and apt pass through, and
# so do we.
_LINE_BREAKING = "\x00\x0a\x0b\x0c\x0d\x1c\x1d\x1e\x85\u2028\u2029"
_TEXT = rf"[^{_LINE_BREAKING}]*"
FIELD_VALUE_RE = re.compile(rf"{_TEXT}(?:\n[ \t]{_TEXT})*")
_CONTROL_CHARACTER_RE = re.compile(rf"[{_LINE_BREAKING.replace(chr(10), '')}]")

# Fields a repository computes itself; a .deb that carries them does not get to decide.
REPOSITORY_FIELDS = frozenset(
    f.lower() for f in ("Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", "Description-md5")
)

NAME_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
ARCH_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# Debian policy 5.6.12 in one expression: a colon only after a numeric epoch, a hyphen
# only before a revision (split at the last hyphen), upstream starting with a digit.
# (Epochs of up to nine digits: longer ones are checked against dpkg's limit below.)
VERSION_RE = re.compile(
    r"(?:[0-9]{1,9}:(?:[0-9][A-Za-z0-9.+~:-]*-[A-Za-z0-9.+~]+|[0-9][A-Za-z0-9.+~:]*)"
    r"|[0-9][A-Za-z0-9.+~-]*-[A-Za-z0-9.+~]+|[0-9][A-Za-z0-9.+~]*)"
)
_EPOCH_RE = re.compile(r"[0-9]+")
MAX_EPOCH = 2**31 - 1  # dpkg: "epoch in version is too big" beyond
_UPSTREAM_RE = re.compile(r"[0-9][A-Za-z0-9.+~:-]*")
_REVISION_RE = re.compile(r"[A-Za-z0-9.+~]+")
# Printable ASCII except ':', not starting with '#' or '-' (deb822).
FIELD_NAME_RE = re.compile(r"[!\"$-,.-9;-~][!-9;-~]*")
# Starts with a letter or digit (so it is never '.' or '..') and holds no '/': a single
# path component. ':' appears when an upstream version holds one (1:2.0:1-1).
POOL_FILENAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~:-]*\.deb")


def package_name_problem(name: str) -> str | None:
    """Why `name` is not a valid Debian binary package name, or None if it is."""
    if not NAME_RE.fullmatch(name):
        return (
            f"{name!r} is not a Debian package name (lowercase letters, digits, '+', '-', '.'; "
            "at least two characters, starting with a letter or digit)"
        )
    return None


def version_problem(version: str) -> str | None:
    """Why `version` is not a valid Debian version (policy 5.6.12), or None if it is."""
    if len(version) <= 256 and VERSION_RE.fullmatch(version):
        return None
    if not version or len(version) > 256:
        return f"{version!r} is not a Debian version (empty or too long)"
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "", version
    elif not _EPOCH_RE.fullmatch(epoch):
        return f"{version!r} is not a Debian version (the epoch before ':' must be a number)"
    elif int(epoch) > MAX_EPOCH:
        return f"{version!r} is not a Debian version (dpkg allows epochs up to {MAX_EPOCH})"
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    elif not _REVISION_RE.fullmatch(revision):
        return (
            f"{version!r} is not a Debian version (the revision after the last '-' may only "
            "hold letters, digits, '.', '+' and '~')"
        )
    if not _UPSTREAM_RE.fullmatch(upstream):
        return (
            f"{version!r} is not a Debian version (the upstream part must start with a digit "
            "and hold only letters, digits, '.', '+', '~', '-' and ':')"
        )
    if colon and VERSION_RE.fullmatch(f"0:{rest}"):
        return None  # a ten-digit epoch within dpkg's limit
    return f"{version!r} is not a Debian version"


def architecture_problem(architecture: str) -> str | None:
    """Why `architecture` is not what a binary package is built for (a Debian architecture
    name, or `all`), or None if it is. Wildcards such as `any` belong in source packages."""
    if not ARCH_RE.fullmatch(architecture):
        return f"{architecture!r} is not a Debian architecture name (such as amd64, arm64, all)"
    if architecture == "source" or "any" in architecture.split("-"):
        return (
            f"{architecture!r} is not the architecture of a binary package "
            "(such as amd64, arm64, all)"
        )
    return None


def pool_filename_problem(filename: str) -> str | None:
    """Why `filename` must not become the last component of a pool path, or None."""
    if len(filename) > 255 or not POOL_FILENAME_RE.fullmatch(filename):
        return (
            f"{filename!r} is not a safe .deb file name (a letter or digit, then letters, "
            "digits, '.', '_', '+', '~', ':', '-', ending in .deb)"
        )
    return None


def without_epoch(version: str) -> str:
    """`1:2.0-1` -> `2.0-1`: the version as file names (which cannot hold ':') carry it."""
    _, colon, rest = version.partition(":")
    return rest if colon else version


def canonical_filename(name: str, version: str, architecture: str) -> str:
    """The Debian file name `name_version_arch.deb`, without the epoch as dpkg names it."""
    return f"{name}_{without_epoch(version)}_{architecture}.deb"


_CANONICAL_NAMES = {name.lower(): name for name in APT_PACKAGES_FIELD_ORDER}


def canonical_field_name(name: str) -> str:
    """`multi-arch` -> `Multi-Arch`: apt's spelling for fields it knows, else unchanged.

    Field names are case-insensitive, and dpkg-deb accepts any case; dpkg-scanpackages
    and apt-ftparchive write the canonical spelling, and so do we.
    """
    return _CANONICAL_NAMES.get(name.lower(), name)


def field_rank(name: str) -> tuple[int, int]:
    """Sort key placing known fields in apt's order and unknown ones after them."""
    rank = _FIELD_RANK.get(name.lower())
    return (0, rank) if rank is not None else (1, 0)


# -- values apt and dpkg parse ------------------------------------------------------
# A binary package's relationship fields (policy 7.1, as dpkg and apt read them): a
# comma-separated list of `name[:arch] [(op version)]`, where only the fields listing
# dependencies may offer alternatives (`a | b`) and Provides only `=` versions. One bad
# entry makes apt reject the whole Packages file ("Problem parsing dependency").
_SPACE = r"[ \t\n]*"
_ALL_OPERATORS = r"<<|<=|=|>=|>>|<|>"


# dpkg's rule for a name it depends on (pkg_name_is_illegal) is looser than policy's
# for a package's own name: upper case, '_' and single characters pass, and apt reads
# them; refusing them would refuse real packages. The version must be one dpkg parses.
_RELATED_NAME = r"[A-Za-z0-9][A-Za-z0-9+._-]*"


def _relation_re(operators: str) -> str:
    return (
        rf"{_SPACE}{_RELATED_NAME}(?::[a-z0-9][a-z0-9-]*)?{_SPACE}"
        rf"(?:\({_SPACE}(?:{operators}){_SPACE}{VERSION_RE.pattern}{_SPACE}\){_SPACE})?"
    )


class _Relations:
    # Compiled when first used: a few ms of every command's start-up otherwise, also of
    # those that check no control field (a re-sign, list, show).
    def __init__(self, operators: str, *, alternatives: bool) -> None:
        self.operators = operators
        self.alternatives = alternatives

    @functools.cached_property
    def entry(self) -> re.Pattern[str]:
        return re.compile(_relation_re(self.operators))

    @functools.cached_property
    def value(self) -> re.Pattern[str]:
        entry = self.entry.pattern
        entries = rf"{entry}(?:\|{entry})*" if self.alternatives else entry
        return re.compile(rf"{_SPACE}|{entries}(?:,{entries})*")

    def problem(self, name: str, value: str) -> str | None:
        if self.value.fullmatch(value):
            return None
        for group in value.split(","):
            entries = group.split("|")
            if len(entries) > 1 and not self.alternatives:
                return f"field {name} cannot offer alternatives ('|'): {quoted_excerpt(group)}"
            for entry in entries:
                if not self.entry.fullmatch(entry):
                    return (
                        f"field {name}: {quoted_excerpt(entry)} is not a package relationship "
                        "(name[:arch] [(op version)], the version as dpkg reads one)"
                    )
        return f"field {name} is not a list of package relationships"


def quoted_excerpt(text: str, limit: int = 60) -> str:
    """`text` quoted for an error message, shortened: a hostile value may be huge."""
    text = text.strip()
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


_DEPENDENCIES = _Relations(_ALL_OPERATORS, alternatives=True)
_EXCLUSIONS = _Relations(_ALL_OPERATORS, alternatives=False)
_RELATIONS: dict[str, _Relations] = {
    **dict.fromkeys(
        ("depends", "pre-depends", "recommends", "suggests", "enhances"), _DEPENDENCIES
    ),
    **dict.fromkeys(
        ("conflicts", "breaks", "replaces", "built-using", "static-built-using"), _EXCLUSIONS
    ),
    "provides": _Relations("=", alternatives=False),
}
# apt warns about any other Multi-Arch value, spelled exactly; dpkg and apt read the
# yes/no flags in any case.
_CHOICES = {"multi-arch": ("no", "same", "foreign", "allowed")}
_FLAGS = ("essential", "protected", "important", "build-essential")


@functools.cache
def field_rules() -> dict[str, re.Pattern[str]]:
    """Each rule as one pattern for the whole value, for quick checks of many records."""
    return {
        **{name: rule.value for name, rule in _RELATIONS.items()},
        **{name: re.compile("|".join(choices)) for name, choices in _CHOICES.items()},
        **dict.fromkeys(_FLAGS, re.compile("yes|no", re.IGNORECASE)),
    }


def field_value_problem(name: str, value: str) -> str | None:
    """Why `name: value` cannot be written into a control paragraph, or None.

    The rules are deb822's (`Deb822.validate_input`): no blank continuation lines, every
    continuation line starts with whitespace, and the field name is printable ASCII;
    beyond them, no control characters, and the fields apt and dpkg parse (relationships,
    Multi-Arch, Essential, ...) must parse: a value they reject would break `apt update`
    for every client, not only this package.
    """
    if not FIELD_NAME_RE.fullmatch(name):
        return f"field name {name!r} is not printable ASCII without ':'"
    if value.endswith("\n") or "\r" in value:
        return f"field {name} ends with a newline or holds a carriage return"
    for number, line in enumerate(value.split("\n")):
        if number == 0:
            continue
        if not line:
            return f"field {name} has a blank continuation line"
        if line[0] not in " \t":  # dpkg and apt take these two only, not any Unicode space
            return f"field {name} has a continuation line that does not start with a space"
    if found := _CONTROL_CHARACTER_RE.search(value):
        return f"field {name} holds the control character {found.group()!r}"
    key = name.lower()
    if relations := _RELATIONS.get(key):
        return relations.problem(name, value)
    if (choices := _CHOICES.get(key)) and value not in choices:
        return f"field {name} must be one of {', '.join(choices)}, not {value!r}"
    if key in _FLAGS and value.lower() not in ("yes", "no"):
        return f"field {name} must be yes or no, not {quoted_excerpt(value)}"
    return None


# What dpkg records of an installed package, refused in a .deb's control file ("value
# for 'Status' field not allowed in this context").
_INSTALLED_ONLY = frozenset({"status", "config-version", "triggers-pending", "triggers-awaited"})


def parse_control(text: str, *, source: str) -> list[tuple[str, str]]:
    """Fields of a binary control file, in file order, values as deb822 keeps them.

    `source` names the file in error messages. Raises InvalidPackageError when the text
    is not exactly one paragraph, repeats a field, or lacks Package/Version/Architecture.
    """
    from debian import deb822  # deferred: importing deb822 costs ~30 ms of CLI start-up

    if not text.endswith("\n"):  # dpkg: "end of file during value of field"
        raise InvalidPackageError(f"{source}: control file does not end with a newline")
    # dpkg ends each line at its trailing whitespace: CR of a file written with CRLF line
    # ends (and VT, FF) there is no part of a value. Anywhere else they are refused below,
    # and so is a line of nothing else where a field must start (the first line, or one
    # after an empty line) with fields after it: dpkg reads a field with no name there.
    if "\r" in text or "\v" in text or "\f" in text:  # rare: most files need none of this
        given = text.split("\n")
        stripped = [line.rstrip("\r\v\f") for line in given]
        for number, (line, kept) in enumerate(zip(given, stripped, strict=True), 1):
            starts_a_field = number == 1 or not given[number - 2]
            if line and not kept and starts_a_field and any(stripped[number:]):
                raise InvalidPackageError(
                    f"{source}: control file line {number} holds only {line[0]!r} where a "
                    "field must start, which dpkg reads as a field without a name"
                )
        text = "\n".join(stripped)
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    if len(paragraphs) != 1:
        raise InvalidPackageError(
            f"{source}: control file must hold exactly one paragraph, found {len(paragraphs)}"
        )
    seen: set[str] = set()
    # Lines end at "\n" only, as dpkg reads them; str.splitlines() would also end them
    # at characters inside a value (U+2028, form feed, ...) and let a value smuggle in
    # a field of its own. Such characters are refused with the value instead.
    # Each line must be read the same way by deb822 here and by apt on every client: what
    # one of them drops or splits differently (a whitespace-only line ends the paragraph
    # for both; a line starting with U+00A0 is no continuation for apt) is refused.
    lines = paragraphs[0].split("\n")
    in_field = False
    field = ""
    last_value_empty = False
    for number, line in enumerate(lines, 1):
        if found := _CONTROL_CHARACTER_RE.search(line):
            # Even at the end of a value, where deb822 would strip it unseen: dpkg
            # refuses such a package, and other readers end the line there.
            if not line[:1].isspace():
                field = line.partition(":")[0].strip()
            where = f"field {field[:60]}" if field else "the control file"
            raise InvalidPackageError(
                f"{source}: {where} holds the control character {found.group()!r} "
                f"(control file line {number})"
            )
        if not line:
            continue
        if line.startswith("#"):  # deb822 skips it as a comment; dpkg refuses it
            raise InvalidPackageError(
                f"{source}: control file line {number} starts with '#': a binary "
                "package's control file holds no comments"
            )
        if (end := line.rstrip(" \t")) and end[-1].isspace():
            raise InvalidPackageError(
                f"{source}: control file line {number} ends with {end[-1]!r}, a space "
                "dpkg keeps and debrepo's reader (python-debian) would drop"
            )
        if line[0] in " \t":
            if not line.strip(" \t"):
                raise InvalidPackageError(
                    f"{source}: control file line {number} holds only whitespace, which ends "
                    "the paragraph (an empty line in a description is written ' .')"
                )
            if not in_field:
                raise InvalidPackageError(
                    f"{source}: control file line {number} continues no field"
                )
            last_value_empty = False
            continue
        if line[0].isspace():
            raise InvalidPackageError(
                f"{source}: control file line {number} starts with {line[0]!r}: a continuation "
                "line starts with a space or a tab, apt reads no other"
            )
        name, colon, rest = line.partition(":")
        name = name.rstrip(" \t")  # `Name : value`: dpkg and apt take it as `Name: value`
        if not colon:
            raise InvalidPackageError(
                f"{source}: control file line {number} ({quoted_excerpt(line)}) is not "
                "'Field: value'"
            )
        if not FIELD_NAME_RE.fullmatch(name):
            raise InvalidPackageError(
                f"{source}: control file line {number}: {name[:60]!r} is not a field name "
                "(printable ASCII, no spaces; a continuation line starts with a space or a tab)"
            )
        if name.lower() in seen:
            raise InvalidPackageError(f"{source}: control file repeats the field {name.lower()!r}")
        if name.lower() in _INSTALLED_ONLY:
            raise InvalidPackageError(
                f"{source}: control file holds {name}, which dpkg keeps for installed "
                "packages and refuses in a .deb"
            )
        if (value := rest.lstrip(" \t")) and value[0].isspace():
            raise InvalidPackageError(
                f"{source}: field {name} starts with {value[0]!r}, a space dpkg keeps and "
                "debrepo's reader (python-debian) would drop"
            )
        seen.add(name.lower())
        in_field, field = True, name
        last_value_empty = not value.strip(" \t")
    if last_value_empty:  # dpkg: "end of file before value of field"
        raise InvalidPackageError(f"{source}: field {field} has no value and ends the control file")
    try:
        paragraph = deb822.Deb822(lines)
    except ValueError as exc:  # what the checks above let through, deb822 still refuses
        raise InvalidPackageError(f"{source}: control file cannot be read: {exc}") from None
    fields = [(name, paragraph[name]) for name in paragraph]
    present = {name.lower() for name, _ in fields}
    missing = [f for f in ("Package", "Version", "Architecture") if f.lower() not in present]
    if missing:
        raise InvalidPackageError(f"{source}: control file lacks {', '.join(missing)}")
    return fields


def field_lookup(fields: Sequence[tuple[str, str]], name: str) -> str | None:
    """Value of `name` (case-insensitively) in `fields`, or None."""
    wanted = name.lower()
    for key, value in fields:
        if key.lower() == wanted:
            return value
    return None


LONE_SURROGATE = "holds a lone surrogate (such as a \\ud800 escape), which is not Unicode text"


def is_unicode_text(value: str) -> bool:
    """Whether `value` can be written as UTF-8: no lone surrogate, which YAML's and
    JSON's `\\u` escapes can make but SQLite, file names and terminals refuse."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
