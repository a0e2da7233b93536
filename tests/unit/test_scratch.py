"""Scratch folders left by a killed run go with the next run; a live run's stay."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from debrepo.errors import DebrepoError
from debrepo.scratch import OWNER, drop_scratch, new_scratch, sweep

FAMILY = "debrepo-test-"
_HOLDER = """
import sys, time
from pathlib import Path
from debrepo.scratch import new_scratch
path = new_scratch(sys.argv[1], Path(sys.argv[2]))
(path / "download.part").write_bytes(b"x" * 1000)
print(path, flush=True)
time.sleep(600)
"""


def _holder(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    """Another process that made a scratch folder under `parent` and still runs."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, FAMILY, str(parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_a_folder_whose_owner_was_killed_goes_with_the_next_one(tmp_path: Path) -> None:
    process, left = _holder(tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (left / "download.part").exists()
    mine = new_scratch(FAMILY, tmp_path)
    try:
        assert not left.exists()
        assert sorted(tmp_path.iterdir()) == [mine]
    finally:
        drop_scratch(mine)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_whose_owner_still_runs_is_left_alone(tmp_path: Path) -> None:
    process, theirs = _holder(tmp_path)
    try:
        mine = new_scratch(FAMILY, tmp_path)
        assert (theirs / "download.part").exists()
        assert sweep(FAMILY, tmp_path) == []
        drop_scratch(mine)
    finally:
        process.kill()
        process.wait()
    assert sweep(FAMILY, tmp_path) == [theirs]


def test_this_process_never_sweeps_its_own_folders(tmp_path: Path) -> None:
    first = new_scratch(FAMILY, tmp_path)
    second = new_scratch(FAMILY, tmp_path)
    assert first.is_dir() and second.is_dir() and (first / OWNER).exists()
    drop_scratch(first)
    drop_scratch(second)


def test_folders_without_an_owner_file_go_only_when_old(tmp_path: Path) -> None:
    young = tmp_path / f"{FAMILY}young"
    old = tmp_path / f"{FAMILY}old"
    for folder in (young, old):
        folder.mkdir()
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert sweep(FAMILY, tmp_path) == [old]
    assert young.is_dir()


def test_other_names_files_and_links_are_never_touched(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious").write_text("keep")
    (tmp_path / f"{FAMILY}link").symlink_to(target)
    (tmp_path / f"{FAMILY}file").write_text("a file")
    other = tmp_path / "other-folder"
    other.mkdir()
    os.utime(other, (0, 0))
    assert sweep(FAMILY, tmp_path) == []
    assert (target / "precious").read_text() == "keep"
    assert other.is_dir() and (tmp_path / f"{FAMILY}file").exists()


def test_an_owner_file_that_is_a_fifo_does_not_hold_the_sweep(tmp_path: Path) -> None:
    # Anyone may make folders in the shared /tmp: opening a FIFO to read waits for a
    # writer, which would hold every later run at its first download.
    planted = tmp_path / f"{FAMILY}planted"
    planted.mkdir()
    os.mkfifo(planted / OWNER)
    swept: list[list[Path]] = []
    sweeping = threading.Thread(target=lambda: swept.append(sweep(FAMILY, tmp_path)))
    sweeping.start()
    sweeping.join(timeout=10)
    held = sweeping.is_alive()
    if held:  # let it go: a writer opening the FIFO ends the wait
        os.close(os.open(planted / OWNER, os.O_WRONLY | os.O_NONBLOCK))
        sweeping.join()
    assert not held
    assert swept == [[planted]]
    assert not planted.exists()


def _scratch_failing_to_lock(tmp_path: Path, monkeypatch, code: int) -> DebrepoError:
    """The error of a new scratch folder whose owner file cannot be locked (`code`)."""

    def failing(fd: int, operation: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", failing)
    with pytest.raises(DebrepoError) as caught:
        new_scratch(FAMILY, tmp_path)
    return caught.value


def test_a_folder_that_cannot_be_locked_is_an_error_and_goes(tmp_path: Path, monkeypatch) -> None:
    caught = _scratch_failing_to_lock(tmp_path, monkeypatch, errno.ENOLCK)
    assert str(caught).startswith(f"{tmp_path}: cannot lock a temporary folder there")
    assert "TMPDIR" in str(caught)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_not_blamed_on_the_file_system(tmp_path: Path, monkeypatch) -> None:
    caught = _scratch_failing_to_lock(tmp_path, monkeypatch, errno.ENOSPC)
    assert str(caught) == (
        f"{tmp_path}: cannot make a temporary folder there: No space left on device"
    )
    assert list(tmp_path.iterdir()) == []


def test_another_users_folder_is_never_swept(tmp_path: Path, monkeypatch) -> None:
    """In the shared /tmp, a folder of this family's name may be anyone's: only this
    user's own abandoned ones go, even when run as root."""
    theirs = tmp_path / f"{FAMILY}theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("keep")
    os.utime(theirs, (0, 0))  # long abandoned, by the look of it
    if os.geteuid() == 0:
        os.chown(theirs, 65534, 65534)
    else:  # no user can give a folder away: this process pretends to be another
        other = os.geteuid() + 1
        monkeypatch.setattr(os, "geteuid", lambda: other)
    assert sweep(FAMILY, tmp_path) == []
    assert (theirs / "thesis.tex").read_text() == "keep"
