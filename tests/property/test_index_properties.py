"""Seed Properties 7, 8, 9, 13, 14 and 22: the pure rendering of pool paths, Packages
and Release files, judged by python-debian's deb822 parser, hashlib and email.utils."""

from __future__ import annotations

import gzip
import hashlib
import lzma
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import pytest
from debian import deb822
from hypothesis import example, given, settings
from hypothesis import strategies as st

from debrepo import app
from debrepo.core.compression import reusable_pieces
from debrepo.core.indexes import PIECE_START, build_indices, render_packages, sort_records
from debrepo.core.layout import pool_path
from debrepo.core.plan import pool_files_for
from debrepo.core.release import ReleaseInfo, format_paragraph, render_release
from debrepo.model import PackageRecord
from tests.conftest import FIXED_NOW, deb_bytes
from tests.property.oracles import (
    apt_sortpkgs,
    expected_stanza,
    packages_paragraphs,
    release_fields,
    scratch_dir,
)
from tests.property.strategies import (
    ARCHITECTURES,
    BINARY_ARCHITECTURES,
    PHASES_WITHOUT_EXPLAIN,
    PRIORITIES,
    SEED_STANZA_FIELDS,
    component_names,
    debian_versions,
    descriptions,
    extra_control_fields,
    field_lists,
    moments,
    notable_package_names,
    package_names,
    package_records,
    record_lists,
    release_infos,
    sections,
    urls,
)
from tests.property.workspaces import workspace_in

HASHES = (("MD5Sum", "md5sum", "md5"), ("SHA1", "sha1", "sha1"), ("SHA256", "sha256", "sha256"))


def kiro_release_info(architectures: tuple[str, ...]) -> ReleaseInfo:
    """The Release settings of the Kiro repository, for `architectures`."""
    return ReleaseInfo(
        origin="Kiro",
        label="Kiro",
        suite="stable",
        codename="stable",
        version="1.0",
        architectures=architectures,
        components=("main",),
        description="Kiro IDE APT repository",
        valid_for=timedelta(days=7),
    )


def identity(paragraph: dict[str, str]) -> tuple[str, str, str]:
    return paragraph["Package"], paragraph["Version"], paragraph["Architecture"]


@settings(max_examples=100, deadline=None)
@given(record=package_records(), component=st.just("main") | component_names)
def test_property_7_pool_directory_structure(record: PackageRecord, component: str) -> None:
    """Feature: unified-multi-package-repo, Property 7: Pool Directory Structure

    A package P's file lives at `pool/<component>/<first letter of P>/P/<file name>`:
    in the pool layout, in the publication plan, and in its Packages entry.
    """
    name = record.package_name
    expected = f"pool/{component}/{name[0]}/{name}/{record.actual_filename}"
    assert pool_path(component, name, record.actual_filename) == expected
    (pool_file,) = pool_files_for([record], component)
    assert pool_file.key == expected
    (paragraph,) = packages_paragraphs(render_packages([record], component))
    assert paragraph["Filename"] == expected


@settings(max_examples=150, deadline=None)
@given(
    record=package_records(names=notable_package_names()),
    extra=extra_control_fields().filter(bool),
    component=st.just("main") | component_names,
)
def test_property_7_8_filename_of_lib_short_and_punctuated_names(
    record: PackageRecord, extra: tuple[tuple[str, str], ...], component: str
) -> None:
    """Feature: unified-multi-package-repo, Property 7: Pool Directory Structure
    Feature: unified-multi-package-repo, Property 8: Packages File Entry Completeness

    For names starting with `lib` (which Debian's own archive files under `libf/`, not
    under the first letter), two-character names and names holding '+', '.' or '-': the
    Filename of the Packages entry is `pool/<component>/<first letter>/<name>/<file>`,
    the key the publication plan puts the file at, for a record without extra control
    fields and for one with some (two different renderers), and the entry is complete.
    """
    name = record.package_name
    layout = f"pool/{component}/{name[0]}/{name}/{record.actual_filename}"
    (pool_file,) = pool_files_for([record], component)
    assert pool_file.key == layout
    for variant in (
        record.with_changes(control_fields=()),
        record.with_changes(control_fields=extra),
    ):
        data = render_packages([variant], component)
        (paragraph,) = packages_paragraphs(data)
        assert paragraph["Filename"] == layout, (variant.control_fields, paragraph["Filename"])
        assert paragraph["Filename"] == pool_file.key
        assert f"\nFilename: {layout}\n".encode() in data
        assert set(SEED_STANZA_FIELDS) <= set(paragraph)
        assert paragraph == expected_stanza(variant, component)


