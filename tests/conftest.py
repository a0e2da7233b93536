"""Shared fixtures: synthetic .deb files, a workspace on the embedded default, a fixed clock."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
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
