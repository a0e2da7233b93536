"""Fixtures for the package-source tests: a real upstream on 127.0.0.1, realistic .debs,
a copy of the project's configuration pointed at it, and a workspace to sync into.

The upstream is pytest-httpserver (werkzeug) on a free loopback port. It serves the
Kiro metadata endpoint in both shapes, the .deb files, and the GitHub releases API,
answered with the recorded response in tests/data/ whose github.com and
api.github.com addresses are rewritten to the local server. `FlakyServer` is a
hand-written HTTP server for what werkzeug cannot do: reset a connection mid-body.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from debrepo.app import Workspace
from debrepo.core.debwriter import DebMember
from debrepo.sources.http import HttpSettings
from tests.conftest import PROJECT_ROOT, deb_bytes, settings_for

DATA_DIR = PROJECT_ROOT / "tests" / "data"
GITHUB_RECORDING = DATA_DIR / "github-releases-kiro-cli.json"
KIRO_LIVE_RECORDING = DATA_DIR / "kiro-metadata-linux-live.json"
KIRO_FLAT_RECORDING = DATA_DIR / "kiro-metadata-flat.json"

METADATA_PATH = "/linux/metadata.json"
RELEASES_PATH = "/api/repos/kiro-dev/kiro-cli/releases"
KIRO_DEB_PATH = (
    "/kiro/releases/stable/linux-x64/signed/0.9.2/deb/kiro-ide-0.9.2-stable-linux-x64.deb"
)
KIRO_FLAT_DEB_PATH = "/kiro-flat/linux/kiro_0.9.2_amd64.deb"
KIRO_CLI_DEB_PATH = "/github/kiro-dev/kiro-cli/releases/download/v1.2.0/kiro-cli_1.2.0_amd64.deb"
DEB_TYPE = "application/vnd.debian.binary-package"

# Small waits, few retries: the behaviour is the same, the suite stays fast.
FAST_HTTP = HttpSettings(
    connect_timeout=5.0,
    read_timeout=5.0,
    retries=2,
    backoff_factor=0.01,
    backoff_max=0.05,
    max_retry_after=1,
)

_PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2e5d5a40000000049454e44ae426082"
)


def kiro_deb(
    version: str = "0.9.2", *, name: str = "kiro", architecture: str = "amd64", depends: str = ""
) -> bytes:
    """A .deb shaped like the Kiro IDE's: launcher, resources, desktop entry, icon."""
    files = [
        DebMember(
            "usr/share/kiro/bin/kiro",
            f'#!/bin/sh\nexec /usr/share/kiro/kiro "$@" # {version}\n'.encode(),
            0o755,
        ),
        DebMember("usr/share/kiro/kiro", f"#!/bin/sh\necho 'Kiro {version}'\n".encode(), 0o755),
        DebMember(
            "usr/share/kiro/resources/app/package.json",
            json.dumps({"name": "kiro", "version": version, "main": "./out/main.js"}).encode(),
        ),
        DebMember(
            "usr/share/applications/kiro.desktop",
            b"[Desktop Entry]\nName=Kiro\nComment=Agentic IDE\nExec=/usr/share/kiro/kiro %F\n"
            b"Icon=kiro\nType=Application\nCategories=TextEditor;Development;IDE;\n",
        ),
        DebMember("usr/share/pixmaps/kiro.png", _PNG_1X1),
        DebMember(
            "usr/share/doc/kiro/copyright", b"Copyright Amazon.com, Inc. or its affiliates.\n"
        ),
    ]
    extra = [("Section", "devel"), ("Priority", "optional"), ("Homepage", "https://kiro.dev")]
    if depends:
        extra.append(("Depends", depends))
    return deb_bytes(
        name,
        version,
        architecture,
        files=files,
        maintainer="Kiro Team <support@kiro.dev>",
        description="Kiro\n Agentic IDE for spec-driven development.",
        extra_fields=extra,
    )


