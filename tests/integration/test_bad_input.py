"""Bad input through the CLI: one clear line on stderr, a non-zero exit, and no change at
all to the store, the staging area or the published repository."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from debrepo.core.debwriter import DebMember, build_deb
from tests.conftest import CONFIG_DIR, DebFactory, deb_bytes
from tests.e2e.aptenv import CliResult, DebrepoCli

Snapshot = dict[str, Any]


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def _rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            table: sorted(connection.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)  # noqa: S608
            for table in tables
        }
    finally:
        connection.close()


def snapshot(cli: DebrepoCli) -> Snapshot:
    """Every published file, every staged file and every row of the store, by value."""
    return {
        "repo": _files(cli.repo_dir),
        "staging": _files(cli.staging_dir),
        "store": _rows(cli.db_path),
        # No scratch folders left behind (SQLite's own -wal/-shm files may come and go).
        "home": sorted(p.name for p in cli.home.iterdir() if not p.name.endswith(("-wal", "-shm"))),
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> DebrepoCli:
    """A repository holding two published packages (one of them `alpha 1.0`)."""
    root = tmp_path_factory.mktemp("bad-input")
    cwd = root / "cwd"
    cwd.mkdir()
    cli = DebrepoCli(home=root / "home", cwd=cwd)
    first = root / "alpha_1.0_amd64.deb"
    first.write_bytes(deb_bytes("alpha", "1.0"))
    second = root / "beta_2.0_all.deb"
    second.write_bytes(deb_bytes("beta", "2.0", "all"))
    cli.run("add", first, second)
    return cli


@pytest.fixture
def repo(base: DebrepoCli) -> Iterator[DebrepoCli]:
    """The shared repository, checked to be unchanged by the test that uses it."""
    before = snapshot(base)
    assert before["repo"] and before["staging"] and before["store"]
    yield base
    after = snapshot(base)
    for part in ("repo", "staging", "home"):
        assert after[part] == before[part], f"{part} changed"
    assert after["store"] == before["store"], "the store changed"


def assert_rejected(result: CliResult, code: int, *fragments: str) -> str:
    """One line, `debrepo: error: ...`, holding every fragment; returns the message."""
    assert result.returncode == code, result.describe()
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.describe()
    assert lines[0].startswith("debrepo: error: "), result.describe()
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in the message\n{result.describe()}"
    assert "Traceback" not in result.stderr
    return lines[0]


def _config_copy(tmp_path: Path, name: str, edit: Callable[[str], str]) -> Path:
    directory = tmp_path / "config" / "packages"
    directory.mkdir(parents=True)
    for path in CONFIG_DIR.glob("*.yaml"):
        (directory / path.name).write_text(path.read_text())
    target = directory / name
    edited = edit(target.read_text())
    assert edited != target.read_text()
    target.write_text(edited)
    return directory


# -- package configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        pytest.param(
            lambda text: text.replace(
                'description: "Kiro IDE - AI-powered development environment"',
                'description: ["unclosed',
            ),
            "not valid YAML at line",
            id="malformed-yaml",
        ),
        pytest.param(
            lambda text: text.replace('maintainer: "Kiro Team <support@kiro.dev>"\n', ""),
            "missing required field(s): maintainer",
            id="missing-maintainer",
        ),
        pytest.param(
            lambda text: text.replace("  type: external_download\n", ""),
            "source.type",
            id="missing-source-type",
        ),
    ],
)
def test_broken_package_config_is_named(
    repo: DebrepoCli,
    tmp_path: Path,
    make_deb: DebFactory,
    edit: Callable[[str], str],
    fragment: str,
) -> None:
    config_dir = _config_copy(tmp_path, "kiro.yaml", edit)
    cli = dataclasses.replace(repo, config_dir=config_dir)
    result = cli.run("add", make_deb("gamma", "1.0"), check=False)
    assert_rejected(result, 2, str(config_dir / "kiro.yaml"), fragment)


def test_broken_kiro_repo_config_stops_build_repo_package(repo: DebrepoCli, tmp_path: Path) -> None:
    config_dir = _config_copy(
        tmp_path, "kiro-repo.yaml", lambda text: text.replace("section: misc\n", "")
    )
    cli = dataclasses.replace(repo, config_dir=config_dir)
    result = cli.run("build-repo-package", "--version", "9.9.9", check=False)
    assert_rejected(
        result, 2, str(config_dir / "kiro-repo.yaml"), "missing required field(s): section"
    )


# -- files that are not (complete) packages ----------------------------------------------


def test_non_deb_file(repo: DebrepoCli, tmp_path: Path) -> None:
    text = tmp_path / "notes.deb"
    text.write_text("Package: alpha\nVersion: 9.0\n")
    result = repo.run("add", text, check=False)
    assert_rejected(result, 1, "notes.deb", "not a Debian package")


def test_empty_file(repo: DebrepoCli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.deb"
    empty.touch()
    result = repo.run("add", empty, check=False)
    assert_rejected(result, 1, "empty.deb")


def test_missing_file(repo: DebrepoCli, tmp_path: Path) -> None:
    result = repo.run("add", tmp_path / "absent.deb", check=False)
    assert_rejected(result, 1, "absent.deb")


def test_fifo_is_refused_not_read(repo: DebrepoCli, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.deb"
    os.mkfifo(fifo)  # reading it would block forever, holding the repository lock
    result = repo.run("add", fifo, check=False)
    assert_rejected(result, 1, "pipe.deb", "not a regular file")


def test_directory_without_debs(repo: DebrepoCli, tmp_path: Path) -> None:
    folder = tmp_path / "nothing-here"
    folder.mkdir()
    (folder / "README").write_text("no packages\n")
    result = repo.run("add", folder, check=False)
    assert_rejected(result, 2, str(folder), "no .deb files")


def _ar_members(data: bytes) -> list[tuple[str, int, int]]:
    """(name, offset of its header, size) of each ar member."""
    members, offset = [], 8
    while offset < len(data):
        header = data[offset : offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members.append((name, offset, size))
        offset += 60 + size + size % 2
    return members


def _cut_points(data: bytes) -> dict[str, tuple[int, str]]:
    """Where to cut a .deb, and what the error must say about it."""
    (_, binary_at, _), (control, control_at, control_size), (data_name, data_at, data_size) = (
        _ar_members(data)
    )
    return {
        "in-magic": (4, "no ar archive signature"),
        "after-magic": (8, "no control.tar member"),
        "in-first-header": (8 + 30, "bad ar header"),
        "in-debian-binary": (binary_at + 62, "truncated .deb (in debian-binary)"),
        "in-control-header": (control_at + 20, "bad ar header"),
        "in-control": (control_at + 60 + control_size // 2, f"truncated .deb ({control}"),
        "before-data": (data_at, "no data.tar member"),
        "in-data": (data_at + 60 + data_size // 2, f"truncated .deb ({data_name}"),
        "data-last-byte": (data_at + 60 + data_size - 1, f"truncated .deb ({data_name}"),
    }


CUTS = list(_cut_points(deb_bytes("delta", "1.0")))


@pytest.mark.parametrize("cut", CUTS)
def test_truncated_deb(repo: DebrepoCli, tmp_path: Path, cut: str) -> None:
    whole = deb_bytes("delta", "1.0")
    offset, fragment = _cut_points(whole)[cut]
    assert 0 < offset < len(whole)
    truncated = tmp_path / "delta_1.0_amd64.deb"
    truncated.write_bytes(whole[:offset])
    result = repo.run("add", truncated, check=False)
    assert_rejected(result, 1, "delta_1.0_amd64.deb", fragment)


# -- packages that contradict their configuration or would leave the pool ----------------


def test_architecture_contradicting_config(repo: DebrepoCli, make_deb: DebFactory) -> None:
    deb = make_deb("kiro", "1.0.0", "arm64")
    result = repo.run("add", deb, check=False)
    assert_rejected(
        result,
        1,
        deb.name,
        "Architecture 'arm64'",
        str(CONFIG_DIR / "kiro.yaml"),
        "'amd64'",
    )


def _raw_deb(
    path: Path, package: str, version: str, architecture: str = "amd64", **fields: str
) -> Path:
    """A .deb whose control file says exactly this (`fields` added or replacing the
    others, e.g. `**{"Installed-Size": "12"}`), which dpkg-deb might refuse to build."""
    control = {
        "Package": package,
        "Version": version,
        "Architecture": architecture,
        "Maintainer": "Test Maintainer <test@example.com>",
        "Description": "escape attempt\n It must never reach a path.",
        **fields,
    }
    members = [DebMember("usr/share/doc/x/README", b"x\n")]
    path.write_bytes(build_deb(list(control.items()), members, mtime=0))
    return path


@pytest.mark.parametrize(
    ("package", "version", "architecture", "fragment"),
    [
        ("../../etc", "1.0", "amd64", "'../../etc' is not a Debian package name"),
        ("evil/../../x", "1.0", "amd64", "is not a Debian package name"),
        ("safe-name", "1.0/../../x", "amd64", "'1.0/../../x' is not a Debian version"),
        ("safe-name", "../1.0", "amd64", "is not a Debian version"),
        ("safe-name", "1:../../../tmp/x", "amd64", "is not a Debian version"),
        ("safe-name", "1.0", "../amd64", "is not a Debian architecture name"),
    ],
    ids=["name-dotdot", "name-slash", "version-slash", "version-dotdot", "epoch-path", "arch"],
)
def test_name_or_version_escaping_the_pool(
    repo: DebrepoCli,
    tmp_path: Path,
    package: str,
    version: str,
    architecture: str,
    fragment: str,
) -> None:
    deb = _raw_deb(tmp_path / "crafted.deb", package, version, architecture)
    result = repo.run("add", deb, check=False)
    assert_rejected(result, 1, "crafted.deb", fragment)
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "crafted.deb"]
    assert outside == []


# -- control fields apt or dpkg would refuse -------------------------------------------
# One bad stanza makes apt reject the whole Packages file ("Problem parsing dependency"),
# or stop reading it at a NUL: every client of the repository would be broken.


@pytest.mark.parametrize(
    ("fields", "architecture", "fragment"),
    [
        ([("Depends", "((( ,,,")], "amd64", "field Depends: '(((' is not a package relationship"),
        ([("Depends", "libc6 (>= 2.31),")], "amd64", "field Depends: '' is not a package"),
        ([("Pre-Depends", "a (= )")], "amd64", "field Pre-Depends: 'a (= )'"),
        ([("Depends", "libc6 [amd64]")], "amd64", "'libc6 [amd64]' is not a package relationship"),
        ([("Conflicts", "old | older")], "amd64", "field Conflicts cannot offer alternatives"),
        ([("Provides", "virtual (>= 1)")], "amd64", "field Provides: 'virtual (>= 1)'"),
        ([("Multi-Arch", "sometimes")], "amd64", "field Multi-Arch must be one of"),
        ([("Essential", "maybe")], "amd64", "field Essential must be yes or no, not 'maybe'"),
        ([("X-Note", "a\x00b")], "amd64", "field X-Note holds the control character '\\x00'"),
        # Python's line splitting, deb822's too, would end a line at a form feed.
        ([("X-Note", "a\x0cb")], "amd64", "field X-Note holds the control character '\\x0c'"),
        ([("Depends", "foo (>= 1:)")], "amd64", "'foo (>= 1:)' is not a package relationship"),
        ([("Breaks", "foo (<< 1.0-)")], "amd64", "'foo (<< 1.0-)' is not a package relationship"),
        ([], "any", "'any' is not the architecture of a binary package"),
        ([], "linux-any", "is not the architecture of a binary package"),
        ([], "arm64", "built for arm64, which this repository does not publish"),
    ],
    ids=[
        "depends-garbage",
        "depends-trailing-comma",
        "pre-depends-no-version",
        "depends-arch-restriction",
        "conflicts-alternatives",
        "provides-inequality",
        "multi-arch",
        "essential",
        "nul",
        "form-feed",
        "depends-empty-epoch-version",
        "breaks-empty-revision",
        "architecture-any",
        "architecture-wildcard",
        "architecture-not-published",
    ],
)
def test_control_field_apt_or_dpkg_would_refuse(
    repo: DebrepoCli,
    tmp_path: Path,
    fields: list[tuple[str, str]],
    architecture: str,
    fragment: str,
) -> None:
    deb = tmp_path / "crafted.deb"
    deb.write_bytes(deb_bytes("crafted", "1.0", architecture, extra_fields=fields))
    result = repo.run("add", deb, check=False)
    assert_rejected(result, 1, "crafted.deb", fragment, "nothing was added")


def test_installed_size_beyond_64_bits_of_bytes(repo: DebrepoCli, tmp_path: Path) -> None:
    deb = _raw_deb(tmp_path / "crafted.deb", "crafted", "1.0", **{"Installed-Size": "9" * 30})
    result = repo.run("add", deb, check=False)
    assert_rejected(result, 1, "crafted.deb", "Installed-Size '999", "is too large")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("\u00b2", "is not a number"), ("12 34", "is not a number"), ("1" * 5000, "is too large")],
    ids=["superscript", "two-numbers", "thousands-of-digits"],
)
def test_installed_size_that_is_not_a_plain_number(
    repo: DebrepoCli, tmp_path: Path, value: str, fragment: str
) -> None:
    deb = _raw_deb(tmp_path / "crafted.deb", "crafted", "1.0", **{"Installed-Size": value})
    result = repo.run("add", deb, check=False)
    assert_rejected(result, 1, "crafted.deb", "Installed-Size", fragment)
    assert len(result.stderr) < 500, result.stderr  # the huge value is not repeated whole


def test_installed_size_with_leading_zeros_is_its_number(tmp_path: Path) -> None:
    cli = DebrepoCli(home=tmp_path / "home", cwd=tmp_path)
    cli.run(
        "add",
        _raw_deb(tmp_path / "crafted.deb", "crafted", "1.0", **{"Installed-Size": "0" * 30 + "12"}),
    )
    assert (
        "Installed-Size: 12\n"
        in (cli.repo_dir / "dists/stable/main/binary-amd64/Packages").read_text()
    )


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0c"])
def test_a_value_cannot_smuggle_in_a_field_of_its_own(
    repo: DebrepoCli, tmp_path: Path, separator: str
) -> None:
    """Characters Python (and so deb822) ends a line at, inside one value: dpkg sees one
    Maintainer field; a reader splitting there would see a Depends field too."""
    deb = _raw_deb(
        tmp_path / "crafted.deb",
        "crafted",
        "1.0",
        Maintainer=f"X <x@example.com>{separator}Depends: evil-pkg",
    )
    result = repo.run("add", deb, check=False)
    assert_rejected(result, 1, "crafted.deb", "nothing was added")
    assert "evil-pkg" not in (repo.repo_dir / "dists/stable/main/binary-amd64/Packages").read_text()


def test_relationships_apt_parses_are_accepted(tmp_path: Path) -> None:
    cli = DebrepoCli(home=tmp_path / "home", cwd=tmp_path)
    deb = tmp_path / "good.deb"
    fields = [
        ("Depends", "libc6 (>= 2.31), python3:any,\n xdg-utils | kiro (<< 2:1.0~rc1-1)"),
        ("Pre-Depends", "dpkg (>= 1.17.14)"),
        ("Provides", "editor (= 1.0), ide"),
        ("Breaks", "old-kiro (<< 1.0)"),
        ("Multi-Arch", "foreign"),
        ("Essential", "No"),
        ("Recommends", ""),
        # dpkg's rule for related names is looser than for a package's own.
        ("Suggests", "Foo, b, bar_baz"),
        ("Enhances", "emacs | xemacs21"),
        ("X-Note", "colour \x1b[31mred\x1b[0m"),
    ]
    deb.write_bytes(deb_bytes("good", "1.0", "all", extra_fields=fields))
    cli.run("add", deb)
    stanza = (cli.repo_dir / "dists/stable/main/binary-amd64/Packages").read_text()
    assert "Depends: libc6 (>= 2.31), python3:any,\n xdg-utils | kiro (<< 2:1.0~rc1-1)\n" in stanza
    assert "Provides: editor (= 1.0), ide\n" in stanza
    assert "Enhances: emacs | xemacs21\n" in stanza
    assert "Essential: No\n" in stanza


# -- duplicates and batches ---------------------------------------------------------------


def test_duplicate_version_of_a_stored_package(repo: DebrepoCli, make_deb: DebFactory) -> None:
    rebuilt = make_deb("alpha", "1.0", description="different bytes\n Same name and version.")
    result = repo.run("add", rebuilt, check=False)
    assert_rejected(result, 1, str(rebuilt), "alpha 1.0 is already in the store")


def test_same_version_twice_in_one_batch(repo: DebrepoCli, tmp_path: Path) -> None:
    first = tmp_path / "one" / "epsilon_1.0_amd64.deb"
    second = tmp_path / "two" / "epsilon_1.0_amd64.deb"
    for path, text in ((first, "first"), (second, "second")):
        path.parent.mkdir()
        path.write_bytes(deb_bytes("epsilon", "1.0", description=f"{text}\n Copy."))
    result = repo.run("add", first, second, check=False)
    assert_rejected(result, 1, str(second), "epsilon 1.0", str(first), "nothing was added")


@pytest.mark.parametrize("bad_position", [0, 2, 3])
def test_one_bad_file_in_a_batch_adds_nothing(
    repo: DebrepoCli, tmp_path: Path, make_deb: DebFactory, bad_position: int
) -> None:
    good = [make_deb(f"batch-{n}", "1.0") for n in ("one", "two", "three")]
    bad = tmp_path / "batch-bad_1.0_amd64.deb"
    bad.write_bytes(deb_bytes("batch-bad", "1.0")[:-100])
    files = [*good]
    files.insert(bad_position, bad)
    result = repo.run("add", *files, check=False)
    assert_rejected(result, 1, bad.name, "truncated", "nothing was added")
    for path in good:
        assert path.name not in result.stderr


def test_bad_file_is_named_by_the_path_given(repo: DebrepoCli, tmp_path: Path) -> None:
    """Two folders may hold files of the same name; the message must say which one is bad."""
    good = tmp_path / "mirror-a" / "iota_1.0_amd64.deb"
    bad = tmp_path / "mirror-b" / "iota_1.0_amd64.deb"
    for path in (good, bad):
        path.parent.mkdir()
    good.write_bytes(deb_bytes("iota", "1.0"))
    bad.write_bytes(good.read_bytes()[:-100])
    result = repo.run("add", good, bad, check=False)
    message = assert_rejected(result, 1, "truncated", "nothing was added")
    assert str(bad) in message, result.describe()


def test_bad_file_inside_a_folder_adds_nothing(repo: DebrepoCli, tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    for name in ("zeta", "eta"):
        (folder / f"{name}_1.0_amd64.deb").write_bytes(deb_bytes(name, "1.0"))
    _raw_deb(folder / "theta_1.0_amd64.deb", "theta", "1.0/../../x")
    result = repo.run("add", folder, check=False)
    assert_rejected(result, 1, "theta_1.0_amd64.deb", "is not a Debian version")
