"""cli.py: every command's happy path, exit codes and one-line errors."""

from __future__ import annotations

import bz2
import contextlib
import errno
import gc
import http.server
import json
import lzma
import os
import pty
import pwd
import shlex
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pysequoia as sq
import pytest
import zstandard

from debrepo import __version__
from debrepo.cli import Output, main
from debrepo.locking import local_lock
from debrepo.signing.openpgp import generate_secret_key
from tests.conftest import CONFIG_DIR, deb_bytes


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("debrepo: error: "), self.err
        return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def run(tmp_path, home, monkeypatch, capsys):
    for variable in [v for v in os.environ if v.startswith("DEBREPO_")]:
        monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, base: bool = True) -> Result:
        argv = ["--home", str(home), "--config-dir", str(CONFIG_DIR)] if base else []
        try:
            main([*argv, *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def debs(tmp_path: Path) -> Path:
    directory = tmp_path / "incoming"
    directory.mkdir()
    (directory / "alpha_1.0_amd64.deb").write_bytes(deb_bytes("alpha", "1.0"))
    (directory / "beta_2.0-1_all.deb").write_bytes(deb_bytes("beta", "2.0-1", "all"))
    (directory / "notes.txt").write_text("not a package", encoding="utf-8")
    return directory


def test_version(run):
    result = run("--version", base=False)
    assert result.code == 0
    assert __version__ in result.out


def test_help_states_each_settings_variable_and_default(run):
    text = " ".join(run("--help", base=False).out.split())
    for stated in (
        "--home TEXT Working folder for the embedded default [env DEBREPO_HOME; default .debrepo]",
        "--suite TEXT Release Suite [env DEBREPO_SUITE; default stable]",
        "--valid-days TEXT Days until Valid-Until [env DEBREPO_VALID_DAYS; default 7]",
        "--key-file TEXT Signing key file [env DEBREPO_KEY_FILE]",  # under the home
        "URL clients use to reach the repository [env DEBREPO_PUBLIC_URL]",  # S3: the bucket's
    ):
        assert stated in text


def test_help_lists_every_command(run):
    result = run("--help", base=False)
    assert result.code == 0
    for command in ("add", "rebuild", "build-repo-package", "list", "show", "remove", "verify"):
        assert command in result.out


def test_add_a_file_and_publish(run, debs):
    result = run("add", str(debs / "alpha_1.0_amd64.deb"))
    assert result.code == 0, result.err
    assert "added alpha 1.0 (amd64)" in result.out
    assert "published" in result.out
    assert "1 package(s) published" in result.out


def test_add_a_folder(run, debs, home):
    result = run("add", str(debs))
    assert result.code == 0, result.err
    assert "added alpha 1.0 (amd64)" in result.out
    assert "added beta 2.0-1 (all)" in result.out
    assert (home / "repo/pool/main/b/beta/beta_2.0-1_all.deb").is_file()


def test_add_without_publishing_then_rebuild(run, debs, home):
    assert run("add", "--no-publish", str(debs)).code == 0
    assert not (home / "repo/dists/stable/InRelease").exists()
    result = run("rebuild")
    assert result.code == 0, result.err
    assert "2 package(s) published" in result.out
    assert (home / "repo/dists/stable/InRelease").is_file()


def test_quiet_prints_nothing(run, debs):
    result = run("-q", "add", str(debs))
    assert (result.code, result.out) == (0, "")


def test_add_many_files_summarises(run, tmp_path):
    directory = tmp_path / "many"
    directory.mkdir()
    for i in range(22):
        (directory / f"p{i:02d}.deb").write_bytes(deb_bytes(f"p{i:02d}", "1.0"))
    result = run("add", "--no-publish", str(directory))
    assert result.code == 0, result.err
    assert result.out.count("added p") == 20
    assert "added 2 more" in result.out


def test_add_a_duplicate_with_other_bytes_fails_with_one_line(run, debs, tmp_path):
    assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    rebuilt = tmp_path / "alpha-rebuilt.deb"
    rebuilt.write_bytes(deb_bytes("alpha", "1.0", description="rebuilt\n Other bytes."))
    result = run("add", str(rebuilt))
    assert result.code == 1
    assert "alpha 1.0 is already in the store with other bytes (sha256 " in result.error_line


def test_add_the_same_file_again_says_it_is_stored_and_changes_nothing(run, debs, home):
    assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    release = (home / "repo/dists/stable/Release").read_bytes()
    result = run("add", str(debs / "alpha_1.0_amd64.deb"))
    assert result.code == 0, result.err
    assert result.out == "already stored alpha 1.0 (amd64)\nnothing new to add or publish\n"
    assert (home / "repo/dists/stable/Release").read_bytes() == release


@pytest.mark.parametrize(
    ("damage", "logged"),
    [
        (Path.unlink, "was missing"),
        (lambda path: path.write_bytes(path.read_bytes() + b"junk"), "holds other bytes"),
        (lambda path: path.write_bytes(path.read_bytes()[:-4] + b"junk"), "holds other bytes"),
    ],
    ids=["lost", "grown", "same-size"],
)
def test_add_the_same_file_again_mends_a_lost_or_damaged_pool_file_and_says_so(
    run, debs, home, caplog, damage, logged
):
    assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    pool_file = home / "repo/pool/main/a/alpha/alpha_1.0_amd64.deb"
    damage(pool_file)
    assert run("verify").code == 1
    result = run("add", str(debs / "alpha_1.0_amd64.deb"))
    assert result.code == 0, result.err
    assert result.out == "already stored alpha 1.0 (amd64)\nput back the file of alpha 1.0\n"
    assert f"pool/main/a/alpha/alpha_1.0_amd64.deb {logged}: put back" in caplog.text
    assert pool_file.read_bytes() == (debs / "alpha_1.0_amd64.deb").read_bytes()
    assert run("verify").code == 0


def test_a_deleted_repository_folder_is_not_published_again_without_its_pool_files(run, debs, home):
    """A plain publish trusts the pool files it placed, but not once the Release it
    published is gone with them: it looks each one up and refuses rather than sign
    indices that name files clients cannot download."""
    assert run("add", str(debs)).code == 0
    shutil.rmtree(home / "repo")
    result = run("rebuild")
    assert result.code == 1, result.err
    assert "pool/main/a/alpha/alpha_1.0_amd64.deb is missing" in result.error_line
    assert "pool/main/b/beta/beta_2.0-1_all.deb is missing" in result.error_line
    assert result.error_line.endswith("nothing was published")
    assert not (home / "repo/dists").exists()
    assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0  # one file given back
    result = run("rebuild")
    assert result.code == 1, result.err
    assert "alpha_1.0_amd64.deb" not in result.error_line
    assert "pool/main/b/beta/beta_2.0-1_all.deb is missing" in result.error_line
    assert not (home / "repo/dists").exists()
    assert run("add", str(debs)).code == 0  # and the other
    assert run("rebuild").code == 0
    assert run("verify").code == 0


def test_the_same_file_again_never_mends_another_repositorys_file(run, tmp_path):
    """A mistyped --home next to the right --repo: the pool file that differs from this
    store's record is another store's published file, not a damaged copy."""
    ours, theirs = tmp_path / "bar_a.deb", tmp_path / "bar_b.deb"
    ours.write_bytes(deb_bytes("bar", "2.0", description="Ours"))
    theirs.write_bytes(deb_bytes("bar", "2.0", description="Theirs"))
    assert run("--home", str(tmp_path / "a"), "add", str(ours)).code == 0
    assert run("--home", str(tmp_path / "b"), "add", str(theirs)).code == 0
    mistyped = run(
        "--home", str(tmp_path / "a"), "--repo", str(tmp_path / "b/repo"), "add", str(ours)
    )
    assert mistyped.code == 1
    assert "already holds other bytes than bar 2.0" in mistyped.error_line
    pool_file = tmp_path / "b/repo/pool/main/b/bar/bar_2.0_amd64.deb"
    assert pool_file.read_bytes() == theirs.read_bytes()
    assert run("--home", str(tmp_path / "b"), "verify").code == 0


def test_a_damaged_pool_file_without_a_pool_map_is_not_mended_blindly(run, debs, home):
    alpha = debs / "alpha_1.0_amd64.deb"
    assert run("add", str(alpha)).code == 0
    pool_file = home / "repo/pool/main/a/alpha/alpha_1.0_amd64.deb"
    pool_file.write_bytes(pool_file.read_bytes() + b"junk")
    (home / "staging/.state/publish-pool.json").unlink()  # nothing says the file is ours
    refused = run("add", str(alpha))
    assert refused.code == 1
    assert "as this store records it, and no publisher state of this repository" in (
        refused.error_line
    )
    assert "delete it and add the .deb again" in refused.error_line
    pool_file.unlink()  # as the message says
    assert run("add", str(alpha)).code == 0
    assert pool_file.read_bytes() == alpha.read_bytes()


@pytest.mark.parametrize("name", ["publish-state.json", "publish-pool.json"])
def test_a_publisher_state_of_a_newer_debrepo_is_refused_not_overwritten(run, debs, home, name):
    assert run("add", str(debs)).code == 0
    path = home / "staging/.state" / name
    newer = json.loads(path.read_text())
    newer["version"] = 99
    path.write_text(json.dumps(newer))
    gamma = debs / "gamma_3.0_amd64.deb"
    gamma.write_bytes(deb_bytes("gamma", "3.0"))
    for command in (("rebuild", "--full"), ("add", str(gamma))):
        refused = run(*command)
        assert refused.code == 1, command
        assert f"{name} was written by a newer debrepo (format 99" in refused.error_line
    assert json.loads(path.read_text()) == newer
    assert "gamma#3.0" not in run("list").out  # refused before anything was stored
    checked = run("verify")  # reads it only for warnings
    assert f"{name} was written by a newer debrepo" in checked.err


def test_add_a_broken_file_fails_with_one_line(run, tmp_path):
    broken = tmp_path / "broken.deb"
    broken.write_bytes(b"garbage")
    result = run("add", str(broken))
    assert result.code == 1
    assert "broken.deb: not a Debian package" in result.error_line
    assert "nothing was added" in result.error_line


def test_add_a_missing_file_creates_no_home(run, tmp_path, home, debs):
    (tmp_path / "dangling.deb").symlink_to(tmp_path / "gone.deb")
    for name, what in (("absent.deb", "no such file"), ("dangling.deb", "a broken symbolic link")):
        result = run("add", str(debs), str(tmp_path / name))
        assert result.code == 1
        assert result.error_line.endswith(f"{tmp_path / name}: {what}; nothing was added")
    assert not home.exists()  # no store, and no key generated for nothing


def symlink_loop(where: Path) -> Path:
    """`where` made a symbolic link to a link back to it."""
    other = where.with_name(f"{where.name}-other")
    other.symlink_to(where)
    where.symlink_to(other)
    return where


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (("--home", "{loop}", "list"), "option --home"),
        (("--repo", "{loop}", "list"), "option --repo"),
        (("--store", "sqlite://{loop}/metadata.db", "list"), "option --store"),
        (("--config-dir", "{loop}", "list"), "option --config-dir"),
        (("--key-file", "{loop}", "key", "show"), "option --key-file"),
        (("--settings", "{loop}", "list"), "option --settings"),
    ],
    ids=["home", "repo", "store", "config-dir", "key-file", "settings"],
)
def test_a_symbolic_link_loop_in_a_setting_is_named(run, tmp_path, home, args, setting):
    loop = symlink_loop(tmp_path / "loop")
    result = run(*(arg.format(loop=loop) for arg in args))
    assert result.code == 2
    assert result.error_line.startswith(f"debrepo: error: {loop}")
    assert result.error_line.endswith(f": a symbolic link loop ({setting})")
    assert not home.exists()


def test_a_symbolic_link_loop_given_to_add_is_named(run, tmp_path, debs, home):
    loop = symlink_loop(tmp_path / "loop.deb")
    result = run("add", str(debs), str(loop))
    assert result.error_line.endswith(f"{loop}: a symbolic link loop; nothing was added")
    symlink_loop(debs / "gamma_1.0_amd64.deb")
    result = run("add", str(debs))
    assert result.code == 1
    assert result.error_line.endswith(
        f"{debs / 'gamma_1.0_amd64.deb'}: a symbolic link loop; nothing was added"
    )
    assert not home.exists()


