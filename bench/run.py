"""Benchmark debrepo against reprepro and aptly on the same synthetic packages.

One command does everything: installs reprepro, aptly and gnupg when they are missing,
generates the packages, runs every scenario for every tool, checks what each tool
published, and writes a JSON report and a Markdown table:

    python bench/run.py [--sizes 1000,10000] [--repeat 3] [--out bench/results/latest.json]

Scenarios (see bench/README.md):
  a  from nothing to a signed published repository of N packages
  b  regenerate and re-sign every index, nothing changed (N = --bc-size)
  c  add one new package and republish (N = --bc-size; a new package each repetition)
  d  ingest one large .deb with --no-publish, next to a hashlib baseline

Every measured command runs as a child process with the work folder as its current
directory, started by bench/launch.py: wall time is time.perf_counter() around the
child, peak RSS is the child's ru_maxrss from os.wait4 (the largest single process
among the child and the descendants it waited for), CPU is its user + system time.
"Tree" RSS is the sum over the whole process tree, sampled every 50 ms. Setup
(generation, resets, os.sync()) is outside the timed region.

Before each measurement the harness waits until the disk is idle and other processes
leave the CPUs alone (--quiet-wait); a measurement during which other processes used
more than a quarter of a core anyway is flagged "disturbed" and taken again
(--retries). Tools run in turn within each repetition (round robin), so a slow
period of the machine does not land on one tool only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import platform
import pstats
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing import Pool
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_WORK = BENCH / "work"
DEFAULT_OUT = BENCH / "results" / "latest.json"
LAUNCHER = BENCH / "launch.py"

GENERATOR_VERSION = 1  # bump when the generated packages change, to regenerate them
MTIME = 1_700_000_000
SUITE = "stable"
COMPONENT = "main"
ARCH = "amd64"
GPG_USER_ID = "debrepo benchmark <bench@example.invalid>"
MIB = 1 << 20
TREE_SAMPLE_SECONDS = 0.05
QUIET_WINDOW_SECONDS = 0.5
DISK_WINDOW_SECONDS = 0.3
QUIET_CORES = 0.15  # other processes may use this much CPU before a measurement starts
DISTURBED_CORES = 0.25  # a sample during which others used more is flagged as disturbed
WARM_UP_PACKAGES = 70  # more than debrepo's threshold for reading files in parallel
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
SYSTEM_PACKAGES = {"reprepro": "reprepro", "aptly": "aptly", "gpg": "gnupg", "gpgv": "gpgv"}
SCENARIOS = {
    "a": "from nothing to a signed, published repository of N packages",
    "b": "regenerate and re-sign every index, nothing changed",
    "c": "add one new package and republish",
    "d": "ingest one large .deb (--no-publish) vs a hashlib baseline",
}
TARGET_RATIO = 0.5  # debrepo / fastest peer, scenarios a, b, c at the largest N
TARGET_HASH_RATIO = 1.1  # debrepo / hashlib baseline, scenario d
TARGET_PEAK_MIB = 100.0  # debrepo peak RSS, scenario d


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# -- measuring -----------------------------------------------------------------------


@dataclass
class Sample:
    wall_s: float
    peak_rss_kib: int
    tree_rss_kib: int
    cpu_s: float  # user + system
    steps_run: list[str]
    system_s: float = 0.0  # of which in the kernel
    other_cores: float = 0.0  # CPU used by processes outside the measurement, in cores
    waited_s: float = 0.0  # time spent waiting for the machine to go quiet first
    probe_ms: float = 0.0  # a fixed CPU task just before: shows a machine slowing down

    @property
    def disturbed(self) -> bool:
        return self.other_cores > DISTURBED_CORES


_PROBE_DATA = bytes(range(256)) * 4096  # 1 MiB


def cpu_probe_ms() -> float:
    """Milliseconds to SHA-256 16 MiB on one core (the best of three)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        digest = hashlib.sha256()
        for _ in range(16):
            digest.update(_PROBE_DATA)
        best = min(best, time.perf_counter() - start)
    return best * 1000


class CpuMeter:
    """CPU seconds used on the whole machine, and by this process and its children."""

    TICK = os.sysconf("SC_CLK_TCK")

    @classmethod
    def machine(cls) -> float:
        with Path("/proc/stat").open() as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = values
        return (user + nice + system + irq + softirq + steal) / cls.TICK

    @staticmethod
    def ours() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.machine_start = self.machine()
        self.ours_start = self.ours()

    def other_cores(self) -> float:
        """Average number of cores busy with work that is not ours since __init__."""
        elapsed = time.perf_counter() - self.start
        other = (self.machine() - self.machine_start) - (self.ours() - self.ours_start)
        return max(0.0, other) / elapsed if elapsed > 0 else 0.0