@settings(max_examples=100, deadline=None)
@given(
    record=package_records(),
    prefix=st.sampled_from(("../", "../../", "/", "sub/", "./", "..\\", "a/../")),
    in_name=st.booleans(),
)
def test_property_7_pool_path_refuses_names_that_leave_the_package_directory(
    record: PackageRecord, prefix: str, in_name: bool
) -> None:
    """Feature: unified-multi-package-repo, Property 7: Pool Directory Structure

    A package or file name that would put the file anywhere but its own
    `pool/main/<letter>/<package>/` directory (a '/', '..' or '\\' part) is refused.
    """
    name, filename = record.package_name, record.actual_filename
    if in_name:
        name = prefix + name
    else:
        filename = prefix + filename
    with pytest.raises(ValueError):
        pool_path("main", name, filename)


@settings(max_examples=100, deadline=None)
@given(record=package_records())
def test_property_8_packages_file_entry_completeness(record: PackageRecord) -> None:
    """Feature: unified-multi-package-repo, Property 8: Packages File Entry Completeness

    A record's Packages entry, read back with deb822, holds Package, Version,
    Architecture, Maintainer, Section, Priority, Homepage, Description, Filename, Size,
    MD5sum, SHA1 and SHA256 with the record's values (multi-line descriptions intact),
    plus its optional and extra control fields, and nothing else; apt reads it alike
    and finds its fields in apt's canonical order.
    """
    data = render_packages([record], "main")
    (paragraph,) = packages_paragraphs(data)
    assert set(SEED_STANZA_FIELDS) <= set(paragraph)
    assert paragraph == expected_stanza(record, "main")
    # One blank line after the stanza, as dpkg-scanpackages and apt-ftparchive end it.
    assert data.endswith(b"\n\n") and not data.endswith(b"\n\n\n")
    # apt-sortpkgs rewrites a Packages file with apt's own parser, in apt's field order
    # (unknown fields last, as they came): the entry is already in that form.
    # Field names are case-insensitive; apt may respell one it knows.
    (rewritten,) = packages_paragraphs(apt_sortpkgs(data))
    assert [(k.lower(), v) for k, v in rewritten.items()] == [
        (k.lower(), v) for k, v in paragraph.items()
    ]


@settings(max_examples=200, deadline=None)
@given(fields=field_lists())
def test_property_8_format_paragraph_is_deb822_dump(fields: list[tuple[str, str]]) -> None:
    """Feature: unified-multi-package-repo, Property 8: Packages File Entry Completeness

    Entries are written by `format_paragraph`, which claims to write exactly what
    `debian.deb822.Deb822(...).dump()` writes; for any valid field list it does.
    """
    assert format_paragraph(fields) == deb822.Deb822(dict(fields)).dump()


@settings(max_examples=100, deadline=None)
@given(records=record_lists(max_size=6), info=release_infos())
def test_property_9_all_packages_included_in_packages_file(
    records: list[PackageRecord], info: ReleaseInfo
) -> None:
    """Feature: unified-multi-package-repo, Property 9: All Packages Included in Packages File

    For every architecture, the Packages files list each stored package of that
    architecture or `all` exactly once, with its own entry, and nothing else; the
    .gz and .xz forms hold the same bytes.
    """
    indices = {index.path: index for index in build_indices(records, info)}
    stored = {(r.package_name, r.version): r for r in records}
    for architecture in info.architectures:
        wanted = Counter(
            (r.package_name, r.version, r.architecture)
            for r in records
            if r.architecture in (architecture, "all")
        )
        listed: Counter[tuple[str, str, str]] = Counter()
        for component in info.components:
            path = f"{component}/binary-{architecture}/Packages"
            plain = indices[path].data
            assert plain is not None
            assert gzip.decompress(indices[path + ".gz"].data or b"") == plain
            assert lzma.decompress(indices[path + ".xz"].data or b"") == plain
            for paragraph in packages_paragraphs(plain):
                listed[identity(paragraph)] += 1
                record = stored.get((paragraph["Package"], paragraph["Version"]))
                assert record is not None, paragraph
                assert paragraph == expected_stanza(record, component)
        assert listed == wanted


