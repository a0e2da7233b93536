"""serve.py: the published folder over HTTP with the headers a CDN would send."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message

import pytest

from debrepo import app
from debrepo.app import Workspace
from debrepo.errors import ConfigError, DebrepoError
from debrepo.serve import make_server
from tests.conftest import FIXED_NOW, deb_bytes, settings_for

DEB = "application/vnd.debian.binary-package"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Workspace]]:
    """One published repository served on a free loopback port for the whole module."""
    directory = tmp_path_factory.mktemp("served")
    workspace = Workspace(settings_for(directory / "home"))
    deb = directory / "alpha_1.0_amd64.deb"
    deb.write_bytes(deb_bytes("alpha", "1.0"))
    app.add_packages(workspace, [deb], now=FIXED_NOW)
    app.build_kiro_repo(workspace, version="1.0", now=FIXED_NOW)
    server = make_server(workspace.repo.root, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}", workspace
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def base_url(served) -> str:
    return served[0]


@pytest.fixture
def workspace(served) -> Workspace:
    return served[1]


def fetch(url: str) -> tuple[int, Message, bytes]:
    """Status, headers (looked up case-insensitively) and body of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def is_long_lived(cache_control: str) -> bool:
    directives = {d.strip() for d in cache_control.split(",")}
    ages = [int(d.split("=", 1)[1]) for d in directives if d.startswith("max-age=")]
    return "immutable" in directives and ages and ages[0] >= 86400


def is_short_lived(cache_control: str) -> bool:
    directives = {d.strip() for d in cache_control.split(",")}
    ages = [int(d.split("=", 1)[1]) for d in directives if d.startswith("max-age=")]
    return "immutable" not in directives and ages and ages[0] <= 300


def test_pool_deb(base_url, workspace):
    status, headers, body = fetch(f"{base_url}/pool/main/a/alpha/alpha_1.0_amd64.deb")
    assert status == 200
    assert headers["Content-Type"] == DEB
    assert is_long_lived(headers["Cache-Control"])
    assert body == workspace.repo.get("pool/main/a/alpha/alpha_1.0_amd64.deb")


def test_packages_index(base_url):
    status, headers, body = fetch(f"{base_url}/dists/stable/main/binary-amd64/Packages")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert is_short_lived(headers["Cache-Control"])
    assert b"Package: alpha\n" in body


def test_compressed_index(base_url):
    status, headers, _ = fetch(f"{base_url}/dists/stable/main/binary-amd64/Packages.gz")
    assert status == 200
    assert headers["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in headers
    assert is_short_lived(headers["Cache-Control"])


def test_inrelease(base_url):
    status, headers, body = fetch(f"{base_url}/dists/stable/InRelease")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert is_short_lived(headers["Cache-Control"])
    assert body.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")


@pytest.mark.parametrize(
    "path",
    ["/pool/../dists/stable/InRelease", "/dists/stable/%49nRelease", "/pool/%2E%2E/index.html"],
)
def test_headers_follow_the_file_served_not_the_request_text(base_url, path):
    """A path that reaches InRelease or the page through `..` or %-escapes is still
    short-lived: a cache in front must not keep it for a year as a pool file."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)  # sent as written: no client-side normalising
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200
    assert body.startswith((b"-----BEGIN PGP SIGNED MESSAGE-----", b"<!DOCTYPE html>"))
    assert is_short_lived(response.headers["Cache-Control"])
    expected = "text/html" if path.endswith(".html") else "text/plain"
    assert response.headers["Content-Type"].startswith(expected)


def test_by_hash_index(base_url, workspace):
    (key,) = [
        info.key
        for info in workspace.repo.list("dists/stable/main/binary-amd64/by-hash/SHA256/")
        if workspace.repo.get(info.key)
        == workspace.repo.get("dists/stable/main/binary-amd64/Packages")
    ]
    status, headers, _ = fetch(f"{base_url}/{key}")
    assert status == 200
    assert is_long_lived(headers["Cache-Control"])


@pytest.mark.parametrize("path", ["/", "/index.html"])
def test_index_page(base_url, path):
    status, headers, body = fetch(f"{base_url}{path}")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert is_short_lived(headers["Cache-Control"])
    assert b"<html" in body


def test_convenience_copy_and_keys(base_url):
    status, headers, _ = fetch(f"{base_url}/kiro-repo.deb")
    assert (status, headers["Content-Type"]) == (200, DEB)
    assert is_short_lived(headers["Cache-Control"])
    status, headers, body = fetch(f"{base_url}/kiro-archive-keyring.asc")
    assert (status, headers["Content-Type"]) == (200, "application/pgp-keys")
    assert body.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_no_directory_listings(base_url):
    status, _, body = fetch(f"{base_url}/pool/main/")
    assert status == 404
    assert b"alpha" not in body


def test_missing_file(base_url):
    assert fetch(f"{base_url}/dists/stable/main/binary-amd64/Packages.bz2")[0] == 404


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.com"])  # noqa: S104 - the refusal is what is tested
def test_refuses_non_loopback_addresses(tmp_path, host):
    with pytest.raises(ConfigError) as caught:
        make_server(tmp_path, host, 0)
    assert f"--bind {host}:" in str(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_accepts_loopback_addresses_and_serves_there(tmp_path, host):
    content = f"served on {host}\n".encode()
    (tmp_path / "hello.txt").write_bytes(content)
    server = make_server(tmp_path, host, 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        bound, port = server.server_address[:2]
        assert ipaddress.ip_address(bound).is_loopback
        for address in {host, bound}:
            status, _, body = fetch(f"http://{address}:{port}/hello.txt")
            assert (status, body) == (200, content), address
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DebrepoError) as caught:
            make_server(tmp_path, "127.0.0.1", port)
    # A runtime failure (exit 1), not a configuration error (exit 2).
    assert not isinstance(caught.value, ConfigError)
    assert str(caught.value) == (
        f"cannot listen on 127.0.0.1:{port}: Address already in use (another program "
        "listens there: stop it, or choose another --port)"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/pool/main/a/alpha/alpha_9.9_amd64.deb",
        "/dists/stable/main/binary-amd64/by-hash/SHA256/" + "0" * 64,
    ],
)
def test_not_found_is_not_cached_as_immutable(base_url, path):
    # A by-hash or pool file may be requested moments before it is published; a
    # year-long immutable 404 in a proxy would hide it from clients long after.
    status, headers, _ = fetch(f"{base_url}{path}")
    assert status == 404
    assert not is_long_lived(headers.get("Cache-Control", ""))


def test_nothing_outside_the_folder_is_served(base_url, workspace, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("not for clients\n", encoding="utf-8")
    link = workspace.repo.root / "escape"
    link.symlink_to(tmp_path, target_is_directory=True)
    try:
        assert fetch(f"{base_url}/escape/secret.txt")[0] == 404
    finally:
        link.unlink()
    assert fetch(f"{base_url}/%00")[0] == 404
    assert fetch(f"{base_url}/dists/%00/Release")[0] == 404
    assert fetch(f"{base_url}/../../etc/passwd")[0] == 404
    assert fetch(f"{base_url}/kiro-repo.deb")[0] == 200  # the folder itself still served
