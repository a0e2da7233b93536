"""A publish killed at any moment leaves a repository every client can still use.

`debrepo` runs in a subprocess that dies (`os._exit`, as on SIGKILL or a power cut:
no clean-up, no `finally`) just before its k-th step that changes what the file
system shows: a rename, a link, an unlink or an rmdir. k runs from 1 until the command
finishes, so every such step is a crash point. After each crash:

- a client that read either of the two InRelease files published before the command
  can still fetch every index it names (by hash) and every package those indices name,
  with the right bytes (3 by-hash generations are kept, the new one included);
- the InRelease now in place, if any, verifies with `gpgv`, and the same holds for it;
- running the command again ends with a repository that `debrepo verify` accepts and
  that holds what the store holds (a `remove` whose record is gone already says to run
  `rebuild`, which does it).

The checks use gpgv, hashlib and python-debian, not debrepo's own reader.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from debian import deb822

from tests.conftest import deb_bytes
from tests.e2e.aptenv import DebrepoCli
from tests.tools import require_tool

CRASHED = 86  # exit status of a run stopped at its crash point
SUITE_DIR = "dists/stable"
# Runs `debrepo` with os.replace, os.rename, os.link, os.unlink and os.rmdir counted;
# just before the call numbered argv[1] the process exits on the spot.
CRASHING_RUNNER = f"""
import os, sys
limit = int(sys.argv[1])
calls = 0
def counted(real):
    def step(*args, **kwargs):
        global calls
        calls += 1
        if calls == limit:
            os._exit({CRASHED})
        return real(*args, **kwargs)
    return step
for name in ("replace", "rename", "link", "unlink", "rmdir"):
    setattr(os, name, counted(getattr(os, name)))
from debrepo.cli import main
sys.argv = ["debrepo", *sys.argv[2:]]
main()
"""


def crashing_at(step: int) -> list[str]:
    return [sys.executable, "-c", CRASHING_RUNNER, str(step)]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _keyring(repo: Path) -> Path:
    (found,) = repo.glob("*-archive-keyring.gpg")
    return found


def _verified_release(repo: Path, inrelease: bytes, scratch: Path) -> deb822.Release:
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    signed = scratch / "InRelease"
    signed.write_bytes(inrelease)
    checked = subprocess.run(
        [
            require_tool("gpgv"),
            "--homedir",
            str(scratch),
            "--keyring",
            str(_keyring(repo)),
            str(signed),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert checked.returncode == 0, f"InRelease does not verify:\n{checked.stderr}"
    return deb822.Release(inrelease)


def _by_hash(repo: Path, name: str, digest: str) -> bytes:
    folder = Path(name).parent
    path = repo / SUITE_DIR / folder / "by-hash" / "SHA256" / digest
    assert path.is_file(), f"{name}: by-hash/SHA256/{digest} is missing"
    data = path.read_bytes()
    assert _sha256(data) == digest, f"{name}: by-hash/SHA256/{digest} holds other bytes"
    return data


def assert_client_can_use(repo: Path, inrelease: bytes, scratch: Path) -> set[str]:
    """Everything a client holding `inrelease` fetches is there, with the right bytes;
    the Filenames of the packages it sees."""
    release = _verified_release(repo, inrelease, scratch)
    entries = {entry["name"]: entry for entry in release["SHA256"]}
    seen: set[str] = set()
    for name, entry in entries.items():
        if not name.endswith("/Packages.xz"):
            continue
        packed = _by_hash(repo, name, entry["sha256"])
        assert len(packed) == int(entry["size"])
        plain = lzma.decompress(packed)
        plain_entry = entries[name.removesuffix(".xz")]
        assert _sha256(plain) == plain_entry["sha256"]
        gz_entry = entries[name.removesuffix(".xz") + ".gz"]
        assert gzip.decompress(_by_hash(repo, name, gz_entry["sha256"])) == plain
        for stanza in deb822.Packages.iter_paragraphs(plain, use_apt_pkg=False):
            pool_file = repo / stanza["Filename"]
            assert pool_file.is_file(), f"{stanza['Filename']} is missing"
            data = pool_file.read_bytes()
            assert len(data) == int(stanza["Size"]), stanza["Filename"]
            assert _sha256(data) == stanza["SHA256"], f"{stanza['Filename']} holds other bytes"
            seen.add(stanza["Filename"])
    assert seen, "the release names no package"
    return seen


@dataclass(frozen=True)
class Published:
    pristine: Path  # a copy of `home` as published, copied back for every run
    home: Path  # where it was published: the publisher state names this folder
    root: Path  # the working folder, holding the packages the commands add
    releases: tuple[bytes, ...]  # the InRelease of every publish, oldest first


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A home that published four times, ending with alpha 1.0 and beta 2.0; the
    oldest generation, which alone names delta 1.0, expires with the next publish."""
    root = tmp_path_factory.mktemp("crash-points")
    debs = root / "debs"
    debs.mkdir()
    for name, version, arch in (
        ("alpha", "1.0", "amd64"),
        ("beta", "2.0", "all"),
        ("delta", "1.0", "amd64"),
    ):
        (debs / f"{name}_{version}_{arch}.deb").write_bytes(deb_bytes(name, version, arch))
    for name, version in (("alpha", "1.1"), ("gamma", "0.1")):
        (root / f"{name}_{version}_amd64.deb").write_bytes(deb_bytes(name, version))
    home = root / "home"
    cli = DebrepoCli(home=home, cwd=root)
    releases = []
    for command in (
        ["add", debs / "delta_1.0_amd64.deb"],
        ["add", debs / "alpha_1.0_amd64.deb"],
        ["remove", "--yes", "delta", "1.0"],
        ["add", debs / "beta_2.0_all.deb"],
    ):
        cli.run(*command)
        releases.append((home / "repo" / SUITE_DIR / "InRelease").read_bytes())
    assert (home / "repo" / "pool" / "main" / "d" / "delta").is_dir()
    pristine = root / "pristine"
    shutil.copytree(home, pristine, symlinks=True)
    return Published(pristine, home, root, tuple(releases))