def test_add_an_empty_folder_is_a_config_error(run, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("add", str(tmp_path / "empty"))
    assert result.code == 2
    assert "directory holds no .deb files" in result.error_line


def test_add_while_another_process_publishes(run, debs, home):
    with local_lock(home / "publish.lock"):
        result = run("add", str(debs / "alpha_1.0_amd64.deb"))
    assert result.code == 1
    assert f"another debrepo process is publishing (pid {os.getpid()} on" in result.error_line
    assert not (home / "metadata.db").exists()  # nothing stored, not even an empty store


def test_build_repo_package(run, tmp_path, home, caplog):
    output = tmp_path / "kiro-repo.deb"
    result = run(
        "build-repo-package",
        "--version",
        "1.0",
        "--repo-url",
        "https://apt.example.com",
        "--output",
        str(output),
    )
    assert result.code == 0, result.err
    assert "built kiro-repo_1.0_all.deb" in result.out
    assert "kiro-repo.deb is kiro-repo 1.0" in result.out
    assert (home / "repo/kiro-repo.deb").read_bytes() == output.read_bytes()
    # The page tells new users the default public URL, not the package's.
    assert (
        "--repo-url https://apt.example.com is not the public URL http://127.0.0.1:8080 "
        "(public_url) that the install page (index.html) tells users to fetch from"
    ) in caplog.text
    caplog.clear()
    public = ("--public-url", "https://apt.example.com/")
    same = run(
        *public, "build-repo-package", "--version", "1.1", "--repo-url", "https://apt.example.com"
    )
    assert same.code == 0 and "is not the public URL" not in caplog.text


def test_output_never_overwrites_what_debrepo_keeps(run, tmp_path, home):
    assert run("build-repo-package", "--version", "1.0").code == 0
    key_file = home / "keys" / "signing-key.asc"
    kept = {p: p.read_bytes() for p in [key_file]}
    packages = home / "repo/dists/stable/main/binary-amd64/Packages"
    for target, what in [
        (key_file, "that is the signing key file"),
        (home / "metadata.db", "that is the metadata store"),
        (packages, "inside the repository"),
        (home / "new.asc", "inside the home folder"),
    ]:
        exported = run("key", "export", "--output", str(target))
        assert exported.code == 2, exported.err
        assert what in exported.error_line
        built = run("build-repo-package", "--version", "1.1", "--output", str(target))
        assert built.code == 2, built.err
        assert what in built.error_line
    assert {p: p.read_bytes() for p in kept} == kept
    assert not (home / "new.asc").exists()
    # The store is still the store (its bytes change as SQLite checkpoints its log).
    assert [i["version"] for i in json.loads(run("list", "--json").out)] == ["1.0"]
    assert run("verify").code == 0


def test_a_refused_output_is_refused_before_a_home_or_key_is_made(run, tmp_path, home):
    built = run("build-repo-package", "--version", "1.0", "--output", str(home / "k.deb"))
    assert built.code == 2, built.err
    assert "inside the home folder" in built.error_line
    assert not home.exists()


def test_build_repo_package_writes_output_only_for_a_stored_build(run, tmp_path, home):
    assert run("build-repo-package", "--version", "1:2.0").code == 0
    output = tmp_path / "kiro-repo.deb"
    refused = run("build-repo-package", "--version", "2.0", "--output", str(output))
    assert refused.code == 1
    assert not output.exists()
    # The same version again, built the same: written, and nothing else changes.
    again = run("build-repo-package", "--version", "1:2.0", "--output", str(output))
    assert again.code == 0, again.err
    assert output.read_bytes() == (home / "repo/kiro-repo.deb").read_bytes()


def test_building_a_removed_kiro_repo_version_again_warns(run, home, caplog):
    assert run("build-repo-package", "--version", "1.0").code == 0
    assert run("remove", "kiro-repo", "1.0", "--yes").code == 0
    caplog.clear()
    again = run("build-repo-package", "--version", "1.0")
    assert again.code == 0, again.err
    assert "kiro-repo 1.0 was removed before: this build has other bytes" in caplog.text
    caplog.clear()
    assert run("build-repo-package", "--version", "1.1").code == 0
    assert "was removed before" not in caplog.text


def test_versions_dpkg_takes_for_one_are_refused_whether_stored_or_in_the_same_batch(
    run, tmp_path, home
):
    files = {}
    for version in ("1.0", "1.00", "1.0-0"):
        files[version] = tmp_path / f"eqv_{version}_amd64.deb"
        files[version].write_bytes(deb_bytes("eqv", version))
    together = run("add", str(files["1.0"]), str(files["1.00"]))
    assert together.code == 1
    assert together.error_line.endswith(
        "eqv_1.00_amd64.deb: eqv 1.00 is the same version as eqv 1.0 (already stored or "
        "added), as dpkg and apt compare versions; apt would see one version with two files; "
        "nothing was added"
    )
    assert json.loads(run("list", "--json").out) == []
    assert run("add", str(files["1.0"])).code == 0
    later = run("add", str(files["1.0-0"]))
    assert later.code == 1 and "eqv 1.0-0 is the same version as eqv 1.0" in later.error_line
    assert [i["version"] for i in json.loads(run("list", "--json").out)] == ["1.0"]


def test_a_second_architecture_of_one_version_says_why_it_is_refused(run, tmp_path):
    amd64, arm64 = tmp_path / "multi_1.0_amd64.deb", tmp_path / "multi_1.0_arm64.deb"
    amd64.write_bytes(deb_bytes("multi", "1.0", "amd64"))
    arm64.write_bytes(deb_bytes("multi", "1.0", "arm64"))
    both = ("--architectures", "amd64,arm64")
    together = run(*both, "add", str(amd64), str(arm64))
    assert together.code == 1
    assert together.error_line == (
        f"debrepo: error: {arm64}: multi 1.0 is also in {amd64} for amd64, and a repository "
        "holds one .deb per package name and version (package_id 'multi#1.0'); give the "
        "arm64 build a version of its own; nothing was added"
    )
    assert run(*both, "add", str(amd64)).code == 0
    later = run(*both, "add", str(arm64))
    assert later.code == 1
    assert f"{arm64}: multi 1.0 is stored for amd64, and a repository holds" in later.error_line


def test_a_file_named_twice_is_added_once(run, debs):
    alpha = debs / "alpha_1.0_amd64.deb"
    result = run("add", str(alpha), str(debs / "." / alpha.name), str(debs))
    assert result.code == 0, result.err
    assert sorted(i["package_id"] for i in json.loads(run("list", "--json").out)) == [
        "alpha#1.0",
        "beta#2.0-1",
    ]


def test_the_component_that_names_the_pool_cannot_change_even_on_purpose(run, debs, home):
    assert run("--components", "main,extra", "add", str(debs)).code == 0
    release = (home / "repo/dists/stable/InRelease").read_bytes()
    for flags in ((), ("--replace",)):
        moved = run("--components", "extra,main", "rebuild", *flags)
        assert moved.code == 1, moved.err
        assert moved.error_line == (
            "debrepo: error: components: the first component names the pool folder, and this "
            "repository's is pool/main/; keep main first in components (now extra, main); "
            "nothing was published"
        )
    assert (home / "repo/dists/stable/InRelease").read_bytes() == release
    gamma = debs / "gamma_3.0_amd64.deb"
    gamma.write_bytes(deb_bytes("gamma", "3.0"))
    added = run("--components", "extra,main", "add", str(gamma))
    assert added.code == 1
    assert added.error_line.endswith("(now extra, main); nothing was added")  # no --no-publish
    assert not (home / "repo/pool/main/g").exists() and not (home / "repo/pool/extra").exists()
    # A file already stored, whose pool file went missing: not put back under the other
    # folder (a put-back publishes nothing, so no publish would refuse it).
    (home / "repo/pool/main/a/alpha/alpha_1.0_amd64.deb").unlink()
    again = run("--components", "extra,main", "add", str(debs / "alpha_1.0_amd64.deb"))
    assert again.code == 1 and again.error_line.endswith("nothing was added")
    assert not (home / "repo/pool/extra").exists()
    assert run("--components", "main,extra", "add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    assert (home / "repo/pool/main/a/alpha/alpha_1.0_amd64.deb").is_file()
    assert run("--components", "main", "rebuild", "--replace").code == 0  # dropping one may


def test_a_folder_says_what_it_leaves_out(run, debs, caplog):
    (debs / "nested").mkdir()
    (debs / "nested" / "gamma_3.0_amd64.deb").write_bytes(deb_bytes("gamma", "3.0"))
    (debs / "DELTA_4.0_AMD64.DEB").write_bytes(deb_bytes("delta", "4.0"))
    result = run("add", str(debs))
    assert result.code == 0, result.err
    assert (
        f"{debs}: not added: 1 sub-folder(s) (not searched) and DELTA_4.0_AMD64.DEB; only "
        "the files named *.deb directly in it are"
    ) in caplog.text
    assert sorted(i["package_name"] for i in json.loads(run("list", "--json").out)) == [
        "alpha",
        "beta",
    ]
    caplog.clear()
    assert run("add", str(debs / "nested")).code == 0
    assert "not added" not in caplog.text


def test_adding_other_bytes_for_a_removed_version_warns(run, debs, tmp_path, caplog):
    assert run("add", str(debs)).code == 0
    assert run("remove", "alpha", "1.0", "--yes").code == 0
    rebuilt = tmp_path / "alpha_1.0_amd64.deb"
    rebuilt.write_bytes(deb_bytes("alpha", "1.0", description="Rebuilt"))
    caplog.clear()
    again = run("add", str(rebuilt))
    assert again.code == 0, again.err
    assert caplog.text.count("alpha 1.0 was removed before: these are other bytes") == 1
    assert run("remove", "alpha", "1.0", "--yes").code == 0
    caplog.clear()
    assert run("add", str(rebuilt)).code == 0  # the same bytes as the retired file
    assert "was removed before" not in caplog.text


def test_output_writes_through_a_link_or_a_stream(run, tmp_path, home):
    assert run("key", "generate").code == 0
    armored = run("key", "export").out.encode()
    real, link = tmp_path / "real.asc", tmp_path / "link.asc"
    real.write_bytes(b"old")
    link.symlink_to(real)
    assert run("key", "export", "--output", str(link)).code == 0
    assert link.is_symlink() and real.read_bytes() == armored
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEBREPO_")}
    argv = [sys.executable, "-m", "debrepo", "--home", str(home), "key", "export"]
    to_stdout = subprocess.run(
        [*argv, "--output", "/dev/stdout"], capture_output=True, env=environment, check=False
    )
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == armored
    # Standard output redirected to a file: written into it, after what came before.
    script = f"{{ echo HEADER; {shlex.join(argv)} --output /dev/stdout; echo FOOTER; }} > out"
    subprocess.run(["sh", "-c", script], cwd=tmp_path, env=environment, check=True)
    assert (tmp_path / "out").read_bytes() == b"HEADER\n" + armored + b"FOOTER\n"


def test_output_does_not_follow_a_link_planted_at_a_temporary_name(run, tmp_path, home):
    """In a shared folder another user may guess a temporary name and put a symlink
    there; the export must neither write through it nor leave it as the output."""
    assert run("key", "generate").code == 0
    armored = run("key", "export").out.encode()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    output = tmp_path / "key.asc"
    (tmp_path / f".key.asc.tmp-{os.getpid()}").symlink_to(victim)  # the pid: guessable
    umask = os.umask(0o022)
    try:
        assert run("key", "export", "--output", str(output)).code == 0
    finally:
        os.umask(umask)
    assert victim.read_bytes() == b"precious"
    assert not output.is_symlink() and output.read_bytes() == armored
    assert oct(output.stat().st_mode & 0o777) == "0o644"  # an ordinary new file
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".key.asc")) == [
        f".key.asc.tmp-{os.getpid()}"
    ]  # only the planted link: the real temporary file is gone


@pytest.mark.parametrize("planted", ["link", "folder link", "fifo", "link to a link"])
def test_output_refuses_what_another_user_planted_in_a_shared_folder(
    run, tmp_path, home, monkeypatch, planted
):
    """In /tmp (sticky, writable by all) a link or FIFO of another user's chose where
    the write goes, whatever fs.protected_symlinks / protected_fifos say."""
    assert run("key", "generate").code == 0
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "key.asc").write_bytes(b"precious")
    shared = Path("/tmp")
    assert shared.stat().st_mode & 0o1002 == 0o1002, "/tmp is not sticky and open to all"
    entry = shared / f"debrepo-test-{os.urandom(6).hex()}"
    try:
        if planted == "link":
            entry.symlink_to(victim / "key.asc")
            output = entry
        elif planted == "folder link":
            entry.symlink_to(victim)
            output = entry / "key.asc"
        elif planted == "fifo":
            os.mkfifo(entry)
            output = entry
        else:  # this user's own link, into the shared folder, where theirs waits
            entry.symlink_to(victim / "key.asc")
            output = tmp_path / "mine.asc"
            output.symlink_to(entry)
        with monkeypatch.context() as pretend:
            if os.geteuid() == 0:  # /tmp is root's: the entry must be another user's
                os.lchown(entry, 65534, 65534)
                owner = 65534
            else:  # no user can give a file away: this process pretends to be another
                owner = os.geteuid()
                pretend.setattr(os, "geteuid", lambda: owner + 1)
            refused = run("key", "export", "--output", str(output))
        assert refused.code == 2
        kind = "FIFO" if planted == "fifo" else "symbolic link"
        assert refused.error_line == (
            f"debrepo: error: --output {output}: {entry} is a {kind} of another user "
            f"(uid {owner}) in {shared}; refusing to write through it (choose a file in a "
            "folder of your own)"
        )
        assert (victim / "key.asc").read_bytes() == b"precious"
        assert sorted(victim.iterdir()) == [victim / "key.asc"]
    finally:
        entry.unlink(missing_ok=True)


def test_a_planted_output_is_refused_before_a_build_is_stored(run, tmp_path, home, monkeypatch):
    victim = tmp_path / "victim.deb"
    victim.write_bytes(b"precious")
    entry = Path("/tmp") / f"debrepo-test-{os.urandom(6).hex()}"
    entry.symlink_to(victim)
    try:
        with monkeypatch.context() as pretend:
            if os.geteuid() == 0:
                os.lchown(entry, 65534, 65534)
            else:  # no user can give a file away: this process pretends to be another
                owner = os.geteuid()
                pretend.setattr(os, "geteuid", lambda: owner + 1)
            refused = run("build-repo-package", "--version", "1.0", "--output", str(entry))
        assert refused.code == 2
        assert f"--output {entry}: {entry} is a symbolic link of another user" in refused.err
    finally:
        entry.unlink()
    assert victim.read_bytes() == b"precious"
    assert not (home / "metadata.db").exists() and not (home / "repo").exists()


def test_a_kiro_repo_whose_record_was_lost_is_not_built_over_its_published_file(run, home):
    assert run("build-repo-package", "--version", "1.0").code == 0
    pool_file = home / "repo/pool/main/k/kiro-repo/kiro-repo_1.0_all.deb"
    published = pool_file.read_bytes()
    with sqlite3.connect(home / "metadata.db") as connection:
        connection.execute("DELETE FROM packages WHERE package_id = 'kiro-repo#1.0'")
    connection.close()
    refused = run("build-repo-package", "--version", "1.0", "--repo-url", "https://other.example")
    assert refused.code == 1
    assert "kiro-repo_1.0_all.deb already holds other bytes than kiro-repo 1.0" in (
        refused.error_line
    )
    assert pool_file.read_bytes() == published
    assert json.loads(run("list", "--json").out) == []


def test_build_repo_package_bad_version(run):
    result = run("build-repo-package", "--version", "not a version")
    assert result.code == 2
    assert "--version:" in result.error_line


def test_list_and_list_json(run, debs):
    run("add", str(debs))
    result = run("list")
    assert result.code == 0
    lines = result.out.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["alpha", "1.0", "amd64"],
        ["beta", "2.0-1", "all"],
    ]
    as_json = json.loads(run("list", "--json").out)
    assert [item["package_id"] for item in as_json] == ["alpha#1.0", "beta#2.0-1"]
    assert as_json[0]["sha256_hash"] and as_json[0]["file_size"] > 0
    only = json.loads(run("list", "--package", "beta", "--json").out)
    assert [item["package_id"] for item in only] == ["beta#2.0-1"]
    for name, version in (("alpha", "1.0"), ("beta", "2.0-1")):
        assert run("remove", name, version, "--no-publish", "--yes").code == 0
    empty = run("list")
    assert (empty.code, empty.out) == (0, "the store holds no packages\n")
    assert run("list", "--json").out.strip() == "[]"


def test_show(run, debs):
    run("add", str(debs))
    result = run("show", "beta")
    assert result.code == 0
    assert "Package: beta\n" in result.out
    assert "Version: 2.0-1\n" in result.out
    assert "Filename: pool/main/b/beta/beta_2.0-1_all.deb\n" in result.out
    assert "X-Debrepo-Package-Type: manual" in result.out
    by_id = run("show", "alpha#1.0")
    assert "Package: alpha\n" in by_id.out
    as_json = json.loads(run("show", "alpha", "1.0", "--json").out)
    assert as_json["package_id"] == "alpha#1.0"
    assert isinstance(as_json["control_fields"], dict)


def test_show_prints_upstream_notes_as_one_stanza_without_control_characters(run, debs, home):
    from debian.deb822 import Deb822

    assert run("add", str(debs)).code == 0
    notes = "First line\r\n\nthird \x1b[31mred\x00 end\n  indented"
    with sqlite3.connect(home / "metadata.db") as db:
        db.execute("UPDATE packages SET notes = ? WHERE package_id = 'alpha#1.0'", (notes,))
    result = run("show", "alpha", "1.0")
    assert result.code == 0, result.err
    assert not any(c in result.out for c in "\x00\x1b\r")
    stanzas = list(Deb822.iter_paragraphs(result.out))
    assert len(stanzas) == 1
    assert stanzas[0]["Package"] == "alpha"
    assert stanzas[0]["X-Debrepo-Notes"].splitlines() == [
        "First line",
        " .",
        " third \\x1b[31mred\\x00 end",
        "   indented",
    ]


def test_show_unknown_package(run, debs):
    run("add", str(debs))
    result = run("show", "nothing", "1.0")
    assert result.code == 1
    assert "nothing 1.0 is not in the store" in result.error_line


