"""What apt and `debrepo verify` do when the published repository is damaged or the key
is wrong: apt must refuse, and verify must exit 1 naming the file at fault."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import DebFactory
from tests.e2e.aptenv import (
    AptEnv,
    AptResult,
    CliResult,
    DebrepoCli,
    assert_clean_update,
    serve_in_thread,
)

pytestmark = pytest.mark.e2e

BINARY_DIR = "dists/stable/main/binary-amd64"
INDEX_NAMES = ("Packages", "Packages.gz", "Packages.xz")
KEYRING = "kiro-archive-keyring.gpg"
# apt fetches Packages.xz by default; with every compressor unusable it takes the
# uncompressed Packages, whose size the tampering below keeps.
UNCOMPRESSED_ONLY = tuple(
    f"Acquire::CompressionTypes::{kind}=none" for kind in ("xz", "gz", "bz2", "lzma", "lz4", "zst")
)


@pytest.fixture
def published(tmp_path: Path, make_deb: DebFactory) -> DebrepoCli:
    """A repository with two packages, published and verified through the CLI."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cli = DebrepoCli(home=tmp_path / "home", cwd=cwd)
    cli.run("add", make_deb("alpha", "1.0"), make_deb("beta", "2.0-1", "all"))
    verified = cli.run("verify")
    assert verified.stdout.startswith("OK: 2 package(s)"), verified.describe()
    return cli


def _replace(path: Path, data: bytes) -> None:
    """New bytes under an existing name (a new inode, as a careless sync would write)."""
    temp = path.with_name(path.name + ".new")
    temp.write_bytes(data)
    os.replace(temp, path)


def _bump_size(packages: bytes, package: str) -> bytes:
    """The index with the Size of `package` changed in its last digit (same length)."""

    def change(match: re.Match[bytes]) -> bytes:
        size = match[2]
        last = int(size[-1:])
        return match[1] + size[:-1] + str((last + 1) % 10).encode()

    pattern = rb"(Package: " + re.escape(package.encode()) + rb"\n(?:[^\n]+\n)*?Size: )(\d+)"
    changed, count = re.subn(pattern, change, packages, count=1)
    assert count == 1 and len(changed) == len(packages) and changed != packages
    return changed


def _current_by_hash(repo: Path, name: str) -> list[Path]:
    data = (repo / BINARY_DIR / name).read_bytes()
    paths = [
        repo / BINARY_DIR / "by-hash" / "SHA256" / hashlib.sha256(data).hexdigest(),
        repo / BINARY_DIR / "by-hash" / "SHA512" / hashlib.sha512(data).hexdigest(),
    ]
    assert all(p.is_file() for p in paths), paths
    return paths


def _tampered_indices(repo: Path) -> dict[str, bytes]:
    packages = _bump_size((repo / BINARY_DIR / "Packages").read_bytes(), "alpha")
    return {
        "Packages": packages,
        "Packages.gz": gzip.compress(packages, mtime=0),
        "Packages.xz": lzma.compress(packages),
    }


def _problems(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("problem: ")]


def _fresh_apt(root: Path, url: str, keyring: Path) -> AptEnv:
    apt = AptEnv(root)
    apt.use_source(url, keyring)
    return apt


def _downloaded_indices(apt: AptEnv) -> list[str]:
    return sorted(p.name for p in (apt.root / "var/lib/apt/lists").glob("*_Packages*"))


def _assert_fetch_failed(result: AptResult, path: str, message: str) -> None:
    assert result.returncode != 0, result.describe()
    failed = [line for line in result.lines if line.startswith("E: Failed to fetch ")]
    assert len(failed) == 1, result.describe()
    assert f"/{path}  {message}" in failed[0], result.describe()