class TreeSampler:
    """Sums the resident memory of a process and all its descendants, periodically."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, self._tree_kib())
            if self._stop.wait(TREE_SAMPLE_SECONDS):
                return

    def _tree_kib(self) -> int:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        with os.scandir("/proc") as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                try:
                    raw = Path(f"/proc/{entry.name}/stat").read_bytes()
                except OSError:
                    continue
                fields = raw[raw.rfind(b")") + 2 :].split()
                pid = int(entry.name)
                parents[pid] = int(fields[1])
                rss[pid] = int(fields[21]) * PAGE_KIB
        total, stack, seen = 0, [self.root], set()
        children: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            if pid != self.root:  # the launcher is not part of the measured command
                total += rss.get(pid, 0)
            stack.extend(children.get(pid, ()))
        return total

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


@dataclass
class Step:
    """One command; `skip_if` names a file whose presence makes the step unnecessary."""

    argv: list[str]
    display: str
    skip_if: Path | None = None


class StepFailed(BenchError):
    pass


class Runner:
    def __init__(self, work: Path, env: dict[str, str], log: Path, quiet_wait: float) -> None:
        self.work = work
        self.env = env
        self.log = log
        self.quiet_wait = quiet_wait
        self.device = work_device(work)

    def wait_for_disk(self) -> float:
        """After os.sync(), wait (at most 60 s) until the work folder's disk is idle."""
        if self.device is None:
            return 0.0
        started = time.perf_counter()
        before = disk_counters(self.device)
        while time.perf_counter() - started < 60:
            time.sleep(DISK_WINDOW_SECONDS)
            now = disk_counters(self.device)
            if now is None or (now == before and now[0] == 0):
                break
            before = now
        return time.perf_counter() - started

    def wait_for_quiet(self) -> float:
        """Wait (up to --quiet-wait seconds) until other processes leave the CPUs idle."""
        started = time.perf_counter()
        announced = False
        while True:
            meter = CpuMeter()
            time.sleep(QUIET_WINDOW_SECONDS)
            other = meter.other_cores()
            waited = time.perf_counter() - started - QUIET_WINDOW_SECONDS
            if other <= QUIET_CORES or waited >= self.quiet_wait:
                if announced:
                    say(f"  (waited {waited:.0f} s for other processes to go quiet)")
                return max(0.0, waited)
            if not announced:
                say(f"  other processes are using {other:.1f} cores; waiting for quiet")
                announced = True

    def run_untimed(self, argv: Sequence[str], *, check: bool = True) -> str:
        with self.log.open("ab") as out:
            out.write(f"$ {shlex.join(argv)}\n".encode())
        done = subprocess.run(
            list(argv),
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        with self.log.open("a") as out:
            out.write(done.stdout + done.stderr)
        if check and done.returncode != 0:
            output = (done.stdout + done.stderr)[-2000:]
            raise StepFailed(f"{shlex.join(argv)} exited {done.returncode}: {output}")
        return done.stdout + done.stderr

    def measure(self, steps: Sequence[Step], *, quiet: bool = True) -> Sample:
        """Run the steps in order; wall and CPU times add up, peak RSS is the largest.

        `quiet=False` is for untimed preparation: no waiting for an idle machine.
        """
        os.sync()  # earlier writes are flushed before the clock starts, not billed here
        waited = self.wait_for_disk() if quiet else 0.0
        waited += self.wait_for_quiet() if quiet and self.quiet_wait > 0 else 0.0
        sample = Sample(0.0, 0, 0, 0.0, [], waited_s=waited, probe_ms=cpu_probe_ms())
        meter = CpuMeter()
        for step in steps:
            if step.skip_if is not None and step.skip_if.exists():
                continue
            result_file = self.work / ".launch-result"
            result_file.unlink(missing_ok=True)
            with self.log.open("ab") as out:
                out.write(f"$ {step.display}\n".encode())
                out.flush()
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(LAUNCHER), str(result_file), *step.argv],
                    cwd=self.work,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                sampler = TreeSampler(proc.pid)
                proc.wait()
                tree = sampler.stop()
            if proc.returncode != 0 or not result_file.exists():
                raise StepFailed(
                    f"`{step.display}` exited {proc.returncode}; last output:\n"
                    + tail(self.log, 25)
                )
            wall_text, maxrss_text, user_text, system_text = result_file.read_text().split()
            result_file.unlink()
            wall, maxrss = float(wall_text), int(maxrss_text)
            cpu = float(user_text) + float(system_text)
            sample.wall_s += wall
            sample.cpu_s += cpu
            sample.system_s += float(system_text)
            sample.peak_rss_kib = max(sample.peak_rss_kib, maxrss)
            sample.tree_rss_kib = max(sample.tree_rss_kib, tree, maxrss)
            sample.steps_run.append(step.display)
        sample.other_cores = meter.other_cores()
        return sample


def discard(path: Path, work: Path) -> None:
    """Move a folder out of the way; it is deleted after the run.

    Deleting 10,000 files frees blocks the filesystem may trim (ext4 `discard`) or
    journal while the next command is being timed; a rename costs nothing.
    """
    if path.exists():
        trash = work / "trash"
        trash.mkdir(exist_ok=True)
        path.rename(trash / f"{path.name}-{time.monotonic_ns()}")


def empty_trash(work: Path) -> None:
    shutil.rmtree(work / "trash", ignore_errors=True)


def disk_counters(device: str) -> tuple[int, ...] | None:
    """In-flight I/Os and sectors written and discarded so far on `device`."""
    try:
        lines = Path("/proc/diskstats").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[2] == device:
            extra = (int(fields[16]),) if len(fields) > 16 else ()
            return (int(fields[11]), int(fields[9]), *extra)
    return None


def tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- the tools -----------------------------------------------------------------------


class Tool:
    name = ""
    config = ""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.broken: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.config})" if self.config != "-" else self.name

    @property
    def state(self) -> Path:
        return self.work / "runs" / self.label.replace(" (", "-").rstrip(")")

    def rel(self, path: Path) -> str:
        return os.path.relpath(path, self.work)

    @property
    def dists(self) -> Path:
        raise NotImplementedError

    def keyring(self) -> Path:
        raise NotImplementedError

    def reset(self) -> None:
        discard(self.state, self.work)
        self.state.mkdir(parents=True)

    def import_steps(self, deb_dir: Path, debs: Sequence[Path]) -> list[Step]:
        raise NotImplementedError

    def rebuild_steps(self) -> list[Step]:
        raise NotImplementedError

    def add_one_steps(self, deb: Path) -> list[Step]:
        raise NotImplementedError


class Debrepo(Tool):
    name = "debrepo"
    config = "-"

    def __init__(self, work: Path, key_file: Path, env: dict[str, str]) -> None:
        super().__init__(work)
        self.key_file = key_file
        self.env = env
        self._full_rebuild: bool | None = None

    @property
    def dists(self) -> Path:
        return self.state / "repo" / "dists" / SUITE

    def keyring(self) -> Path:
        found = sorted((self.state / "repo").glob("*-archive-keyring.gpg"))
        if not found:
            raise BenchError(f"no *-archive-keyring.gpg in {self.state / 'repo'}")
        return found[0]

    def reset(self) -> None:
        # The signing key exists beforehand, as the peers' gpg key does.
        super().reset()
        keys = self.state / "keys"
        keys.mkdir(mode=0o700)
        shutil.copyfile(self.key_file, keys / "signing-key.asc")
        (keys / "signing-key.asc").chmod(0o600)

    def base(self) -> list[str]:
        # The `debrepo` script pip installs next to the interpreter, as users run it
        # (PYTHONPATH still selects the code of --debrepo-rev); `python -m` without one.
        # The script calls debrepo.entry, which code before 2026-11-29 (--debrepo-rev)
        # lacks: that code is run as a module.
        script = Path(sys.executable).with_name("debrepo")
        source = Path(self.env.get("PYTHONPATH") or ROOT / "src")
        if script.is_file() and (source / "debrepo" / "entry.py").is_file():
            launcher = [str(script)]
        else:
            launcher = [sys.executable, "-m", "debrepo"]
        return [*launcher, "--home", self.rel(self.state)]

    def step(self, *args: str) -> Step:
        argv = [*self.base(), *args]
        shown = ["debrepo"] if argv[1] != "-m" else ["python", "-m", "debrepo"]
        return Step(argv, shlex.join([*shown, *argv[len(argv) - len(args) - 2 :]]))

    def import_steps(self, deb_dir: Path, debs: Sequence[Path]) -> list[Step]:
        return [self.step("add", self.rel(deb_dir))]

    def has_full_rebuild(self) -> bool:
        if self._full_rebuild is None:
            done = subprocess.run(
                [*self.base(), "rebuild", "--help"],
                cwd=self.work,
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            )
            self._full_rebuild = "--full" in done.stdout
        return self._full_rebuild

    def rebuild_steps(self) -> list[Step]:
        return [self.step("rebuild")]

    def add_one_steps(self, deb: Path) -> list[Step]:
        return [self.step("add", self.rel(deb))]


