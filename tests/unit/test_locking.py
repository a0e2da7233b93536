"""locking.py: one publisher at a time, across processes; a dead holder frees the lock."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from debrepo.errors import LockError
from debrepo.locking import local_lock

HOLDER = """
import sys
from pathlib import Path
from debrepo.locking import local_lock

with local_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


class Holder:
    """Another process holding the lock until told to let go (or killed)."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.strip() == "held", line

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "released"
        self.process.wait(timeout=30)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "publish.lock"


@pytest.fixture
def holder(lock_path: Path) -> Iterator[Holder]:
    started = Holder(lock_path)
    yield started
    started.close()


def test_second_holder_gets_lock_error_naming_the_holder(holder, lock_path):
    with pytest.raises(LockError) as caught, local_lock(lock_path):
        pass
    message = str(caught.value)
    assert f"pid {holder.pid} on " in message
    assert str(lock_path) in message
    assert "--wait" in message


def test_short_wait_still_fails_while_held(holder, lock_path):
    with pytest.raises(LockError) as caught, local_lock(lock_path, wait_seconds=0.3):
        pass
    # Not "pass --wait": it was passed.
    assert str(caught.value).endswith(
        "still held after waiting 0.3 s; retry when it has finished, or wait longer"
    )


def test_wait_blocks_until_the_holder_releases(holder, lock_path):
    acquired = threading.Event()
    failure: list[BaseException] = []

    def waiter() -> None:
        try:
            with local_lock(lock_path, wait_seconds=60):
                acquired.set()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        assert not acquired.wait(0.5), "the lock was granted while another process held it"
        holder.release()
        assert acquired.wait(30)
    finally:
        thread.join(30)
    assert failure == []


def test_killed_holder_releases_the_lock(holder, lock_path):
    holder.kill()
    with local_lock(lock_path):
        content = lock_path.read_text(encoding="utf-8")
    assert content.startswith(f"pid {os.getpid()} on ")


def test_lock_records_the_holder_and_clears_it_on_release(lock_path):
    with local_lock(lock_path):
        text = lock_path.read_text(encoding="utf-8")
        assert text.startswith(f"pid {os.getpid()} on ")
        assert " since " in text
    assert lock_path.read_text(encoding="utf-8") == ""
    with local_lock(lock_path):
        pass


def test_lock_released_when_the_body_raises(lock_path):
    with pytest.raises(RuntimeError), local_lock(lock_path):
        raise RuntimeError("publish failed")
    with local_lock(lock_path):
        pass


def test_holder_without_a_record_is_unknown(holder, lock_path):
    lock_path.write_text("", encoding="utf-8")
    with pytest.raises(LockError, match=r"\(unknown\)"), local_lock(lock_path):
        pass


FORKING_HOLDER = r"""
import os, sys
from pathlib import Path
from debrepo.locking import local_lock

with local_lock(Path(sys.argv[1])):
    child = os.fork()
    if child == 0:
        os.write(1, b"forked\n")  # past fork(): its copy of the lock is already closed
        sys.stdin.readline()  # a reader process, alive until the test lets it go
        os._exit(0)
    os.write(1, f"{child}\n".encode())  # one write: the two lines never interleave
    os.kill(os.getpid(), 9)  # the parent dies without unlocking
"""


def test_a_forked_child_outliving_its_parent_does_not_keep_the_lock(tmp_path: Path) -> None:
    # A flock lasts while any copy of its descriptor is open: reader processes forked
    # while it was held must not keep the repository locked after their parent died.
    path = tmp_path / "lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", FORKING_HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    # The parent's line (the child's pid) and the child's, in either order: a busy
    # machine may not have run the child at all before the parent dies.
    lines = sorted(holder.stdout.readline().strip() for _ in range(2))
    assert lines[1] == "forked", lines
    child = int(lines[0])
    assert holder.wait(timeout=30) == -signal.SIGKILL
    try:
        os.kill(child, 0)  # the child is still alive...
        with local_lock(path):  # ...and the lock is free
            pass
    finally:
        holder.stdin.close()
        for _ in range(100):
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            threading.Event().wait(0.05)


def test_telling_who_holds_the_lock_never_keeps_a_publisher_from_it(tmp_path):
    """`verify` asks who publishes: asking must not take the lock, even for a moment."""
    from debrepo.locking import local_holder

    path = tmp_path / "publish.lock"
    with local_lock(path):
        assert local_holder(path).startswith(f"pid {os.getpid()} on ")
    assert local_holder(path) is None
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            local_holder(path)

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        for _ in range(300):
            with local_lock(path):  # no wait: refused if the asker held it then
                pass
    finally:
        stop.set()
        asker.join()


def _no_flock(fd: int, operation: int) -> None:
    """flock as NFS without a lock daemon answers it."""
    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))


def test_a_file_system_without_flock_is_a_lock_error_naming_the_file(lock_path, monkeypatch):
    monkeypatch.setattr(fcntl, "flock", _no_flock)
    with pytest.raises(LockError) as caught, local_lock(lock_path):
        pytest.fail("locked without a lock")
    message = str(caught.value)
    assert message.startswith(f"{lock_path}: cannot lock it (No locks available)")
    assert "local file system" in message


def test_a_full_disk_does_not_keep_the_lock_from_being_taken(lock_path, monkeypatch):
    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    # Held, by this process (the record it could not write names no one).
    with local_lock(lock_path), pytest.raises(LockError, match="unknown"), local_lock(lock_path):
        pass


def test_a_lock_file_that_is_a_symbolic_link_is_refused_and_its_target_kept(tmp_path):
    # Taking the lock truncates the file: through a link planted in the home, that would
    # be any file the publisher may write.
    target = tmp_path / "precious"
    target.write_text("keep", encoding="utf-8")
    link = tmp_path / "home" / "publish.lock"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(LockError) as caught, local_lock(link):
        pass
    assert str(caught.value) == f"{link}: is a symbolic link; refusing to lock through it"
    assert target.read_text(encoding="utf-8") == "keep"


def test_a_lock_file_that_is_a_hard_link_to_another_file_is_refused(tmp_path: Path) -> None:
    """Taking the lock truncates its file: never another file through a planted link."""
    precious = tmp_path / "precious"
    precious.write_text("keep")
    home = tmp_path / "home"
    home.mkdir()
    os.link(precious, home / "publish.lock")
    with (
        pytest.raises(LockError, match="not a plain file of its own"),
        local_lock(home / "publish.lock"),
    ):
        pass
    assert precious.read_text() == "keep"