def test_tampered_packages_index_is_refused_by_apt_and_named_by_verify(
    tmp_path: Path, published: DebrepoCli
) -> None:
    repo = published.repo_dir
    tampered = _tampered_indices(repo)
    # Every copy a client can fetch: the plain paths and the by-hash copies of this Release.
    for name, data in tampered.items():
        for path in (repo / BINARY_DIR / name, *_current_by_hash(repo, name)):
            _replace(path, data)

    keyring = repo / KEYRING
    with serve_in_thread(repo) as server:
        # A default client fetches Packages.xz by hash; its size no longer matches.
        by_hash = _fresh_apt(tmp_path / "apt-by-hash", server.url, keyring)
        result = by_hash.update()
        xz_sha512 = hashlib.sha512((repo / BINARY_DIR / "Packages.xz").read_bytes()).hexdigest()
        release = (repo / "dists/stable/Release").read_text()
        assert xz_sha512 not in release  # the tampered file is not what the Release names
        fetched = [p for p in server.paths(None) if "/by-hash/" in p]
        assert len(fetched) == 1 and "/by-hash/SHA512/" in fetched[0], fetched
        _assert_fetch_failed(result, fetched[0].lstrip("/"), "File has unexpected size")
        assert "Mirror sync in progress?" in result.output
        assert _downloaded_indices(by_hash) == []

        # A client taking the plain, uncompressed index: same size, wrong hashes.
        plain = _fresh_apt(tmp_path / "apt-plain", server.url, keyring)
        result = plain.update(options=("Acquire::By-Hash=no", *UNCOMPRESSED_ONLY))
        _assert_fetch_failed(result, f"{BINARY_DIR}/Packages", "Hash Sum mismatch")
        assert "Hashes of received file:" in result.output
        assert _downloaded_indices(plain) == []
        assert f"/{BINARY_DIR}/Packages" in server.paths()

    verified = published.run("verify", check=False)
    assert verified.returncode == 1, verified.describe()
    assert verified.stdout.startswith("FAILED:"), verified.describe()
    problems = _problems(verified)
    for name in INDEX_NAMES:
        expected = f"problem: {BINARY_DIR}/{name} does not match its size and checksums in Release"
        assert expected in problems, verified.describe()
    assert (
        f"problem: {BINARY_DIR}/Packages: the entry of alpha#1.0 differs from the store in Size; "
        "`debrepo rebuild --full` renders it again from the store" in problems
    ), verified.describe()


def test_verify_output_is_only_problem_lines(published: DebrepoCli) -> None:
    """A failed verify prints its findings, not Python warnings from the libraries it uses."""
    repo = published.repo_dir
    for name, data in _tampered_indices(repo).items():
        _replace(repo / BINARY_DIR / name, data)

    verified = published.run("verify", check=False)
    assert verified.returncode == 1, verified.describe()
    stray = [
        line
        for line in verified.stderr.splitlines()
        if not line.startswith(("problem: ", "debrepo: warning: "))
    ]
    assert stray == [], verified.describe()


def test_tampered_by_hash_copy_is_refused_by_apt_and_named_by_verify(
    tmp_path: Path, published: DebrepoCli
) -> None:
    """The by-hash copies are what apt downloads, so verify must check their contents too."""
    repo = published.repo_dir
    tampered = _tampered_indices(repo)
    damaged = []
    for name, data in tampered.items():
        for path in _current_by_hash(repo, name):
            _replace(path, data)
            damaged.append(path.relative_to(repo).as_posix())

    with serve_in_thread(repo) as server:
        apt = _fresh_apt(tmp_path / "apt", server.url, repo / KEYRING)
        result = apt.update()
        fetched = [p for p in server.paths(None) if "/by-hash/" in p]
        assert len(fetched) == 1, fetched
        _assert_fetch_failed(result, fetched[0].lstrip("/"), "File has unexpected size")

    verified = published.run("verify", check=False)
    assert verified.returncode == 1, verified.describe()
    problems = "\n".join(_problems(verified))
    for key in damaged:
        assert key in problems, verified.describe()