class Reprepro(Tool):
    name = "reprepro"

    def __init__(self, work: Path, config: str, fingerprint: str, keyring: Path) -> None:
        super().__init__(work)
        self.config = config
        self.fingerprint = fingerprint
        self._keyring = keyring

    @property
    def dists(self) -> Path:
        return self.state / "dists" / SUITE

    def keyring(self) -> Path:
        return self._keyring

    def distributions(self) -> str:
        lines = [
            "Origin: Bench",
            "Label: Bench",
            f"Suite: {SUITE}",
            f"Codename: {SUITE}",
            f"Architectures: {ARCH}",
            f"Components: {COMPONENT}",
            "Description: debrepo benchmark",
            f"SignWith: {self.fingerprint}",
        ]
        if self.config == "parity":
            lines.append("DebIndices: Packages Release . .gz .xz")
        return "\n".join(lines) + "\n"

    def reset(self) -> None:
        super().reset()
        (self.state / "conf").mkdir()
        (self.state / "conf" / "distributions").write_text(self.distributions())

    def base(self) -> list[str]:
        return ["reprepro", "-b", self.rel(self.state)]

    def import_steps(self, deb_dir: Path, debs: Sequence[Path]) -> list[Step]:
        includedeb = [*self.base(), "includedeb", SUITE, *(self.rel(d) for d in debs)]
        shown = shlex.join([*self.base(), "includedeb", SUITE]) + f" {self.rel(deb_dir)}/*.deb"
        export = [*self.base(), "export", SUITE]
        # includedeb exports by default; the export step only runs if it did not.
        return [
            Step(includedeb, shown),
            Step(export, shlex.join(export), skip_if=self.dists / "InRelease"),
        ]

    def rebuild_steps(self) -> list[Step]:
        argv = [*self.base(), "export", SUITE]
        return [Step(argv, shlex.join(argv))]

    def add_one_steps(self, deb: Path) -> list[Step]:
        argv = [*self.base(), "includedeb", SUITE, self.rel(deb)]
        return [Step(argv, shlex.join(argv))]


class Aptly(Tool):
    name = "aptly"
    repo_name = "bench"

    def __init__(self, work: Path, config: str, fingerprint: str, keyring: Path) -> None:
        super().__init__(work)
        self.config = config
        self.fingerprint = fingerprint
        self._keyring = keyring

    @property
    def dists(self) -> Path:
        return self.state / "public" / "dists" / SUITE

    def keyring(self) -> Path:
        return self._keyring

    @property
    def conf(self) -> Path:
        return self.state / "aptly.conf"

    def reset(self) -> None:
        super().reset()
        # The internal (Go) OpenPGP provider cannot sign with Ed25519: use gpg.
        self.conf.write_text(
            json.dumps({"rootDir": str(self.state), "gpgProvider": "gpg"}, indent=2) + "\n"
        )

    def step(self, *args: str) -> Step:
        argv = ["aptly", f"-config={self.rel(self.conf)}", *args]
        return Step(argv, shlex.join(argv))

    def publish_flags(self, *, first: bool) -> list[str]:
        flags = ["-batch", f"-gpg-key={self.fingerprint}"]
        if self.config == "parity":
            flags += ["-skip-contents", "-skip-bz2"]
            if first:
                flags.append("-acquire-by-hash")  # stored with the publication
        return flags

    def import_steps(self, deb_dir: Path, debs: Sequence[Path]) -> list[Step]:
        return [
            self.step(
                "repo",
                "create",
                f"-distribution={SUITE}",
                f"-component={COMPONENT}",
                self.repo_name,
            ),
            self.step("repo", "add", self.repo_name, self.rel(deb_dir)),
            self.step("publish", "repo", *self.publish_flags(first=True), self.repo_name),
        ]

    def rebuild_steps(self) -> list[Step]:
        return [self.step("publish", "update", *self.publish_flags(first=False), SUITE)]

    def add_one_steps(self, deb: Path) -> list[Step]:
        return [self.step("repo", "add", self.repo_name, self.rel(deb)), *self.rebuild_steps()]


# -- installing what is missing ------------------------------------------------------


def ensure_system_tools() -> None:
    missing = sorted({pkg for cmd, pkg in SYSTEM_PACKAGES.items() if shutil.which(cmd) is None})
    if not missing:
        return
    say(f"installing {', '.join(missing)} with apt-get")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise BenchError(f"{', '.join(missing)} missing and not root: install them first")
        prefix = ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*prefix, "apt-get", "update"], check=True, env=env)
    subprocess.run([*prefix, "apt-get", "install", "-y", *missing], check=True, env=env)


