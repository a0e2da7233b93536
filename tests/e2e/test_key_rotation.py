"""Changing the signing key without breaking clients, end to end with the real apt.

The old key announces the new one (`debrepo key generate --next`), a new kiro-repo
carries both, clients upgrade to it, and only then does the new key sign. A client that
upgraded keeps working across the switch; one that did not is the one the refusals
protect (it fails with NO_PUBKEY).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pysequoia as sq
import pytest

from tests.e2e.aptenv import (
    AptEnv,
    DebrepoCli,
    assert_clean_update,
    serve_cli,
)

pytestmark = pytest.mark.e2e

KEYRING = "kiro-archive-keyring"
KEYRING_PATH = f"/usr/share/keyrings/{KEYRING}.gpg"
SOURCES_PATH = "/etc/apt/sources.list.d/kiro.sources"


def _fingerprints(keyring: bytes) -> list[str]:
    return [str(cert.fingerprint).lower() for cert in sq.Cert.split_bytes(keyring)]


def _client_of_installed_kiro_repo(apt: AptEnv) -> None:
    """From now on apt uses only what kiro-repo installed (Signed-By pointed into the
    root: apt does not resolve it inside Dir)."""
    apt.sources_list.unlink(missing_ok=True)
    text = apt.path(SOURCES_PATH).read_text()
    apt.path(SOURCES_PATH).write_text(
        text.replace(f"Signed-By: {KEYRING_PATH}", f"Signed-By: {apt.path(KEYRING_PATH)}")
    )


def test_announced_key_takes_over_for_clients_that_upgraded_kiro_repo(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    served = DebrepoCli(home=tmp_path / "home", cwd=cwd)
    keys = served.home / "keys"
    with serve_cli(served, tmp_path / "logs") as server:
        cli = dataclasses.replace(served, flags=["--public-url", server.url])
        repo = cli.repo_dir
        inrelease = repo / "dists/stable/InRelease"
        cli.run("build-repo-package", "--version", "1.0.0")
        old_key = (repo / f"{KEYRING}.gpg").read_bytes()
        [old_fpr] = _fingerprints(old_key)

        # Two clients install kiro-repo 1.0.0: one will upgrade it, one will not.
        upgrading, stale = AptEnv(tmp_path / "upgrading"), AptEnv(tmp_path / "stale")
        for apt in (upgrading, stale):
            apt.use_source(server.url, repo / f"{KEYRING}.gpg")
            assert_clean_update(apt.update())
            install = apt.install("kiro-repo")
            assert install.returncode == 0, install.describe()
            _client_of_installed_kiro_repo(apt)

        # 1. The next key is generated and announced: the keyring holds both, the old
        #    key still signs, and a client given the armoured keyring accepts it.
        announced = cli.run("key", "generate", "--next")
        next_file = keys / "next-signing-key.asc"
        new_fpr = str(sq.Tsk.from_bytes(next_file.read_bytes()).extract_certificate().fingerprint)
        assert f"announced key {new_fpr.upper()}" in announced.stdout, announced.describe()
        assert _fingerprints((repo / f"{KEYRING}.gpg").read_bytes()) == [old_fpr, new_fpr]
        assert _fingerprints((repo / f"{KEYRING}.asc").read_bytes()) == [old_fpr, new_fpr]
        armoured = AptEnv(tmp_path / "armoured")
        armoured.use_source(server.url, repo / f"{KEYRING}.asc")
        assert_clean_update(armoured.update())
        shown = cli.run("key", "show").stdout.splitlines()
        assert [line.split()[0].lower() for line in shown] == [old_fpr, new_fpr], shown
        # kiro-repo 1.0.0 does not install the next key yet: a warning, not a problem.
        verified = cli.run("verify")
        assert f"without the announced key {new_fpr.upper()}" in verified.stderr, (
            verified.describe()
        )

        # 2. Switching before a kiro-repo carries the new key is refused, and changes
        #    nothing that clients read.
        old_file = keys / "signing-key.asc"
        shutil.copyfile(old_file, tmp_path / "old-signing-key.asc")
        before = inrelease.read_bytes()
        shutil.copyfile(next_file, old_file)
        refused = cli.run("rebuild", check=False)
        assert refused.returncode != 0, refused.describe()
        assert "the newest kiro-repo (1.0.0) does not install it" in refused.stderr, (
            refused.describe()
        )
        assert inrelease.read_bytes() == before
        shutil.copyfile(tmp_path / "old-signing-key.asc", old_file)

        # 3. kiro-repo 1.1.0 carries both keys; one client upgrades to it.
        cli.run("build-repo-package", "--version", "1.1.0")
        assert_clean_update(upgrading.update())
        upgrade = upgrading.install("kiro-repo")
        assert upgrade.returncode == 0, upgrade.describe()
        assert upgrading.installed() == {"kiro-repo": "1.1.0"}
        installed = upgrading.path(KEYRING_PATH).read_bytes()
        assert _fingerprints(installed) == [old_fpr, new_fpr]
        assert_clean_update(upgrading.update())
        verified = cli.run("verify")
        assert verified.stderr == "", verified.describe()  # no warning left

        # 4. Not before clients had key_switch_days to upgrade (7 by default)...
        shutil.copyfile(next_file, old_file)
        early = cli.run("rebuild", check=False)
        assert early.returncode != 0 and "(key_switch_days)" in early.stderr, early.describe()
        shutil.copyfile(tmp_path / "old-signing-key.asc", old_file)
        assert_clean_update(upgrading.update())

        # 5. ...then the new key takes over: the keyring holds it alone, and the publish
        #    needs no --replace.
        (cwd / "debrepo.yaml").write_text("key_switch_days: 0\n")
        shutil.copyfile(next_file, old_file)
        switched = cli.run("rebuild")
        assert switched.returncode == 0, switched.describe()
        assert _fingerprints((repo / f"{KEYRING}.gpg").read_bytes()) == [new_fpr]
        assert [line.split()[0].lower() for line in cli.run("key", "show").stdout.splitlines()] == [
            new_fpr
        ]
        verified = cli.run("verify")  # kiro-repo 1.1.0 still installs the old key too
        assert verified.returncode == 0, verified.describe()
        assert "which neither signs nor is announced" in verified.stderr, verified.describe()

        # The client that upgraded kiro-repo trusts the new key; the one that did not
        # fails, as every client would have without the announcement.
        assert_clean_update(upgrading.update())
        failed = stale.update()
        assert "NO_PUBKEY" in failed.output, failed.describe()
        assert failed.problems(), failed.describe()
