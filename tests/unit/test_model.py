"""model.PackageRecord.plainly_valid: the quick check of every record read from a store."""

from __future__ import annotations

import pytest

from debrepo.model import is_lower_hex, item_problems
from tests.unit.helpers import make_record

FIELDS = (("Package", "hello"), ("Version", "1.0"), ("Architecture", "amd64"))


@pytest.mark.parametrize(
    ("name", "value", "valid"),
    [
        ("Depends", "libc6 (>= 2.34), libfoo | libbar", True),
        ("Depends", "libc6 (>= )", False),
        ("Provides", "foo (>= 1)", False),  # Provides: only =
        ("Multi-Arch", "same", True),
        ("Multi-Arch", "sometimes", False),
        ("Essential", "YES", True),
        ("Essential", "maybe", False),
        ("X-Custom", "anything (>= )", True),  # no rule for a field dpkg does not know
    ],
)
def test_each_control_field_is_held_to_its_rule(name: str, value: str, valid: bool) -> None:
    record = make_record(control_fields=(*FIELDS, (name, value)))
    assert record.plainly_valid() is valid
    if name == "Depends":  # the record's own field too
        assert make_record(depends=value).plainly_valid() is valid


def _hex(digits: int) -> str:
    return ("0123456789abcdef" * 8)[:digits]


@pytest.mark.parametrize(
    ("changes", "valid"),
    [
        ({}, True),
        ({"sha512_hash": None}, True),  # records from before SHA512 was kept
        ({"sha512_hash": ""}, True),
        ({"md5_hash": _hex(31)}, False),
        ({"md5_hash": _hex(33)}, False),
        ({"sha1_hash": _hex(39) + "A"}, False),  # upper case
        ({"sha256_hash": _hex(63) + "g"}, False),
        ({"sha256_hash": _hex(63) + " "}, False),
        ({"sha256_hash": _hex(63) + "\u0661"}, False),  # ARABIC-INDIC DIGIT ONE
        ({"sha256_hash": _hex(63) + "\xe9"}, False),
        ({"sha512_hash": _hex(127)}, False),
        ({"sha512_hash": _hex(127) + "\n"}, False),
        # The digits are checked as a whole: one checksum short, another long, is no match.
        ({"md5_hash": _hex(31), "sha1_hash": _hex(41)}, False),
    ],
)
def test_checksums_must_be_lowercase_hex_of_their_length(
    changes: dict[str, object], valid: bool
) -> None:
    record = make_record(**changes)
    assert record.plainly_valid() is valid
    if not valid:  # a store's snapshot then asks item_problems, which names the field
        assert any("_hash must be" in problem for problem in item_problems(record.to_item()))


@pytest.mark.parametrize(
    ("text", "hex_only"),
    [("", True), ("0123456789abcdef", True), ("ABCDEF", False), ("0x12", False), ("１", False)],
)
def test_is_lower_hex(text: str, hex_only: bool) -> None:
    assert is_lower_hex(text) is hex_only


# Every character that ends a line or is a control character (tab aside), and a few
# that are neither.
LINE_ENDING_OR_CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F)] + [
    "\x85",
    "\u2028",
    "\u2029",
]


@pytest.mark.parametrize("field", ["section", "maintainer", "homepage", "deb_url", "pub_date"])
def test_one_line_fields_refuse_line_ends_and_control_characters(field: str) -> None:
    for character in LINE_ENDING_OR_CONTROL:
        value = f"a{character}b"
        assert make_record(**{field: value}).plainly_valid() is False, repr(value)
    for value in ("a\tb", "caf\xe9 \u00a0 \u3000", "a b"):  # tab, unusual spaces: allowed
        assert make_record(**{field: value}).plainly_valid() is True, repr(value)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("libc6 (>= 2.34),\n libfoo", True),  # a continuation line
        ("libc6 (>= 2.34),\n\tlibfoo", True),
        ("libc6 (>= 2.34),\nlibfoo", False),  # a line break that is no continuation
        ("libc6 (>= 2.34),\n\n libfoo", False),  # an empty continuation line
        ("libc6 (>= 2.34)\n", False),
        ("libc6 (>= 2.34)\n ", True),  # ends with a continuation line of one space
    ],
)
def test_depends_over_several_lines(value: str, valid: bool) -> None:
    assert make_record(depends=value).plainly_valid() is valid


def test_depends_refuses_every_character_that_ends_a_line_or_value() -> None:
    for character in ["\x00", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x85"]:
        for value in (f"libc6{character}", f"libc6,{character} libfoo", f"a (>= 1{character})"):
            assert make_record(depends=value).plainly_valid() is False, repr(value)
    for character in ["\u2028", "\u2029"]:
        assert make_record(depends=f"libc6,{character} libfoo").plainly_valid() is False
