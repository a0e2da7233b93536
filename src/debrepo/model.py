"""PackageRecord: one package version as the metadata store keeps it.

The attribute names and the item shape (`to_item` / `from_item`) are the seed's
DynamoDB attribute schema, plus what a force rebuild needs to reproduce a Packages
stanza byte for byte without opening the .deb: `installed_size`, `sha512_hash` and
`control_fields` (every other field of the .deb's control file, in file order).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from debrepo.core.control import (
    ARCH_RE,
    FIELD_NAME_RE,
    FIELD_VALUE_RE,
    NAME_RE,
    POOL_FILENAME_RE,
    VERSION_RE,
    architecture_problem,
    field_rules,
    field_value_problem,
    package_name_problem,
    pool_filename_problem,
    version_problem,
)
from debrepo.errors import RecordValidationError

# Property 2 of the seed: every stored package carries these.
REQUIRED_FIELDS: tuple[str, ...] = (
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
# Present in every record, but a .deb outside config/packages/ may leave them empty:
# dpkg-scanpackages then omits the field, and so do we.
MAY_BE_EMPTY = frozenset({"section", "priority", "homepage"})
OPTIONAL_TEXT_FIELDS: tuple[str, ...] = ("depends", "certificate_url", "signature_url", "notes")

_HEX_DIGITS = {"md5_hash": 32, "sha1_hash": 40, "sha256_hash": 64, "sha512_hash": 128}
_HEX = {name: re.compile(f"[0-9a-f]{{{digits}}}") for name, digits in _HEX_DIGITS.items()}
# Fields rendered into the Packages stanza; their values must be valid deb822 values.
_STANZA_TEXT_FIELDS = {
    "section": "Section",
    "priority": "Priority",
    "maintainer": "Maintainer",
    "homepage": "Homepage",
    "description": "Description",
    "depends": "Depends",
}


_IDENTITY_RE = re.compile(
    " ".join(f"(?:{r.pattern})" for r in (NAME_RE, VERSION_RE, ARCH_RE, POOL_FILENAME_RE))
)
# Installed-Size is in KiB; apt and dpkg count bytes in 64 bits, and so do the stores.
MAX_INSTALLED_SIZE = 2**53 - 1
# Shown by `list`/`show` and sent in notifications, never in a stanza: still one line.
_ONE_LINE_FIELDS = (
    "deb_url",
    "pub_date",
    "processed_timestamp",
    "certificate_url",
    "signature_url",
)
# (U+0085, U+2028 and U+2029 end a line for Python's str.splitlines, and so for deb822.)
_LINE_BREAK_OR_CONTROL_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_LOWER_HEX_DIGITS = b"0123456789abcdef"


def is_one_line(value: str) -> bool:
    """Whether `value` may go into a one-line field: no line break, no control character."""
    return _LINE_BREAK_OR_CONTROL_RE.search(value) is None


def is_lower_hex(text: str) -> bool:
    """Whether `text` is lowercase hex digits only (`[0-9a-f]*`): a byte table rather
    than a regex, which takes several times longer over the 264 digits of a record's
    four checksums."""
    return text.isascii() and not text.encode("ascii").translate(None, _LOWER_HEX_DIGITS)


def make_package_id(package_name: str, version: str) -> str:
    """The store's partition key, `"{package_name}#{version}"`."""
    return f"{package_name}#{version}"


