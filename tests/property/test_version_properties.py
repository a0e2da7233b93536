"""Seed Properties 6 and 19: version ordering, judged by real dpkg.

dpkg runs from one shell per example (see oracles.dpkg_compare_many), which keeps a
hundred examples of a handful of comparisons each within a few seconds.
"""

from __future__ import annotations

import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from debrepo.core.indexes import sort_records
from debrepo.model import PackageRecord
from debrepo.store.sqlite import SqliteMetadataStore
from debrepo.versions import compare_versions, dpkg_identity, latest, version_key
from tests.property.oracles import dpkg_compare_many, dpkg_table, highest, scratch_dir
from tests.property.strategies import (
    deb_filename,
    debian_versions,
    package_names,
    package_records,
    record_lists,
    respellings_of,
)

# Comparisons may use the whole Debian grammar; nothing here becomes a file name.
any_versions = debian_versions(allow_double_dot=True, allow_upstream_colon=True)


@st.composite
def neighbours(draw: st.DrawFn) -> tuple[str, str]:
    """A version and a close relative: where ordering rules are subtle."""
    version = draw(any_versions)
    has_epoch = ":" in version
    has_revision = "-" in version
    edits = [
        version + "~",
        version + "~~",
        version + "+1",
        version + ".0",
        version + "a",
        version.replace("~", "", 1),
        version.replace(".", "..", 1),
    ]
    if not has_epoch:
        edits += ["0:" + version, "1:" + version, version.replace("1", "01")]
    if not has_revision:
        edits += [version + "-0", version + "-1", version + "-~"]
    else:
        edits.append(version + "+b1")
    other = draw(st.sampled_from(edits))
    if draw(st.booleans()):
        return version, other
    return other, version


def keeps_revision(pair: tuple[str, str]) -> bool:
    """Dropping a '~' can leave an empty revision ("1.0-~" -> "1.0-"), which is not a
    version; every other edit above stays within the grammar."""
    return not any(version.endswith("-") for version in pair)


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(any_versions, any_versions) | neighbours().filter(keeps_revision),
        min_size=1,
        max_size=8,
    )
)
@example(pairs=[("1.2.3", "1.2.4"), ("1.9.0", "1.10.0"), ("1.0~rc1", "1.0"), ("1:0.1", "9.9")])
def test_property_19_version_comparison_matches_dpkg(pairs: list[tuple[str, str]]) -> None:
    """Feature: unified-multi-package-repo, Property 19: Semantic Version Comparison

    For any two Debian versions, compare_versions orders them exactly as
    `dpkg --compare-versions` does (1.2.3 < 1.2.4, 1.9.0 < 1.10.0, 1.0~rc1 < 1.0,
    1:0.1 > 9.9), and antisymmetrically.
    """
    for (left, right), expected in zip(pairs, dpkg_compare_many(pairs), strict=True):
        assert compare_versions(left, right) == expected, (left, right)
        assert compare_versions(right, left) == -expected, (right, left)


@st.composite
def respellings(draw: st.DrawFn) -> tuple[str, str]:
    """A version and the same version as dpkg compares, spelled otherwise: numbers with
    leading zeros, an explicit epoch 0, a revision 0, a 0 after a trailing letter."""
    version = draw(any_versions)
    return version, draw(respellings_of(version))


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(any_versions, any_versions) | respellings() | neighbours().filter(keeps_revision),
        min_size=1,
        max_size=8,
    )
)
@example(pairs=[("1.0", "1.00"), ("1.0", "0:1.0"), ("1.0", "1.0-0"), ("1a", "1a0"), ("1", "1.0")])
def test_dpkg_identity_is_equal_exactly_when_dpkg_says_eq(pairs: list[tuple[str, str]]) -> None:
    """Feature: unified-multi-package-repo, Property 18: Version Deduplication

    Two versions get the same dpkg_identity exactly when `dpkg --compare-versions`
    says they are equal: what lets ingest refuse 1.00 beside 1.0 with one lookup.
    """
    for (left, right), order in zip(pairs, dpkg_compare_many(pairs), strict=True):
        assert (dpkg_identity(left) == dpkg_identity(right)) == (order == 0), (left, right)


@settings(max_examples=200, deadline=None)
@given(
    left=st.lists(st.integers(0, 10**9), min_size=1, max_size=5),
    right=st.lists(st.integers(0, 10**9), min_size=1, max_size=5),
)
@example(left=[1, 2, 3], right=[1, 2, 4])
@example(left=[1, 9, 0], right=[1, 10, 0])
@example(left=[1, 0], right=[1, 0, 0])
def test_property_19_dotted_numbers_compare_component_wise(
    left: list[int], right: list[int]
) -> None:
    """Feature: unified-multi-package-repo, Property 19: Semantic Version Comparison

    Dotted numeric versions compare number by number (1.9.0 < 1.10.0), as a tuple of
    integers does, never as text.
    """
    a, b = ".".join(map(str, left)), ".".join(map(str, right))
    expected = (left > right) - (left < right)
    assert compare_versions(a, b) == expected
    assert (version_key(a) < version_key(b)) == (left < right)


@settings(max_examples=100, deadline=None)
@given(
    name=package_names(),
    versions=st.lists(debian_versions(), min_size=1, max_size=5, unique=True),
    template=package_records(lean=True),
    others=record_lists(max_size=3, lean=True),
)
def test_property_6_latest_version_identification(
    name: str, versions: list[str], template: PackageRecord, others: list[PackageRecord]
) -> None:
    """Feature: unified-multi-package-repo, Property 6: Latest Version Identification

    Among the stored versions of one package (next to other packages), the store's
    `latest` is a version no other version exceeds according to dpkg; the pure `latest`
    agrees, and the repository order lists that package's versions ascending by dpkg.
    """
    records = [
        template.with_changes(
            package_name=name,
            version=version,
            actual_filename=deb_filename(name, version, template.architecture),
        )
        for version in versions
    ]
    others = [r for r in others if r.package_name != name]
    table = dpkg_table(versions)
    top = highest(versions, table)

    with scratch_dir() as directory:
        store = SqliteMetadataStore(directory / "metadata.db")
        try:
            store.put_many([*others, *records])
            chosen = store.latest(name)
        finally:
            store.close()
    assert chosen is not None
    assert chosen.version in top, (chosen.version, top)
    pure = latest(records, lambda r: r.version)
    assert pure is not None and pure.version in top

    ordered = [r.version for r in sort_records([*others, *records]) if r.package_name == name]
    assert sorted(ordered) == sorted(versions)
    for before, after in itertools.pairwise(ordered):
        assert table[before, after] <= 0, (before, after)
