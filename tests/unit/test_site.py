"""core/site.py: the instructions page tells a new user what to install."""

from __future__ import annotations

import html
import re
import subprocess
from html.parser import HTMLParser

import pytest

from debrepo.core.site import DEFAULT_SOURCES_TEMPLATE, render_index_html
from tests.conftest import PROJECT_ROOT
from tests.unit.helpers import make_record


def page_for(
    *names: str, architectures: tuple[str, ...] = (), sources_file: str | None = None
) -> str:
    return render_index_html(
        public_url="https://apt.example.com/",
        label="Kiro",
        suite="stable",
        component="main",
        keyring_name="kiro-archive-keyring",
        fingerprint="ab" * 20,
        latest=[make_record(name, "1.0") for name in names],
        architectures=architectures,
        sources_file=sources_file,
    ).decode("utf-8")


def install_steps(page: str) -> list[str]:
    """The lines of the first <pre> block: the commands a user copies."""
    match = re.search(r"<pre>(.*?)</pre>", page, re.S)
    assert match is not None
    return match.group(1).splitlines()


@pytest.mark.parametrize(
    ("names", "last_step"),
    [
        (("kiro", "kiro-cli", "kiro-repo"), "sudo apt install kiro"),
        (("kiro-cli", "kiro-repo"), "sudo apt install kiro-cli"),
        (("hello", "kiro-repo"), "sudo apt install hello"),
        (("kiro-repo",), "sudo apt update"),
        (("alpha", "beta", "kiro-repo"), "sudo apt update"),
    ],
)
def test_the_install_steps_end_with_a_package_that_is_published(names, last_step):
    steps = install_steps(page_for(*names))
    assert steps[:3] == [
        "curl -fsSLO https://apt.example.com/kiro-repo.deb",
        "sudo apt install ./kiro-repo.deb",
        "sudo apt update",
    ]
    assert steps[-1] == last_step
    for step in steps:
        if step.startswith("sudo apt install ") and not step.endswith(".deb"):
            assert step.removeprefix("sudo apt install ") in names


@pytest.mark.parametrize(
    ("names", "last_steps"),
    [
        (("hello",), ["sudo apt update", "sudo apt install hello"]),
        (("kiro", "kiro-cli"), ["sudo apt update", "sudo apt install kiro"]),
        (("alpha", "beta"), ["sudo apt update"]),
    ],
)
def test_without_a_repository_package_the_page_never_points_at_one(names, last_steps):
    page = page_for(*names)
    assert "kiro-repo.deb" not in page
    blocks = re.findall(r"<pre>(.*?)</pre>", page, re.S)
    assert blocks[0].startswith(
        "curl -fsSL https://apt.example.com/kiro-archive-keyring.gpg | sudo tee"
    )
    assert blocks[-1].splitlines() == last_steps


def test_the_page_is_well_formed_and_lists_every_package():
    page = page_for("kiro", "kiro-repo")
    cells: list[str] = []

    class Cells(HTMLParser):
        def handle_data(self, data: str) -> None:
            if self.get_starttag_text() == "<td>":
                cells.append(data)

    Cells().feed(page)
    assert "kiro" in cells and "kiro-repo" in cells
    assert "ABABABAB" in page  # the fingerprint, as gpg shows it


def test_the_default_source_is_the_template_kiro_repo_ships():
    """Where a publish cannot read templates/, the page still gives the file kiro-repo
    installs from an unchanged checkout."""
    shipped = (PROJECT_ROOT / "templates/kiro-repo/kiro.sources").read_text(encoding="utf-8")
    assert shipped == DEFAULT_SOURCES_TEMPLATE


def test_the_page_names_the_architectures_it_serves():
    page = page_for("kiro", architectures=("amd64", "arm64"))
    assert "For amd64, arm64 machines only: apt on another architecture finds none" in page


@pytest.mark.parametrize("template", [DEFAULT_SOURCES_TEMPLATE, "Types: deb\nEOF\nEOF1\n"])
def test_the_hand_setup_command_writes_the_sources_file_whole(template, tmp_path):
    """The copied command, run by a shell, writes exactly the file kiro-repo installs,
    even from a template with a line reading EOF."""
    page = page_for("kiro", "kiro-repo", sources_file=template)
    (pre,) = [p for p in re.findall(r"<pre>(.*?)</pre>", page, re.S) if "sources.list.d" in p]
    pre = html.unescape(pre)
    command = pre[pre.index("sudo tee /etc/apt/sources.list.d/") :]
    target = tmp_path / "kiro.sources"
    command = re.sub(r"^sudo tee \S+", f"cat > {target}", command)
    subprocess.run(["sh", "-c", command], check=True, timeout=10)
    assert target.read_text(encoding="utf-8") == template.rstrip("\n") + "\n"