def test_remove(run, debs, home):
    run("add", str(debs))
    result = run("remove", "alpha", "1.0", "--yes")
    assert result.code == 0, result.err
    assert "removed alpha 1.0" in result.out
    packages = (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: alpha\n" not in packages
    assert [i["package_id"] for i in json.loads(run("list", "--json").out)] == ["beta#2.0-1"]


def test_verify_finds_a_damaged_store_that_still_lists_its_records(run, debs, home):
    from tests.unit.test_store_sqlite import damage_the_first_page

    assert run("add", str(debs)).code == 0
    assert run("verify").code == 0
    damage_the_first_page(home / "metadata.db")
    assert run("list").code == 0  # a scan of the table reads both records
    result = run("verify")
    assert result.code == 1
    assert f"problem: sqlite://{home / 'metadata.db'}: the metadata store is damaged (" in (
        result.err
    )


def test_verify_of_a_store_whose_records_cannot_be_read_names_the_damage(run, debs, home):
    from tests.unit.test_store_sqlite import damage_the_first_page

    assert run("add", str(debs)).code == 0
    damage_the_first_page(home / "metadata.db", of="packages")
    result = run("verify")
    assert result.code == 1
    lines = result.err.splitlines()
    assert any("the metadata store is damaged (" in line for line in lines), result.err
    assert any("cannot read the metadata store" in line for line in lines), result.err


def test_verify_warns_of_pool_files_nobody_accounts_for(run, debs, home, tmp_path):
    assert run("add", str(debs)).code == 0
    assert run("remove", "alpha", "1.0", "--yes").code == 0
    retired = home / "repo/pool/main/a/alpha/alpha_1.0_amd64.deb"
    assert retired.is_file()  # kept for clients holding the index from before
    clean = run("verify")
    assert clean.code == 0 and clean.err == "", clean.err

    stray = home / "repo/pool/main/g/gamma/gamma_3.0_amd64.deb"  # a copy made by hand
    stray.parent.mkdir(parents=True)
    stray.write_bytes(deb_bytes("gamma", "3.0"))
    warned = run("verify")
    assert warned.code == 0, warned.err  # a warning: nothing a client reads is wrong
    assert "1 file(s) in pool/ that no stored version names" in warned.err
    assert "pool/main/g/gamma/gamma_3.0_amd64.deb" in warned.err
    assert "alpha_1.0" not in warned.err

    given = tmp_path / "gamma_3.0_amd64.deb"
    given.write_bytes(stray.read_bytes())
    assert run("add", str(given)).code == 0  # the same bytes: adopted
    adopted = run("verify")
    assert adopted.code == 0 and adopted.err == "", adopted.err


def test_verify_warns_of_a_staged_file_a_stopped_remove_left(run, home, monkeypatch):
    assert run("build-repo-package", "--version", "1.0").code == 0
    assert run("build-repo-package", "--version", "1.1").code == 0
    clean = run("verify")  # staged files of stored versions, and the publisher's state
    assert clean.code == 0 and clean.err == "", clean.err

    from debrepo.objects.filesystem import FilesystemObjectStore

    delete = FilesystemObjectStore.delete

    def stopped_before_the_staged_copy(self: FilesystemObjectStore, key: str) -> None:
        if key.startswith("staging/kiro-repo/"):
            raise KeyboardInterrupt  # Ctrl-C (or a kill) after the publish, before this
        delete(self, key)

    monkeypatch.setattr(FilesystemObjectStore, "delete", stopped_before_the_staged_copy)
    assert run("remove", "kiro-repo", "1.0", "--yes").code == 130
    monkeypatch.setattr(FilesystemObjectStore, "delete", delete)
    assert (home / "staging/kiro-repo/kiro-repo_1.0_all.deb").is_file()
    warned = run("verify")
    assert warned.code == 0, warned.err  # a warning: nothing a client reads is wrong
    assert (
        f"1 staged file(s) in {home} that no stored version has: "
        "staging/kiro-repo/kiro-repo_1.0_all.deb (left by a `remove` stopped" in warned.err
    )
    assert "1.1" not in warned.err

    # An incomplete item is stored, if not published: its staged file is not a stray.
    connection = sqlite3.connect(home / "metadata.db")
    with connection:
        connection.execute(
            "INSERT INTO packages (package_id, package_name, version) "
            "VALUES ('kiro-repo#1:0.9', 'kiro-repo', '1:0.9')"
        )
    connection.close()
    (home / "staging/kiro-repo/kiro-repo_0.9_all.deb").write_bytes(b"an incomplete item's")
    again = run("verify")
    assert f"1 staged file(s) in {home} that no stored version has" in again.err, again.err
    assert "kiro-repo_0.9_all.deb" not in again.err


def test_verify_knows_a_staged_file_by_name_without_the_package_definitions(run, home, tmp_path):
    """verify run elsewhere (cron, a monitoring account) may not find config/packages."""
    custom = tmp_path / "project/config/packages"  # its templates are the project's
    shutil.copytree(CONFIG_DIR, custom)
    shutil.copytree(CONFIG_DIR.parent.parent / "templates", tmp_path / "project/templates")
    definition = custom / "kiro-repo.yaml"
    definition.write_text(
        definition.read_text().replace('"staging/kiro-repo/"', '"staging/builds/kiro-repo/"')
    )
    built = run("--home", str(home), "--config-dir", str(custom), "build-repo-package",
                "--version", "1.0", base=False)  # fmt: skip
    assert built.code == 0, built.err
    assert (home / "staging/builds/kiro-repo/kiro-repo_1.0_all.deb").is_file()
    (tmp_path / "none").mkdir()
    verified = run("--home", str(home), "--config-dir", str(tmp_path / "none"), "verify",
                   base=False)  # fmt: skip
    assert verified.code == 0 and verified.err == "", verified.err


def test_verify_takes_no_file_a_published_index_names_for_a_stray(run, debs, tmp_path):
    """Another home published over this one's repository: its files are not strays."""
    repo = (tmp_path / "shared").as_uri()
    mine = ("--home", str(tmp_path / "mine"), "--repo", repo)
    other = ("--home", str(tmp_path / "other"), "--repo", repo)
    assert run(*mine, "add", str(debs / "beta_2.0-1_all.deb")).code == 0
    key = ("--key-file", str(tmp_path / "mine/keys/signing-key.asc"))
    assert run(*other, *key, "add", "--no-publish", str(debs / "alpha_1.0_amd64.deb")).code == 0
    assert run(*other, *key, "rebuild", "--replace").code == 0
    verified = run(*mine, "verify")
    assert "alpha#1.0" in verified.err  # the index lists what this store lacks
    assert "no stored version names" not in verified.err, verified.err


def test_verify_with_an_unreadable_publisher_state_warns_instead(run, debs, home):
    assert run("add", str(debs)).code == 0
    assert run("key", "generate", "--next").code == 0
    (home / "staging/.state/publish-state.json").write_text('{"version": 2, "announced": [1]}')
    verified = run("verify")
    assert verified.code == 0, verified.err
    assert "the publisher state is unreadable" in verified.err
    assert "does not confirm as announced" in verified.err


def test_removing_a_synced_package_says_sync_will_not_fetch_it_again(run, debs, tmp_path):
    kiro = tmp_path / "kiro_1.0_amd64.deb"
    kiro.write_bytes(deb_bytes("kiro", "1.0"))
    assert run("add", str(kiro), str(debs / "alpha_1.0_amd64.deb")).code == 0
    synced = run("remove", "kiro", "1.0", "--yes")
    assert synced.code == 0, synced.err
    assert "`debrepo sync` will not fetch 1.0 again (`debrepo add` of its .deb takes it back)" in (
        synced.out
    )
    by_hand = run("remove", "alpha", "1.0", "--yes")  # no source: nothing to say
    assert by_hand.code == 0 and "debrepo sync" not in by_hand.out


def test_list_withdrawn_shows_what_was_removed_on_purpose(run, debs, tmp_path):
    assert run("add", str(debs)).code == 0
    assert run("list", "--withdrawn").out == ""
    assert run("remove", "beta", "2.0-1", "--yes").code == 0
    shown = run("list", "--withdrawn")
    assert shown.code == 0, shown.err
    name, version, word, when = shown.out.split()
    assert (name, version, word) == ("beta", "2.0-1", "removed") and when.startswith("20")
    assert json.loads(run("list", "--withdrawn", "--json").out) == [
        {"package_name": "beta", "version": "2.0-1", "withdrawn_at": when}
    ]
    assert run("list", "--withdrawn", "--package", "alpha").out == ""
    assert run("add", str(debs / "beta_2.0-1_all.deb")).code == 0  # wanted again
    assert run("list", "--withdrawn").out == ""


def test_remove_with_an_unusable_key_keeps_the_record(run, debs, home, tmp_path):
    run("add", str(debs))
    broken = tmp_path / "broken.asc"
    broken.write_text("not a key\n", encoding="utf-8")
    result = run("--key-file", str(broken), "remove", "alpha", "1.0", "--yes")
    assert result.code != 0
    assert str(broken) in result.error_line
    assert {i["package_id"] for i in json.loads(run("list", "--json").out)} == {
        "alpha#1.0",
        "beta#2.0-1",
    }
    assert run("verify").code == 0


def test_remove_whose_publish_fails_says_the_version_is_still_published(run, debs, home):
    run("add", str(debs))
    # The next Release cannot be written: a folder where its temporary file would go.
    release = home / "repo/dists/stable/Release"
    release.unlink()
    release.mkdir()
    result = run("remove", "alpha", "1.0", "--yes")
    assert result.code == 1
    assert result.error_line.endswith(
        "; alpha 1.0 was removed from the store but is still published: fix that, then run "
        "`debrepo rebuild`"
    )
    release.rmdir()
    assert run("rebuild").code == 0
    packages = (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: alpha\n" not in packages and "Package: beta\n" in packages


def test_add_interrupted_while_publishing_says_what_is_stored(run, debs, monkeypatch, caplog):
    def interrupted(self, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("debrepo.app.Workspace.publish", interrupted)
    result = run("add", str(debs))
    assert result.code == 130
    assert result.error_line == "debrepo: error: interrupted"
    assert "alpha 1.0, beta 2.0-1 stored but not published: run `debrepo rebuild`" in caplog.text


def interrupt_after_the_release(monkeypatch) -> None:
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("debrepo.services.publish.Publisher._update_convenience_copy", interrupted)


def test_add_interrupted_after_its_release_went_out_says_it_is_published(
    run, debs, home, monkeypatch, caplog
):
    with monkeypatch.context() as patched:
        interrupt_after_the_release(patched)
        result = run("add", str(debs))
    assert result.code == 130
    assert result.error_line == "debrepo: error: interrupted"
    assert "not published" not in caplog.text
    assert (
        "the new Release is published (clients see it), but the publish was interrupted "
        "before it finished: run `debrepo rebuild`" in caplog.text
    )
    assert run("verify").code == 0  # what clients see is whole
    packages = (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: alpha\n" in packages and "Package: beta\n" in packages


def test_remove_interrupted_after_its_release_went_out_says_it_is_published(
    run, debs, home, monkeypatch, caplog
):
    assert run("add", str(debs)).code == 0
    with monkeypatch.context() as patched:
        interrupt_after_the_release(patched)
        result = run("remove", "alpha", "1.0", "--yes")
    assert result.code == 130
    assert "still published" not in caplog.text
    assert "the new Release is published (clients see it)" in caplog.text
    packages = (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: alpha\n" not in packages


def test_remove_interrupted_while_publishing_says_it_is_still_published(
    run, debs, home, monkeypatch, caplog
):
    assert run("add", str(debs)).code == 0

    def interrupted(self, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr("debrepo.app.Workspace.publish", interrupted)
        result = run("remove", "alpha", "1.0", "--yes")
    assert result.code == 130
    assert result.error_line == "debrepo: error: interrupted"
    assert (
        "alpha 1.0 was removed from the store but is still published: run `debrepo rebuild`"
        in caplog.text
    )
    assert run("rebuild").code == 0
    packages = (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: alpha\n" not in packages


def test_add_whose_publish_fails_with_a_system_error_says_what_is_stored(run, debs, monkeypatch):
    def read_only(self, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", "/srv/apt/dists/stable/Release")

    monkeypatch.setattr("debrepo.app.Workspace.publish", read_only)
    result = run("add", str(debs))
    assert result.code == 1
    assert result.error_line == (
        "debrepo: error: /srv/apt/dists/stable/Release: Read-only file system; alpha 1.0, "
        "beta 2.0-1 stored but not published: fix that, then run `debrepo rebuild`"
    )


def test_a_new_repo_folder_is_not_published_without_its_pool_files(run, debs, home, tmp_path):
    run("add", str(debs))
    moved = tmp_path / "moved"
    result = run("--repo", moved.as_uri(), "rebuild")
    assert result.code == 1
    assert (
        "pool/main/a/alpha/alpha_1.0_amd64.deb is missing or holds other bytes" in result.error_line
    )
    assert not (moved / "dists").exists()  # no index naming files that are not there

    # With the pool copied over, the new folder is published, and apt's files are there.
    shutil.copytree(home / "repo/pool", moved / "pool")
    assert run("--repo", moved.as_uri(), "rebuild").code == 0
    assert run("--repo", moved.as_uri(), "verify").code == 0
    assert run("verify").code == 0  # the old folder is left as it was


def test_a_second_home_sharing_a_version_with_a_published_repo_does_not_drop_the_others(
    run, debs, tmp_path
):
    repo = tmp_path / "shared"
    first, second = tmp_path / "first", tmp_path / "second"
    alpha, beta = debs / "alpha_1.0_amd64.deb", debs / "beta_2.0-1_all.deb"
    assert (
        run("--home", str(first), "--repo", repo.as_uri(), "add", str(alpha), str(beta)).code == 0
    )
    key = str(first / "keys/signing-key.asc")
    result = run(
        "--home", str(second), "--repo", repo.as_uri(), "--key-file", key, "add", str(beta)
    )
    assert result.code == 1
    assert "it lists alpha 1.0, which the store" in result.error_line
    packages = (repo / "dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: alpha\n" in packages
    assert run("--home", str(first), "--repo", repo.as_uri(), "verify").code == 0


def test_a_second_home_on_a_published_repo_does_not_drop_its_packages(run, debs, tmp_path):
    repo = tmp_path / "shared"
    first, second = tmp_path / "first", tmp_path / "second"
    alpha, beta = debs / "alpha_1.0_amd64.deb", debs / "beta_2.0-1_all.deb"
    assert run("--home", str(first), "--repo", repo.as_uri(), "add", str(alpha)).code == 0
    key = str(first / "keys/signing-key.asc")
    result = run(
        "--home", str(second), "--repo", repo.as_uri(), "--key-file", key, "add", str(beta)
    )
    assert result.code == 1
    assert f"{repo} holds a repository this store did not publish: it lists alpha 1.0" in (
        result.error_line
    )
    assert "Check --home and --store" in result.error_line
    packages = (repo / "dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: alpha\n" in packages and "Package: beta\n" not in packages
    assert run("--home", str(first), "--repo", repo.as_uri(), "verify").code == 0

    assert "nothing was added" in result.error_line
    # Replacing it is a decision the operator states.
    replace = ("--home", str(second), "--repo", repo.as_uri(), "--key-file", key)
    assert run(*replace, "add", "--no-publish", str(beta)).code == 0
    assert run(*replace, "rebuild", "--full").code == 1  # thorough, but not a decision
    assert run(*replace, "rebuild", "--replace").code == 0
    packages = (repo / "dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: alpha\n" not in packages and "Package: beta\n" in packages


FOREIGN_COMPRESSIONS = {
    ".xz": lzma.compress,
    ".bz2": bz2.compress,
    ".lzma": lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE),
    ".zst": lambda data: zstandard.ZstdCompressor().compress(data),
}


@pytest.mark.parametrize("suffix", FOREIGN_COMPRESSIONS)
def test_a_foreign_repo_publishing_only_compressed_indices_is_read_as_any_tool_writes_them(
    run, debs, tmp_path, suffix
):
    """Another tool's index: only one compressed Packages (any compression apt reads),
    fields in another order and case. Its versions still count; one that cannot be read
    is refused, not taken for empty."""
    repo = tmp_path / "shared"
    first, second = tmp_path / "first", tmp_path / "second"
    alpha, beta = debs / "alpha_1.0_amd64.deb", debs / "beta_2.0-1_all.deb"
    assert run("--home", str(first), "--repo", repo.as_uri(), "add", str(alpha)).code == 0
    binary = repo / "dists/stable/main/binary-amd64"
    stanza = (binary / "Packages").read_text().strip("\n").split("\n")
    version = next(line for line in stanza if line.startswith("Version:"))
    reordered = [version.replace("Version:", "version:"), *(x for x in stanza if x != version)]
    for name in ("Packages", "Packages.gz", "Packages.xz"):
        (binary / name).unlink()
    index = binary / f"Packages{suffix}"
    packed = FOREIGN_COMPRESSIONS[suffix]("\n".join(reordered).encode() + b"\n")
    index.write_bytes(packed)
    key = str(first / "keys/signing-key.asc")
    second_home = ("--home", str(second), "--repo", repo.as_uri(), "--key-file", key)

    result = run(*second_home, "add", str(beta))
    assert result.code == 1
    assert "it lists alpha 1.0, which the store" in result.error_line

    index.write_bytes(packed[: len(packed) // 2])
    unreadable = run(*second_home, "rebuild")
    assert unreadable.code == 1
    assert f"dists/stable/main/binary-amd64/Packages{suffix} cannot be read" in (
        unreadable.error_line
    )
    assert "rebuild --replace" in unreadable.error_line
    assert index.read_bytes() == packed[: len(packed) // 2]


def test_a_second_home_on_a_published_repo_keeps_its_key_and_origin(run, debs, tmp_path):
    """No record of the last publish there: what clients hold is read from the tree."""
    repo = tmp_path / "shared"
    alpha = debs / "alpha_1.0_amd64.deb"
    first = ("--home", str(tmp_path / "first"), "--repo", repo.as_uri())
    assert run(*first, "add", str(alpha)).code == 0
    keyring = (repo / "kiro-archive-keyring.gpg").read_bytes()
    second = ("--home", str(tmp_path / "second"), "--repo", repo.as_uri())
    assert run(*second, "key", "generate").code == 0  # a key of its own

    other_key = run(*second, "add", str(alpha))  # the same versions: only the key differs
    assert other_key.code == 1
    assert "is not the key" in other_key.error_line and "NO_PUBKEY" in other_key.error_line
    assert (repo / "kiro-archive-keyring.gpg").read_bytes() == keyring
    assert run(*second, "add", "--no-publish", str(alpha)).code == 0

    key = ("--key-file", str(tmp_path / "first/keys/signing-key.asc"))
    other_origin = run(*second, *key, "--origin", "Elsewhere", "rebuild")
    assert other_origin.code == 1
    assert "Origin 'Kiro' would become 'Elsewhere'" in other_origin.error_line
    assert run(*second, *key, "rebuild").code == 0  # the same key and settings: fine


def test_a_moved_home_publishes_a_removal_it_made_before_the_move(run, debs, tmp_path):
    """The store records the removal: dropping that version is meant, whoever asks."""
    repo = (tmp_path / "srv").as_uri()
    before, after = tmp_path / "before", tmp_path / "after"
    assert run("--home", str(before), "--repo", repo, "add", str(debs)).code == 0
    removed = run("--home", str(before), "--repo", repo, "remove", "alpha", "1.0", "--yes",
                  "--no-publish")  # fmt: skip
    assert removed.code == 0
    before.rename(after)  # the store's path, and so its identity, changes

    moved = run("--home", str(after), "--repo", repo, "rebuild")
    assert moved.code == 0, moved.err
    packages = (tmp_path / "srv/dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: alpha\n" not in packages and "Package: beta\n" in packages


def test_another_store_on_the_same_home_does_not_drop_what_it_lacks(run, debs, home, tmp_path):
    alpha, beta = debs / "alpha_1.0_amd64.deb", debs / "beta_2.0-1_all.deb"
    assert run("add", str(alpha)).code == 0
    packages = home / "repo/dists/stable/main/binary-amd64/Packages"
    published = packages.read_bytes()
    own = f"sqlite://{home / 'metadata.db'}"
    # Another home's store, holding only beta (as a wrong DynamoDB table would be).
    other_db = tmp_path / "elsewhere/metadata.db"
    elsewhere = ("--home", str(other_db.parent), "--repo", (home / "repo").as_uri())
    assert run(*elsewhere, "add", "--no-publish", str(beta)).code == 0
    other = ("--store", f"sqlite://{other_db}")
    result = run(*other, "rebuild")
    assert result.code == 1
    assert (
        f"{home / 'repo'} was last published from the store {own}: it lists alpha 1.0, "
        f"which the store sqlite://{other_db} does not hold"
    ) in result.error_line
    assert packages.read_bytes() == published
    assert run("verify").code == 0

    # Publishing from the other store is a decision the operator states; then the
    # first one is the other store in turn.
    assert run(*other, "rebuild", "--replace").code == 0
    assert "Package: alpha\n" not in packages.read_text()
    back = run("rebuild")
    assert back.code == 1
    assert f"was last published from the store sqlite://{other_db}" in back.error_line
    assert run(*other, "rebuild").code == 0  # its own store publishes as usual


def test_remove_unknown_version(run, debs):
    run("add", str(debs))
    result = run("remove", "alpha", "9.9", "--yes")
    assert result.code == 1
    assert "alpha 9.9 is not in the store" in result.error_line
    assert "rebuild" not in result.error_line


def test_removing_again_a_version_whose_removal_is_unpublished_says_to_rebuild(run, debs):
    run("add", str(debs))
    assert run("remove", "alpha", "1.0", "--yes", "--no-publish").code == 0
    result = run("remove", "alpha", "1.0", "--yes")
    assert result.code == 1
    assert result.error_line.endswith(
        "; the store holds changes no publish has included yet: `debrepo rebuild` publishes them"
    )


def test_a_recreated_store_is_published_in_full(run, debs, home):
    # Starting over on purpose: the store and the publisher state deleted. The new store
    # has counted as many changes as the old one had when it was published; a plain
    # counter matched, and only the Release was re-signed.
    assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    for path in [*home.glob("metadata.db*"), home / "staging/.state/publish-state.json"]:
        path.unlink()
    result = run("add", str(debs / "beta_2.0-1_all.deb"))
    # Dropping alpha, which nobody removed, is a decision to state.
    assert result.code == 1
    assert "publishing would drop alpha 1.0 from every client" in result.error_line
    assert run("add", "--no-publish", str(debs / "beta_2.0-1_all.deb")).code == 0
    result = run("rebuild", "--replace")
    assert result.code == 0, result.err
    assert "1 package(s) published" in result.out
    packages = (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    assert "Package: beta\n" in packages
    assert "Package: alpha\n" not in packages
    verified = run("verify")
    assert verified.code == 0, verified.err


def test_a_store_restored_from_an_older_backup_does_not_drop_what_it_lacks(
    run, debs, home, tmp_path
):
    alpha, beta = debs / "alpha_1.0_amd64.deb", debs / "beta_2.0-1_all.deb"
    assert run("add", str(alpha)).code == 0
    backup = tmp_path / "backup.db"
    with sqlite3.connect(home / "metadata.db") as live, sqlite3.connect(backup) as copy:
        live.backup(copy)  # before beta
    assert run("add", str(beta)).code == 0
    packages = home / "repo/dists/stable/main/binary-amd64/Packages"
    published = packages.read_bytes()
    with sqlite3.connect(backup) as copy, sqlite3.connect(home / "metadata.db") as live:
        copy.backup(live)  # restored in place, as `sqlite3 metadata.db ".restore ..."` does

    refused = run("rebuild")
    assert refused.code == 1
    assert "publishing would drop beta 2.0-1 from every client" in refused.error_line
    assert "nobody removed them" in refused.error_line
    assert packages.read_bytes() == published
    # Added back from the very file: published as before, nothing lost.
    assert run("add", str(beta)).code == 0
    assert "Package: beta\n" in packages.read_text()
    assert run("verify").code == 0


def test_remove_refused_for_another_lost_version_keeps_its_own(run, debs, home):
    assert run("add", str(debs)).code == 0
    with sqlite3.connect(home / "metadata.db") as live:  # beta's record deleted by hand
        live.execute("DELETE FROM packages WHERE package_id = 'beta#2.0-1'")
    packages = home / "repo/dists/stable/main/binary-amd64/Packages"
    published = packages.read_bytes()

    refused = run("remove", "alpha", "1.0", "--yes")
    assert refused.code == 1
    assert "publishing would drop beta 2.0-1 from every client" in refused.error_line
    assert refused.error_line.endswith(
        "; nothing was removed: alpha 1.0 is still stored and published"
    )
    assert [i["package_id"] for i in json.loads(run("list", "--json").out)] == ["alpha#1.0"]
    assert packages.read_bytes() == published
    # Once beta is back, the removal goes through.
    assert run("add", str(debs / "beta_2.0-1_all.deb")).code == 0
    assert run("remove", "alpha", "1.0", "--yes").code == 0
    assert "Package: alpha\n" not in packages.read_text()
    assert run("verify").code == 0


@pytest.fixture
def readable_only(tmp_path: Path):
    """A home, and a context in which this process may read it but not write it: as
    the user nobody when run as root (who may write anything), else by its modes."""
    shared = Path(tempfile.mkdtemp(prefix="debrepo-home-"))  # a folder others may enter
    shared.chmod(0o755)
    home = shared / "home"

    @contextlib.contextmanager
    def reading() -> Iterator[None]:
        for path in [home, *home.rglob("*")]:
            if "keys" not in path.relative_to(home).parts:  # the secret key stays private
                path.chmod(0o755 if path.is_dir() else 0o644)
        if os.geteuid() == 0:
            os.chdir(shared)  # the test's own folder is root's alone
            os.seteuid(65534)
            try:
                yield
            finally:
                os.seteuid(0)
        else:
            folders = [home, *(p for p in home.rglob("*") if p.is_dir())]
            for folder in folders:
                folder.chmod(0o555)
            try:
                yield
            finally:
                for folder in folders:
                    folder.chmod(0o755)

    yield home, reading
    shutil.rmtree(shared)


def test_a_home_this_user_may_only_read_can_be_listed_and_verified(run, debs, readable_only):
    home, reading = readable_only
    at = ["--home", str(home), "--config-dir", str(CONFIG_DIR)]
    assert run(*at, "add", str(debs), base=False).code == 0
    store = home / "metadata.db"
    # Once as the owner, so that the modules they import are loaded (another user may
    # not read the interpreter's own folder).
    reads = [("list", "--json"), ("list", "--withdrawn"), ("show", "beta"), ("verify",)]
    assert [run(*at, *args, base=False).code for args in reads] == [0, 0, 0, 0]
    assert run(*at, "remove", "gamma", "1", "--yes", base=False).code == 1
    gc.collect()  # their stores closed, as at the end of a process
    assert not store.with_name("metadata.db-shm").exists()
    before = store.read_bytes()
    another_user = os.geteuid() == 0  # else the owner, with write access taken away
    with reading():
        listed = run(*at, "list", "--json", base=False)
        assert listed.code == 0, listed.err
        assert {i["package_id"] for i in json.loads(listed.out)} == {"alpha#1.0", "beta#2.0-1"}
        assert run(*at, "list", "--withdrawn", base=False).code == 0
        assert "Package: beta" in run(*at, "show", "beta", base=False).out
        verified = run(*at, "verify", base=False)
        assert verified.code == 0, verified.err
        if another_user:  # a warning: the key stays private to its owner
            assert "this user cannot read" in verified.err
        refused = run(*at, "remove", "alpha", "1.0", "--yes", "--no-publish", base=False)
        assert refused.code != 0
        assert str(home) in refused.error_line
    assert store.read_bytes() == before
    assert not store.with_name("metadata.db-shm").exists()
    assert {i["package_id"] for i in json.loads(run(*at, "list", "--json", base=False).out)} == {
        "alpha#1.0",
        "beta#2.0-1",
    }


@pytest.mark.parametrize(
    ("command", "outcome", "locked"),
    [
        (("remove", "alpha", "1.0", "--yes"), "nothing was removed", "."),
        (("add", "gamma_3.0_all.deb"), "nothing was added", "."),
        (("add", "gamma_3.0_all.deb"), "nothing was added", "main/binary-amd64/by-hash/SHA256"),
    ],
)
def test_a_change_whose_publish_could_not_write_changes_nothing(
    run, debs, command, outcome, locked
):
    """A repository folder this user may not write (read-only, another owner's: left by
    a run as root, say): refused before the store changes, not after with the store and
    the repository apart."""
    shared = Path(tempfile.mkdtemp(prefix="debrepo-home-"))
    try:
        home = shared / "home"
        at = ["--home", str(home), "--config-dir", str(CONFIG_DIR)]
        assert run(*at, "add", str(debs), base=False).code == 0
        (shared / "gamma_3.0_all.deb").write_bytes(deb_bytes("gamma", "3.0", "all"))
        gc.collect()  # its store closed, as at the end of a process
        suite = home / "repo/dists/stable"
        folder = (suite / locked).resolve()
        as_root = os.geteuid() == 0
        for path in [shared, *shared.rglob("*")]:  # all this user's but that folder
            if as_root:  # who runs below is nobody
                os.chown(path, 65534, 65534, follow_symlinks=False)
        folder.chmod(0o755 if as_root else 0o555)
        if as_root:
            os.chown(folder, 0, 0)  # left by a run as root
        store, release = home / "metadata.db", (suite / "InRelease").read_bytes()
        before = store.read_bytes()
        os.chdir(shared)
        if as_root:
            os.seteuid(65534)  # root may write anything
        try:
            refused = run(*at, *command, base=False)
        finally:
            if as_root:
                os.seteuid(0)
            folder.chmod(0o755)
        assert refused.code == 1, refused.err
        assert refused.error_line == (
            f"debrepo: error: {folder}: cannot write there (read-only, or not permitted); {outcome}"
        )
        gc.collect()
        assert store.read_bytes() == before and (suite / "InRelease").read_bytes() == release
        assert not list((home / "repo/pool").rglob("gamma*"))
    finally:
        shutil.rmtree(shared)


KILLED_WRITER = """
import os, sys
from pathlib import Path
from debrepo.store.sqlite import SqliteMetadataStore

store = SqliteMetadataStore(Path(sys.argv[1]))
store.withdraw("gamma#1", "2026-11-24T12:00:00+00:00")
os._exit(0)  # killed before folding its write-ahead log into the database
"""


def test_a_reader_that_cannot_see_a_left_over_write_ahead_log_says_so(
    run, debs, readable_only, caplog
):
    home, reading = readable_only
    at = ["--home", str(home), "--config-dir", str(CONFIG_DIR)]
    assert run(*at, "add", str(debs), base=False).code == 0
    gc.collect()
    store = home / "metadata.db"
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(store)], check=True)
    wal = store.with_name("metadata.db-wal")
    assert wal.stat().st_size > 0
    store.with_name("metadata.db-shm").unlink()  # as a reboot leaves a shared-memory file
    with reading():
        listed = run(*at, "list", "--withdrawn", base=False)
    assert listed.code == 0, listed.err
    assert "gamma" not in listed.out  # the withdrawal is in the log, unread
    assert f"{wal} holds changes this user cannot read without write access" in caplog.text
    assert "gamma  1  removed" in run(*at, "list", "--withdrawn", base=False).out  # the owner


def test_another_programs_sqlite_database_is_not_taken_for_a_store(run, debs, tmp_path):
    other = tmp_path / "customers.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE customers (name TEXT)")
    connection.close()
    before = other.read_bytes()
    for command in (["list"], ["rebuild"], ["add", str(debs)]):
        result = run("--store", f"sqlite://{other}", *command)
        assert result.code == 1, result.err
        assert f"{other}: not a debrepo metadata store" in result.error_line
        assert "customers" in result.error_line
    assert other.read_bytes() == before
    assert not other.with_name("customers.db-wal").exists()


def test_a_store_whose_package_table_was_dropped_is_not_published_as_empty(run, debs, home):
    assert run("add", str(debs)).code == 0
    with sqlite3.connect(home / "metadata.db") as connection:
        connection.execute("DROP TABLE packages")
    connection.close()
    packages = home / "repo/dists/stable/main/binary-amd64/Packages"
    published = packages.read_bytes()
    for command in (["rebuild"], ["list"], ["verify"]):
        result = run(*command)
        assert result.code == 1, result.err
        assert "its packages table is missing" in result.error_line
    assert packages.read_bytes() == published


@pytest.mark.parametrize(
    "args",
    [("show", "\udcff"), ("list", "--package", "\udcff"), ("remove", "alpha", "1.\udcff", "--yes")],
    ids=["show", "list", "remove"],
)
def test_a_name_that_is_not_utf8_is_a_usage_error(run, debs, args):
    # What Python makes of a byte that is not UTF-8 on the command line (\xff).
    assert run("add", str(debs)).code == 0
    result = run(*args)
    assert result.code == 2
    assert "\\xff' is not UTF-8 text" in result.err
    assert "Traceback" not in result.err
    assert len(json.loads(run("list", "--json").out)) == 2


def test_a_broken_link_in_a_folder_is_said_not_skipped(run, debs, home):
    (debs / "gamma_1.0_amd64.deb").symlink_to(debs / "moved-away.deb")
    result = run("add", str(debs))
    assert result.code == 1
    assert f"{debs / 'gamma_1.0_amd64.deb'}: a broken symbolic link" in result.error_line
    assert not (home / "metadata.db").exists()
    (debs / "gamma_1.0_amd64.deb").unlink()
    os.mkfifo(debs / "delta_1.0_amd64.deb")  # would block a reader for ever
    result = run("add", str(debs))
    assert result.code == 1
    assert f"{debs / 'delta_1.0_amd64.deb'}: not a regular file" in result.error_line


def test_an_add_refused_by_a_safety_check_adds_nothing(run, debs, home, tmp_path):
    alpha, beta = debs / "alpha_1.0_amd64.deb", debs / "beta_2.0-1_all.deb"
    assert run("add", str(alpha)).code == 0
    tree = {p: p.read_bytes() for p in (home / "repo").rglob("*") if p.is_file()}
    # Settings that differ from the published Release (a settings file not read).
    refused = run("--origin", "Other", "add", str(beta))
    assert refused.code == 1
    assert "the settings differ from the published Release" in refused.error_line
    assert "; nothing was added (`--no-publish` stores them" in refused.error_line
    assert [i["package_id"] for i in json.loads(run("list", "--json").out)] == ["alpha#1.0"]
    assert {p: p.read_bytes() for p in (home / "repo").rglob("*") if p.is_file()} == tree
    # A mistyped --home next to the right --repo: its new store keeps nothing either.
    typo = tmp_path / "hoem"
    key = home / "keys" / "signing-key.asc"
    other = ["--home", str(typo), "--repo", f"file://{home / 'repo'}", "--key-file", str(key)]
    refused = run(*other, "add", str(beta), base=False)
    assert refused.code == 1
    assert "nothing was added" in refused.error_line
    assert json.loads(run(*other, "list", "--json", base=False).out) == []
    assert {p: p.read_bytes() for p in (home / "repo").rglob("*") if p.is_file()} == {
        **tree,
        # Whether the real repository's publisher still needs it is unknown from there.
        home / "repo/pool/main/b/beta/beta_2.0-1_all.deb": beta.read_bytes(),
    }
    assert run("add", str(beta)).code == 0
    assert run("verify").code == 0


@pytest.mark.parametrize("name", ["two\nlines.deb", "\x1b[31mred.deb"], ids=["newline", "escape"])
def test_a_hostile_file_name_is_shown_escaped_on_one_line(run, tmp_path, name):
    hostile = tmp_path / name
    hostile.write_bytes(b"not a package")
    result = run("add", str(hostile))
    assert result.code == 1
    shown = repr(str(hostile))[1:-1]  # \n and \x1b as escapes
    assert result.error_line.startswith(f"debrepo: error: {shown}: ")


def test_verbose_names_the_files_a_publish_wrote(run, debs, home):
    added = run("-v", "add", str(debs / "alpha_1.0_amd64.deb"))
    assert added.code == 0, added.err
    lines = added.out.splitlines()
    assert "  added pool/main/a/alpha/alpha_1.0_amd64.deb" in lines
    assert "  wrote dists/stable/InRelease" in lines
    written = {line.removeprefix("  wrote ") for line in lines if line.startswith("  wrote ")}
    assert all((home / "repo" / key).is_file() for key in written)
    assert not any(line.startswith("  ") for line in run("add", str(debs)).out.splitlines())


def test_a_removed_version_added_back_is_no_longer_withdrawn_unless_the_add_is_refused(
    run, debs, home
):
    beta = debs / "beta_2.0-1_all.deb"
    assert run("add", str(debs)).code == 0
    assert run("remove", "beta", "2.0-1", "--yes").code == 0
    refused = run("--origin", "Other", "add", str(beta))
    assert refused.code == 1 and "nothing was added" in refused.error_line
    assert "beta" in run("list", "--withdrawn").out  # still removed on purpose
    assert run("add", str(beta)).code == 0
    assert run("list", "--withdrawn").out == ""
    # Its record lost later (deleted by hand, the publisher state lost too): a loss, not
    # a removal, so it is not dropped silently.
    with sqlite3.connect(home / "metadata.db") as connection:
        connection.execute("DELETE FROM packages WHERE package_id = 'beta#2.0-1'")
    connection.close()
    shutil.rmtree(home / "staging/.state")
    lost = run("rebuild")
    assert lost.code == 1
    assert "beta 2.0-1" in lost.error_line and "nothing was published" in lost.error_line
    assert "Package: beta\n" in (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()


def test_a_refused_remove_of_a_version_never_published_keeps_its_file(run, debs, home):
    assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    assert run("add", "--no-publish", str(debs / "beta_2.0-1_all.deb")).code == 0
    pool_file = home / "repo/pool/main/b/beta/beta_2.0-1_all.deb"
    refused = run("--origin", "Other", "remove", "beta", "2.0-1", "--yes")
    assert refused.code == 1
    assert refused.error_line.endswith("; nothing was removed: beta 2.0-1 is still stored")
    assert pool_file.is_file()
    assert run("list", "--withdrawn").out == ""
    assert run("rebuild").code == 0
    assert run("verify").code == 0
    # Removed for good: its file, which no index ever named, goes with it.
    (debs / "gamma_3.0_amd64.deb").write_bytes(deb_bytes("gamma", "3.0"))
    assert run("add", "--no-publish", str(debs / "gamma_3.0_amd64.deb")).code == 0
    gamma = home / "repo/pool/main/g/gamma/gamma_3.0_amd64.deb"
    assert gamma.is_file()
    assert run("remove", "gamma", "3.0", "--yes").code == 0
    assert not gamma.exists()


def test_an_add_never_overwrites_a_published_file_it_cannot_account_for(run, debs, tmp_path):
    repo = tmp_path / "shared"
    first = ("--home", str(tmp_path / "first"), "--repo", repo.as_uri())
    assert run(*first, "add", str(debs)).code == 0
    pool_file = repo / "pool/main/a/alpha/alpha_1.0_amd64.deb"
    published = pool_file.read_bytes()
    other = tmp_path / "other" / "alpha_1.0_amd64.deb"  # the same version, other bytes
    other.parent.mkdir()
    other.write_bytes(deb_bytes("alpha", "1.0", extra_fields=[("X-Build", "other")]))
    key = str(tmp_path / "first/keys/signing-key.asc")
    typo = ("--home", str(tmp_path / "typo"), "--repo", repo.as_uri(), "--key-file", key)
    refused = run(*typo, "add", str(other), base=False)
    assert refused.code == 1
    assert "pool/main/a/alpha/alpha_1.0_amd64.deb already holds other bytes" in refused.error_line
    assert pool_file.read_bytes() == published
    # The first home's own store lost the record: re-adding other bytes is refused too,
    # the very file is taken back.
    with sqlite3.connect(tmp_path / "first/metadata.db") as connection:
        connection.execute("DELETE FROM packages WHERE package_id = 'alpha#1.0'")
    connection.close()
    assert "already holds other bytes" in run(*first, "add", str(other)).error_line
    assert pool_file.read_bytes() == published
    assert run(*first, "add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    assert run(*first, "verify").code == 0


def test_verify(run, debs, home):
    run("add", str(debs))
    result = run("verify")
    assert result.code == 0, result.err
    assert result.out.startswith("OK: 2 package(s)")
    as_json = json.loads(run("verify", "--json").out)
    assert as_json["ok"] is True
    assert as_json["problems"] == []

    (home / "repo/pool/main/a/alpha/alpha_1.0_amd64.deb").unlink()
    failed = run("verify", "--quick")
    assert failed.code == 1
    assert failed.out.startswith("FAILED")
    assert "problem: pool/main/a/alpha/alpha_1.0_amd64.deb (alpha#1.0) is missing" in failed.err
    failed_json = run("verify", "--json")
    assert failed_json.code == 1
    assert json.loads(failed_json.out)["ok"] is False


def test_verify_prints_store_warnings(run, debs, home):
    run("add", str(debs))
    connection = sqlite3.connect(home / "metadata.db")
    with connection:
        connection.execute(
            "INSERT INTO packages (package_id, package_name, version) VALUES ('old#1', 'old', '1')"
        )
    connection.close()
    result = run("verify")
    assert result.code == 0
    assert "debrepo: warning: store item old#1 is incomplete" in result.err


def test_key_generate_export_show(run, tmp_path, home):
    generated = run("key", "generate")
    assert generated.code == 0, generated.err
    assert "generated signing key" in generated.out
    # Nothing published yet: nothing to rebuild (and `rebuild` would refuse a new home).
    assert generated.out.splitlines()[1] == (
        "the first `debrepo add` or `build-repo-package` publishes with it"
    )
    assert not (home / "metadata.db").exists()
    key_file = home / "keys" / "signing-key.asc"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    again = run("key", "generate")
    assert again.code == 2
    assert "a signing key already exists; pass --force" in again.error_line
    old = key_file.read_bytes()
    assert run("key", "generate", "--force").code == 0
    assert key_file.read_bytes() != old
    [kept] = (home / "keys").glob("signing-key.asc.replaced-*")  # never the only copy lost
    assert kept.read_bytes() == old
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    second = key_file.read_bytes()
    assert run("key", "generate", "--force").code == 0  # within the same second, likely
    copies = sorted((home / "keys").glob("signing-key.asc.replaced-*"))
    assert sorted(c.read_bytes() for c in copies) == sorted([old, second])
    assert all(oct(c.stat().st_mode & 0o777) == "0o600" for c in copies)

    shown = run("key", "show")
    fingerprint, path = shown.out.split()
    assert len(fingerprint) == 40 and fingerprint == fingerprint.upper()
    assert path == str(key_file)

    armored = run("key", "export")
    assert armored.out.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    binary = tmp_path / "key.gpg"
    assert run("key", "export", "--binary", "--output", str(binary)).code == 0
    assert binary.read_bytes()[:1] != b"-"
    assert sq.Cert.from_bytes(binary.read_bytes()).fingerprint.upper() == fingerprint


def test_key_generate_ignores_files_left_where_a_temporary_copy_once_went(run, tmp_path, home):
    """A leftover of a crashed run (or a planted file) at a predictable temporary name
    must give the new secret key neither its mode nor, as a symlink, its destination."""
    keys = home / "keys"
    keys.mkdir(parents=True, mode=0o700)
    key = keys / "signing-key.asc"
    leftover = keys / ".tmp-signing-key.asc"
    leftover.write_bytes(b"old")
    leftover.chmod(0o644)
    assert run("key", "generate").code == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert key.read_bytes().startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert leftover.read_bytes() == b"old"  # not ours to delete, not used either

    leftover.unlink()
    elsewhere = tmp_path / "elsewhere.asc"
    elsewhere.write_bytes(b"untouched")
    leftover.symlink_to(elsewhere)
    first = key.read_bytes()
    assert run("key", "generate", "--force").code == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert key.read_bytes() not in (first, b"untouched")
    assert elsewhere.read_bytes() == b"untouched"
    # Nothing else left behind: the key, the copy of the one replaced, the symlink.
    assert len(list(keys.iterdir())) == 3


def test_a_home_every_user_may_write_is_not_published_from(run, debs, home, tmp_path):
    """Anyone could swap its store or key: refused before anything is stored. Sticky
    (as /tmp) or not: there anyone may create the store's name before debrepo does."""
    assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    release = (home / "repo/dists/stable/InRelease").read_bytes()
    for mode in (0o777, 0o1777):
        home.chmod(mode)
        refused = run("add", str(debs / "beta_2.0-1_all.deb"))
        assert refused.code == 2
        assert refused.error_line == (
            f"debrepo: error: {home} may be written by every user (mode {mode:04o}): another "
            "user could have replaced the store or the signing key kept there, so nothing is "
            "published from it. Use a home of your own (--home, DEBREPO_HOME), or chmod o-w it"
        )
    assert [r["package_id"] for r in json.loads(run("list", "--json").out)] == ["alpha#1.0"]
    assert (home / "repo/dists/stable/InRelease").read_bytes() == release
    home.chmod(0o755)
    assert run("add", str(debs / "beta_2.0-1_all.deb")).code == 0
    # A new home in such a folder is fine; the folder itself as the home is not, and no
    # key is made there first.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    assert run("--home", str(shared / "mine"), "key", "generate").code == 0
    refused = run("--home", str(shared), "add", str(debs / "beta_2.0-1_all.deb"))
    assert refused.code == 2
    assert f"{shared} may be written by every user (mode 1777)" in refused.error_line
    assert sorted(p.name for p in shared.iterdir()) == ["mine"]


def test_no_key_is_made_in_a_home_another_user_made(run, debs, home):
    """A `.debrepo` someone else made in a shared folder (as root: nobody's; as another
    user, who cannot give a folder away: one every user may write)."""
    home.mkdir()
    if os.geteuid() == 0:
        os.chown(home, 65534, 65534)
        why = f"{home} belongs to another user (uid 65534; this is uid 0)"
    else:
        home.chmod(0o777)
        why = f"{home} may be written by every user (mode 0777)"
    for command in (("key", "generate"), ("add", str(debs / "alpha_1.0_amd64.deb"))):
        refused = run(*command)
        assert refused.code == 2, command
        assert refused.error_line.startswith(
            f"debrepo: error: {why}: another user could have replaced the store or the "
            "signing key kept there, so nothing is published from it."
        ), command
    assert sorted(home.iterdir()) == []


def test_owners_named_as_trusted_may_hold_the_home(run, debs, home, monkeypatch):
    """A container's workspace mounted from the host, a shared account: trusted by name
    (DEBREPO_TRUSTED_OWNERS, as git's safe.directory), never a home open to all."""
    home.mkdir()
    owner = 65534 if os.geteuid() == 0 else os.geteuid()
    if os.geteuid() == 0:
        os.chown(home, owner, owner)
        refused = run("add", str(debs / "alpha_1.0_amd64.deb"))
        assert refused.code == 2
        assert refused.error_line.endswith(
            "make it yours (chown), or if uid 65534 is trusted (a container's mounted "
            "workspace, a shared account) set DEBREPO_TRUSTED_OWNERS=65534"
        )
    for trusted in (str(owner), pwd.getpwuid(owner).pw_name, "*"):
        monkeypatch.setenv("DEBREPO_TRUSTED_OWNERS", f"4242, {trusted}")
        assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0, trusted  # the lock
    home.chmod(0o777)
    assert run("rebuild").code == 2  # trusting owners trusts nobody else
    home.chmod(0o755)
    monkeypatch.setenv("DEBREPO_TRUSTED_OWNERS", "no-such-user-here")
    unknown = run("rebuild")
    assert unknown.code == 2
    assert unknown.error_line == (
        "debrepo: error: environment variable DEBREPO_TRUSTED_OWNERS: no user "
        "'no-such-user-here' here"
    )


def test_under_sudo_the_home_of_the_user_who_ran_it_is_trusted(run, debs, home, monkeypatch):
    """As git trusts SUDO_UID: `sudo debrepo ...` in one's own home is one's own doing;
    another user's home stays refused, and so does one every user may write."""
    home.mkdir()
    monkeypatch.setenv("SUDO_UID", "65534")
    if os.geteuid() == 0:
        os.chown(home, 65534, 65534)
        assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
        monkeypatch.setenv("SUDO_UID", "4242")
        refused = run("add", str(debs / "beta_2.0-1_all.deb"))
        assert refused.code == 2
        assert f"{home} belongs to another user (uid 65534; this is uid 0)" in refused.err
    else:  # SUDO_UID counts only for root, and a user's own home needs no trust
        assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    monkeypatch.setenv("SUDO_UID", str(home.stat().st_uid))
    home.chmod(0o777)
    refused = run("add", str(debs / "beta_2.0-1_all.deb"))
    assert refused.code == 2
    assert f"{home} may be written by every user (mode 0777)" in refused.err


def test_a_key_others_could_have_chosen_does_not_sign_but_is_shown_and_compared(
    run, debs, tmp_path, home
):
    assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    key = home / "keys/signing-key.asc"
    key.chmod(0o666)
    refused = run("add", str(debs / "beta_2.0-1_all.deb"))
    assert refused.code == 2
    assert refused.error_line == (
        f"debrepo: error: {key} may be written by every user (mode 0666): another user could "
        "have chosen the key the repository is signed with, so it does not sign. Use a key "
        "of your own (--key-file), or chmod o-w it"
    )
    assert [r["package_id"] for r in json.loads(run("list", "--json").out)] == ["alpha#1.0"]
    # Reading it signs nothing: a monitoring user (or root) may show and compare it.
    assert run("key", "show").code == 0
    assert run("key", "export").out.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert run("verify").code == 0
    key.chmod(0o600)
    assert run("add", str(debs / "beta_2.0-1_all.deb")).code == 0

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may rename a key file there and put theirs instead
    elsewhere = ("--key-file", str(shared / "k.asc"))
    refused = run(*elsewhere, "key", "generate")
    assert refused.code == 2
    assert f"{shared} may be written by every user (mode 0777)" in refused.error_line
    assert list(shared.iterdir()) == []
    shared.chmod(0o1777)  # sticky, as /tmp: only a file's owner may rename or delete it
    assert run(*elsewhere, "key", "generate").code == 0
    assert run(*elsewhere, "key", "show").code == 0


def test_a_umask_that_takes_nothing_away_gives_other_users_nothing(run, debs, home):
    """A service manager's umask 000: no folder of the home others may write."""
    previous = os.umask(0)
    try:
        assert run("add", str(debs)).code == 0
        assert run("rebuild", "--full").code == 0  # not taken for a home others control
    finally:
        os.umask(previous)
    modes = {
        str(p.relative_to(home.parent)): stat.S_IMODE(p.stat().st_mode)
        for p in [home, *home.rglob("*")]
        if p.is_dir() or p.name in ("metadata.db", "signing-key.asc", "publish.lock")
    }
    assert modes.pop("home/keys") == 0o700 and modes.pop("home/keys/signing-key.asc") == 0o600
    assert {path: mode for path, mode in modes.items() if mode & 0o002} == {}


def test_key_export_to_a_missing_folder(run, tmp_path):
    assert run("key", "generate").code == 0
    result = run("key", "export", "--output", str(tmp_path / "no" / "such" / "key.asc"))
    assert result.code == 1
    assert str(tmp_path / "no" / "such" / "key.asc") in result.error_line


def test_garbage_key_file(run, tmp_path):
    key = tmp_path / "bad.asc"
    key.write_text("garbage", encoding="utf-8")
    result = run("--key-file", str(key), "key", "show")
    assert result.code == 1
    assert "is not an OpenPGP secret key" in result.error_line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--valid-days", "soon", "list"), "option --valid-days must be a number of days"),
        (("--public-url", "ftp://x", "list"), "option --public-url: 'ftp://x' is not an http"),
        (("--architectures", "all", "rebuild"), "'all' is not a binary architecture"),
        (("--store", "dynamodb://x", "list"), "is not a valid DynamoDB table name"),
        (("--store", "postgres://db", "list"), "expected sqlite:///path/to/metadata.db"),
        (("--store", "sqlite:///tmp", "list"), "/tmp: a folder, not a metadata store"),
        (("--repo", "s3://", "serve"), "repository 's3://': expected s3://bucket/prefix"),
        (("--repo", "ftp://host/x", "serve"), "expected file:///path/to/folder"),
        (("--settings", "absent.yaml", "list"), "settings file not found"),
    ],
)
def test_configuration_errors_exit_2(run, args, fragment):
    result = run(*args)
    assert result.code == 2
    assert fragment in result.error_line


def test_environment_configuration_error_names_the_variable(run, monkeypatch):
    monkeypatch.setenv("DEBREPO_BY_HASH_KEEP", "1")
    result = run("list")
    assert result.code == 2
    assert "environment variable DEBREPO_BY_HASH_KEEP" in result.error_line


def test_adding_without_package_definitions_says_so(run, tmp_path, home, debs, caplog):
    # Run from a folder without config/packages, the default.
    result = run("--home", str(home), "add", str(debs), base=False)
    assert result.code == 0, result.err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        f"no package definitions at {tmp_path / 'config/packages'}: packages are recorded "
        "from their control files alone (run from the project root or set DEBREPO_CONFIG_DIR)"
    ) in warnings


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_package_definitions_folder_that_is_named_but_missing_is_an_error(
    run, tmp_path, home, debs, monkeypatch, how
):
    nowhere = tmp_path / "nowhere"
    if how == "option":
        result = run(
            "--home", str(home), "--config-dir", str(nowhere), "add", str(debs), base=False
        )
        source = "option --config-dir"
    else:
        monkeypatch.setenv("DEBREPO_CONFIG_DIR", str(nowhere))
        result = run("--home", str(home), "add", str(debs), base=False)
        source = "environment variable DEBREPO_CONFIG_DIR"
    assert result.code == 2
    assert result.error_line == (
        f"debrepo: error: {nowhere}: no such folder ({source} names the package definitions "
        "folder, config/packages in this repository)"
    )
    assert not home.exists()  # no store, no key: nothing was started


def test_missing_default_config_dir_is_not_needed_to_list(run, tmp_path, home, debs, caplog):
    run("add", str(debs))
    caplog.clear()
    result = run("--home", str(home), "list", base=False)  # no config/packages here
    assert "no package definitions" not in caplog.text  # listing does not need them
    assert result.code == 0


@pytest.mark.parametrize("command", [("list",), ("rebuild",), ("verify",)])
def test_a_config_dir_named_but_missing_is_an_error_for_every_command(
    run, tmp_path, home, debs, command
):
    run("add", str(debs))
    release = (home / "repo/dists/stable/Release").read_bytes()
    result = run("--config-dir", str(tmp_path / "nowhere"), *command)
    assert result.code == 2
    assert result.error_line == (
        f"debrepo: error: {tmp_path / 'nowhere'}: no such folder (option --config-dir names "
        "the package definitions folder, config/packages in this repository)"
    )
    assert (home / "repo/dists/stable/Release").read_bytes() == release


def test_usage_errors_exit_2(run):
    assert run("frobnicate").code == 2
    assert run("add").code == 2
    assert run("list", "--no-such-option").code == 2
    for forever in ("nan", "inf", "-1"):  # a wait that would never end, or make no sense
        assert run("rebuild", "--wait", forever).code == 2


def test_a_repo_url_that_is_no_url_is_one_line(run, home):
    result = run("build-repo-package", "--version", "1.0.0", "--repo-url", "http://[::1")
    assert result.code == 2
    assert result.error_line == (
        "debrepo: error: --repo-url: 'http://[::1' is not an http(s) or file URL"
    )
    assert not home.exists()  # no key generated, no store started


def test_serve_refuses_a_public_address(run, home):
    result = run("serve", "--bind", "0.0.0.0", "--port", "0")  # noqa: S104 - the refusal is what is tested
    assert result.code == 2
    assert "--bind 0.0.0.0" in result.error_line
    assert "loopback" in result.error_line


@pytest.fixture
def stop_serving(monkeypatch):
    """Make serve_forever return at once, as after Ctrl-C, so a test can never hang."""
    served: list[tuple[str, int]] = []

    def interrupted(self, poll_interval=0.5):
        served.append(self.server_address[:2])
        raise KeyboardInterrupt

    monkeypatch.setattr(http.server.ThreadingHTTPServer, "serve_forever", interrupted)
    return served


def test_serve_until_interrupted(run, debs, home, stop_serving):
    run("add", str(debs))
    result = run("serve", "--port", "0")
    assert result.code == 0, result.err
    ((host, port),) = stop_serving
    assert host == "127.0.0.1" and port > 0
    assert f"serving {home / 'repo'} at http://127.0.0.1:{port}/" in result.err


def test_serve_before_anything_is_published_warns_and_serves(run, home, stop_serving):
    # Serving first is how a user learns the URL to build kiro-repo with.
    result = run("serve", "--port", "0")
    assert result.code == 0, result.err
    assert len(stop_serving) == 1
    assert f"debrepo: warning: nothing is published in {home / 'repo'} yet" in result.err
    assert "check --home" in result.err
    assert not home.exists()  # a mistyped --home leaves no empty repository behind


def test_serve_of_a_folder_published_before_and_gone_says_so(run, debs, home, stop_serving):
    assert run("add", str(debs)).code == 0
    shutil.rmtree(home / "repo")
    result = run("serve", "--port", "0")
    assert result.code == 0, result.err
    assert (
        f"debrepo: warning: nothing is published in {home / 'repo'}, though "
        f"staging/.state/publish-state.json in {home} records a publish from this home"
    ) in result.err
    assert "yet" not in result.err


def test_serve_answers_files_published_after_it_started(run, debs, home, tmp_path):
    """Started before the folder exists, the server still serves what is published
    afterwards: the URL learnt with --port 0 stays good."""
    import threading
    import urllib.error
    import urllib.request

    from debrepo.serve import make_server

    server = make_server(home / "repo", "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/dists/stable/InRelease"
    try:
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url, timeout=10)
        assert missing.value.code == 404
        run("add", str(debs))
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.read() == (home / "repo/dists/stable/InRelease").read_bytes()
    finally:
        server.shutdown()
        server.server_close()


def test_serve_stopped_by_sigterm_ends_cleanly(tmp_path):
    """systemd and `docker stop` end a server with SIGTERM: that is no error."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEBREPO_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "debrepo", "--home", str(tmp_path / "home"), "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=environment,
    )
    try:
        assert server.stderr is not None
        lines = [server.stderr.readline() for _ in range(2)]
        assert lines[1].startswith("serving "), lines
        server.send_signal(signal.SIGTERM)
        rest = server.communicate(timeout=30)[1]
    finally:
        server.kill()
        server.wait()
    assert server.returncode == 0, rest
    assert rest == "stopped\n"


def test_entry_point_in_a_subprocess(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEBREPO_")}
    environment["DEBREPO_VALID_DAYS"] = "never"
    completed = subprocess.run(
        [sys.executable, "-m", "debrepo", "--config-dir", str(CONFIG_DIR), "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr == (
        "debrepo: error: environment variable DEBREPO_VALID_DAYS must be a number of days\n"
    )
    assert completed.stdout == ""


def test_entry_point_turns_the_collector_back_on_before_the_command():
    # Collection is off while the command loads; a command running without it would
    # keep every cycle of a 10,000-package add until it exits.
    script = (
        "import gc, debrepo.cli\n"
        "debrepo.cli.main = lambda: print(gc.isenabled(), gc.get_freeze_count() > 0)\n"
        "from debrepo.entry import main\n"
        "main()\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert completed.stdout == "True True\n"


def test_remove_without_publishing(run, debs, home):
    run("add", str(debs))
    result = run("remove", "alpha", "1.0", "--yes", "--no-publish")
    assert result.code == 0
    assert "published" not in result.out
    assert (home / "repo/pool/main/a/alpha/alpha_1.0_amd64.deb").is_file()


def test_interrupt_is_one_line_and_exit_130(run, monkeypatch):
    # Ctrl-C during a command: the conventional status of a SIGINT death, and one line.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("debrepo.app.list_packages", interrupted)
    result = run("list")
    assert result.code == 130
    assert result.error_line == "debrepo: error: interrupted"


def test_add_works_without_package_definitions(run, debs, tmp_path, home):
    result = run("--home", str(home), "add", str(debs), base=False)  # no config/packages here
    assert result.code == 0, result.err
    assert "added alpha 1.0 (amd64)" in result.out


def test_add_with_broken_package_definitions_exits_2(run, debs, tmp_path):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "alpha.yaml").write_text("package_name: alpha\n", encoding="utf-8")
    result = run("--config-dir", str(config_dir), "add", str(debs))
    assert result.code == 2
    assert f"{config_dir / 'alpha.yaml'}: missing required field(s)" in result.error_line


def test_binary_key_export_to_standard_output(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEBREPO_")}
    command = [sys.executable, "-m", "debrepo", "--home", str(tmp_path / "home"), "key"]
    subprocess.run([*command, "generate"], cwd=tmp_path, env=environment, check=True)
    exported = subprocess.run(
        [*command, "export", "--binary"],
        capture_output=True,
        cwd=tmp_path,
        env=environment,
        check=True,
    )
    key = (tmp_path / "home/keys/signing-key.asc").read_bytes()
    secret = sq.Tsk.from_bytes(key).extract_certificate()
    assert sq.Cert.from_bytes(exported.stdout).fingerprint == secret.fingerprint
    assert not exported.stdout.startswith(b"-----")


def _run_with_a_terminal(
    argv: list[str], *, on: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    """`argv` with a pseudo-terminal as its stdout or stderr (`on`), the other piped."""
    controller, terminal = pty.openpty()
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, on: terminal}
    try:
        return subprocess.run(argv, cwd=cwd, env=env, check=False, timeout=60, **streams)
    finally:
        os.close(terminal)
        os.close(controller)


def test_progress_bars_stay_off_standard_output(tmp_path, debs):
    """With stderr on a terminal and stdout redirected, stdout holds only the report."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEBREPO_")}
    completed = _run_with_a_terminal(
        [sys.executable, "-m", "debrepo", "--home", str(tmp_path / "home"), "add", str(debs)],
        on="stderr",
        cwd=tmp_path,
        env=environment,
    )
    assert completed.returncode == 0
    assert completed.stdout.decode().splitlines()[0] == "added alpha 1.0 (amd64)"
    assert b"\x1b[" not in completed.stdout


def test_remove_on_a_terminal_asks_only_about_a_stored_version(tmp_path, debs):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEBREPO_")}
    base = [sys.executable, "-m", "debrepo", "--home", str(tmp_path / "home")]
    subprocess.run([*base, "add", str(debs)], cwd=tmp_path, env=environment, check=True)

    def remove_typing(version: str, answer: bytes) -> subprocess.CompletedProcess[bytes]:
        controller, terminal = pty.openpty()
        try:
            os.write(controller, answer)  # waits in the terminal until read
            return subprocess.run(
                [*base, "remove", "alpha", version],
                stdin=terminal,
                capture_output=True,
                cwd=tmp_path,
                env=environment,
                timeout=60,
            )
        finally:
            os.close(terminal)
            os.close(controller)

    missing = remove_typing("7.7", b"y\n")
    assert missing.returncode == 1
    assert b"remove alpha 7.7" not in missing.stdout + missing.stderr  # not asked
    assert b"alpha 7.7 is not in the store" in missing.stderr
    declined = remove_typing("1.0", b"n\n")
    assert b"remove alpha 1.0 from the store and the repository?" in declined.stdout
    assert (declined.returncode, declined.stderr) == (1, b"debrepo: error: aborted\n")
    listed = subprocess.run([*base, "list"], cwd=tmp_path, env=environment, capture_output=True)
    assert listed.stdout.split()[:2] == [b"alpha", b"1.0"]
    accepted = remove_typing("1.0", b"y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert b"removed alpha 1.0" in accepted.stdout
    listed = subprocess.run([*base, "list"], cwd=tmp_path, env=environment, capture_output=True)
    assert b"alpha" not in listed.stdout and b"beta" in listed.stdout


def test_progress_display_writes_only_to_standard_error(capsys):
    output = Output(quiet=False)
    output.interactive = True  # as when standard error is a terminal
    with output.progress("reading packages", 3) as advance:
        for _ in range(3):
            advance(1)
    update = output.phase_progress()
    assert update is not None
    for done in (1, 2):
        update("pool", done, 2)
    update("indices", 1, 1)
    output.say("added alpha 1.0 (amd64)")
    assert capsys.readouterr().out == "added alpha 1.0 (amd64)\n"


def test_no_progress_display_when_not_interactive(capsys):
    output = Output(quiet=False)
    assert output.interactive is False
    assert output.phase_progress() is None
    with output.progress("reading packages", 10) as advance:
        advance(10)
    Output(quiet=True).say("hidden")
    assert capsys.readouterr().out == ""


def test_backends_given_as_plain_paths(run, debs, tmp_path):
    result = run(
        "--store",
        "state/metadata.db",
        "--repo",
        "public",
        "--staging",
        "private",
        "--key-file",
        "keys/repo.asc",
        "add",
        str(debs),
    )
    assert result.code == 0, result.err
    assert (tmp_path / "state/metadata.db").is_file()
    assert (tmp_path / "public/dists/stable/InRelease").is_file()
    assert (tmp_path / "private/staging/.state/publish-state.json").is_file()
    assert (tmp_path / "keys/repo.asc").is_file()


def test_a_lost_key_is_not_silently_replaced_once_published(run, debs, home):
    assert run("add", str(debs)).code == 0
    published = (home / "repo" / "kiro-archive-keyring.gpg").read_bytes()
    (home / "keys" / "signing-key.asc").unlink()
    before = sorted(p.relative_to(home) for p in (home / "repo").rglob("*"))

    result = run("rebuild")
    assert result.code == 1
    assert str(home / "keys" / "signing-key.asc") in result.error_line
    assert "already published" in result.error_line and "key generate" in result.error_line
    assert not (home / "keys" / "signing-key.asc").exists()
    assert (home / "repo" / "kiro-archive-keyring.gpg").read_bytes() == published
    assert sorted(p.relative_to(home) for p in (home / "repo").rglob("*")) == before

    # Replacing the key is a deliberate step, twice: a new key, then publishing it.
    assert run("key", "generate").code == 0
    refused = run("rebuild")
    assert refused.code == 1
    assert "is not the key" in refused.error_line and "NO_PUBKEY" in refused.error_line
    assert (home / "repo" / "kiro-archive-keyring.gpg").read_bytes() == published
    assert run("rebuild", "--replace").code == 0
    assert (home / "repo" / "kiro-archive-keyring.gpg").read_bytes() != published


def _keyring_fingerprints(path: Path) -> list[str]:
    import pysequoia as sq

    return [str(cert.fingerprint).upper() for cert in sq.Cert.split_bytes(path.read_bytes())]


def test_an_announced_key_stays_in_the_keyring_until_withdrawn(run, debs, home, tmp_path):
    assert run("add", str(debs / "alpha_1.0_amd64.deb")).code == 0
    keyring = home / "repo/kiro-archive-keyring.gpg"
    single = keyring.read_bytes()
    [signing] = _keyring_fingerprints(keyring)

    generated = run("key", "generate", "--next")
    assert generated.code == 0, generated.err
    announced = [line for line in generated.out.splitlines() if line.startswith("announced key ")]
    assert announced and "build-repo-package" in announced[0], generated.out
    following = announced[0].split()[2].rstrip(":")
    assert _keyring_fingerprints(keyring) == [signing, following]
    assert _keyring_fingerprints(home / "repo/kiro-archive-keyring.asc") == [signing, following]
    assert following in (home / "repo/index.html").read_text()
    shown = run("key", "show").out.splitlines()
    assert [line.split()[0] for line in shown] == [signing, following]
    assert "to take over signing" in shown[1]

    # Every later publish keeps it (it is in the publisher state, not in one command).
    assert run("add", str(debs / "beta_2.0-1_all.deb")).code == 0
    assert run("rebuild", "--full").code == 0
    assert _keyring_fingerprints(keyring) == [signing, following]
    exported = tmp_path / "exported.gpg"
    assert run("key", "export", "--binary", "--output", str(exported)).code == 0
    assert exported.read_bytes() == keyring.read_bytes()
    assert run("verify").code == 0

    # A keyring that lost the announced key is a finding of verify.
    announced_keyring = keyring.read_bytes()
    keyring.write_bytes(single)
    lost = run("verify")
    assert lost.code == 1
    assert f"and of the announced key {following}" in lost.err, lost.err
    keyring.write_bytes(announced_keyring)

    withdrawn = run("key", "announce", "--withdraw")
    assert withdrawn.code == 0, withdrawn.err
    assert "no key is announced now" in withdrawn.out
    assert f"key {following} is no longer announced" in withdrawn.out
    assert keyring.read_bytes() == single
    assert [line.split()[0] for line in run("key", "show").out.splitlines()] == [signing]
    release = (home / "repo/dists/stable/InRelease").read_bytes()
    again = run("key", "announce", "--withdraw")
    assert (again.code, again.out) == (0, "no key is announced; nothing to withdraw\n")
    assert (home / "repo/dists/stable/InRelease").read_bytes() == release  # not republished


def test_a_binary_key_export_is_not_written_to_a_terminal(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEBREPO_")}
    home = str(tmp_path / "home")
    base = [sys.executable, "-m", "debrepo", "--home", home]
    subprocess.run([*base, "key", "generate"], env=environment, check=True, capture_output=True)
    shown = _run_with_a_terminal(
        [*base, "key", "export", "--binary"], on="stdout", cwd=tmp_path, env=environment
    )
    assert shown.returncode == 2
    assert b"--binary writes bytes a terminal cannot show" in shown.stderr
    piped = subprocess.run(
        [*base, "key", "export", "--binary"], env=environment, capture_output=True, check=True
    )
    assert piped.stdout[:1] != b"-" and len(piped.stdout) > 32  # the binary keyring


def test_an_announced_key_takes_over_after_key_switch_days(run, debs, home, monkeypatch):
    assert run("add", str(debs)).code == 0
    assert run("key", "generate", "--next").code == 0
    keys, keyring = home / "keys", home / "repo/kiro-archive-keyring.gpg"
    [_signing, following] = _keyring_fingerprints(keyring)
    (keys / "signing-key.asc").write_bytes((keys / "next-signing-key.asc").read_bytes())
    shown = run("key", "show").out.splitlines()
    assert [line.split()[0] for line in shown] == [following, following]
    assert "now in" in shown[1] and "the next publish (`debrepo rebuild`) signs" in shown[1]

    early = run("rebuild")  # no kiro-repo here: the announcement alone counts
    assert early.code == 1
    assert "clients get 7 days (key_switch_days) from its announcement" in early.error_line
    assert "--replace" in early.error_line
    assert len(_keyring_fingerprints(keyring)) == 2

    monkeypatch.setenv("DEBREPO_KEY_SWITCH_DAYS", "0")
    switched = run("rebuild")
    assert switched.code == 0, switched.err
    assert _keyring_fingerprints(keyring) == [following]
    assert [line.split()[0] for line in run("key", "show").out.splitlines()] == [following]
    assert run("verify").code == 0


def _switch_to_the_next_key(run: Callable[..., Result], keys: Path, old_key: bytes) -> Result:
    """Put the next key in the key file and rebuild; a refused switch puts the old back."""
    (keys / "signing-key.asc").write_bytes((keys / "next-signing-key.asc").read_bytes())
    result = run("rebuild")
    if result.code:
        (keys / "signing-key.asc").write_bytes(old_key)
    return result


def test_a_switch_waits_for_a_published_readable_kiro_repo_that_installs_the_key(
    run, home, monkeypatch
):
    monkeypatch.setenv("DEBREPO_KEY_SWITCH_DAYS", "0")
    assert run("build-repo-package", "--version", "1.0").code == 0
    keys = home / "keys"
    old_key = (keys / "signing-key.asc").read_bytes()
    assert run("key", "generate", "--next").code == 0

    def switch() -> Result:
        return _switch_to_the_next_key(run, keys, old_key)

    assert "the newest kiro-repo (1.0) does not install it" in switch().error_line
    assert run("build-repo-package", "--version", "1.1", "--no-publish").code == 0
    assert "the newest kiro-repo (1.1) is not published yet" in switch().error_line
    assert run("rebuild").code == 0
    pool_file = home / "repo/pool/main/k/kiro-repo/kiro-repo_1.1_all.deb"
    intact = pool_file.read_bytes()
    pool_file.write_bytes(intact[:200])
    assert "the newest kiro-repo (1.1) cannot be read" in switch().error_line
    pool_file.write_bytes(intact)
    assert switch().code == 0


def test_a_kiro_repo_built_while_the_key_file_holds_the_next_key_installs_both(run, home):
    """The switch refused, kiro-repo built anyway: the users of the key that goes on
    signing must not lose it, nor those of the next."""
    from debian.debfile import DebFile

    assert run("build-repo-package", "--version", "1.0").code == 0
    keys = home / "keys"
    [signing] = _keyring_fingerprints(home / "repo/kiro-archive-keyring.gpg")
    old_key = (keys / "signing-key.asc").read_bytes()
    assert run("key", "generate", "--next").code == 0
    (keys / "signing-key.asc").write_bytes((keys / "next-signing-key.asc").read_bytes())
    assert run("rebuild").code == 1
    assert run("build-repo-package", "--version", "1.1", "--no-publish").code == 0
    (keys / "signing-key.asc").write_bytes(old_key)
    assert run("rebuild").code == 0

    deb = DebFile(str(home / "repo/kiro-repo.deb"))
    installed = home / "installed.gpg"
    installed.write_bytes(deb.data.get_content("usr/share/keyrings/kiro-archive-keyring.gpg"))
    published = _keyring_fingerprints(home / "repo/kiro-archive-keyring.gpg")
    assert signing in _keyring_fingerprints(installed)
    assert set(_keyring_fingerprints(installed)) == set(published)
    assert run("verify").code == 0


def _edit_state(home: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = home / "staging/.state/publish-state.json"
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))


def test_a_state_from_before_the_kiro_repo_mark_needs_the_operators_word_to_switch(
    run, home, monkeypatch
):
    """An older debrepo kept no record of the highest kiro-repo: a removed, higher one may
    be on clients, which would then fail with NO_PUBKEY after the switch."""
    monkeypatch.setenv("DEBREPO_KEY_SWITCH_DAYS", "0")
    assert run("build-repo-package", "--version", "1.0").code == 0

    def forget(state: dict[str, Any]) -> None:  # as the older debrepo wrote it
        del state["kiro_repo_high"], state["kiro_repo_high_complete"]

    _edit_state(home, forget)
    keys = home / "keys"
    old_key = (keys / "signing-key.asc").read_bytes()
    assert run("key", "generate", "--next").code == 0
    assert run("build-repo-package", "--version", "1.1").code == 0  # installs both keys
    refused = _switch_to_the_next_key(run, keys, old_key)
    assert refused.code == 1
    assert "debrepo cannot tell the highest kiro-repo ever published here" in refused.error_line
    assert "(the highest known is 1.1)" in refused.error_line
    (keys / "signing-key.asc").write_bytes((keys / "next-signing-key.asc").read_bytes())
    assert run("rebuild", "--replace").code == 0  # the operator's word
    assert json.loads((home / "staging/.state/publish-state.json").read_text())[
        "kiro_repo_high_complete"
    ]


def _days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")


def test_a_switch_waits_for_the_later_of_the_announcement_and_the_kiro_repo(run, home):
    assert run("build-repo-package", "--version", "1.0").code == 0
    keys = home / "keys"
    old_key = (keys / "signing-key.asc").read_bytes()
    assert run("key", "generate", "--next").code == 0
    assert run("build-repo-package", "--version", "1.1").code == 0

    def set_since(state: dict[str, Any]) -> None:
        for announced in state["announced"].values():
            announced["since"] = _days_ago(10)

    _edit_state(home, set_since)
    (keys / "signing-key.asc").write_bytes((keys / "next-signing-key.asc").read_bytes())
    early = run("rebuild")
    assert early.code == 1
    assert "7 days (key_switch_days) from the kiro-repo that installs it" in early.error_line
    (keys / "signing-key.asc").write_bytes(old_key)

    _edit_state(home, lambda state: state.update(convenience_since=_days_ago(8)))
    (keys / "signing-key.asc").write_bytes((keys / "next-signing-key.asc").read_bytes())
    switched = run("rebuild")
    assert switched.code == 0, switched.err

    # The next rotation starts from the key now signing, left as the next key file.
    again = run("key", "generate", "--next")
    assert again.code == 0, again.err
    assert len(_keyring_fingerprints(home / "repo/kiro-archive-keyring.gpg")) == 2


def test_a_switch_waits_for_a_kiro_repo_above_any_published_before(
    run, home, monkeypatch, tmp_path
):
    monkeypatch.setenv("DEBREPO_KEY_SWITCH_DAYS", "0")
    keys = home / "keys"
    assert run("build-repo-package", "--version", "2.0").code == 0
    old_key = (keys / "signing-key.asc").read_bytes()
    assert run("key", "generate", "--next").code == 0

    def switch() -> Result:
        return _switch_to_the_next_key(run, keys, old_key)

    # Clients keep 2.0, which only the old key is in, after it is removed.
    assert run("remove", "kiro-repo", "2.0", "--yes").code == 0
    gone = switch()
    assert "no kiro-repo is published now, while clients may hold kiro-repo 2.0" in (
        gone.error_line
    )
    assert run("build-repo-package", "--version", "1.5").code == 0
    lower = switch()
    assert "the newest kiro-repo (1.5) would not replace kiro-repo 2.0" in lower.error_line

    # A build stored by `add --no-publish` is in the pool, not yet offered to clients.
    built = tmp_path / "kiro-repo_2.1_all.deb"
    assert (
        run("build-repo-package", "--version", "2.1", "--no-publish", "--output", str(built)).code
        == 0
    )
    assert run("remove", "kiro-repo", "2.1", "--yes", "--no-publish").code == 0
    assert run("add", "--no-publish", str(built)).code == 0
    assert "the newest kiro-repo (2.1) is not published yet" in switch().error_line
    assert run("rebuild").code == 0
    assert switch().code == 0


def test_announcing_the_same_key_again_keeps_its_clock_unless_unreadable(run, debs, home):
    assert run("add", str(debs)).code == 0
    assert run("key", "generate", "--next").code == 0
    next_file = str(home / "keys/next-signing-key.asc")

    def since() -> str:
        state = json.loads((home / "staging/.state/publish-state.json").read_text())
        [announced] = state["announced"].values()
        return str(announced["since"])

    started = _days_ago(3)
    _edit_state(home, lambda s: [a.update(since=started) for a in s["announced"].values()])
    assert run("key", "announce", next_file).code == 0
    assert since() == started
    _edit_state(home, lambda s: [a.update(since="yesterday") for a in s["announced"].values()])
    assert run("key", "announce", next_file).code == 0
    assert datetime.fromisoformat(since()) > datetime.fromisoformat(started)


def test_announcing_another_key_replaces_the_announced_one(run, debs, home, tmp_path):
    assert run("add", str(debs)).code == 0
    assert run("key", "generate", "--next").code == 0
    keyring = home / "repo/kiro-archive-keyring.gpg"
    [signing, first] = _keyring_fingerprints(keyring)
    other = tmp_path / "other.asc"
    other.write_bytes(generate_secret_key("Other <ops@example.com>"))
    announced = run("key", "announce", str(other))
    assert announced.code == 0, announced.err
    assert f"key {first} is no longer announced" in announced.out
    [again, second] = _keyring_fingerprints(keyring)
    assert again == signing and second not in (signing, first)


def test_key_generate_next_checks_before_it_makes_a_key(run, debs, home):
    next_file = home / "keys/next-signing-key.asc"
    no_store = run("key", "generate", "--next")
    assert no_store.code == 2 and not next_file.exists()
    assert run("add", str(debs)).code == 0
    next_file.write_bytes(generate_secret_key("Left <ops@example.com>"))  # an announce failed
    there = run("key", "generate", "--next")
    assert there.code == 2
    assert f"announce it with `debrepo key announce {next_file}`" in there.error_line
    assert run("key", "announce", str(next_file)).code == 0
    announced = next_file.read_bytes()
    forced = run("key", "generate", "--next", "--force")
    assert forced.code == 2 and "withdraw it first" in forced.error_line
    assert next_file.read_bytes() == announced
    assert run("key", "announce", "--withdraw").code == 0
    assert run("key", "generate", "--next", "--force").code == 0
    assert next_file.read_bytes() != announced


def test_verify_without_the_publisher_state_warns_of_keys_after_the_signing_key(
    run, debs, tmp_path
):
    assert run("add", str(debs)).code == 0
    assert run("key", "generate", "--next").code == 0
    elsewhere = ("--staging", (tmp_path / "empty-staging").as_uri())
    verified = run(*elsewhere, "verify")
    assert verified.code == 0, verified.err
    assert "does not confirm as announced" in verified.err


def test_a_lost_publisher_state_still_holds_the_key_to_the_published_keyring(run, debs, home):
    assert run("add", str(debs)).code == 0
    keyring = (home / "repo/kiro-archive-keyring.gpg").read_bytes()
    (home / "staging/.state/publish-state.json").unlink()  # the pool map stays
    assert (home / "staging/.state/publish-pool.json").is_file()
    assert run("key", "generate", "--force").code == 0

    refused = run("rebuild")
    assert refused.code == 1 and "is not the key" in refused.error_line
    assert (home / "repo/kiro-archive-keyring.gpg").read_bytes() == keyring


def test_announcing_takes_the_secret_key_of_another_key(run, debs, home, tmp_path):
    assert run("add", str(debs)).code == 0
    keyring = home / "repo/kiro-archive-keyring.gpg"
    before = keyring.read_bytes()
    itself = run("key", "announce", str(home / "keys/signing-key.asc"))
    assert itself.code == 2 and "holds the signing key" in itself.error_line
    public = tmp_path / "public.asc"
    assert run("key", "export", "--output", str(public)).code == 0
    public_only = run("key", "announce", str(public))
    assert public_only.code == 1
    assert f"{public} holds only a public key" in public_only.error_line
    not_a_key = run("key", "announce", str(debs / "notes.txt"))
    assert not_a_key.code == 1 and "is not an OpenPGP secret key" in not_a_key.error_line
    assert run("key", "announce").code == 2
    assert run("key", "announce", str(public), "--withdraw").code == 2
    assert keyring.read_bytes() == before


def test_a_second_home_may_not_switch_to_a_key_the_published_keyring_announced(run, debs, tmp_path):
    """No record of the last publish there: when the key was announced is unknown."""
    repo = tmp_path / "shared"
    alpha = debs / "alpha_1.0_amd64.deb"
    first_home = tmp_path / "first"
    first = ("--home", str(first_home), "--repo", repo.as_uri())
    assert run(*first, "add", str(alpha)).code == 0
    assert run(*first, "key", "generate", "--next").code == 0
    second = ("--home", str(tmp_path / "second"), "--repo", repo.as_uri())

    assert run(*second, "key", "generate").code == 0  # neither signing nor announced
    other = run(*second, "add", str(alpha))
    assert other.code == 1 and "is not the key" in other.error_line
    announced = ("--key-file", str(first_home / "keys/next-signing-key.asc"))
    unknown = run(*second, *announced, "add", str(alpha))
    assert unknown.code == 1
    assert "that announcement is no longer recorded" in unknown.error_line
    assert run(*second, *announced, "add", "--no-publish", str(alpha)).code == 0
    assert run(*second, *announced, "rebuild", "--replace").code == 0


@pytest.mark.parametrize("damage", ["mistyped", "deleted", "emptied"])
def test_a_missing_store_is_not_created_anew_once_published(run, debs, home, tmp_path, damage):
    assert run("add", str(debs)).code == 0
    database = home / "metadata.db"
    packages = (home / "repo/dists/stable/main/binary-amd64/Packages").read_bytes()
    store = ["--store", f"sqlite://{tmp_path / 'typo' / 'metadata.db'}"]
    if damage != "mistyped":
        store = []
        database.unlink()
        if damage == "emptied":
            database.write_bytes(b"")

    result = run(*store, "rebuild")
    assert result.code == 1
    assert "no metadata store here, but the repository was already published" in result.error_line
    assert (home / "repo/dists/stable/main/binary-amd64/Packages").read_bytes() == packages
    assert not (tmp_path / "typo").exists()


def test_serve_port_out_of_range_is_a_usage_error(run):
    result = run("serve", "--port", "99999")
    assert result.code == 2
    assert "Traceback" not in result.err
    assert "99999 is not in the range" in result.err


@pytest.mark.parametrize(
    "command",
    [["list"], ["show", "alpha"], ["verify"], ["rebuild"], ["remove", "alpha", "1.0", "--yes"]],
    ids=["list", "show", "verify", "rebuild", "remove"],
)
def test_a_home_with_no_store_is_an_error_not_a_new_repository(run, home, command):
    """A mistyped --home must not look like an empty repository (or become one)."""
    result = run(*command)
    assert result.code == 2, result.err
    assert result.err == (
        f"debrepo: error: {home / 'metadata.db'}: no metadata store here, so nothing was "
        "ever added to it; check --home (DEBREPO_HOME) and --store, or start a "
        "repository with `debrepo add` or `debrepo build-repo-package`\n"
    )
    assert not home.exists()


def test_announcing_into_a_home_with_no_store_makes_no_signing_key(run, home, tmp_path):
    """A mistyped --home is refused before anything is created there, a key included."""
    from debrepo.signing.openpgp import generate_secret_key

    next_key = tmp_path / "next.asc"
    next_key.write_bytes(generate_secret_key("Next <next@example.com>"))
    result = run("key", "announce", str(next_key))
    assert result.code == 2, result.err
    assert f"{home / 'metadata.db'}: no metadata store here" in result.error_line
    assert "generated" not in result.err
    assert not home.exists()


@pytest.mark.parametrize("command", [["key", "show"], ["key", "export"]])
def test_showing_a_key_that_does_not_exist_does_not_generate_one(run, home, command):
    result = run(*command)
    assert result.code == 2
    assert result.err.startswith(f"debrepo: error: {home / 'keys/signing-key.asc'}: no signing key")
    assert "debrepo key generate" in result.err
    assert not home.exists()


def test_list_of_a_package_the_store_does_not_hold(run, debs):
    run("add", str(debs))
    result = run("list", "--package", "nope")
    assert result.code == 0
    assert result.out == "the store holds no version of nope\n"


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_settings_file_error_names_the_option_as_it_is_spelled(run, tmp_path, kind):
    path = tmp_path / "settings.yaml"
    if kind == "folder":
        path.mkdir()
    result = run("--settings", str(path), "list")
    assert result.code == 2
    what = "not found" if kind == "missing" else "is not a file"
    assert result.err == f"debrepo: error: {path}: settings file {what} (option --settings)\n"


def test_building_a_stored_kiro_repo_version_again_the_same_changes_nothing(run, home):
    first = run("build-repo-package", "--version", "1.0.0", "--repo-url", "https://a.example/")
    assert first.code == 0, first.err
    release = (home / "repo/dists/stable/Release").read_bytes()
    again = run("build-repo-package", "--version", "1.0.0", "--repo-url", "https://a.example/")
    assert again.code == 0, again.err
    built = first.out.splitlines()[0].removeprefix("built ")
    assert again.out == f"already stored, built the same again: {built}\n"
    assert (home / "repo/dists/stable/Release").read_bytes() == release


def test_building_a_stored_kiro_repo_version_again_puts_back_its_lost_staged_copy(
    run, home, caplog
):
    args = ("build-repo-package", "--version", "1.0.0", "--repo-url", "https://a.example/")
    assert run(*args).code == 0
    staged = home / "staging/kiro-repo/kiro-repo_1.0.0_all.deb"
    original = staged.read_bytes()
    staged.unlink()
    again = run(*args)
    assert again.code == 0, again.err
    assert again.out.splitlines()[-1].startswith("put back its missing staged copy")
    assert "debrepo-build-" not in caplog.text  # the temporary build file is no news
    assert staged.read_bytes() == original


def test_building_a_kiro_repo_version_that_exists_names_no_temporary_file(run):
    assert run("build-repo-package", "--version", "1.0.0").code == 0
    result = run("build-repo-package", "--version", "1.0.0", "--repo-url", "https://b.example/")
    assert result.code == 1
    assert result.err == (
        "debrepo: error: kiro-repo 1.0.0 is already in the store (package_id "
        "'kiro-repo#1.0.0'); published versions are immutable, build a new version instead\n"
    )


def test_replacing_the_key_of_a_repository_says_what_to_publish(run, debs):
    assert run("add", str(debs)).code == 0
    replaced = run("key", "generate", "--force")
    assert replaced.code == 0, replaced.err
    assert replaced.out.splitlines()[1] == (
        "run `debrepo rebuild --replace` to publish the new public key and re-sign, then "
        "`debrepo build-repo-package --version NEXT` so new users install it"
    )
    assert run("rebuild", "--replace").code == 0


def test_an_architecture_left_out_of_the_settings_is_not_silently_unpublished(
    run, debs, home, tmp_path
):
    arm = tmp_path / "gamma_1.0_arm64.deb"
    arm.write_bytes(deb_bytes("gamma", "1.0", "arm64"))
    both = ("--architectures", "amd64,arm64")
    assert run(*both, "add", str(debs), str(arm)).code == 0
    release = (home / "repo/dists/stable/Release").read_bytes()

    result = run("rebuild")  # run without the setting (a settings file not read)

    assert result.code == 1
    assert result.error_line.startswith(
        "debrepo: error: the store holds versions built for arm64 (gamma 1.0), which the "
        "architectures setting (amd64) leaves out: publishing would drop them"
    )
    assert (home / "repo/dists/stable/Release").read_bytes() == release
    checked = run("verify")
    assert checked.code == 1
    assert "arm64 (gamma 1.0)" in checked.out + checked.err
    assert run(*both, "verify").code == 0


def test_an_architecture_dropped_from_the_settings_leaves_no_stale_index(run, debs, home, tmp_path):
    both = ("--architectures", "amd64,arm64")
    assert run(*both, "add", str(debs)).code == 0
    arm = home / "repo/dists/stable/main/binary-arm64"
    assert (arm / "Packages").is_file()
    held_by_older_release = {p for p in arm.rglob("*") if "by-hash" in p.parts and p.is_file()}
    assert len(held_by_older_release) == 6

    assert run("--architectures", "amd64", "rebuild").code == 0

    # The plain files go with the Release that listed them; the by-hash copies stay for
    # clients of that Release, as long as its generation is kept.
    assert {p for p in arm.rglob("*") if p.is_file()} == held_by_older_release
    assert "arm64" not in (home / "repo/dists/stable/Release").read_text()
    assert run("--architectures", "amd64", "verify").code == 0
    for n in range(3):  # each a new generation of the indices
        new = tmp_path / f"new{n}_1.0_amd64.deb"
        new.write_bytes(deb_bytes(f"new{n}", "1.0"))
        assert run("--architectures", "amd64", "add", str(new)).code == 0
    assert not arm.exists()  # nor any empty folder of it
    assert (home / "repo/dists/stable/main/binary-amd64/Packages").is_file()


def test_a_new_suite_leaves_the_old_one_whole(run, debs, home):
    """README: changing `suite` publishes a new dists/<suite>/ and leaves the old one as
    it is, for the clients not yet pointed at the new one."""
    assert run("add", str(debs)).code == 0
    old = home / "repo/dists/stable"
    before = {p: p.read_bytes() for p in old.rglob("*") if p.is_file()}
    assert run("--suite", "kiro", "--codename", "kiro", "rebuild").code == 0
    assert {p: p.read_bytes() for p in old.rglob("*") if p.is_file()} == before
    assert (home / "repo/dists/kiro/main/binary-amd64/Packages").is_file()


def test_root_files_written_over_by_hand_are_published_again_by_a_plain_rebuild(run, home, debs):
    assert run("build-repo-package", "--version", "1.0").code == 0
    repo = home / "repo"
    pool_file = next((repo / "pool/main/k/kiro-repo").iterdir())
    staged = next((home / "staging/kiro-repo").iterdir())
    good = {name: (repo / name).read_bytes() for name in ROOT_FILES}
    other = next(debs.glob("*.deb")).read_bytes()
    for name in ROOT_FILES:
        with (repo / name).open("r+b") as in_place:  # as `cp` over an existing file writes
            in_place.write(other[:64])
    assert pool_file.read_bytes() == staged.read_bytes() != (repo / "kiro-repo.deb").read_bytes()
    assert run("verify").code == 1

    result = run("rebuild")

    assert result.code == 0 and "re-signed" not in result.out  # not only the Release
    assert {name: (repo / name).read_bytes() for name in ROOT_FILES} == good
    assert run("verify").code == 0
    assert "Release re-signed" in run("rebuild").out  # nothing left to publish again


ROOT_FILES = ("kiro-repo.deb", "kiro-archive-keyring.gpg", "kiro-archive-keyring.asc", "index.html")


def test_a_failure_after_the_release_is_out_says_the_release_is_published(
    run, debs, home, monkeypatch
):
    from debrepo.errors import ObjectStoreError
    from debrepo.objects.filesystem import FilesystemObjectStore
    from debrepo.services.publish import STATE_KEY

    put = FilesystemObjectStore.put

    def full_disk_for_the_state(self, key, data, delivery):
        if key == STATE_KEY:
            raise ObjectStoreError(f"{key}: cannot write: No space left on device")
        return put(self, key, data, delivery)

    monkeypatch.setattr(FilesystemObjectStore, "put", full_disk_for_the_state)
    result = run("add", str(debs))
    assert result.code == 1
    assert result.error_line.endswith(
        "No space left on device; the new Release is published (clients see it), but the "
        "publish did not finish: fix that, then run `debrepo rebuild`"
    )
    assert "alpha" in (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    monkeypatch.undo()
    assert run("rebuild").code == 0
    assert run("verify").code == 0


def test_remove_without_publishing_deletes_the_staged_copy_and_keeps_the_pool_file(run, home):
    # No later publish would delete the staged copy: a kiro .deb left in staging for ever.
    assert run("build-repo-package", "--version", "1.0").code == 0
    assert run("build-repo-package", "--version", "1.1").code == 0
    [staged] = home.glob("staging/**/kiro-repo_1.0_all.deb")
    pool = home / "repo/pool/main/k/kiro-repo/kiro-repo_1.0_all.deb"
    assert pool.is_file()
    assert run("remove", "kiro-repo", "1.0", "--yes", "--no-publish").code == 0
    assert not staged.exists()
    assert pool.is_file()  # the published indices still name it
    assert run("rebuild").code == 0
    assert run("verify").code == 0
    packages = (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    assert "kiro-repo_1.0_all.deb" not in packages and "kiro-repo_1.1_all.deb" in packages


def test_a_removal_whose_staged_copy_cannot_be_deleted_is_done_all_the_same(
    run, home, monkeypatch, caplog
):
    from debrepo.errors import ObjectStoreError
    from debrepo.objects.filesystem import FilesystemObjectStore

    assert run("build-repo-package", "--version", "1.0").code == 0
    assert run("build-repo-package", "--version", "1.1").code == 0
    delete = FilesystemObjectStore.delete

    def read_only_staging(self, key):
        if key.startswith("staging/kiro-repo/"):
            raise ObjectStoreError(f"{key}: cannot delete: Read-only file system")
        return delete(self, key)

    monkeypatch.setattr(FilesystemObjectStore, "delete", read_only_staging)
    result = run("remove", "kiro-repo", "1.0", "--yes")
    assert result.code == 0
    assert "kiro-repo 1.0 is removed and published, but its staged copy" in caplog.text
    assert (
        "kiro-repo_1.0_all.deb"
        not in (home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    )


def test_showing_the_key_of_a_published_repository_whose_key_is_gone_says_to_restore_it(
    run, home, debs
):
    assert run("add", str(debs)).code == 0
    (home / "keys/signing-key.asc").unlink()
    result = run("key", "show")
    assert result.code != 0
    assert "already published (kiro-archive-keyring.gpg) with one; restore the key file" in (
        result.error_line
    )
    assert not (home / "keys/signing-key.asc").exists()


def test_removing_one_of_several_left_out_architecture_versions_deletes_nothing(
    run, debs, home, tmp_path
):
    both = ("--architectures", "amd64,arm64")
    for name in ("gamma", "delta"):
        arm = tmp_path / f"{name}_1.0_arm64.deb"
        arm.write_bytes(deb_bytes(name, "1.0", "arm64"))
        assert run(*both, "add", str(arm)).code == 0
    result = run("remove", "gamma", "1.0", "--yes")
    assert result.code == 1
    assert "arm64 (delta 1.0)" in result.error_line
    assert result.error_line.endswith(
        "; nothing was removed (remove each with --no-publish, then run `debrepo rebuild`)"
    )
    assert run("show", "gamma", "1.0").code == 0  # still stored
    for name in ("gamma", "delta"):
        assert run("remove", name, "1.0", "--yes", "--no-publish").code == 0
    assert run("rebuild").code == 0
    assert run("verify").code == 0


def test_a_settings_file_not_read_does_not_change_what_clients_hold_the_release_to(
    run, debs, home, tmp_path
):
    settings = tmp_path / "elsewhere" / "debrepo.yaml"  # not the current folder's
    settings.parent.mkdir()
    settings.write_text("origin: Acme\nlabel: Acme tools\ncomponents: main contrib\n")
    assert run("--settings", str(settings), "add", str(debs)).code == 0
    release = (home / "repo/dists/stable/Release").read_bytes()

    result = run("rebuild")  # without the settings file: the defaults

    assert result.code == 1
    line = result.error_line
    assert "Origin 'Acme' would become 'Kiro'; Label 'Acme tools' would become 'Kiro'" in line
    assert "component(s) contrib would no longer be published" in line
    assert line.endswith(
        'run `debrepo rebuild --replace` (the Lambda: {"replace": true}); nothing was published'
    )
    assert (home / "repo/dists/stable/Release").read_bytes() == release
    assert run("--settings", str(settings), "rebuild").code == 0  # the same settings: fine

    assert run("rebuild", "--full").code == 1
    assert run("rebuild", "--replace").code == 0  # the change, on purpose
    assert b"Origin: Kiro\n" in (home / "repo/dists/stable/Release").read_bytes()
    assert run("rebuild").code == 0  # and from then on, the new values are the published ones


def test_terminal_escapes_in_a_package_are_shown_escaped(run, tmp_path):
    # dpkg and apt pass ESC and BEL through, and so does the index; a terminal must not
    # get them from `show`.
    deb = tmp_path / "esc_1.0_amd64.deb"
    description = "title \x1b]0;owned\x07\n \x1b[2J cleared"
    deb.write_bytes(deb_bytes("esc", "1.0", description=description))
    assert run("add", str(deb)).code == 0
    shown = run("show", "esc")
    assert shown.code == 0, shown.err
    assert "\x1b" not in shown.out and "\x07" not in shown.out
    assert "Description: title \\x1b]0;owned\\x07\n \\x1b[2J cleared\n" in shown.out


def test_a_warning_naming_a_hostile_file_shows_it_escaped(tmp_path, debs):
    (debs / "\x1b]0;owned\x07.DEB").write_bytes(b"not a package")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEBREPO_")}
    completed = subprocess.run(
        [sys.executable, "-m", "debrepo", "--home", str(tmp_path / "home"), "add", str(debs)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert b"\x1b" not in completed.stderr and b"\x07" not in completed.stderr
    assert b"not added: \\x1b]0;owned\\x07.DEB; only the files" in completed.stderr


# Ctrl-C while `debrepo` is still importing click (~0.1-0.25 s): the same KeyboardInterrupt
# a signal raises, but at a set point, through the console script's entry point.
_INTERRUPTED_WHILE_LOADING = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
from debrepo.entry import main
main()
"""


def test_ctrl_c_while_the_command_loads_is_one_line_and_exit_130() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_WHILE_LOADING, "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (130, "debrepo: error: interrupted\n")
