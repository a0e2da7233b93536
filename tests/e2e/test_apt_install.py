"""A new user's path, end to end, with the real CLI and the real apt.

`debrepo serve`, `debrepo build-repo-package`, `debrepo add` and `debrepo verify` run as
subprocesses with their own `--home`; apt-get runs in an isolated root and installs
kiro-repo, then switches to the sources file kiro-repo installed and resolves a
dependency between two packages added with `debrepo add`.
"""

from __future__ import annotations

import hashlib
import subprocess
import urllib.request
from pathlib import Path

import pytest
from debian import deb822

from tests.conftest import DebFactory
from tests.e2e.aptenv import (
    AptEnv,
    DebrepoCli,
    assert_clean_update,
    serve_cli,
)

pytestmark = pytest.mark.e2e

KEYRING_PATH = "/usr/share/keyrings/kiro-archive-keyring.gpg"
SOURCES_PATH = "/etc/apt/sources.list.d/kiro.sources"
BINARY_DIR = "dists/stable/main/binary-amd64"


@pytest.fixture
def cli(tmp_path: Path) -> DebrepoCli:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return DebrepoCli(home=tmp_path / "home", cwd=cwd)


def _fetch(url: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), response.headers.get("Content-Type", "")


def test_new_user_installs_kiro_repo_then_packages_with_dependencies(
    tmp_path: Path, cli: DebrepoCli, make_deb: DebFactory
) -> None:
    with serve_cli(cli, tmp_path / "logs") as server:
        # 1. Build and publish kiro-repo pointing at the running server.
        built = cli.run("--public-url", server.url, "build-repo-package", "--version", "1.0.0")
        assert "built kiro-repo_1.0.0_all.deb" in built.stdout, built.describe()
        assert "kiro-repo.deb is kiro-repo 1.0.0" in built.stdout, built.describe()
        published_key = (cli.repo_dir / "kiro-archive-keyring.gpg").read_bytes()
        exported_key = tmp_path / "exported.gpg"
        cli.run("key", "export", "--binary", "--output", exported_key)
        assert exported_key.read_bytes() == published_key

        # The convenience copy the instructions page tells users to download.
        convenience, content_type = _fetch(f"{server.url}/kiro-repo.deb")
        assert content_type == "application/vnd.debian.binary-package"
        pool_file = cli.repo_dir / "pool/main/k/kiro-repo/kiro-repo_1.0.0_all.deb"
        assert convenience == pool_file.read_bytes()

        # 2. apt trusts the published key through signed-by, and nothing else.
        apt = AptEnv(tmp_path / "aptroot")
        apt.use_source(server.url, cli.repo_dir / "kiro-archive-keyring.gpg")
        assert_clean_update(apt.update())
        install = apt.install("kiro-repo")
        assert install.returncode == 0, install.describe()
        assert install.problems() == [], install.describe()
        assert apt.installed() == {"kiro-repo": "1.0.0"}

        sources_text = apt.path(SOURCES_PATH).read_text()
        sources = deb822.Deb822(sources_text)
        assert dict(sources) == {
            "Types": "deb",
            "URIs": server.url,
            "Suites": "stable",
            "Components": "main",
            "Signed-By": KEYRING_PATH,
        }
        assert apt.path(KEYRING_PATH).read_bytes() == published_key

        # 3. From now on apt uses only what kiro-repo installed. Signed-By is an absolute
        #    path apt does not resolve inside Dir, so point it at the keyring in the root.
        apt.sources_list.unlink()
        apt.path(SOURCES_PATH).write_text(
            sources_text.replace(
                f"Signed-By: {KEYRING_PATH}", f"Signed-By: {apt.path(KEYRING_PATH)}"
            )
        )

        # 4. Two more packages: an Architecture: all library and an amd64 tool needing it.
        library = make_deb(
            "libkiro-greeting",
            "1.2-1",
            "all",
            description="greeting data for kiro tools\n Shared data files.",
        )
        tool = make_deb(
            "kiro-hello",
            "0.9.1",
            "amd64",
            extra_fields=[("Depends", "libkiro-greeting (>= 1.2)")],
            description="says hello\n A tool that needs libkiro-greeting.",
        )
        added = cli.run("--public-url", server.url, "add", library, tool)
        assert "added libkiro-greeting 1.2-1 (all)" in added.stdout, added.describe()
        assert "added kiro-hello 0.9.1 (amd64)" in added.stdout, added.describe()

        assert_clean_update(apt.update())
        install = apt.install("kiro-hello")
        assert install.returncode == 0, install.describe()
        assert install.problems() == [], install.describe()
        assert apt.installed() == {
            "kiro-repo": "1.0.0",
            "kiro-hello": "0.9.1",
            "libkiro-greeting": "1.2-1",
        }
        assert apt.path("/usr/share/doc/kiro-hello/README").read_text() == "kiro-hello 0.9.1\n"
        assert apt.path("/usr/share/doc/libkiro-greeting/README").is_file()
        # apt pulled the library in to satisfy Depends (marked automatically installed).
        states = list(
            deb822.Deb822.iter_paragraphs(
                (tmp_path / "aptroot/var/lib/apt/extended_states").read_text()
            )
        )
        auto = {p["Package"] for p in states if p.get("Auto-Installed") == "1"}
        assert auto == {"libkiro-greeting"}

        requests = server.requests()

    # 5. What apt fetched: every index by hash, nothing missing, the pool files.
    assert requests, "the server recorded no requests"
    failed = [r for r in requests if r.status >= 400]
    assert failed == [], failed
    index_requests = [r.path for r in requests if f"/{BINARY_DIR}/" in r.path]
    assert index_requests, [r.path for r in requests]
    not_by_hash = [
        p
        for p in index_requests
        if not p.startswith((f"/{BINARY_DIR}/by-hash/SHA512/", f"/{BINARY_DIR}/by-hash/SHA256/"))
    ]
    assert not_by_hash == [], index_requests
    assert len(set(index_requests)) >= 2, "the index changed, apt should have fetched it again"
    # The last index apt fetched is the one the current Release names.
    last_hash = index_requests[-1].rsplit("/", 1)[-1]
    current = {
        hashlib.new(algorithm, (cli.repo_dir / BINARY_DIR / name).read_bytes()).hexdigest()
        for name in ("Packages", "Packages.gz", "Packages.xz")
        for algorithm in ("sha256", "sha512")
    }
    assert last_hash in current
    fetched = {r.path for r in requests}
    assert "/dists/stable/InRelease" in fetched
    assert "/pool/main/k/kiro-repo/kiro-repo_1.0.0_all.deb" in fetched
    assert "/pool/main/k/kiro-hello/kiro-hello_0.9.1_amd64.deb" in fetched
    assert "/pool/main/l/libkiro-greeting/libkiro-greeting_1.2-1_all.deb" in fetched

    verified = cli.run("verify")
    assert verified.stdout.startswith("OK: 3 package(s)"), verified.describe()