SCENARIOS = {
    "add": (
        ["add", "alpha_1.1_amd64.deb", "gamma_0.1_amd64.deb"],
        {"alpha#1.1", "gamma#0.1"},
        set(),
    ),
    "remove": (["remove", "--yes", "beta", "2.0"], set(), {"beta#2.0"}),
    "rebuild-full": (["rebuild", "--full"], set(), set()),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_command_killed_at_any_step_leaves_every_client_served(
    published: Published, tmp_path: Path, scenario: str
) -> None:
    pristine, home, root = published.pristine, published.home, published.root
    args, added, removed = SCENARIOS[scenario]
    cli = DebrepoCli(home=home, cwd=root)
    expected = {"alpha#1.0", "beta#2.0"} | added
    expected -= removed
    crash_points = told_to_rebuild = 0
    for crash_at in range(1, 500):
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(pristine, home, symlinks=True)
        done = cli.run(*args, check=False, launcher=crashing_at(crash_at))
        assert "publishing as if for the first time" not in done.stderr
        if done.returncode != CRASHED:
            assert done.returncode == 0, f"step {crash_at}: {done.stderr}"
            break
        crash_points += 1
        where = f"{scenario}, killed before step {crash_at}"
        scratch = tmp_path / f"gpg-{crash_at}"
        try:
            for back, release in enumerate(published.releases[-2:]):
                assert_client_can_use(home / "repo", release, scratch / f"old-{back}")
            current = home / "repo" / SUITE_DIR / "InRelease"
            assert_client_can_use(home / "repo", current.read_bytes(), scratch / "new")
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None

        again = cli.run(*args, check=False)
        if scenario == "remove" and again.returncode != 0:  # the record is gone already
            assert "is not in the store" in again.stderr, f"{where}: {again.stderr}"
            if "`debrepo rebuild` publishes them" in again.stderr:  # and is still published
                told_to_rebuild += 1
                again = cli.run("rebuild", check=False)
            else:  # its removal was published too
                again = cli.run("list", check=False)
        # An add run again skips what it stored and publishes what is unpublished.
        assert again.returncode == 0, f"{where}: running it again: {again.stderr}"
        checked = cli.run("verify", check=False)
        assert checked.returncode == 0, (
            f"{where}: verify afterwards:\n{checked.stdout}{checked.stderr}"
        )
        listed = cli.run("list", "--json", check=False)
        ids = {f"{r['package_name']}#{r['version']}" for r in json.loads(listed.stdout)}
        assert ids == expected, where
        final = (home / "repo" / SUITE_DIR / "InRelease").read_bytes()
        names = assert_client_can_use(home / "repo", final, scratch / "final")
        assert len(names) == len(expected), where
        assert_client_can_use(home / "repo", published.releases[-1], scratch / "old-final")
    else:
        pytest.fail(f"{scenario}: still crashing after 500 steps")
    assert crash_points >= 3, (
        f"{scenario}: only {crash_points} crash points: the runner counts nothing"
    )
    assert told_to_rebuild or scenario != "remove", (
        "no crash point between the removal and its publish"
    )
