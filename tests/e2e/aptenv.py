"""Harness for end-to-end tests: the `debrepo` CLI, a served repository, an isolated apt.

- `DebrepoCli` runs the real console script in a subprocess with its own `--home`, so a
  test uses debrepo exactly as a new user would.
- `serve_cli` starts `debrepo serve --port 0` and reads the port from its stderr line;
  `serve_in_thread` runs `debrepo.serve.make_server` in this process. Both record every
  request path so a test can check what apt fetched (for instance `by-hash/SHA512/...`).
- `AptEnv` is an apt root under a temporary folder. apt reads only the configuration file
  named by APT_CONFIG, whose `Dir::Etc::Parts` is an empty folder, so nothing from the
  host's /etc/apt (notes, proxies, compression preferences, keys) leaks in. dpkg installs
  into the same root with `--root`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from debian import deb822

from debrepo.serve import RepositoryRequestHandler, make_server
from tests.tools import require_tool

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "config" / "packages"
SERVE_TIMEOUT = 20.0
COMMAND_TIMEOUT = 120.0

_SERVING_RE = re.compile(r"serving (?P<root>.+) at http://(?P<host>[0-9.]+):(?P<port>\d+)/")
_REQUEST_RE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')


def debrepo_executable() -> str:
    """The `debrepo` console script of the environment running the tests."""
    beside = Path(sys.executable).with_name("debrepo")
    if beside.is_file():
        return str(beside)
    return require_tool("debrepo")


def clean_environment(**extra: str) -> dict[str, str]:
    """The environment without DEBREPO_*, APT_CONFIG or proxies; C locale for stable text."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DEBREPO_")
        and key != "APT_CONFIG"
        and not key.lower().endswith("_proxy")
    }
    env["LC_ALL"] = "C.UTF-8"
    env["LANGUAGE"] = "C"
    env.update(extra)
    return env


@dataclass(frozen=True)
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