def kiro_cli_deb(version: str = "1.2.0", *, name: str = "kiro-cli") -> bytes:
    files = [
        DebMember("usr/bin/kiro-cli", f"#!/bin/sh\necho 'kiro-cli {version}'\n".encode(), 0o755),
        DebMember("usr/share/doc/kiro-cli/copyright", b"Copyright Kiro Team.\n"),
    ]
    return deb_bytes(
        name,
        version,
        "amd64",
        files=files,
        maintainer="Kiro Team <support@kiro.dev>",
        description="Kiro CLI\n Command-line tools for Kiro.",
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Upstream:
    """The local stand-in for download.kiro.dev, api.github.com and github.com."""

    server: HTTPServer

    @property
    def base(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def localize(self, text: str) -> str:
        """A recording with every upstream host replaced by this server."""
        return (
            text.replace("https://api.github.com/", f"{self.base}/api/")
            .replace("https://github.com/", f"{self.base}/github/")
            .replace("https://prod.download.desktop.kiro.dev/", f"{self.base}/kiro/")
            .replace("https://download.kiro.dev/", f"{self.base}/kiro-flat/")
        )

    def serve_json(self, path: str, document: Any) -> None:
        self.server.expect_request(path).respond_with_json(document)

    def serve_bytes(self, path: str, data: bytes, content_type: str = DEB_TYPE) -> None:
        self.server.expect_request(path).respond_with_data(data, content_type=content_type)

    def serve_file(self, path: str, data: bytes) -> Callable[[bytes], None]:
        """Serve `path` as a static web server or CDN does: with an ETag and a
        Last-Modified, answering a conditional request for the same bytes with 304.
        Returns a function that replaces the bytes served (a new ETag, a later date)."""
        served = {"data": data, "modified": datetime(2026, 11, 1, tzinfo=UTC)}

        def answer(request: Request) -> Response:
            response = Response(served["data"], content_type=DEB_TYPE)
            response.set_etag(sha256(served["data"])[:20])
            response.last_modified = served["modified"]
            return response.make_conditional(request)

        def replace(new: bytes) -> None:
            served["data"] = new
            served["modified"] += timedelta(days=1)

        self.server.expect_request(path).respond_with_handler(answer)
        return replace

    def statuses(self, path: str) -> list[int]:
        """The status of every answer the server gave for `path`, in order."""
        return [
            response.status_code for request, response in self.server.log if request.path == path
        ]

    def live_metadata(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.localize(KIRO_LIVE_RECORDING.read_text()))
        return document

    def flat_metadata(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.localize(KIRO_FLAT_RECORDING.read_text()))
        return document

    def github_releases(self, deb: bytes | None = None) -> list[dict[str, Any]]:
        """The recorded releases; `deb` replaces the size and digest of v1.2.0's amd64 asset."""
        releases: list[dict[str, Any]] = json.loads(self.localize(GITHUB_RECORDING.read_text()))
        if deb is not None:
            for release in releases:
                for asset in release["assets"]:
                    if asset["name"] == "kiro-cli_1.2.0_amd64.deb":
                        asset["size"] = len(deb)
                        asset["digest"] = f"sha256:{sha256(deb)}"
        return releases

    def serve_kiro_live(self, deb: bytes) -> None:
        self.serve_json(METADATA_PATH, self.live_metadata())
        self.serve_bytes(KIRO_DEB_PATH, deb)

    def serve_kiro_cli(self, deb: bytes) -> None:
        self.serve_json(RELEASES_PATH, self.github_releases(deb))
        self.serve_bytes(KIRO_CLI_DEB_PATH, deb)

    def paths(self) -> list[str]:
        """Every request path the server has answered, in order."""
        return [request.path for request, _response in self.server.log]

    def count(self, path: str) -> int:
        return self.paths().count(path)

    def headers_of(self, path: str) -> list[dict[str, str]]:
        return [dict(request.headers) for request, _ in self.server.log if request.path == path]


@pytest.fixture
def upstream(httpserver_ipv4: HTTPServer) -> Upstream:
    return Upstream(httpserver_ipv4)


def make_checkout(root: Path, metadata_endpoint: str) -> Path:
    """config/packages and templates/ as a fresh clone has them, with kiro's endpoint
    pointed at `metadata_endpoint`; returns the config directory."""
    config_dir = root / "config" / "packages"
    shutil.copytree(PROJECT_ROOT / "config" / "packages", config_dir)
    shutil.copytree(PROJECT_ROOT / "templates", root / "templates")
    kiro = config_dir / "kiro.yaml"
    original = kiro.read_text()
    pointed = original.replace("https://download.kiro.dev/linux/metadata.json", metadata_endpoint)
    assert pointed != original, "config/packages/kiro.yaml no longer names the Kiro endpoint"
    kiro.write_text(pointed)
    return config_dir


@pytest.fixture
def config_dir(tmp_path: Path, upstream: Upstream) -> Path:
    return make_checkout(tmp_path / "checkout", upstream.url(METADATA_PATH))


@pytest.fixture
def scratch_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder every tempfile call of the code under test uses."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def sync_env(monkeypatch: pytest.MonkeyPatch, upstream: Upstream) -> None:
    for variable in ("GITHUB_TOKEN", "DEBREPO_GITHUB_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DEBREPO_GITHUB_API_URL", f"{upstream.base}/api")


@pytest.fixture
def ws(tmp_path: Path, config_dir: Path, sync_env: None, scratch_tmp: Path) -> Workspace:
    return Workspace(settings_for(tmp_path / "home", config_dir=str(config_dir)))


class RawHttpServer:
    """HTTP by hand on 127.0.0.1, for answers no ordinary server gives: a subclass
    writes each connection's answer in `_answer` (on its own thread if `threaded`)."""

    threaded = False

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="raw-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            if self.threaded:
                threading.Thread(target=self._answer_and_close, args=(conn,), daemon=True).start()
            else:
                self._answer_and_close(conn)

    def _answer_and_close(self, conn: socket.socket) -> None:
        with conn:
            self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        raise NotImplementedError


class FlakyServer(RawHttpServer):
    """The first `resets` connections get the headers and half the body, then a TCP
    reset; later ones get the whole file. Without `declare_length` the body ends where
    the connection closes, as HTTP allows: a body cut short then looks whole.
    `transfer_encoding` is sent as it is, and `body` with it (chunked framing included)."""

    def __init__(
        self,
        body: bytes,
        resets: int,
        *,
        declare_length: bool = True,
        etag: str = "",
        transfer_encoding: str = "",
    ) -> None:
        super().__init__()
        self.body = body
        self.resets = resets
        self.declare_length = declare_length
        self.etag = etag
        self.transfer_encoding = transfer_encoding
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/releases/kiro_0.9.2_amd64.deb"

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        self.requests += 1
        length = f"Content-Length: {len(self.body)}\r\n" if self.declare_length else ""
        etag = f'ETag: "{self.etag}"\r\n' if self.etag else ""
        coding = self.transfer_encoding and f"Transfer-Encoding: {self.transfer_encoding}\r\n"
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {DEB_TYPE}\r\n{length}{etag}{coding}"
            "Connection: close\r\n\r\n"
        ).encode()
        if self.requests <= self.resets:
            conn.sendall(head + self.body[: len(self.body) // 2])
            time.sleep(0.05)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return  # closing with a zero linger sends RST
        conn.sendall(head + self.body)


# Sockets holding the ports free_port handed out, until the test process ends.
_RESERVED_PORTS: list[socket.socket] = []


def free_port() -> int:
    """A loopback port nothing listens on, and no other socket is given meanwhile.

    The port stays bound, never listening, for the rest of the run: connecting to it is
    refused, and neither a server asking for any free port nor an outgoing connection
    can be handed it (as they could if it were bound and released). SO_REUSEADDR lets
    a test start its own server on it later on purpose.
    """
    reserved = socket.socket()
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reserved.bind(("127.0.0.1", 0))
    _RESERVED_PORTS.append(reserved)
    port: int = reserved.getsockname()[1]
    return port
