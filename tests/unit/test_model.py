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
