"""Our Packages stanzas against dpkg-scanpackages and apt-ftparchive, for .debs built by
dpkg-deb itself with a wide spread of control fields and every member compression.

None of these packages is defined in config/packages/, so their control file is the
only truth: a stanza must say what the reference tools say, field for field, and in
apt-ftparchive's field order.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from debian import deb822

from tests.e2e.aptenv import DebrepoCli, clean_environment
from tests.tools import require_tool

BINARY_DIR = "dists/stable/main/binary-amd64"


@dataclass(frozen=True)
class Spec:
    compression: str
    control: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, bytes], ...]

    def field(self, name: str) -> str:
        return dict(self.control)[name]

    @property
    def filename(self) -> str:
        version = self.field("Version").split(":", 1)[-1]
        return f"{self.field('Package')}_{version}_{self.field('Architecture')}.deb"


SPECS: tuple[Spec, ...] = (
    Spec(
        compression="xz",
        control=(
            ("Package", "agree-full"),
            ("Source", "agree-src (1.0-1)"),
            ("Version", "1.0-1+b1"),
            ("Architecture", "amd64"),
            ("Maintainer", "Agree Team <agree@example.com>"),
            ("Installed-Size", "12"),
            ("Pre-Depends", "dpkg (>= 1.19.1)"),
            ("Depends", "libc6 (>= 2.34), agree-data (= 1.0-1) | agree-data-alt"),
            ("Recommends", "agree-extra"),
            ("Suggests", "agree-doc"),
            ("Conflicts", "agree-old"),
            ("Breaks", "agree-tool (<< 0.5)"),
            ("Replaces", "agree-old (<< 1.0)"),
            ("Provides", "agree-virtual (= 1.0)"),
            ("Built-Using", "gcc-12 (= 12.2.0-14)"),
            ("Multi-Arch", "same"),
            ("Section", "libs"),
            ("Priority", "optional"),
            ("Homepage", "https://example.com/agree"),
            (
                "Description",
                "agreement test library\n"
                " The first paragraph of the extended description.\n"
                " .\n"
                " A second paragraph, after a ' .' line.\n"
                "  A verbatim line, indented twice.",
            ),
            ("X-Custom", "kept as it is"),
        ),
        files=(("usr/lib/agree/libagree.so.1", b"\x7fELF not really\n" * 40),),
    ),
    Spec(
        compression="gzip",
        control=(
            ("Package", "agree-data"),
            ("Version", "1.0-1"),
            ("Architecture", "all"),
            ("Multi-Arch", "foreign"),
            ("Essential", "yes"),
            ("Section", "misc"),
            ("Maintainer", "Agree Team <agree@example.com>"),
            ("Installed-Size", "4"),
            ("Description", "architecture-independent data for agree"),
        ),
        files=(("usr/share/agree/data.txt", b"data\n"),),
    ),
    Spec(
        compression="zstd",
        control=(
            ("Package", "agree-zstd"),
            ("Version", "2:3.4~rc1-0.1"),
            ("Architecture", "amd64"),
            ("Maintainer", "Someone Else <else@example.org>"),
            ("Depends", "agree-data:any, python3:any (>= 3.11)"),
            ("Enhances", "agree-full"),
            ("Provides", "agree-virtual (= 3.4), agree-zstd-compat"),
            ("Description", "zstd-compressed members\n No Section, no Priority, no Homepage."),
        ),
        files=(("usr/bin/agree-zstd", b"#!/bin/sh\nexit 0\n"),),
    ),
    Spec(
        compression="none",
        control=(
            ("Package", "agree-plain"),
            ("Version", "0.1+git20260101-3"),
            ("Architecture", "amd64"),
            ("Priority", "extra"),
            ("Maintainer", "Agree Team <agree@example.com>"),
            ("Original-Maintainer", "Upstream Person <upstream@example.net>"),
            ("Bugs", "mailto:bugs@example.com"),
            ("Installed-Size", "1"),
            ("Recommends", "agree-full (>= 1.0) | agree-zstd"),
            ("Conflicts", "agree-plain-legacy"),
            ("Description", "uncompressed members\n Priority but no Section."),
            ("X-Build-Notes", "first line\n second line"),
        ),
        files=(("usr/share/doc/agree-plain/README", b"plain\n"),),
    ),
    Spec(
        compression="xz",
        control=(
            ("Package", "agree-tool"),
            ("Source", "agree-src"),
            ("Version", "0.5"),
            ("Architecture", "amd64"),
            ("Multi-Arch", "allowed"),
            ("Maintainer", "Agree Team <agree@example.com>"),
            ("Installed-Size", "8"),
            ("Depends", "agree-full (>= 1.0-1)"),
            ("Suggests", "agree-plain"),
            ("Breaks", "agree-zstd (<< 2:3.4)"),
            ("Replaces", "agree-zstd (<< 2:3.4)"),
            ("Section", "utils"),
            ("Priority", "optional"),
            ("Homepage", "https://example.com/agree/tool"),
            ("Description", "a tool\n Uses the agree library."),
            ("X-Custom", "tool-specific value"),
        ),
        files=(("usr/bin/agree-tool", b"#!/bin/sh\necho agree\n"),),
    ),
    Spec(
        # dpkg-deb accepts field names in any case; the reference tools write the
        # canonical spelling of the fields they know.
        compression="gzip",
        control=(
            ("Package", "agree-case"),
            ("Version", "1.0"),
            ("Architecture", "amd64"),
            ("Maintainer", "Agree Team <agree@example.com>"),
            ("pre-depends", "dpkg (>= 1.19.1)"),
            ("multi-arch", "foreign"),
            ("breaks", "agree-old"),
            ("Description", "field names in lower case"),
        ),
        files=(("usr/share/doc/agree-case/README", b"case\n"),),
    ),
)


def _build_with_dpkg_deb(spec: Spec, work: Path, out: Path) -> Path:
    tree = work / spec.field("Package")
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        "".join(
            f"{name}: {value}\n" if value[:1] != "\n" else f"{name}:{value}\n"
            for name, value in spec.control
        )
    )
    for relative, data in spec.files:
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if relative.startswith("usr/bin/"):
            path.chmod(0o755)
    deb = out / spec.filename
    subprocess.run(
        [
            require_tool("dpkg-deb"),
            "--root-owner-group",
            f"-Z{spec.compression}",
            "--build",
            str(tree),
            str(deb),
        ],
        check=True,
        capture_output=True,
        env=clean_environment(SOURCE_DATE_EPOCH="1700000000"),
    )
    return deb


def _ar_member_names(data: bytes) -> list[str]:
    assert data.startswith(b"!<arch>\n")
    names, offset = [], 8
    while offset < len(data):
        header = data[offset : offset + 60]
        names.append(header[:16].decode().strip().rstrip("/"))
        size = int(header[48:58].decode().strip())
        offset += 60 + size + size % 2
    return names


def _paragraphs(text: str) -> dict[str, deb822.Deb822]:
    found: dict[str, deb822.Deb822] = {}
    for paragraph in deb822.Deb822.iter_paragraphs(text):
        assert paragraph["Package"] not in found, paragraph["Package"]
        found[paragraph["Package"]] = paragraph
    return found


def _without_filename(paragraph: deb822.Deb822) -> dict[str, str]:
    """Fields as a plain dict, names lowercased (apt reads them case-insensitively; the
    exact spelling is checked with the order)."""
    return {str(k).lower(): v for k, v in paragraph.items() if k.lower() != "filename"}


@pytest.fixture(scope="module")
def agreement(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, deb822.Deb822]]:
    """Published stanzas, dpkg-scanpackages' and apt-ftparchive's, by package name."""
    base = tmp_path_factory.mktemp("agreement")
    debs = base / "debs"
    debs.mkdir()
    for spec in SPECS:
        _build_with_dpkg_deb(spec, base / "trees", debs)

    # Members as dpkg-deb wrote them: every compression is really covered.
    members = {
        spec.field("Package"): _ar_member_names((debs / spec.filename).read_bytes())
        for spec in SPECS
    }
    suffix = {"xz": ".xz", "gzip": ".gz", "zstd": ".zst", "none": ""}
    for spec in SPECS:
        ending = suffix[spec.compression]
        assert members[spec.field("Package")] == [
            "debian-binary",
            f"control.tar{ending}",
            f"data.tar{ending}",
        ]

    cwd = base / "cwd"
    cwd.mkdir()
    cli = DebrepoCli(home=base / "home", cwd=cwd)
    added = cli.run("add", debs)
    assert sum(line.startswith("added ") for line in added.stdout.splitlines()) == len(SPECS)
    published = (cli.repo_dir / BINARY_DIR / "Packages").read_text()

    # Force rebuild from the store alone renders the same bytes.
    cli.run("rebuild")
    assert (cli.repo_dir / BINARY_DIR / "Packages").read_text() == published

    scanned = subprocess.run(
        [require_tool("dpkg-scanpackages"), "--multiversion", "debs"],
        cwd=base,
        check=True,
        capture_output=True,
        text=True,
        env=clean_environment(),
    ).stdout
    ftparchive = subprocess.run(
        [require_tool("apt-ftparchive"), "packages", "debs"],
        cwd=base,
        check=True,
        capture_output=True,
        text=True,
        env=clean_environment(),
    ).stdout
    return {
        "ours": _paragraphs(published),
        "dpkg-scanpackages": _paragraphs(scanned),
        "apt-ftparchive": _paragraphs(ftparchive),
    }


NAMES = [spec.field("Package") for spec in SPECS]


def test_every_package_is_published_once(agreement: dict[str, dict[str, deb822.Deb822]]) -> None:
    for tool in ("ours", "dpkg-scanpackages", "apt-ftparchive"):
        assert sorted(agreement[tool]) == sorted(NAMES), tool


@pytest.mark.parametrize("name", NAMES)
def test_stanza_matches_dpkg_scanpackages(
    agreement: dict[str, dict[str, deb822.Deb822]], name: str
) -> None:
    ours = agreement["ours"][name]
    theirs = agreement["dpkg-scanpackages"][name]
    assert "SHA512" not in theirs  # dpkg-scanpackages does not write it; compared below
    expected = _without_filename(theirs)
    actual = {k: v for k, v in _without_filename(ours).items() if k != "sha512"}
    assert actual == expected
    assert ours["Filename"].rsplit("/", 1)[-1] == theirs["Filename"].rsplit("/", 1)[-1]
    first_letter = name[0]
    assert ours["Filename"] == (
        f"pool/main/{first_letter}/{name}/{theirs['Filename'].rsplit('/', 1)[-1]}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_stanza_matches_apt_ftparchive_fields_and_order(
    agreement: dict[str, dict[str, deb822.Deb822]], name: str
) -> None:
    ours = agreement["ours"][name]
    theirs = agreement["apt-ftparchive"][name]
    assert "SHA512" in theirs and "SHA512" in ours
    assert _without_filename(ours) == _without_filename(theirs)
    assert ours["Filename"].rsplit("/", 1)[-1] == theirs["Filename"].rsplit("/", 1)[-1]
    # Same names, same spelling, same order.
    assert [str(k) for k in ours] == [str(k) for k in theirs]


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_stanza_keeps_every_control_field(
    agreement: dict[str, dict[str, deb822.Deb822]], spec: Spec
) -> None:
    """Every field of the control file reaches the index, with its exact value."""
    ours = agreement["ours"][spec.field("Package")]
    for field, value in spec.control:
        assert ours[field] == value, field
