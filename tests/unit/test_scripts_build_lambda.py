"""scripts/build-lambda.sh, run the way README's first AWS deployment step runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.tools import require_tool

# What `make lambda-package` needs of the project: the build script, the sources of the
# wheel and what goes into the zip beside it.
PROJECT_FILES = ("Makefile", "pyproject.toml", "README.md")
PROJECT_FOLDERS = ("scripts", "src", "config", "templates")


def _copy_of_the_project(into: Path) -> Path:
    copy = into / "project"
    copy.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(PROJECT_ROOT / name, copy / name)
    for name in PROJECT_FOLDERS:
        shutil.copytree(
            PROJECT_ROOT / name,
            copy / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
    return copy


def _build(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # This interpreter's pip builds the wheel; the copy has no virtualenv of its own.
    built = subprocess.run(
        list(command),
        cwd=cwd,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return built


def _names(archive: Path) -> set[str]:
    with zipfile.ZipFile(archive) as opened:
        return set(opened.namelist())


def test_make_lambda_package_writes_the_zip_the_readme_names(tmp_path):
    require_tool("make")  # a failure, not a skip, where it is missing
    project = _copy_of_the_project(tmp_path)
    # What an earlier build left: a module removed since then.
    (project / "build" / "lib" / "debrepo").mkdir(parents=True)
    (project / "build" / "lib" / "debrepo" / "removed_since.py").write_text("")
    # The virtualenv is taken as made: the recipe is what is under test.
    built = _build(
        project, "make", "--no-print-directory", "-o", ".venv/.installed", "lambda-package"
    )
    archive = project / "build" / "debrepo-lambda.zip"
    assert f"built {archive} " in built.stdout
    names = _names(archive)
    assert "debrepo/aws_lambda.py" in names
    assert "config/packages/kiro-repo.yaml" in names
    assert any(name.startswith("templates/") for name in names)
    assert "debrepo/removed_since.py" not in names


def test_a_relative_output_is_taken_from_the_callers_folder(tmp_path):
    caller = tmp_path / "elsewhere"
    caller.mkdir()
    _build(caller, str(PROJECT_ROOT / "scripts" / "build-lambda.sh"), "out/function.zip")
    assert "debrepo/aws_lambda.py" in _names(caller / "out" / "function.zip")
    assert not (PROJECT_ROOT / "out").exists()
