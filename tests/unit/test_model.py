"""model.PackageRecord.plainly_valid: the quick check of every record read from a store."""

from __future__ import annotations

import pytest

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