def _source_written_by_hand(page: str) -> str:
    """The APT source the install page's "Set up by hand" block writes."""
    import html
    import re

    found = re.search(rf"sudo tee {SOURCES_PATH} &lt;&lt;'EOF'\n(.*?)\nEOF</pre>", page, re.S)
    assert found is not None, page
    return html.unescape(found.group(1)) + "\n"


@pytest.mark.parametrize("templates", ["shipped", "unreadable", "own"])
def test_kiro_repo_installs_over_the_source_the_page_sets_up_by_hand(
    cli: DebrepoCli, tmp_path: Path, templates: str
) -> None:
    """dpkg asks before replacing a configuration file that differs from the package's,
    and without a terminal fails: the page must write the very bytes kiro-repo ships."""
    import shutil

    from debian.debfile import DebFile

    if templates == "own":  # kiro-repo.yaml names templates of its own (build.template_dir)
        checkout = tmp_path / "checkout"
        shutil.copytree(cli.config_dir, checkout / "config" / "packages")
        shutil.copytree(cli.config_dir.parent.parent / "templates", checkout / "templates")
        shutil.copytree(checkout / "templates" / "kiro-repo", checkout / "own-templates")
        with (checkout / "own-templates" / "kiro.sources").open("a") as sources:
            sources.write("Architectures: amd64\n")
        definition = checkout / "config" / "packages" / "kiro-repo.yaml"
        text = definition.read_text()
        assert 'template_dir: "templates/kiro-repo/"' in text
        definition.write_text(text.replace("templates/kiro-repo/", "own-templates/"))
        cli = DebrepoCli(home=cli.home, cwd=cli.cwd, config_dir=checkout / "config" / "packages")
    cli.run("build-repo-package", "--version", "1.0.0")
    if templates == "unreadable":  # published where only the definitions are (the default text)
        elsewhere = tmp_path / "elsewhere" / "config" / "packages"
        elsewhere.mkdir(parents=True)
        for definition in cli.config_dir.glob("*.yaml"):
            (elsewhere / definition.name).write_bytes(definition.read_bytes())
        DebrepoCli(home=cli.home, cwd=cli.cwd, config_dir=elsewhere).run("rebuild", "--full")
    page = (cli.repo_dir / "index.html").read_text()
    deb = cli.repo_dir / "kiro-repo.deb"
    shipped = DebFile(str(deb)).data.get_content(SOURCES_PATH.lstrip("/")).decode()
    assert _source_written_by_hand(page) == shipped
    assert ("Architectures: amd64" in shipped) == (templates == "own")

    root = tmp_path / "root"
    for folder in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc/apt/sources.list.d"):
        (root / folder).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    (root / SOURCES_PATH.lstrip("/")).write_text(_source_written_by_hand(page))
    done = subprocess.run(
        ["dpkg", f"--root={root}", "--force-not-root", "--force-script-chrootless", "-i", deb],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "conffile" not in done.stdout + done.stderr