def ensure_debrepo() -> None:
    probe = [sys.executable, "-c", "import debrepo.core.debwriter"]
    if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return
    say(f"installing debrepo from {ROOT} into {sys.executable}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)


# -- generating packages -------------------------------------------------------------


def _version(i: int) -> str:
    return f"{1 + i % 4}.{i % 23}.{i % 7}-{1 + i % 3}"


def _package(name: str, i: int, depends: Sequence[str]) -> tuple[str, bytes]:
    """File name and bytes of one small, realistic package."""
    from debrepo.core.debwriter import DebMember, build_deb, installed_size_kib

    version = _version(i)
    members = [
        DebMember(
            f"usr/bin/{name}",
            f"#!/bin/sh\n# {name} {version}\nexec printf '%s\\n' '{name} says hello'\n".encode(),
            0o755,
        ),
        DebMember(
            f"usr/share/doc/{name}/README",
            (
                f"{name}\n{'=' * len(name)}\n\nA synthetic package used to benchmark APT "
                "repository tools. It does nothing useful.\n"
            ).encode(),
        ),
        DebMember(
            f"usr/share/doc/{name}/copyright",
            b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            b"Files: *\nCopyright: 2024 Benchmark Authors\nLicense: Apache-2.0\n",
        ),
    ]
    control = [
        ("Package", name),
        ("Version", version),
        ("Architecture", ARCH),
        ("Maintainer", "Benchmark Maintainers <bench@example.org>"),
        ("Installed-Size", str(installed_size_kib(members))),
        ("Depends", ", ".join(["libc6 (>= 2.36)", *depends])),
        ("Section", ("utils", "devel", "libs", "net", "admin")[i % 5]),
        ("Priority", "optional"),
        ("Homepage", f"https://example.org/{name}"),
        (
            "Description",
            f"synthetic benchmark package {i}\n"
            f" {name} exists only to measure how fast APT repository tools ingest,\n"
            " index and sign packages. It installs a tiny script and its documentation.",
        ),
    ]
    return f"{name}_{version}_{ARCH}.deb", build_deb(control, members, mtime=MTIME)


def _name(i: int, width: int) -> str:
    return f"pkg{i:0{width}d}"


def _write_chunk(job: tuple[int, int, int, str]) -> int:
    start, stop, n, out = job
    width = max(5, len(str(n - 1)))
    for i in range(start, stop):
        deps = []
        for j in ((i * 7 + 1) % n, (i * 13 + 5) % n):
            if j != i and n > 1:
                deps.append(f"{_name(j, width)} (>= 1.0)" if j % 2 else _name(j, width))
        filename, data = _package(_name(i, width), i, deps)
        Path(out, filename).write_bytes(data)
    return stop - start


def generate_set(directory: Path, n: int) -> list[Path]:
    """N packages in `directory`, reused when a complete set of this version is there."""
    marker = directory / ".complete.json"
    wanted = {"n": n, "generator": GENERATOR_VERSION}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        debs = sorted(directory.glob("*.deb"))
        if len(debs) == n:
            return debs
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    say(f"generating {n} packages in {directory}")
    started = time.perf_counter()
    step = max(1, min(500, n // ((os.cpu_count() or 1) * 4) or 1))
    jobs = [(s, min(s + step, n), n, str(directory)) for s in range(0, n, step)]
    with Pool(os.cpu_count() or 1) as pool:
        done = sum(pool.imap_unordered(_write_chunk, jobs))
    assert done == n
    marker.write_text(json.dumps(wanted))
    say(f"  {n} packages in {time.perf_counter() - started:.1f} s")
    return sorted(directory.glob("*.deb"))


def generate_extras(directory: Path, names: Sequence[str]) -> dict[str, Path]:
    """One package per name (for scenario c and profiling), all distinct from pkg*."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for index, name in enumerate(names):
        filename, data = _package(name, 1000 + index, ["pkg00001"])
        path = directory / filename
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        paths[name] = path
    return paths


def _ar_header(name: str, size: int) -> bytes:
    return f"{name:<16}{MTIME:<12}{0:<6}{0:<6}{'100644':<8}{size:<10}`\n".encode("ascii")


def _tar_header(name: str, size: int | None, mode: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
        MTIME,
        mode,
        0,
        0,
        "root",
        "root",
    )
    if size is None:
        info.type = tarfile.DIRTYPE
    else:
        info.size = size
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _random_chunks(size: int) -> Iterator[bytes]:
    rng = random.Random(20240229)
    left = size
    while left:
        count = min(4 * MIB, left)
        yield rng.randbytes(count)
        left -= count


def generate_big_deb(directory: Path, mib: int) -> Path:
    """A valid .deb whose data.tar (stored uncompressed) holds `mib` MiB of random bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bigpkg_1.0-1_{ARCH}.deb"
    marker = directory / ".complete.json"
    wanted = {"mib": mib, "generator": GENERATOR_VERSION}
    if path.exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
        return path
    say(f"generating a {mib} MiB package in {directory}")
    payload = mib * MIB
    blob = "usr/share/bigpkg/blob.bin"
    md5 = hashlib.md5(usedforsecurity=False)
    for chunk in _random_chunks(payload):
        md5.update(chunk)
    control = (
        "Package: bigpkg\nVersion: 1.0-1\nArchitecture: amd64\n"
        "Maintainer: Benchmark Maintainers <bench@example.org>\n"
        f"Installed-Size: {payload // 1024 + 3}\nSection: misc\nPriority: optional\n"
        "Description: one large synthetic package\n"
        " Random, incompressible data, stored uncompressed in the .deb.\n"
    ).encode()
    control_tar = io.BytesIO()
    with tarfile.open(fileobj=control_tar, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in (("./control", control), ("./md5sums", f"{md5.hexdigest()}  {blob}\n")):
            raw = data if isinstance(data, bytes) else data.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(raw), MTIME, 0o644
            archive.addfile(info, io.BytesIO(raw))
    control_gz = gzip.compress(control_tar.getvalue(), mtime=0)
    headers = b"".join(
        _tar_header(d, None, 0o755) for d in ("./", "./usr/", "./usr/share/", "./usr/share/bigpkg/")
    ) + _tar_header(f"./{blob}", payload, 0o644)
    padding = (-payload) % 512 + 1024  # to a whole block, then the two end-of-archive blocks
    data_size = len(headers) + payload + padding
    temp = path.with_suffix(".tmp")
    with temp.open("wb") as out:
        out.write(b"!<arch>\n" + _ar_header("debian-binary", 4) + b"2.0\n")
        out.write(_ar_header("control.tar.gz", len(control_gz)) + control_gz)
        if len(control_gz) % 2:
            out.write(b"\n")
        out.write(_ar_header("data.tar", data_size) + headers)
        for chunk in _random_chunks(payload):
            out.write(chunk)
        out.write(b"\0" * padding)
    temp.replace(path)
    if shutil.which("dpkg-deb"):
        subprocess.run(["dpkg-deb", "--info", str(path)], check=True, capture_output=True)
    marker.write_text(json.dumps(wanted))
    return path


def warm(paths: Sequence[Path]) -> None:
    """Read files once so every tool reads them from the page cache."""
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(8 * MIB):
                pass


# -- signing keys --------------------------------------------------------------------


def gpg_setup(runner: Runner, gnupg: Path) -> tuple[str, Path]:
    """An Ed25519 signing key without passphrase in a private GNUPGHOME."""
    gnupg.mkdir(mode=0o700, parents=True, exist_ok=True)
    gnupg.chmod(0o700)

    def fingerprint() -> str | None:
        out = runner.run_untimed(["gpg", "--batch", "--with-colons", "-K"], check=False)
        for line in out.splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        return None

    fpr = fingerprint()
    if fpr is None:
        runner.run_untimed(
            [
                "gpg",
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                GPG_USER_ID,
                "ed25519",
                "sign",
                "never",
            ]
        )
        fpr = fingerprint()
    if fpr is None:
        raise BenchError(f"could not create a gpg key in {gnupg}")
    keyring = gnupg / "bench-public.gpg"
    exported = subprocess.run(
        ["gpg", "--batch", "--export", fpr], env=runner.env, capture_output=True, check=True
    ).stdout
    keyring.write_bytes(exported)
    runner.run_untimed(["gpgconf", "--launch", "gpg-agent"], check=False)
    return fpr, keyring


def debrepo_key(runner: Runner, work: Path) -> Path:
    home = work / "debrepo-key"
    key = home / "keys" / "signing-key.asc"
    if not key.exists():
        runner.run_untimed(
            [sys.executable, "-m", "debrepo", "--home", str(home), "key", "generate"]
        )
    return key


# -- checking what was published -----------------------------------------------------


def check_published(runner: Runner, tool: Tool, expected: int) -> list[str]:
    problems = []
    packages = tool.dists / COMPONENT / f"binary-{ARCH}" / "Packages"
    if not packages.exists():
        problems.append(f"{tool.label}: {tool.rel(packages)} is missing")
    else:
        count = sum(
            1 for line in packages.read_bytes().splitlines() if line.startswith(b"Package:")
        )
        if count != expected:
            problems.append(f"{tool.label}: Packages lists {count} packages, expected {expected}")
    inrelease = tool.dists / "InRelease"
    if not inrelease.exists():
        problems.append(f"{tool.label}: {tool.rel(inrelease)} is missing")
    else:
        out = runner.run_untimed(
            ["gpgv", "--keyring", str(tool.keyring()), str(inrelease)], check=False
        )
        if "Good signature" not in out:
            problems.append(f"{tool.label}: InRelease does not verify: {out.strip()[-300:]}")
    return problems


def inventory(tool: Tool) -> dict[str, object]:
    """What the tool published under dists/<suite>/ (by-hash copies counted, not listed)."""
    files: list[str] = []
    by_hash: dict[str, int] = {}
    for path in sorted(p for p in tool.dists.rglob("*") if p.is_file()):
        rel = path.relative_to(tool.dists).as_posix()
        if "/by-hash/" in rel:
            if path.is_symlink() or not all(c in "0123456789abcdef" for c in path.name):
                continue  # aptly also links the plain names inside by-hash/
            key = rel.split("/by-hash/")[0] + "/by-hash/" + rel.split("/by-hash/")[1].split("/")[0]
            by_hash[key] = by_hash.get(key, 0) + 1
        else:
            files.append(rel)
    release = (tool.dists / "Release").read_text(errors="replace").splitlines()
    checksums = [
        line[:-1] for line in release if line in ("MD5Sum:", "SHA1:", "SHA256:", "SHA512:")
    ]
    by_hash_flag = any(line.strip() == "Acquire-By-Hash: yes" for line in release)
    return {
        "files": files,
        "by_hash": by_hash,
        "release_checksums": checksums,
        "acquire_by_hash": by_hash_flag,
    }


# -- the report ----------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    n: int
    tool: str
    config: str
    commands: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    discarded: list[Sample] = field(default_factory=list)  # disturbed, measured again
    failed: str | None = None

    @property
    def label(self) -> str:
        return f"{self.tool} ({self.config})" if self.config != "-" else self.tool

    def stats(self) -> dict[str, float | None]:
        if not self.samples:
            return dict.fromkeys(
                (
                    "median_s",
                    "min_s",
                    "max_s",
                    "peak_mib",
                    "tree_mib",
                    "cpu_s",
                    "disturbed",
                    "probe_ms",
                ),
                None,
            )
        walls = [s.wall_s for s in self.samples]
        return {
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "max_s": max(walls),
            "peak_mib": max(s.peak_rss_kib for s in self.samples) / 1024,
            "tree_mib": max(s.tree_rss_kib for s in self.samples) / 1024,
            "cpu_s": statistics.median(s.cpu_s for s in self.samples),
            "disturbed": sum(s.disturbed for s in self.samples),
            "probe_ms": statistics.median(s.probe_ms for s in self.samples),
        }

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "n": self.n,
            "tool": self.tool,
            "config": self.config,
            "commands": self.commands,
            "samples": [asdict(s) for s in self.samples],
            "discarded_disturbed_samples": [asdict(s) for s in self.discarded],
            "failed": self.failed,
            **self.stats(),
        }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def peers_of(results: Sequence[Result], scenario: str, n: int) -> list[Result]:
    return [
        r
        for r in results
        if r.scenario == scenario and r.n == n and r.tool in ("reprepro", "aptly") and r.samples
    ]


def find(results: Sequence[Result], scenario: str, n: int, tool: str) -> Result | None:
    for r in results:
        if r.scenario == scenario and r.n == n and r.tool == tool and r.samples:
            return r
    return None


def targets(results: Sequence[Result], bc_size: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for scenario, mine in [
        (r.scenario, r)
        for r in results
        if r.scenario in "abc" and r.n == bc_size and r.tool == "debrepo" and r.samples
    ]:
        peers = peers_of(results, scenario, bc_size)
        if not peers:
            continue
        median = mine.stats()["median_s"]
        row: dict[str, object] = {
            "scenario": scenario,
            "n": bc_size,
            "debrepo_config": mine.config,
            "debrepo_s": median,
        }
        for config in ("default", "parity", None):
            chosen = [p for p in peers if config is None or p.config == config]
            if not chosen:
                continue
            best = min(chosen, key=lambda r: r.stats()["median_s"] or 0.0)
            best_s = best.stats()["median_s"]
            key = config or "any"
            row[f"fastest_{key}"] = best.label
            row[f"fastest_{key}_s"] = best_s
            row[f"ratio_{key}"] = (median / best_s) if median and best_s else None
        ratio = row.get("ratio_any")
        row["target"] = f"≤ {TARGET_RATIO}× fastest peer"
        row["met"] = isinstance(ratio, float) and ratio <= TARGET_RATIO
        rows.append(row)
    mine_d = next((r for r in results if r.scenario == "d" and r.tool == "debrepo"), None)
    base = next((r for r in results if r.scenario == "d" and r.tool != "debrepo"), None)
    if mine_d is not None and not mine_d.samples:
        mine_d = None
    if mine_d and base:
        ms, bs = mine_d.stats(), base.stats()
        ratio = (ms["median_s"] or 0.0) / (bs["median_s"] or 1.0)
        peak = ms["peak_mib"] or 0.0
        rows.append(
            {
                "scenario": "d",
                "n": mine_d.n,
                "debrepo_s": ms["median_s"],
                "baseline_s": bs["median_s"],
                "ratio_time": ratio,
                "debrepo_peak_mib": peak,
                "debrepo_tree_mib": ms["tree_mib"],
                "baseline_peak_mib": bs["peak_mib"],
                "target": f"≤ {TARGET_HASH_RATIO}× baseline time, peak < {TARGET_PEAK_MIB:.0f} MiB",
                "met": ratio <= TARGET_HASH_RATIO and peak < TARGET_PEAK_MIB,
            }
        )
    return rows


def markdown(report: dict[str, object], results: Sequence[Result]) -> str:
    out = []
    machine = report["machine"]
    assert isinstance(machine, dict)
    out.append(f"Run {report['date']} — `{report['command']}`")
    out.append("")
    out.append(
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"{machine['kernel']}, {machine['os']}; work dir on {machine['disk']}"
    )
    versions = report["versions"]
    assert isinstance(versions, dict)
    out.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    code = report["debrepo_code"]
    assert isinstance(code, dict)
    out.append(f"debrepo code: {code['source']}, commit {str(code['commit'])[:12]}")
    out.append("")
    out.append(
        "| scenario | N | tool | config | median s | min s | max s | peak MiB | tree MiB "
        "| CPU s | debrepo ÷ this | disturbed |"
    )
    out.append("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        s = r.stats()
        mine = find(results, r.scenario, r.n, "debrepo")
        ratio = None
        if mine is not None and s["median_s"] and (r.tool != "debrepo" or r is mine):
            ratio = (mine.stats()["median_s"] or 0.0) / s["median_s"]
        n = f"{r.n} MiB .deb" if r.scenario == "d" else f"{r.n:,}"
        status = " (FAILED, see Problems)" if r.failed else ""
        out.append(
            f"| {r.scenario} | {n} | {r.tool}{status} | {r.config} | {_fmt(s['median_s'])} | "
            f"{_fmt(s['min_s'])} | {_fmt(s['max_s'])} | {_fmt(s['peak_mib'], 0)} | "
            f"{_fmt(s['tree_mib'], 0)} | {_fmt(s['cpu_s'])} | "
            f"{_fmt(ratio) if r.scenario != 'd' else '—'} | "
            f"{s['disturbed'] if s['disturbed'] is not None else '—'}/{len(r.samples)} |"
        )
    probes = [s.probe_ms for r in results for s in r.samples]
    if probes:
        out.append("")
        out.append(
            f"CPU probe before each measurement (SHA-256 of 16 MiB, one core): "
            f"{min(probes):.1f}–{max(probes):.1f} ms, median {statistics.median(probes):.1f} ms "
            "(a wide range means the machine's speed varied during the run)."
        )
    rows = report["targets"]
    assert isinstance(rows, list)
    if rows:
        out.append("")
        out.append(
            "| target | debrepo s | fastest peer, default | ratio | fastest peer, parity "
            "| ratio | met? |"
        )
        out.append("|---|---:|---|---:|---|---:|---|")
        for row in rows:
            if row["scenario"] == "d":
                out.append(
                    f"| d: {row['target']} | {_fmt(row['debrepo_s'])} | hashlib baseline "
                    f"{_fmt(row['baseline_s'])} s | {_fmt(row['ratio_time'])} | "
                    f"peak {_fmt(row['debrepo_peak_mib'], 0)} MiB "
                    f"(baseline {_fmt(row['baseline_peak_mib'], 0)}) | — | "
                    f"{'yes' if row['met'] else 'NO'} |"
                )
            else:
                how = f" ({row['debrepo_config']})" if row["debrepo_config"] != "-" else ""
                out.append(
                    f"| {row['scenario']}{how}, N={row['n']:,}: {row['target']} | "
                    f"{_fmt(row['debrepo_s'])} | {row.get('fastest_default', '—')} "
                    f"{_fmt(row.get('fastest_default_s'))} s | "
                    f"{_fmt(row.get('ratio_default'))} | {row.get('fastest_parity', '—')} "
                    f"{_fmt(row.get('fastest_parity_s'))} s | {_fmt(row.get('ratio_parity'))} | "
                    f"{'yes' if row['met'] else 'NO'} |"
                )
    produced = report.get("published")
    if isinstance(produced, dict) and produced:
        out.append("")
        out.append("| configuration | index files under dists/stable | by-hash | Release sums |")
        out.append("|---|---|---|---|")
        for label, inv in produced.items():
            files = ", ".join(f for f in inv["files"] if not f.startswith("Release"))
            hashes = ", ".join(f"{k} ({v})" for k, v in inv["by_hash"].items()) or "none"
            out.append(f"| {label} | {files} | {hashes} | {' '.join(inv['release_checksums'])} |")
    problems = report.get("problems")
    if isinstance(problems, list) and problems:
        out.append("")
        out.append("Problems:")
        out.extend(f"- {p}" for p in problems)
    return "\n".join(out)


# -- machine and versions ------------------------------------------------------------


def work_device(work: Path) -> str | None:
    """The block device (as named in /proc/diskstats) holding the work folder."""
    dev = work.stat().st_dev
    link = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    return link.resolve().name if link.exists() else None


def machine_info(work: Path) -> dict[str, object]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kib = int(line.split()[1])
    disk = "unknown"
    df = subprocess.run(
        ["df", "-P", "-T", "-h", str(work)], capture_output=True, text=True, check=False
    )
    if df.returncode == 0 and len(df.stdout.splitlines()) > 1:
        source, fstype, size, *_rest, mount = df.stdout.splitlines()[1].split()
        rotational = "?"
        device = Path(source).name.rstrip("0123456789")
        with contextlib.suppress(OSError):
            rotational = Path(f"/sys/block/{device}/queue/rotational").read_text().strip()
        disk = f"{source} ({fstype}, {size}, queue/rotational={rotational}) mounted at {mount}"
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    virt = (
        subprocess.run(
            ["systemd-detect-virt"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if shutil.which("systemd-detect-virt")
        else "unknown"
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram_kib / 1024 / 1024, 1),
        "kernel": f"Linux {platform.release()}",
        "os": os_name,
        "virtualization": virt or "none",
        "disk": disk,
        "python": platform.python_version(),
    }


def tool_versions(env: dict[str, str]) -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        return (done.stdout + done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"

    versions = {
        "debrepo": first_line([sys.executable, "-m", "debrepo", "--version"]).split()[-1],
        "reprepro": first_line(["reprepro", "--version"]).split()[-1],
        "aptly": first_line(["aptly", "version"]).split()[-1],
        "gnupg": first_line(["gpg", "--version"]).split()[-1],
        "python": platform.python_version(),
    }
    return versions


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    return done.stdout.rstrip() if done.returncode == 0 else ""


def debrepo_source(rev: str | None, work: Path) -> tuple[dict[str, str], dict[str, object]]:
    """Extra environment selecting the debrepo code to measure, and what that code is.

    By default the working tree (as installed in the virtualenv); with a revision, that
    commit's src/ is extracted under the work folder and put first on PYTHONPATH.
    """
    if not rev:
        modified = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines()]
        return {}, {
            "source": "working tree" + (" (modified)" if modified else ""),
            "commit": git("rev-parse", "HEAD"),
            "modified": modified,
        }
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    if not commit:
        raise BenchError(f"--debrepo-rev {rev}: not a commit of {ROOT}")
    dest = work / "debrepo-src" / commit[:12]
    if not (dest / "src" / "debrepo" / "__init__.py").exists():
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src"],
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    return {"PYTHONPATH": str(dest / "src")}, {
        "source": f"git {rev} ({commit[:12]})",
        "commit": commit,
        "modified": [],
    }


# -- scenarios -----------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work.resolve()
        self.results: list[Result] = []
        self.problems: list[str] = []
        self.published: dict[str, object] = {}
        self.profiles: dict[str, str] = {}
        self.state_n: int | None = None  # packages in every tool's repository, if known

    def record(self, scenario: str, n: int, tool: Tool | str, config: str = "-") -> Result:
        name = tool.name if isinstance(tool, Tool) else tool
        config = tool.config if isinstance(tool, Tool) else config
        for r in self.results:
            if (r.scenario, r.n, r.tool, r.config) == (scenario, n, name, config):
                return r
        result = Result(scenario, n, name, config)
        self.results.append(result)
        return result

    def timed(
        self,
        result: Result,
        tool: Tool | None,
        prepare: Callable[[], Sequence[Step]],
        after: Callable[[], None] | None = None,
    ) -> None:
        """Measure once; a sample disturbed by other processes is measured again.

        `prepare` runs (untimed) before every attempt and returns the steps to time;
        `after` runs (untimed) after every successful attempt, e.g. to check the output.
        """
        for attempt in range(self.args.retries + 1):
            steps = prepare()
            try:
                sample = self.runner.measure(steps)
            except StepFailed as exc:
                result.failed = str(exc)
                self.problems.append(f"{result.label}, scenario {result.scenario}: {exc}")
                say(f"  FAILED: {exc}")
                if tool is not None:
                    tool.broken = str(exc)
                return
            say(
                f"  {result.label:<26} {sample.wall_s:8.2f} s  "
                f"peak {sample.peak_rss_kib / 1024:6.0f} MiB  "
                f"tree {sample.tree_rss_kib / 1024:6.0f} MiB"
                + (
                    f"  DISTURBED: others used {sample.other_cores:.2f} cores"
                    if sample.disturbed
                    else ""
                )
            )
            if after is not None:
                after()
            if sample.disturbed and attempt < self.args.retries:
                result.discarded.append(sample)
                say("  measuring again")
                continue
            result.samples.append(sample)
            for display in sample.steps_run:
                if display not in result.commands:
                    result.commands.append(display)
            return

    def check(self, tool: Tool, expected: int, scenario: str) -> None:
        for problem in check_published(self.runner, tool, expected):
            self.problems.append(f"scenario {scenario}: {problem}")
            say(f"  PROBLEM: {problem}")

    def setup(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        empty_trash(self.work)
        (self.work / "runs").mkdir(exist_ok=True)
        self.log = self.work / "bench.log"
        self.log.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEBREPO_")}
        env.update(GNUPGHOME=str(self.work / "gnupg"), LC_ALL="C.UTF-8", LANG="C.UTF-8")
        # Python tools run from cached bytecode, as installed software does, even where
        # the shell disables .pyc writing; the cache lives under the work folder.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.work / "pycache")
        extra, self.debrepo_code = debrepo_source(self.args.debrepo_rev, self.work)
        env.update(extra)
        self.env = env
        self.runner = Runner(self.work, env, self.log, self.args.quiet_wait)
        self.fingerprint, self.gpg_keyring = gpg_setup(self.runner, self.work / "gnupg")
        self.debrepo_key = debrepo_key(self.runner, self.work)
        self.debrepo = Debrepo(self.work, self.debrepo_key, self.env)
        self.tools: list[Tool] = [self.debrepo]
        configs = ["default", "parity"] if self.args.variants == "both" else [self.args.variants]
        for config in configs:
            self.tools.append(Reprepro(self.work, config, self.fingerprint, self.gpg_keyring))
        for config in configs:
            self.tools.append(Aptly(self.work, config, self.fingerprint, self.gpg_keyring))

    def warm_up(self) -> None:
        """One untimed import of a few packages per tool: loads binaries, modules, .pyc."""
        deb_dir, debs = self.deb_set(WARM_UP_PACKAGES)
        say(f"warming up every tool on {WARM_UP_PACKAGES} packages (not timed)")
        for tool in self.tools:
            tool.reset()
            try:
                self.runner.measure(tool.import_steps(deb_dir, debs), quiet=False)
                self.runner.measure(tool.rebuild_steps(), quiet=False)
            except StepFailed as exc:
                self.problems.append(f"{tool.label}: warm-up failed: {exc}")
                say(f"  FAILED: {exc}")
        self.state_n = None

    def deb_set(self, n: int) -> tuple[Path, list[Path]]:
        directory = self.work / "debs" / f"n{n}"
        return directory, generate_set(directory, n)

    def scenario_a(self, n: int) -> None:
        deb_dir, debs = self.deb_set(n)
        warm(debs)
        say(f"(a) from nothing to a signed repository of {n} packages")
        for rep in range(self.args.repeat):
            say(f" repetition {rep + 1}/{self.args.repeat}")
            for tool in self.tools:
                tool.broken = None

                def prepare(tool: Tool = tool) -> list[Step]:
                    tool.reset()
                    return tool.import_steps(deb_dir, debs)

                self.timed(
                    self.record("a", n, tool),
                    tool,
                    prepare,
                    lambda tool=tool: self.check(tool, n, "a"),
                )
        if n == self.args.bc_size:
            for tool in self.tools:
                if not tool.broken:
                    self.published[tool.label] = inventory(tool)
        self.state_n = n

    def ensure_state(self, n: int) -> None:
        if self.state_n == n:
            return
        deb_dir, debs = self.deb_set(n)
        say(f"preparing repositories of {n} packages (not timed)")
        for tool in self.tools:
            tool.reset()
            tool.broken = None
            try:
                self.runner.measure(tool.import_steps(deb_dir, debs), quiet=False)
            except StepFailed as exc:
                tool.broken = str(exc)
                self.problems.append(f"{tool.label}: preparing {n} packages: {exc}")
            else:
                self.published[tool.label] = inventory(tool)
        self.state_n = n

    def scenario_b(self, n: int) -> None:
        self.ensure_state(n)
        say(f"(b) regenerate and re-sign, {n} packages, nothing changed")
        for rep in range(self.args.repeat):
            say(f" repetition {rep + 1}/{self.args.repeat}")
            for tool in self.tools:
                if tool.broken:
                    continue
                self.timed(
                    self.record("b", n, tool),
                    tool,
                    tool.rebuild_steps,
                    lambda tool=tool: self.check(tool, n, "b"),
                )
                if tool is self.debrepo and self.debrepo.has_full_rebuild() and not tool.broken:
                    # Versions with `rebuild --full` only re-sign when nothing changed;
                    # --full regenerates every index, which is what the peers do here.
                    self.timed(
                        self.record("b", n, "debrepo", "rebuild --full"),
                        None,
                        lambda: [self.debrepo.step("rebuild", "--full")],
                        lambda: self.check(self.debrepo, n, "b"),
                    )

    def scenario_c(self, n: int) -> None:
        """Each attempt (retries included) adds a package no repository has seen."""
        self.ensure_state(n)
        extra_dir = self.work / "debs" / "extra"
        added: dict[str, int] = {}
        say(f"(c) add one new package to {n} and republish")

        def prepare(tool: Tool) -> list[Step]:
            name = f"extra{added.get(tool.label, 0):03d}"
            added[tool.label] = added.get(tool.label, 0) + 1
            deb = generate_extras(extra_dir, [name])[name]
            warm([deb])
            return tool.add_one_steps(deb)

        for rep in range(self.args.repeat):
            say(f" repetition {rep + 1}/{self.args.repeat}")
            for tool in self.tools:
                if tool.broken:
                    continue
                self.timed(
                    self.record("c", n, tool),
                    tool,
                    lambda tool=tool: prepare(tool),
                    lambda tool=tool: self.check(tool, n + added[tool.label], "c"),
                )
        self.state_n = None  # the repositories now hold more than n packages

    def scenario_d(self) -> None:
        big = generate_big_deb(self.work / "debs" / "big", self.args.big_mib)
        warm([big])
        home = self.work / "runs" / "debrepo-big"
        rel = os.path.relpath(big, self.work)
        argv = ["-m", "debrepo", "--home", os.path.relpath(home, self.work), "add", "--no-publish"]
        add = Step([sys.executable, *argv, rel], shlex.join(["python", *argv, rel]))
        baseline_argv = [sys.executable, str(BENCH / "hash_baseline.py"), rel]
        baseline = Step(baseline_argv, shlex.join(["python", "../hash_baseline.py", rel]))
        say(f"(d) ingest one {self.args.big_mib} MiB .deb")
        for rep in range(self.args.repeat):
            say(f" repetition {rep + 1}/{self.args.repeat}")

            def empty_home() -> list[Step]:
                discard(home, self.work)
                home.mkdir(parents=True)
                return [add]

            self.timed(self.record("d", self.args.big_mib, "debrepo"), None, empty_home)
            self.timed(
                self.record("d", self.args.big_mib, "hashlib baseline"), None, lambda: [baseline]
            )
        discard(home, self.work)

    def profile(self, n: int, scenarios: Sequence[str]) -> None:
        """cProfile of debrepo's main process for a, b, c at N (after the timed runs)."""
        profiles = self.work / "profiles"
        profiles.mkdir(exist_ok=True)
        tool = self.debrepo
        deb_dir, debs = self.deb_set(n)
        extra = generate_extras(self.work / "debs" / "extra", ["profile000"])["profile000"]
        plan: list[tuple[str, list[str]]] = []
        if "a" in scenarios:
            plan.append(("a", ["add", tool.rel(deb_dir)]))
        if "b" in scenarios:
            plan.append(("b", ["rebuild"]))
            if tool.has_full_rebuild():
                plan.append(("b-full", ["rebuild", "--full"]))
        if "c" in scenarios:
            plan.append(("c", ["add", tool.rel(extra)]))
        tool.reset()
        say(f"profiling debrepo at N={n}")
        for scenario, args in plan:
            if scenario != "a" and not (tool.dists / "InRelease").exists():
                self.runner.measure(tool.import_steps(deb_dir, debs), quiet=False)
            out = profiles / f"{scenario}-n{n}.prof"
            argv = [sys.executable, "-m", "cProfile", "-o", str(out), *tool.base()[1:], *args]
            sample = self.runner.measure([Step(argv, shlex.join(argv))])
            text = io.StringIO()
            stats = pstats.Stats(str(out), stream=text).strip_dirs()
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(25)
            self.profiles[scenario] = (
                f"wall {sample.wall_s:.2f} s under cProfile\n" + text.getvalue()
            )
            say(f"  {scenario}: {out}")

    def run(self) -> dict[str, object]:
        self.setup()
        self.machine = machine_info(self.work)
        self.machine["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
        self.versions = tool_versions(self.env)
        scenarios = self.args.scenarios
        if any(s in scenarios for s in "abc"):
            self.warm_up()
        if "a" in scenarios:
            for n in self.args.sizes:
                self.scenario_a(n)
        if "b" in scenarios:
            self.scenario_b(self.args.bc_size)
        if "c" in scenarios:
            self.scenario_c(self.args.bc_size)
        if "d" in scenarios:
            self.scenario_d()
        if self.args.profile:
            self.profile(self.args.bc_size, [s for s in scenarios if s in "abc"])
        self.runner.run_untimed(["gpgconf", "--kill", "gpg-agent"], check=False)
        empty_trash(self.work)
        self.machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        order = {"a": 0, "b": 1, "c": 2, "d": 3}
        tools = {"debrepo": 0, "reprepro": 1, "aptly": 2, "hashlib baseline": 3}
        self.results.sort(key=lambda r: (order[r.scenario], r.n, tools[r.tool], r.config))
        return {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": shlex.join(["python", *sys.argv]),
            "machine": self.machine,
            "versions": self.versions,
            "debrepo_code": self.debrepo_code,
            "settings": {
                "sizes": self.args.sizes,
                "repeat": self.args.repeat,
                "bc_size": self.args.bc_size,
                "big_mib": self.args.big_mib,
                "scenarios": scenarios,
                # Relative to the checkout when inside it: the report may be committed.
                "work": (
                    str(self.work.resolve().relative_to(ROOT.resolve()))
                    if self.work.resolve().is_relative_to(ROOT.resolve())
                    else str(self.work)
                ),
                "timing": "wall: perf_counter around each child; peak: ru_maxrss from os.wait4 "
                "(largest single process); tree: sum of RSS over the process tree, sampled "
                "every 50 ms; cpu: user + system time of the child and its waited-for "
                "descendants; all via bench/launch.py",
            },
            "scenarios": SCENARIOS,
            "results": [r.to_json() for r in self.results],
            "targets": targets(self.results, self.args.bc_size),
            "published": self.published,
            "problems": self.problems,
            "profiles": self.profiles,
        }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="1000,10000", help="N for scenario a, comma separated [1000,10000]"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each measurement")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report")
    parser.add_argument("--scenarios", default="abcd", help="which of a, b, c, d to run [abcd]")
    parser.add_argument(
        "--bc-size", type=int, default=None, help="N for scenarios b and c [largest of --sizes]"
    )
    parser.add_argument("--big-mib", type=int, default=200, help="size of the .deb in scenario d")
    parser.add_argument(
        "--variants",
        choices=("both", "default", "parity"),
        default="both",
        help="peer configurations to run [both]",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="before each measurement, wait up to this many seconds for other processes "
        "to leave the CPUs idle (0: do not wait) [120]",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="measure again, up to this many times, when other processes used more than "
        f"{DISTURBED_CORES} cores during a measurement [2]",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile debrepo for a, b, c (not timed)"
    )
    parser.add_argument(
        "--debrepo-rev",
        default=None,
        help="measure debrepo as of this git revision instead of the working tree",
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    args.scenarios = "".join(s for s in "abcd" if s in args.scenarios.replace(",", ""))
    if args.bc_size is None:
        args.bc_size = max(args.sizes)
    if args.repeat < 1 or not args.sizes or min(args.sizes) < 1:
        parser.error("--repeat and --sizes must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_system_tools()
    ensure_debrepo()
    bench = Bench(args)
    report = bench.run()
    table = markdown(report, bench.results)
    report["markdown"] = table
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table, flush=True)
    say(f"\nJSON report: {args.out}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