class PackageRecord(NamedTuple):
    """Complete metadata of one package version; immutable once stored.

    A NamedTuple rather than a frozen dataclass: a rebuild builds one record per
    stored version, and positional tuple construction is ten times cheaper.
    """

    package_name: str
    version: str
    architecture: str
    section: str
    priority: str
    maintainer: str
    homepage: str
    description: str
    deb_url: str
    actual_filename: str
    file_size: int
    md5_hash: str
    sha1_hash: str
    sha256_hash: str
    pub_date: str
    processed_timestamp: str
    package_type: str
    depends: str | None = None
    certificate_url: str | None = None
    signature_url: str | None = None
    notes: str | None = None
    installed_size: int | None = None
    sha512_hash: str | None = None
    control_fields: tuple[tuple[str, str], ...] = ()

    @property
    def package_id(self) -> str:
        return make_package_id(self.package_name, self.version)

    def to_item(self) -> dict[str, Any]:
        """The store item: seed attribute names, numbers as int, absent optionals omitted."""
        item: dict[str, Any] = {"package_id": self.package_id}
        for name in REQUIRED_FIELDS:
            item[name] = getattr(self, name)
        for name in (*OPTIONAL_TEXT_FIELDS, "installed_size", "sha512_hash"):
            value = getattr(self, name)
            if value is not None:
                item[name] = value
        if self.control_fields:
            item["control_fields"] = [[k, v] for k, v in self.control_fields]
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> PackageRecord:
        """Build a record from a store item; RecordValidationError names every bad field."""
        try:
            record = cls._from_item_as_is(item)
        except (KeyError, TypeError, ValueError):
            record = None
        if record is not None and record.plainly_valid():
            return record
        problems = item_problems(item)
        if problems:
            raise RecordValidationError(_item_id(item), problems)
        # Valid, but in a form the quick check does not take (e.g. DynamoDB's Decimal).
        installed = item.get("installed_size")
        return cls._from_item_as_is(item)._replace(
            file_size=int(item["file_size"]),
            installed_size=None if installed is None else int(installed),
        )

    @classmethod
    def _from_item_as_is(cls, item: Mapping[str, Any]) -> PackageRecord:
        control = item.get("control_fields") or ()
        return cls(
            item["package_name"],
            item["version"],
            item["architecture"],
            item["section"],
            item["priority"],
            item["maintainer"],
            item["homepage"],
            item["description"],
            item["deb_url"],
            item["actual_filename"],
            item["file_size"],
            item["md5_hash"],
            item["sha1_hash"],
            item["sha256_hash"],
            item["pub_date"],
            item["processed_timestamp"],
            item["package_type"],
            item.get("depends"),
            item.get("certificate_url"),
            item.get("signature_url"),
            item.get("notes"),
            item.get("installed_size"),
            item.get("sha512_hash"),
            tuple((k, v) for k, v in control),
        )

    def plainly_valid(self) -> bool:
        """A quick yes for the usual, valid record, at a fraction of `item_problems`' cost.

        False means "look closer", not "invalid": `item_problems` then decides and
        explains. Every stored record passes through here on each publish.
        """
        # Typed as object: a store may hand back anything, whatever the annotations say.
        required: tuple[object, ...] = (
            self.package_name, self.version, self.architecture, self.maintainer,
            self.description, self.deb_url, self.actual_filename, self.md5_hash,
            self.sha1_hash, self.sha256_hash, self.pub_date, self.processed_timestamp,
            self.package_type,
        )  # fmt: skip
        for value in required:
            if type(value) is not str or not value:
                return False
        one_line: tuple[object, ...] = (self.section, self.priority, self.homepage)
        for value in one_line:
            if type(value) is not str:
                return False
        optional: tuple[object, ...] = (self.certificate_url, self.signature_url, self.notes)
        for value in optional:
            if value is not None and type(value) is not str:
                return False
        if _LINE_BREAK_OR_CONTROL_RE.search(
            f"{self.section}\t{self.priority}\t{self.homepage}\t{self.maintainer}\t"
            f"{self.deb_url}\t{self.pub_date}\t{self.processed_timestamp}\t"
            f"{self.certificate_url or ''}\t{self.signature_url or ''}"
        ):
            return False
        rules = field_rules()  # once a record: a call per field is a few % of this check
        depends = self.depends
        if depends is not None and (
            type(depends) is not str
            or not FIELD_VALUE_RE.fullmatch(depends)
            or not rules["depends"].fullmatch(depends)
        ):
            return False
        version, filename = self.version, self.actual_filename
        size, installed, sha512 = self.file_size, self.installed_size, self.sha512_hash
        if sha512 is not None and type(sha512) is not str:
            return False
        md5, sha1, sha256 = self.md5_hash, self.sha1_hash, self.sha256_hash
        # One regex call for the identity, one hex check for the four checksums.
        if not (
            len(version) <= 256
            and len(filename) <= 255
            and _IDENTITY_RE.fullmatch(
                f"{self.package_name} {version} {self.architecture} {filename}"
            )
            and type(size) is int
            and size >= 0
            and (
                installed is None
                or (type(installed) is int and 0 <= installed <= MAX_INSTALLED_SIZE)
            )
            and len(md5) == 32
            and len(sha1) == 40
            and len(sha256) == 64
            and len(sha512 or "") in (0, 128)
            and is_lower_hex(f"{md5}{sha1}{sha256}{sha512 or ''}")
            and FIELD_VALUE_RE.fullmatch(self.description)
            and "any" not in self.architecture
            and self.architecture != "source"
        ):
            return False
        for pair in self.control_fields:
            if type(pair) is not tuple or len(pair) != 2:
                return False
            key, value = pair
            if type(key) is not str or type(value) is not str:
                return False
            if not (FIELD_NAME_RE.fullmatch(key) and FIELD_VALUE_RE.fullmatch(value)):
                return False
            rule = rules.get(key.lower())
            if rule is not None and not rule.fullmatch(value):
                return False
        return True

    def validate(self) -> PackageRecord:
        """Return self, or raise RecordValidationError listing every problem."""
        if not self.plainly_valid():
            problems = item_problems(self.to_item())
            if problems:
                raise RecordValidationError(self.package_id, problems)
        return self

    def with_changes(self, **changes: Any) -> PackageRecord:
        return self._replace(**changes)


