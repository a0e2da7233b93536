"""`debrepo serve` and apt's conditional requests."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from tests.conftest import DebFactory
from tests.e2e.aptenv import AptEnv, DebrepoCli, assert_clean_update, serve_cli

pytestmark = pytest.mark.e2e


def test_republish_within_the_same_second_reaches_apt(tmp_path: Path, make_deb: DebFactory) -> None:
    """apt asks for InRelease with If-Modified-Since; a Release published again within the
    same wall-clock second (a script running `debrepo add` twice on a fast machine) must
    still be served, not answered with 304 Not Modified. The second publish's time is
    pinned inside the first one's second so the outcome does not depend on the clock."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cli = DebrepoCli(home=tmp_path / "home", cwd=cwd)
    cli.run("add", make_deb("alpha", "1.0"))
    inrelease = cli.repo_dir / "dists/stable/InRelease"

    with serve_cli(cli, tmp_path / "logs") as server:
        apt = AptEnv(tmp_path / "aptroot")
        apt.use_source(server.url, cli.repo_dir / "kiro-archive-keyring.gpg")
        assert_clean_update(apt.update())
        first = inrelease.stat().st_mtime

        cli.run("add", make_deb("beta", "1.0"))
        same_second = max(first, math.floor(first) + 0.999)
        os.utime(inrelease, (same_second, same_second))
        before = len(server.requests())
        update = apt.update()
        asked = [r for r in server.requests()[before:] if r.path == "/dists/stable/InRelease"]
        install = apt.install("beta")

    assert [r.status for r in asked] == [200], (
        f"InRelease changed but was answered with {[r.status for r in asked]}"
    )
    assert_clean_update(update)
    stored = apt.root / "var/lib/apt/lists" / f"127.0.0.1:{server.port}_dists_stable_InRelease"
    assert stored.read_bytes() == inrelease.read_bytes()
    assert install.returncode == 0, install.describe()
    assert apt.installed() == {"beta": "1.0"}