def _other_public_key(tmp_path: Path) -> Path:
    """The public half of a key the repository was never signed with."""
    cwd = tmp_path / "other-cwd"
    cwd.mkdir()
    other = DebrepoCli(home=tmp_path / "other-home", cwd=cwd)
    generated = other.run("key", "generate")
    assert "generated signing key" in generated.stdout, generated.describe()
    exported = tmp_path / "other-archive-keyring.gpg"
    other.run("key", "export", "--binary", "--output", exported)
    assert exported.stat().st_size > 0
    return exported


def test_client_with_a_different_key_refuses_the_repository(
    tmp_path: Path, published: DebrepoCli
) -> None:
    wrong_key = _other_public_key(tmp_path)
    repo = published.repo_dir
    assert wrong_key.read_bytes() != (repo / KEYRING).read_bytes()

    with serve_in_thread(repo) as server:
        good = _fresh_apt(tmp_path / "apt-good", server.url, repo / KEYRING)
        assert_clean_update(good.update())

        apt = _fresh_apt(tmp_path / "apt-wrong", server.url, wrong_key)
        before = len(server.requests())
        result = apt.update()
        wrong_client_fetched = [r.path for r in server.requests()[before:]]

    assert result.returncode != 0, result.describe()
    assert any(
        line.startswith(f"W: GPG error: {server.url} stable InRelease") and "NO_PUBKEY" in line
        for line in result.lines
    ), result.describe()
    assert f"E: The repository '{server.url} stable InRelease' is not signed." in result.lines, (
        result.describe()
    )
    # Nothing past the InRelease it could not verify.
    assert wrong_client_fetched == ["/dists/stable/InRelease"]
    assert _downloaded_indices(apt) == []


def test_replaced_published_key_is_named_by_verify_and_refused_by_apt(
    tmp_path: Path, published: DebrepoCli
) -> None:
    repo = published.repo_dir
    _replace(repo / KEYRING, _other_public_key(tmp_path).read_bytes())

    verified = published.run("verify", check=False)
    assert verified.returncode == 1, verified.describe()
    problems = _problems(verified)
    assert any(
        p.startswith(f"problem: {KEYRING} is not the public part of the signing key")
        for p in problems
    ), verified.describe()

    # A new user who downloads the replaced key cannot use the repository either.
    with serve_in_thread(repo) as server:
        apt = _fresh_apt(tmp_path / "apt", server.url, repo / KEYRING)
        result = apt.update()
    assert result.returncode != 0, result.describe()
    assert "NO_PUBKEY" in result.output, result.describe()
    assert f"E: The repository '{server.url} stable InRelease' is not signed." in result.lines


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda data: data + b"junk\n", "InRelease holds text after -----END PGP SIGNATURE-----"),
        (lambda data: b"junk\n" + data, "InRelease does not begin with -----BEGIN PGP SIGNED"),
    ],
    ids=["after", "before"],
)
def test_text_around_the_signed_inrelease_is_refused_by_apt_and_named_by_verify(
    tmp_path: Path, published: DebrepoCli, damage: Callable[[bytes], bytes], named: str
) -> None:
    """The signature still verifies in an OpenPGP library, which skips the extra text;
    apt splits the file itself and refuses it, so verify must too."""
    repo = published.repo_dir
    in_release = repo / "dists/stable/InRelease"
    _replace(in_release, damage(in_release.read_bytes()))

    with serve_in_thread(repo) as server:
        apt = _fresh_apt(tmp_path / "apt", server.url, repo / KEYRING)
        result = apt.update()
    assert result.returncode != 0, result.describe()
    # "Splitting up ... failed" or "Clearsigned file isn't valid, got 'NOSPLIT'": then
    # apt treats the repository as unsigned.
    assert f"E: The repository '{server.url} stable InRelease' is not signed." in result.lines

    verified = published.run("verify", check=False)
    assert verified.returncode == 1, verified.describe()
    assert any(named in p for p in _problems(verified)), verified.describe()
    published.run("rebuild")  # mended: a damaged InRelease is no intact tree to re-sign
    assert published.run("verify").returncode == 0