@settings(max_examples=100, deadline=None)
@given(records=record_lists(max_size=8, lean=True), data=st.data())
def test_property_9_packages_file_does_not_depend_on_input_order(
    records: list[PackageRecord], data: st.DataObject
) -> None:
    """Feature: unified-multi-package-repo, Property 9: All Packages Included in Packages File

    The Packages file is a function of the set of packages: the same records in any
    order give the same bytes, for every index and its compressed forms.
    """
    info = kiro_release_info(("amd64", "arm64"))
    shuffled = data.draw(st.permutations(records))
    assert render_packages(sort_records(shuffled), "main") == render_packages(
        sort_records(records), "main"
    )
    first = [(i.path, i.data) for i in build_indices(records, info)]
    second = [(i.path, i.data) for i in build_indices(shuffled, info)]
    assert first == second


@settings(max_examples=100, deadline=None)
@given(records=record_lists(max_size=6, lean=True), info=release_infos(), now=moments)
def test_property_13_release_file_contains_packages_checksums(
    records: list[PackageRecord], info: ReleaseInfo, now: datetime
) -> None:
    """Feature: unified-multi-package-repo, Property 13: Release File Contains Packages Checksums

    The Release file lists every Packages, Packages.gz and Packages.xz with its size
    and MD5, SHA1, SHA256 and SHA512 equal to hashlib's over its bytes.
    """
    indices = build_indices(records, info)
    content = {index.path: index.data for index in indices}
    parsed = release_fields(render_release(info, indices, now))
    expected_names = {
        f"{component}/binary-{architecture}/Packages{suffix}"
        for component in info.components
        for architecture in info.architectures
        for suffix in ("", ".gz", ".xz")
    }
    for field, key, algorithm in [*HASHES, ("SHA512", "sha512", "sha512")]:
        entries = parsed[field]
        assert sorted(entry["name"] for entry in entries) == sorted(expected_names)
        for entry in entries:
            data = content[entry["name"]]
            assert data is not None
            assert int(entry["size"]) == len(data)
            assert entry[key] == hashlib.new(algorithm, data).hexdigest()


@settings(max_examples=100, deadline=None)
@given(records=record_lists(max_size=3, lean=True), info=release_infos(), now=moments)
def test_property_14_release_file_metadata_completeness(
    records: list[PackageRecord], info: ReleaseInfo, now: datetime
) -> None:
    """Feature: unified-multi-package-repo, Property 14: Release File Metadata Completeness

    The Release file carries Origin, Label, Suite, Codename, Version, Architectures,
    Components, Description, Date and Valid-Until with the repository's values, the
    date in RFC 2822 form in UTC, Valid-Until one validity window later, and the
    checksum lists.
    """
    parsed = release_fields(render_release(info, build_indices(records, info), now))
    for field in (
        "Origin",
        "Label",
        "Suite",
        "Codename",
        "Version",
        "Architectures",
        "Components",
        "Description",
        "Date",
        "Valid-Until",
        "MD5Sum",
        "SHA1",
        "SHA256",
    ):
        assert field in parsed, field
    assert parsed["Origin"] == info.origin
    assert parsed["Label"] == info.label
    assert parsed["Suite"] == info.suite
    assert parsed["Codename"] == info.codename
    assert parsed["Version"] == info.version
    assert parsed["Description"] == info.description
    assert parsed["Architectures"].split() == list(info.architectures)
    assert parsed["Components"].split() == list(info.components)

    moment = now.astimezone(UTC).replace(microsecond=0)
    assert parsed["Date"] == format_datetime(moment)
    valid_until = parsedate_to_datetime(parsed["Valid-Until"])
    assert parsed["Valid-Until"] == format_datetime(valid_until)
    assert timedelta(0) <= moment + info.valid_for - valid_until < timedelta(seconds=1)


