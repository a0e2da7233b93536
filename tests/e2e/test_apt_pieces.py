"""Real apt reads compressed indices made of separately compressed pieces.

debrepo compresses `Packages` piece by piece and, on the next publish, compresses
only the pieces that changed (core/compression.py). The result must be an ordinary
gzip member and an ordinary xz stream to every client: here apt reads each of them in
turn, after a publish that reused a piece, and installs a package from each piece.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DebFactory, piece_cutting_deb
from tests.e2e.aptenv import AptEnv, DebrepoCli, assert_clean_update, serve_in_thread
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

BINARY_DIR = "dists/stable/main/binary-amd64"
COMPRESSORS = ("xz", "gz", "bz2", "lzma", "lz4", "zst")


def _only(kind: str) -> list[str]:
    """apt options that leave `kind` the only compression apt will fetch."""
    return [f"Acquire::CompressionTypes::{other}=none" for other in COMPRESSORS if other != kind]


def _xz_blocks(path: Path) -> tuple[int, int]:
    listed = subprocess.run(
        [require_tool("xz"), "--robot", "--list", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    totals = next(line.split("\t") for line in listed.splitlines() if line.startswith("totals"))
    return int(totals[1]), int(totals[2])


@pytest.mark.parametrize("kind", ["xz", "gz"])
def test_apt_installs_from_every_piece_after_an_incremental_publish(
    tmp_path: Path, make_deb: DebFactory, kind: str
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cli = DebrepoCli(home=tmp_path / "home", cwd=cwd)
    cli.run("add", make_deb("alpha", "1.0"), piece_cutting_deb(make_deb, "beta", "1.0"))
    binary = cli.repo_dir / BINARY_DIR
    first_xz = (binary / "Packages.xz").read_bytes()
    # A third package lands in beta's piece; alpha's is taken from the first publish.
    cli.run("add", make_deb("gamma", "1.0"))
    assert _xz_blocks(binary / "Packages.xz") == (1, 2)
    second_xz = (binary / "Packages.xz").read_bytes()
    assert second_xz[:64] == first_xz[:64] and second_xz != first_xz
    verified = cli.run("verify")
    assert verified.stdout.startswith("OK: 3 package(s)"), verified.describe()

    fetched = (binary / f"Packages.{kind}").read_bytes()
    with serve_in_thread(cli.repo_dir) as server:
        apt = AptEnv(tmp_path / "aptroot")
        apt.use_source(server.url, cli.repo_dir / "kiro-archive-keyring.gpg")
        assert_clean_update(apt.update(options=_only(kind)))
        by_hash = [p for p in server.paths() if "/by-hash/" in p]
        digests = {hashlib.sha256(fetched).hexdigest(), hashlib.sha512(fetched).hexdigest()}
        assert len(by_hash) == 1 and by_hash[0].rsplit("/", 1)[1] in digests, server.paths()
        install = apt.install("alpha", "beta", "gamma")
        assert install.returncode == 0, install.describe()
        assert install.problems() == [], install.describe()
    assert apt.installed() == {"alpha": "1.0", "beta": "1.0", "gamma": "1.0"}
