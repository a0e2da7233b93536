"""`debrepo sync` end to end: the real console script from a fresh checkout, a local
upstream serving a realistic kiro .deb and the recorded GitHub releases, `debrepo
serve`, and real apt-get in an isolated root installing kiro and kiro-repo."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.e2e.aptenv import (
    COMMAND_TIMEOUT,
    AptEnv,
    CliResult,
    DebrepoCli,
    assert_clean_update,
    clean_environment,
    serve_cli,
)
from tests.sources.conftest import (
    KIRO_CLI_DEB_PATH,
    KIRO_DEB_PATH,
    METADATA_PATH,
    RELEASES_PATH,
    Upstream,
    kiro_cli_deb,
    kiro_deb,
    make_checkout,
)

pytestmark = pytest.mark.e2e


def run(cli: DebrepoCli, env: dict[str, str], *args: str) -> CliResult:
    """`debrepo ARGS` as `cli` runs it, with `env` as its whole environment."""
    argv = cli.argv(*args)
    done = subprocess.run(
        argv,
        cwd=cli.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    return CliResult(argv, done.returncode, done.stdout, done.stderr)


def _environment(upstream: Upstream, temp: Path) -> dict[str, str]:
    env = clean_environment(DEBREPO_GITHUB_API_URL=f"{upstream.base}/api", TMPDIR=str(temp))
    env.pop("GITHUB_TOKEN", None)
    return env


def test_sync_from_a_fresh_checkout_then_apt_installs_kiro_and_kiro_repo(
    tmp_path: Path, upstream: Upstream
) -> None:
    kiro, kiro_cli = kiro_deb(), kiro_cli_deb()
    upstream.serve_kiro_live(kiro)
    upstream.serve_kiro_cli(kiro_cli)
    checkout = tmp_path / "checkout"
    config_dir = make_checkout(checkout, upstream.url(METADATA_PATH))
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = _environment(upstream, temp)
    serving = DebrepoCli(home=tmp_path / "home", cwd=checkout, config_dir=config_dir)

    with serve_cli(serving, tmp_path / "logs") as server:
        cli = DebrepoCli(serving.home, checkout, config_dir, flags=("--public-url", server.url))
        built = run(cli, env, "build-repo-package", "--version", "1.0.0")
        assert built.returncode == 0, built.describe()

        dry = run(cli, env, "sync", "--dry-run")
        assert dry.returncode == 0, dry.describe()
        assert f"kiro: would fetch 0.9.2 from {upstream.url(KIRO_DEB_PATH)}" in dry.stdout
        assert "dry run: would publish (2 new version(s)); nothing was changed" in dry.stdout
        assert upstream.count(KIRO_DEB_PATH) == 0

        first = run(cli, env, "sync")
        assert first.returncode == 0, first.describe()
        assert first.stdout.splitlines()[:4] == [
            f"kiro: stored 0.9.2 from {upstream.url(KIRO_DEB_PATH)}",
            f"kiro-cli: stored 1.2.0 from {upstream.url(KIRO_CLI_DEB_PATH)}",
            "kiro-repo: nothing to fetch (versions come from the build script: debrepo "
            "build-repo-package)",
            "2 new version(s); published",
        ]
        # kiro and kiro-cli were downloaded straight into the pool.
        assert "3 package(s) published, 2 pool file(s) added" in first.stdout, first.describe()
        assert first.stderr == "", first.describe()
        verified = run(cli, env, "verify")
        assert verified.returncode == 0, verified.describe()

        apt = AptEnv(tmp_path / "aptroot")
        apt.use_source(server.url, cli.repo_dir / "kiro-archive-keyring.gpg")
        assert_clean_update(apt.update())
        install = apt.install("kiro", "kiro-repo")
        assert install.returncode == 0, install.describe()
        assert install.problems() == [], install.describe()
        assert apt.installed() == {"kiro": "0.9.2", "kiro-repo": "1.0.0"}
        assert apt.path("/usr/share/kiro/kiro").read_text() == "#!/bin/sh\necho 'Kiro 0.9.2'\n"
        assert apt.path("/usr/share/applications/kiro.desktop").is_file()
        assert apt.path("/etc/apt/sources.list.d/kiro.sources").is_file()
        packages = (cli.repo_dir / "dists/stable/main/binary-amd64/Packages").read_text()
        assert "Package: kiro-cli\nArchitecture: amd64\nVersion: 1.2.0\n" in packages
        assert "Depends: kiro (>= 1.0)\n" in packages  # kiro-cli.yaml's, for a later kiro

        second = run(cli, env, "sync")
        assert second.returncode == 0, second.describe()
        assert second.stdout.splitlines()[:3] == [
            "kiro: 0.9.2 is already stored; nothing to fetch",
            "kiro-cli: 1.2.0 is already stored; nothing to fetch",
            "kiro-repo: nothing to fetch (versions come from the build script: debrepo "
            "build-repo-package)",
        ]
        assert second.stdout.splitlines()[3].startswith("nothing new, nothing published; ")
        assert upstream.count(KIRO_DEB_PATH) == upstream.count(KIRO_CLI_DEB_PATH) == 1
        assert upstream.count(METADATA_PATH) == upstream.count(RELEASES_PATH) == 3
        assert list(temp.iterdir()) == []


def test_sync_exit_codes(tmp_path: Path, upstream: Upstream) -> None:
    upstream.server.expect_request(METADATA_PATH).respond_with_data("Not Found", status=404)
    upstream.server.expect_request(RELEASES_PATH).respond_with_json(
        {"message": "Not Found"}, status=404
    )
    checkout = tmp_path / "checkout"
    config_dir = make_checkout(checkout, upstream.url(METADATA_PATH))
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = _environment(upstream, temp)
    cli = DebrepoCli(home=tmp_path / "home", cwd=checkout, config_dir=config_dir)

    failed = run(cli, env, "sync")
    assert failed.returncode == 1, failed.describe()
    assert failed.stdout.splitlines()[:2] == [
        f"kiro: failed: {upstream.url(METADATA_PATH)}: HTTP 404 NOT FOUND",
        f"kiro-cli: failed: {upstream.base}/api/repos/kiro-dev/kiro-cli/releases?per_page=30: "
        "repository kiro-dev/kiro-cli not found; check "
        f"source.repository in {config_dir / 'kiro-cli.yaml'}",
    ]
    # Each reason once: the outcome line, not also a log line on stderr.
    assert "ERROR" not in failed.stderr, failed.describe()
    error_lines = [line for line in failed.stderr.splitlines() if "debrepo: error: " in line]
    # Standard output is no terminal (a cron job may keep only standard error): the error
    # line carries the reasons too.
    both_reasons = (
        f"debrepo: error: sync failed for every package checked: kiro: "
        f"{upstream.url(METADATA_PATH)}: HTTP 404 NOT FOUND; kiro-cli: "
        f"{failed.stdout.splitlines()[1].split(': failed: ', 1)[1]}"
    )
    assert error_lines == [both_reasons], failed.describe()
    # On a terminal the reasons were just shown, each on its line: the error names the
    # packages only.
    controller, terminal = pty.openpty()
    try:
        on_terminal = subprocess.run(
            cli.argv("sync"),
            cwd=cli.cwd,
            env=env,
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert on_terminal.returncode == 1
    assert [line for line in on_terminal.stderr.splitlines() if "debrepo: error: " in line] == [
        "debrepo: error: sync failed for every package checked (kiro, kiro-cli); the reasons "
        "are above"
    ], on_terminal.stderr
    quiet = run(cli, env, "-q", "sync")
    assert quiet.returncode == 1, quiet.describe()
    assert quiet.stdout == "", quiet.describe()
    assert "ERROR" not in quiet.stderr, quiet.describe()  # the error line carries them
    assert [line for line in quiet.stderr.splitlines() if "debrepo: error: " in line] == [
        both_reasons
    ], quiet.describe()

    # kiro served, kiro-cli still not found: the one that worked is published, and the
    # exit status still says that something failed.
    upstream.server.clear()
    upstream.serve_kiro_live(kiro_deb())
    upstream.server.expect_request(RELEASES_PATH).respond_with_json(
        {"message": "Not Found"}, status=404
    )
    partial = run(cli, env, "sync")
    assert partial.returncode == 3, partial.describe()
    assert partial.stdout.startswith("kiro: stored 0.9.2 from "), partial.describe()
    assert [line for line in partial.stderr.splitlines() if "debrepo: error: " in line] == [
        "debrepo: error: sync failed for kiro-cli: "
        f"{upstream.base}/api/repos/kiro-dev/kiro-cli/releases?per_page=30: repository "
        "kiro-dev/kiro-cli not found; check source.repository "
        f"in {config_dir / 'kiro-cli.yaml'}; the other packages were synced"
    ], partial.describe()
    quiet_partial = run(cli, env, "-q", "sync")
    assert quiet_partial.returncode == 3, quiet_partial.describe()
    assert "debrepo: error: sync failed for kiro-cli: " in quiet_partial.stderr

    unknown = run(cli, env, "sync", "--package", "kiro-ide")
    assert unknown.returncode == 2, unknown.describe()
    assert "package 'kiro-ide' is not defined in the package configuration" in unknown.stderr
    assert list(temp.iterdir()) == []