# Every valid Debian name and version, including the corners the general strategies
# leave out ('..' in a name or version, ':' in the upstream part after an epoch).
@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@example(  # '..' in a name: valid Debian, and dpkg-deb builds foo..bar_1.0-1_all.deb
    name="foo..bar",
    version="1.0-1",
    architecture="all",
    section="misc",
    priority="optional",
    homepage="https://kiro.dev",
    description="x",
)
@example(  # ':' in the upstream version after an epoch: dpkg-deb builds foo_2.0:1-1_all.deb
    name="foo",
    version="1:2.0:1-1",
    architecture="all",
    section="misc",
    priority="optional",
    homepage="https://kiro.dev",
    description="x",
)
@given(
    name=package_names(allow_double_dot=True),
    version=debian_versions(allow_double_dot=True, allow_upstream_colon=True),
    architecture=st.sampled_from(ARCHITECTURES),
    section=sections,
    priority=st.sampled_from(PRIORITIES),
    homepage=urls,
    description=descriptions(),
)
def test_property_22_package_type_agnostic_metadata_generation(
    name: str,
    version: str,
    architecture: str,
    section: str,
    priority: str,
    homepage: str,
    description: str,
) -> None:
    """Feature: unified-multi-package-repo, Property 22: Package Type Agnostic Metadata Generation

    Any package with complete metadata, whatever its (valid Debian) name and version,
    can be added and gets a Packages entry with every required field: its identity as
    its control file states it, its file under pool/main/<letter>/<name>/, and the size
    and checksums of the .deb itself.
    """
    deb = deb_bytes(
        name,
        version,
        architecture,
        extra_fields=[("Section", section), ("Priority", priority), ("Homepage", homepage)],
        description=description,
    )
    with (
        scratch_dir() as directory,
        workspace_in(directory, architectures=",".join(BINARY_ARCHITECTURES)) as ws,
    ):
        path = directory / "incoming.deb"
        path.write_bytes(deb)
        app.add_packages(ws, [path], publish=False, now=FIXED_NOW)
        records = ws.store.all()
    (paragraph,) = packages_paragraphs(render_packages(records, "main"))
    assert set(SEED_STANZA_FIELDS) <= set(paragraph)
    assert identity(paragraph) == (name, version, architecture)
    assert (paragraph["Section"], paragraph["Priority"], paragraph["Homepage"]) == (
        section,
        priority,
        homepage,
    )
    assert paragraph["Maintainer"] == "Test Maintainer <test@example.com>"
    assert paragraph["Description"] == description
    directory_part, _, filename = paragraph["Filename"].rpartition("/")
    assert directory_part == f"pool/main/{name[0]}/{name}"
    assert filename.endswith(".deb") and filename != ".deb"
    assert paragraph["Size"] == str(len(deb))
    assert paragraph["MD5sum"] == hashlib.md5(deb).hexdigest()
    assert paragraph["SHA1"] == hashlib.sha1(deb).hexdigest()
    assert paragraph["SHA256"] == hashlib.sha256(deb).hexdigest()


def _cut_where(records: list[PackageRecord], cuts: list[bool]) -> list[PackageRecord]:
    """The records, with the SHA256 of those marked made one that starts a new piece of
    the compressed indices (one in 256 does by chance; the examples need several)."""
    return [
        r.with_changes(sha256_hash=PIECE_START + r.sha256_hash[len(PIECE_START) :]) if cut else r
        for r, cut in zip(records, cuts, strict=False)
    ] + records[len(cuts) :]


@settings(max_examples=100, deadline=None)
@given(
    records=record_lists(min_size=1, max_size=12, lean=True),
    cuts=st.lists(st.booleans(), max_size=12),
    data=st.data(),
)
def test_property_4_indices_after_a_change_equal_a_rebuild_from_the_store_alone(
    records: list[PackageRecord], cuts: list[bool], data: st.DataObject
) -> None:
    """Feature: unified-multi-package-repo, Property 4: Repository Metadata Generation from DynamoDB Alone

    Compressed indices built from the previous publish's pieces plus the pieces that
    changed (one package added, removed, or both) are byte for byte those a rebuild
    from nothing renders, and decompress to the Packages file.
    """  # noqa: E501
    info = kiro_release_info(("amd64",))
    records = _cut_where(records, cuts)
    before = records[:-1] if data.draw(st.booleans(), label="the last one added") else records
    if data.draw(st.booleans(), label="one removed"):
        gone = records[data.draw(st.integers(0, len(records) - 1), label="which")]
        records = [r for r in records if r is not gone]
    reusable = {
        index.path: reusable_pieces(index.data or b"", index.pieces or (), index.path[-3:])
        for index in build_indices(before, info)
        if index.pieces is not None
    }
    incremental = {i.path: i for i in build_indices(records, info, reusable=reusable)}
    rebuilt = {i.path: i for i in build_indices(records, info)}
    assert [(i.path, i.digest, i.data) for i in incremental.values()] == [
        (i.path, i.digest, i.data) for i in rebuilt.values()
    ]
    plain = rebuilt["main/binary-amd64/Packages"].data
    assert gzip.decompress(rebuilt["main/binary-amd64/Packages.gz"].data or b"") == plain
    assert lzma.decompress(rebuilt["main/binary-amd64/Packages.xz"].data or b"") == plain
    pieces = rebuilt["main/binary-amd64/Packages.xz"].pieces or ()
    listed = sort_records(r for r in records if r.architecture in ("amd64", "all"))
    cuts_made = sum(r.sha256_hash.startswith(PIECE_START) for r in listed[1:])
    assert len(pieces) == (cuts_made + 1 if listed else 0)
