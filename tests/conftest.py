"""Shared fixtures: synthetic .deb files, a workspace on the embedded default, a fixed clock."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from debrepo.app import Workspace
from debrepo.core.debwriter import DebMember, build_deb, installed_size_kib
from debrepo.settings import Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "config" / "packages"
FIXED_NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)

DebFactory = Callable[..., Path]


def deb_bytes(
    name: str = "hello",
    version: str = "1.0",
    architecture: str = "amd64",
    *,
    extra_fields: Sequence[tuple[str, str]] = (),
    description: str = "a test package\n It exists to be published.",
    maintainer: str = "Test Maintainer <test@example.com>",
    files: Sequence[DebMember] | None = None,
    mtime: int = 1_700_000_000,
) -> bytes:
    """A real, installable binary package with the given control fields."""
    members = (
        list(files)
        if files is not None
        else [DebMember(f"usr/share/doc/{name}/README", f"{name} {version}\n".encode())]
    )
    control = [
        ("Package", name),
        ("Version", version),
        ("Architecture", architecture),
        ("Maintainer", maintainer),
        ("Installed-Size", str(installed_size_kib(members))),
        *extra_fields,
        ("Description", description),
    ]
    return build_deb(control, members, mtime=mtime)


def piece_cutting_deb(
    make_deb: DebFactory, name: str, version: str = "1.0", **kwargs: object
) -> Path:
    """A .deb whose SHA256 starts a new piece of the compressed indices (about one in
    256 does): found by varying its description, which is deterministic."""
    from debrepo.core.indexes import PIECE_START

    for attempt in range(5000):
        path = make_deb(name, version, description=f"a test package\n Variant {attempt}.", **kwargs)
        if hashlib.sha256(path.read_bytes()).hexdigest().startswith(PIECE_START):
            return path
    raise AssertionError(f"no variant of {name} starts a piece")


@pytest.fixture
def make_deb(tmp_path: Path) -> DebFactory:
    """Write a synthetic .deb into tmp_path/debs and return its path."""
    directory = tmp_path / "debs"
    directory.mkdir(exist_ok=True)

    def factory(
        name: str = "hello", version: str = "1.0", architecture: str = "amd64", **kwargs: object
    ) -> Path:
        path = directory / f"{name}_{version.replace(':', '%3a')}_{architecture}.deb"
        path.write_bytes(deb_bytes(name, version, architecture, **kwargs))  # type: ignore[arg-type]
        return path

    return factory


def settings_for(home: Path, **overrides: object) -> Settings:
    flags = {"home": str(home), "config_dir": str(CONFIG_DIR), **overrides}
    return load_settings(flags, environ={}, cwd=home.parent)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path / "home")


@pytest.fixture
def workspace(settings: Settings) -> Workspace:
    return Workspace(settings)


# -- no test may be skipped --------------------------------------------------------------
# A skipped test proves nothing, and a run that skips one (a tool missing, an import that
# failed, an xfail left behind) must not pass for a green one. Only an xfail marked
# strict is allowed: should its test ever pass, pytest fails the run by itself.
_SKIPPED = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SKIPPED] = []


def _strict_xfail(item: pytest.Item) -> bool:
    mark = item.get_closest_marker("xfail")
    if mark is None:  # pytest.xfail() called by the test itself
        return False
    strict = mark.kwargs.get("strict")
    if strict is None:
        strict = item.config.getini("strict_xfail")
    if strict is None:
        strict = item.config.getini("strict")
    return bool(strict)


def _describe_skip(report: pytest.CollectReport | pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        outcome = "XPASS" if report.passed else "XFAIL"
        return f"{outcome} {report.nodeid} {report.wasxfail}".rstrip()
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    return f"SKIPPED {report.nodeid} ({reason})"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    xfail = hasattr(report, "wasxfail")  # xfailed, or passed though marked xfail
    if (report.skipped or xfail) and not (xfail and _strict_xfail(item)):
        item.config.stash[_SKIPPED].append(_describe_skip(report))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped:  # a whole module skipped (pytest.importorskip at its top level)
        collector.config.stash[_SKIPPED].append(_describe_skip(report))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash[_SKIPPED] and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.config.stash[_SKIPPED]
    if skipped:
        terminalreporter.section("skipped tests fail the run", sep="=", red=True, bold=True)
        for entry in skipped:
            terminalreporter.line(entry, red=True)
        terminalreporter.line(
            f"{len(skipped)} test(s) skipped: every test must run (an xfail must be strict)",
            red=True,
            bold=True,
        )