@dataclass
class DebrepoCli:
    """`debrepo --home HOME --config-dir CONFIG ...` run in a subprocess from `cwd`."""

    home: Path
    cwd: Path
    config_dir: Path = CONFIG_DIR
    flags: Sequence[str] = ()

    @property
    def repo_dir(self) -> Path:
        return self.home / "repo"

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def db_path(self) -> Path:
        return self.home / "metadata.db"

    def argv(self, *args: str | Path) -> list[str]:
        return [
            debrepo_executable(),
            "--home",
            str(self.home),
            "--config-dir",
            str(self.config_dir),
            *self.flags,
            *(str(a) for a in args),
        ]

    def run(self, *args: str | Path, check: bool = True, launcher: Sequence[str] = ()) -> CliResult:
        """`launcher`, if given, runs in place of the console script (with its arguments)."""
        argv = self.argv(*args)
        if launcher:
            argv = [*launcher, *argv[1:]]
        done = subprocess.run(
            argv,
            cwd=self.cwd,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        result = CliResult(argv, done.returncode, done.stdout, done.stderr)
        if check and result.returncode != 0:
            pytest.fail(f"debrepo failed\n{result.describe()}", pytrace=False)
        return result


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int


@dataclass
class ServedRepo:
    """A repository reachable at `url`; `requests()` lists what clients asked for."""

    url: str
    port: int
    _read: Callable[[], list[Request]]

    def requests(self) -> list[Request]:
        return self._read()

    def paths(self, status: int | None = 200) -> list[str]:
        return [r.path for r in self.requests() if status is None or r.status == status]


def _parse_requests(text: str) -> list[Request]:
    return [
        Request(m["method"], m["path"], int(m["status"]))
        for m in (_REQUEST_RE.search(line) for line in text.splitlines())
        if m
    ]


@contextmanager
def serve_cli(cli: DebrepoCli, log_dir: Path) -> Iterator[ServedRepo]:
    """`debrepo -v serve --port 0` in a subprocess; the port comes from its stderr line.

    The server logs each request (with `-v`) before it sends the body, so once a client
    has its response the request is already in the log file.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            cli.argv("-v", "serve", "--port", "0"),
            cwd=cli.cwd,
            env=clean_environment(PYTHONUNBUFFERED="1"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT
        match = None
        while match is None:
            text = log_path.read_text(errors="replace")
            match = _SERVING_RE.search(text)
            if match:
                break
            if process.poll() is not None:
                pytest.fail(f"debrepo serve exited with {process.returncode}:\n{text}")
            if time.monotonic() > deadline:
                pytest.fail(f"debrepo serve did not report its address in time:\n{text}")
            time.sleep(0.02)
        assert match["host"] == "127.0.0.1", text
        assert Path(match["root"]) == cli.repo_dir.resolve(), text
        port = int(match["port"])
        yield ServedRepo(
            url=f"http://127.0.0.1:{port}",
            port=port,
            _read=lambda: _parse_requests(log_path.read_text(errors="replace")),
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def serve_in_thread(root: Path) -> Iterator[ServedRepo]:
    """`debrepo.serve.make_server` on a free loopback port, in a thread of this process."""
    recorded: list[Request] = []
    lock = threading.Lock()

    class RecordingHandler(RepositoryRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            with lock:
                recorded.append(Request(self.command, self.path, int(code)))
            super().log_request(code, size)

    server = make_server(root, "127.0.0.1", 0)
    server.RequestHandlerClass = partial(RecordingHandler, directory=str(root))  # type: ignore[assignment]
    thread = threading.Thread(target=server.serve_forever, name="debrepo-serve", daemon=True)
    thread.start()
    try:

        def read() -> list[Request]:
            with lock:
                return list(recorded)

        port = int(server.server_address[1])
        yield ServedRepo(url=f"http://127.0.0.1:{port}", port=port, _read=read)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass(frozen=True)
class AptResult:
    args: list[str]
    returncode: int
    output: str

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()

    def problems(self) -> list[str]:
        """apt's warnings and errors (`W:` and `E:` lines)."""
        return [line for line in self.lines if line.startswith(("W:", "E:"))]

    def describe(self) -> str:
        return f"$ {' '.join(self.args)}\nexit {self.returncode}\n{self.output}"


@dataclass
class AptEnv:
    """An apt and dpkg root of its own, configured only by `apt.conf` in `root`."""

    root: Path
    architecture: str = "amd64"
    extra_config: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for tool in ("apt-get", "dpkg", "gpgv"):
            require_tool(tool)
        for directory in (
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "etc/apt/apt.conf.d",
            "etc/apt/trusted.gpg.d",
            "empty-parts",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
            "var/log/apt",
        ):
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        for name in ("status", "available"):
            (self.root / "var/lib/dpkg" / name).touch()
        self.write_config()

    @property
    def config_path(self) -> Path:
        return self.root / "apt.conf"

    @property
    def sources_list(self) -> Path:
        return self.root / "etc/apt/sources.list"

    def write_config(self) -> None:
        r = self.root
        lines = [
            f'Dir "{r}/";',
            f'Dir::State "{r}/var/lib/apt/";',
            f'Dir::State::status "{r}/var/lib/dpkg/status";',
            f'Dir::Etc "{r}/etc/apt/";',
            f'Dir::Etc::Parts "{r}/empty-parts/";',
            f'Dir::Etc::trusted "{r}/etc/apt/trusted.gpg";',
            f'Dir::Etc::trustedparts "{r}/etc/apt/trusted.gpg.d/";',
            f'Dir::Cache "{r}/var/cache/apt/";',
            f'Dir::Log "{r}/var/log/apt/";',
            'Debug::NoLocking "true";',
            'APT::Sandbox::User "root";',
            f'APT::Architecture "{self.architecture}";',
            f'APT::Architectures {{ "{self.architecture}"; }};',
            'Acquire::Languages "none";',
            'Acquire::Retries "0";',
            'Acquire::http::Timeout "20";',
            'Acquire::http::Proxy::127.0.0.1 "DIRECT";',
            'Dpkg::Use-Pty "false";',
            'APT::Color "false";',
            f'DPkg::Options {{ "--root={r}"; "--log={r}/var/log/dpkg.log"; }};',
            *self.extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def env(self) -> dict[str, str]:
        return clean_environment(APT_CONFIG=str(self.config_path), DEBIAN_FRONTEND="noninteractive")

    def use_source(
        self, url: str, keyring: Path, suite: str = "stable", component: str = "main"
    ) -> None:
        """Make `sources.list` the single line for one repository, trusted via signed-by."""
        self.sources_list.write_text(f"deb [signed-by={keyring}] {url} {suite} {component}\n")

    def path(self, absolute: str) -> Path:
        """Where `absolute` (a path on the installed system) lives in this root."""
        return self.root / absolute.lstrip("/")

    def forget_lists(self) -> None:
        """Drop downloaded indices so the next update starts fresh."""
        lists = self.root / "var/lib/apt/lists"
        shutil.rmtree(lists)
        (lists / "partial").mkdir(parents=True)

    def apt_get(self, *args: str, options: Sequence[str] = ()) -> AptResult:
        argv = [require_tool("apt-get"), *(f"-o{o}" for o in options), *args]
        done = subprocess.run(
            argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return AptResult(argv, done.returncode, done.stdout)

    def update(self, options: Sequence[str] = ()) -> AptResult:
        return self.apt_get("update", options=options)

    def install(self, *packages: str) -> AptResult:
        return self.apt_get("-y", "--no-install-recommends", "install", *packages)

    def installed(self) -> dict[str, str]:
        """Package -> version of every package dpkg in this root has installed."""
        status = (self.root / "var/lib/dpkg/status").read_text()
        return {
            p["Package"]: p["Version"]
            for p in deb822.Deb822.iter_paragraphs(status)
            if p.get("Status", "").endswith(" installed")
        }


def assert_clean_update(result: AptResult) -> None:
    """`apt-get update` succeeded with no warning, no error and no ignored InRelease."""
    assert result.returncode == 0, result.describe()
    assert result.problems() == [], result.describe()
    ignored = [line for line in result.lines if line.startswith("Ign") and "InRelease" in line]
    assert ignored == [], result.describe()