def _item_id(item: Mapping[str, Any]) -> str:
    package_id = item.get("package_id")
    if isinstance(package_id, str) and package_id:
        return package_id
    return make_package_id(str(item.get("package_name", "?")), str(item.get("version", "?")))


def _as_int(value: Any) -> int | None:
    """An integer from int or an integral Decimal (DynamoDB numbers), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    from decimal import Decimal  # DynamoDB's numbers; rarely reached

    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return None


def item_problems(item: Mapping[str, Any]) -> list[str]:
    """Every missing or malformed field of a store item, by name; empty when valid."""
    problems: list[str] = []
    missing = [
        name
        for name in REQUIRED_FIELDS
        if item.get(name) is None or (item.get(name) == "" and name not in MAY_BE_EMPTY)
    ]
    if missing:
        problems.append("missing " + ", ".join(missing))
    for name in REQUIRED_FIELDS:
        value = item.get(name)
        if value is None or name == "file_size":
            continue
        if not isinstance(value, str):
            problems.append(f"{name} must be text, not {type(value).__name__}")
    for name in OPTIONAL_TEXT_FIELDS:
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} must be text, not {type(value).__name__}")
    if problems:
        return problems

    name, version = item["package_name"], item["version"]
    for check, value in (
        (package_name_problem, name),
        (version_problem, version),
        (architecture_problem, item["architecture"]),
        (pool_filename_problem, item["actual_filename"]),
    ):
        problem = check(value)
        if problem:
            problems.append(problem)
    package_id = item.get("package_id")
    if package_id is not None and package_id != make_package_id(name, version):
        problems.append(
            f"package_id {package_id!r} does not match {make_package_id(name, version)!r}"
        )

    size = _as_int(item["file_size"])
    if size is None or size < 0:
        problems.append(f"file_size must be a non-negative integer, not {item['file_size']!r}")
    installed = item.get("installed_size")
    installed_number = None if installed is None else _as_int(installed)
    if installed is not None and (installed_number is None or installed_number < 0):
        problems.append(f"installed_size must be a non-negative integer, not {installed!r}")
    elif installed_number is not None and installed_number > MAX_INSTALLED_SIZE:
        problems.append(f"installed_size must be at most {MAX_INSTALLED_SIZE} (KiB)")
    for field_name, pattern in _HEX.items():
        value = item.get(field_name)
        if value is None and field_name == "sha512_hash":
            continue
        if not isinstance(value, str) or not pattern.fullmatch(value):
            problems.append(f"{field_name} must be {_HEX_DIGITS[field_name]} lowercase hex digits")
    for field_name in _ONE_LINE_FIELDS:
        value = item.get(field_name)
        if isinstance(value, str) and _LINE_BREAK_OR_CONTROL_RE.search(value):
            problems.append(f"{field_name} must be one line without control characters")
    for field_name, stanza_name in _STANZA_TEXT_FIELDS.items():
        value = item.get(field_name)
        if value:
            problem = field_value_problem(stanza_name, value)
            if problem:
                problems.append(f"{field_name}: {problem}")
    control = item.get("control_fields")
    if control is not None:
        if not isinstance(control, list | tuple):
            problems.append("control_fields must be a list of [name, value] pairs")
        else:
            for pair in control:
                if (
                    not isinstance(pair, list | tuple)
                    or len(pair) != 2
                    or not all(isinstance(part, str) for part in pair)
                ):
                    problems.append("control_fields must be a list of [name, value] pairs")
                    break
                problem = field_value_problem(pair[0], pair[1])
                if problem:
                    problems.append(f"control_fields: {problem}")
    return problems
