"""sources/http.py against real servers on 127.0.0.1: checksums, limits, retries, errors."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from debrepo.sources.base import NotModified, SourceError
from debrepo.sources.http import HttpClient, HttpStatusError, url_problem
from tests.sources.conftest import (
    FAST_HTTP,
    FlakyServer,
    RawHttpServer,
    Upstream,
    free_port,
    kiro_deb,
)

DEB = kiro_deb()


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with HttpClient(FAST_HTTP) as client:
        yield client


def _sequence(*responses: Response) -> tuple[list[float], object]:
    """A handler answering with `responses` in turn (the last one from then on); `calls`
    holds when each request arrived (time.monotonic)."""
    calls: list[float] = []

    def handler(_request: Request) -> Response:
        calls.append(time.monotonic())
        return responses[min(len(calls), len(responses)) - 1]

    return calls, handler


def test_download_streams_to_the_file_with_all_four_checksums(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    upstream.serve_bytes("/kiro.deb", DEB)
    dest = tmp_path / "package.deb"
    facts = http.download(upstream.url("/kiro.deb"), dest)
    assert dest.read_bytes() == DEB
    assert facts.size == len(DEB)
    assert facts.md5 == hashlib.md5(DEB).hexdigest()
    assert facts.sha1 == hashlib.sha1(DEB).hexdigest()
    assert facts.sha256 == hashlib.sha256(DEB).hexdigest()
    assert facts.sha512 == hashlib.sha512(DEB).hexdigest()
    user_agent = upstream.headers_of("/kiro.deb")[0]["User-Agent"]
    assert user_agent.startswith("debrepo/")


def test_a_conditional_download_of_an_unchanged_file_transfers_and_writes_nothing(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    replace_file = upstream.serve_file("/kiro.deb", DEB)
    first = http.download_file(upstream.url("/kiro.deb"), tmp_path / "first.deb")
    assert first.validators is not None and first.validators.etag and first.validators.last_modified

    dest = tmp_path / "again.deb"
    with pytest.raises(NotModified, match=r"/kiro\.deb: not modified since it was last fetched"):
        http.download_file(upstream.url("/kiro.deb"), dest, unchanged_since=first.validators)
    assert not dest.exists()

    replace_file(b"other bytes")
    changed = http.download_file(upstream.url("/kiro.deb"), dest, unchanged_since=first.validators)
    assert dest.read_bytes() == b"other bytes" and changed.facts.size == 11
    assert changed.validators != first.validators
    assert upstream.statuses("/kiro.deb") == [200, 304, 200]


def test_a_304_to_a_request_that_was_not_conditional_is_an_error(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    upstream.server.expect_request("/odd.deb").respond_with_data(b"", status=304)
    with pytest.raises(HttpStatusError, match="HTTP 304"):
        http.download_file(upstream.url("/odd.deb"), tmp_path / "odd.deb")
    assert not (tmp_path / "odd.deb").exists()


def test_declared_size_over_the_limit_is_refused_before_the_body(
    upstream: Upstream, tmp_path: Path
) -> None:
    upstream.serve_bytes("/big.deb", DEB)
    dest = tmp_path / "package.deb"
    with (
        HttpClient(replace(FAST_HTTP, max_download_bytes=1000)) as http,
        pytest.raises(SourceError, match=r"/big\.deb: larger than the limit of 1000 bytes"),
    ):
        http.download(upstream.url("/big.deb"), dest)
    assert not dest.exists()


def test_undeclared_size_over_the_limit_stops_the_stream(
    upstream: Upstream, tmp_path: Path
) -> None:
    def endless(_request: Request) -> Response:
        return Response((b"x" * 4096 for _ in range(1000)), content_type="application/octet-stream")

    upstream.server.expect_request("/endless").respond_with_handler(endless)
    dest = tmp_path / "package.deb"
    with (
        HttpClient(replace(FAST_HTTP, max_download_bytes=50_000)) as http,
        pytest.raises(SourceError, match="larger than the limit of 50000 bytes"),
    ):
        http.download(upstream.url("/endless"), dest)
    assert not dest.exists()


def test_server_errors_are_retried_until_one_succeeds(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    calls, handler = _sequence(
        Response("busy", status=503), Response("oops", status=500), Response(DEB)
    )
    upstream.server.expect_request("/flaky.deb").respond_with_handler(handler)  # type: ignore[arg-type]
    facts = http.download(upstream.url("/flaky.deb"), tmp_path / "package.deb")
    assert facts.size == len(DEB)
    assert len(calls) == 3
    assert upstream.count("/flaky.deb") == 3


def test_persistent_server_errors_fail_after_the_retries(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    upstream.server.expect_request("/down.deb").respond_with_data("oops", status=500)
    with pytest.raises(HttpStatusError, match=r"/down\.deb: HTTP 500 .*after 3 attempts") as caught:
        http.download(upstream.url("/down.deb"), tmp_path / "package.deb")
    assert caught.value.status == 500
    assert upstream.count("/down.deb") == 3  # 1 + FAST_HTTP.retries
    assert not (tmp_path / "package.deb").exists()


def test_not_found_is_not_retried(http: HttpClient, upstream: Upstream, tmp_path: Path) -> None:
    upstream.server.expect_request("/gone.deb").respond_with_data("no", status=404)
    with pytest.raises(HttpStatusError, match=r"/gone\.deb: HTTP 404 NOT FOUND$"):
        http.download(upstream.url("/gone.deb"), tmp_path / "package.deb")
    assert upstream.count("/gone.deb") == 1


def test_retry_after_is_honoured_up_to_the_configured_maximum(
    http: HttpClient, upstream: Upstream
) -> None:
    # The server asks for an hour; FAST_HTTP caps waits at 1 s (the backoff alone is 0.01 s).
    calls, handler = _sequence(
        Response("slow down", status=429, headers={"Retry-After": "3600"}),
        Response('{"ok": true}', content_type="application/json"),
    )
    upstream.server.expect_request("/limited.json").respond_with_handler(handler)  # type: ignore[arg-type]
    assert http.get_json(upstream.url("/limited.json")) == {"ok": True}
    assert len(calls) == 2
    # Between the two requests as the server saw them: the capped second was waited,
    # and nothing near the hour asked for (generous for a busy machine).
    waited = calls[1] - calls[0]
    assert 0.9 <= waited < 120, waited


def test_nothing_is_fetched_once_the_runs_time_for_upstream_is_used_up(
    upstream: Upstream,
) -> None:
    calls, handler = _sequence(Response('{"ok": true}', content_type="application/json"))
    upstream.server.expect_request("/late.json").respond_with_handler(handler)  # type: ignore[arg-type]
    late = replace(FAST_HTTP, run_deadline=time.monotonic() - 1)
    with HttpClient(late) as client, pytest.raises(SourceError) as caught:
        client.get_json(upstream.url("/late.json"))
    assert str(caught.value).startswith(f"{upstream.url('/late.json')}: not fetched: this run")
    assert calls == []


def test_retry_waits_are_cut_to_the_runs_time_left(upstream: Upstream) -> None:
    """A Lambda must publish before its time limit: Retry-After is honoured only within
    the time left, shared by every attempt."""
    calls, handler = _sequence(
        Response("busy", status=503, headers={"Retry-After": "3600"}),
        Response('{"ok": true}', content_type="application/json"),
    )
    upstream.server.expect_request("/busy.json").respond_with_handler(handler)  # type: ignore[arg-type]
    settings = replace(FAST_HTTP, max_retry_after=3600, run_deadline=time.monotonic() + 8)
    with HttpClient(settings) as client:
        assert client.get_json(upstream.url("/busy.json")) == {"ok": True}
    waited = calls[1] - calls[0]
    assert waited < 8, waited  # within the run's time, not the hour asked for


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize(
    ("declare_length", "coding", "body", "whole"),
    [
        (True, "", DEB, True),  # held to its Content-Length
        (False, "chunked", _chunk(DEB[:1000]) + _chunk(DEB[1000:]) + b"0\r\n\r\n", True),
        (False, "", DEB[:1000], False),  # only the connection closing ended it
        (False, "identity", DEB[:1000], False),
        (False, "xchunked", DEB[:1000], False),
        # http.client takes no list apart: read to the connection's end, framing and all;
        # urllib3 ignores the Content-Length then.
        (False, "gzip, chunked", _chunk(DEB[:1000]), False),
        (True, "gzip, chunked", _chunk(DEB[:1000]), False),
    ],
)
def test_a_download_is_whole_only_if_the_message_ends_the_body(
    http: HttpClient, tmp_path: Path, declare_length: bool, coding: str, body: bytes, whole: bool
) -> None:
    with FlakyServer(
        body, resets=0, declare_length=declare_length, transfer_encoding=coding
    ) as server:
        fetched = http.download_file(server.url, tmp_path / "package.deb")
    assert fetched.whole is whole
    if coding == "chunked":
        assert (tmp_path / "package.deb").read_bytes() == DEB


@pytest.mark.parametrize(
    ("value", "length"),
    [("5008", 5008), (" 12 ", 12), ("\xb2", None), ("12, 12", None), ("-1", None)],
)
def test_a_content_length_is_digits_or_none(value: str, length: int | None) -> None:
    from urllib3 import HTTPResponse

    from debrepo.sources.http import _declared_length

    assert _declared_length(HTTPResponse(body=b"", headers={"Content-Length": value})) == length


def test_a_connection_reset_mid_body_restarts_the_download(
    http: HttpClient, tmp_path: Path
) -> None:
    with FlakyServer(DEB, resets=1) as server:
        facts = http.download(server.url, tmp_path / "package.deb")
    assert server.requests == 2
    assert facts.sha256 == hashlib.sha256(DEB).hexdigest()
    assert (tmp_path / "package.deb").read_bytes() == DEB


def test_connection_resets_every_time_fail_after_the_retries(
    http: HttpClient, tmp_path: Path
) -> None:
    with (
        FlakyServer(DEB, resets=99) as server,
        pytest.raises(SourceError, match=r"connection broke off during the transfer, 3 attempt"),
    ):
        http.download(server.url, tmp_path / "package.deb")
    assert server.requests == 3
    assert list(tmp_path.iterdir()) == []


def test_nothing_listening_is_a_clear_error(http: HttpClient, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/kiro.deb"
    with pytest.raises(SourceError, match=r"127\.0\.0\.1:\d+/kiro\.deb: cannot fetch it"):
        http.download(url, tmp_path / "package.deb")


def test_a_host_that_cannot_be_reached_is_not_tried_again_in_the_same_run(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    port = free_port()
    attempts = FAST_HTTP.retries + 1
    with pytest.raises(SourceError, match=f"cannot fetch it, after {attempts} attempts: "):
        http.download(f"http://127.0.0.1:{port}/one.deb", tmp_path / "one.deb")
    # Something listens there now: a second attempt would succeed, so an error proves
    # that none was made.
    late = HTTPServer(host="127.0.0.1", port=port)
    late.expect_request("/two.deb").respond_with_data(DEB)
    late.start()
    try:
        with pytest.raises(SourceError) as caught:
            http.download(f"http://127.0.0.1:{port}/two.deb", tmp_path / "two.deb")
        assert str(caught.value).startswith(
            f"http://127.0.0.1:{port}/two.deb: not tried: 127.0.0.1:{port} could not be "
            "reached earlier in this run ("
        )
        assert late.log == []
        with HttpClient(FAST_HTTP) as next_run:  # a new run tries again
            assert next_run.download(late.url_for("/two.deb"), tmp_path / "two.deb").size
    finally:
        late.clear()
        late.stop()
    upstream.serve_bytes("/kiro.deb", DEB)  # other hosts are still asked
    assert http.download(upstream.url("/kiro.deb"), tmp_path / "kiro.deb").size == len(DEB)


def test_an_unreachable_redirect_target_does_not_mark_the_host_that_redirected(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    upstream.server.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": f"{dead}/kiro.deb"}
    )
    upstream.serve_bytes("/kiro.deb", DEB)
    with pytest.raises(SourceError, match="cannot fetch it"):
        http.download(upstream.url("/moved"), tmp_path / "a.deb")
    assert http.download(upstream.url("/kiro.deb"), tmp_path / "b.deb").size == len(DEB)
    with pytest.raises(SourceError, match="not tried"):
        http.download(f"{dead}/other.deb", tmp_path / "c.deb")


def test_get_json_refuses_html_and_broken_json(http: HttpClient, upstream: Upstream) -> None:
    upstream.serve_bytes(
        "/portal", b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html; charset=utf-8"
    )
    upstream.serve_bytes("/sneaky", b"  <html>not json</html>", "application/json")
    upstream.serve_bytes("/broken", b'{"version": "0.9.2",', "application/json")
    upstream.serve_bytes("/latin1", b'{"notes": "caf\xe9"}', "application/json")
    with pytest.raises(SourceError, match=r"/portal: expected JSON but got an HTML page"):
        http.get_json(upstream.url("/portal"))
    with pytest.raises(SourceError, match=r"/sneaky: expected JSON but got an HTML page"):
        http.get_json(upstream.url("/sneaky"))
    with pytest.raises(SourceError, match=r"/broken: not valid JSON: Expecting"):
        http.get_json(upstream.url("/broken"))
    with pytest.raises(SourceError, match=r"/latin1: not valid JSON"):
        http.get_json(upstream.url("/latin1"))


def test_hostile_json_responses_are_one_line_errors_naming_the_url(
    http: HttpClient, upstream: Upstream
) -> None:
    upstream.serve_bytes("/deep", b"[" * 200_000 + b"]" * 200_000, "application/json")
    upstream.server.expect_request("/not-gzip").respond_with_data(
        b'{"version": "1.0"}',
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )
    with pytest.raises(SourceError, match=r"/deep: not valid JSON: nested too deeply"):
        http.get_json(upstream.url("/deep"))
    with pytest.raises(SourceError, match=r"/not-gzip: cannot read the response: "):
        http.get_json(upstream.url("/not-gzip"))


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("/a/%2e%2e/kiro.deb", "tries to leave its directory"),
        ("http://user:secret@{host}/kiro.deb", "carries credentials"),
    ],
)
def test_a_redirect_is_held_to_the_same_url_rules(
    http: HttpClient, upstream: Upstream, tmp_path: Path, target: str, problem: str
) -> None:
    location = target.format(host=f"{upstream.server.host}:{upstream.server.port}")
    upstream.server.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": location}
    )
    upstream.serve_bytes("/a/../kiro.deb", b"not for us")  # as the server decodes it
    upstream.serve_bytes("/kiro.deb", b"not for us")
    with pytest.raises(SourceError) as caught:
        http.download(upstream.url("/moved"), tmp_path / "kiro.deb")
    assert "/moved: redirected to a URL debrepo does not fetch" in str(caught.value)
    assert problem in str(caught.value)
    assert not (tmp_path / "kiro.deb").exists()


def test_get_json_has_its_own_size_limit(http: HttpClient, upstream: Upstream) -> None:
    upstream.serve_json("/huge.json", {"notes": "x" * 5000})
    with pytest.raises(SourceError, match="larger than the limit of 1000 bytes"):
        http.get_json(upstream.url("/huge.json"), max_bytes=1000)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://download.kiro.dev/linux/kiro_0.9.2_amd64.deb", None),
        ("http://127.0.0.1:8080/a%20b/kiro.deb?x=1", None),
        ("ftp://download.kiro.dev/kiro.deb", "is not an http(s) URL"),
        ("https:///kiro.deb", "is not an http(s) URL"),
        ("https://user:secret@download.kiro.dev/kiro.deb", "carries credentials"),
        ("https://download.kiro.dev/linux/../../etc/passwd", "tries to leave its directory"),
        ("https://download.kiro.dev/linux/..%2F..%2Fetc%2Fcron.d%2Fkiro", "tries to leave"),
        ("https://download.kiro.dev/linux/%2e%2e/kiro.deb", "tries to leave its directory"),
        ("https://download.kiro.dev/linux/..%5Cwindows.deb", "tries to leave its directory"),
        ("https://download.kiro.dev/linux/kiro%00.deb", "tries to leave its directory"),
        ("https://download.kiro.dev:99999/kiro.deb", "is not a URL: Port out of range 0-65535"),
        ("https://download.kiro.dev:https/kiro.deb", "is not a URL: Port could not be cast"),
        ("https://download.kiro.dev:0/kiro.deb", "is not a URL: port 0 (ports are 1-65535)"),
        ("https://download.kiro.dev/kiro\ud800.deb", "holds a lone surrogate"),
    ],
)
def test_url_problem(url: str, problem: str | None) -> None:
    found = url_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/kiro.deb",
        "http://127.0.0.1:0/kiro.deb",
        "http://127.0.0.1:{port}/kiro\udcff.deb",
    ],
)
def test_a_url_that_cannot_be_fetched_is_refused_before_any_request(
    http: HttpClient, upstream: Upstream, tmp_path: Path, url: str
) -> None:
    url = url.format(port=upstream.server.port)
    with pytest.raises(SourceError) as caught:
        http.download(url, tmp_path / "package.deb")
    assert str(caught.value).startswith(repr(url) + " ")
    str(caught.value).encode("utf-8")
    with pytest.raises(SourceError):
        http.get_json(url)
    assert upstream.paths() == []
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_to_a_location_that_is_not_a_url_is_a_source_error(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    class RawRedirect(Response):
        def get_wsgi_headers(self, environ: Any) -> Any:
            headers = super().get_wsgi_headers(environ)
            headers["Location"] = "//[::1/kiro.deb"  # werkzeug itself would refuse it
            return headers

    upstream.server.expect_request("/moved").respond_with_response(RawRedirect("", status=302))
    with pytest.raises(SourceError) as caught:
        http.download(upstream.url("/moved"), tmp_path / "kiro.deb")
    assert str(caught.value) == (
        f"{upstream.url('/moved')}: redirected to a Location that is not a URL: Invalid IPv6 URL"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_header_value_that_would_break_the_request_is_refused_unsent(
    http: HttpClient, upstream: Upstream
) -> None:
    upstream.serve_json("/api", [])
    for value in ("Bearer a\nX-Injected: 1", "Bearer t\u00f6ken"):
        with pytest.raises(SourceError) as caught:
            http.get_json(upstream.url("/api"), headers={"Authorization": value})
        assert str(caught.value) == (
            f"{upstream.url('/api')}: the Authorization header holds a line break or a "
            "character other than printable ASCII; refusing to send it"
        )
    assert upstream.paths() == []


def test_a_traversal_url_is_never_requested(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    url = upstream.url("/kiro/..%2F..%2Fkiro.deb")
    with pytest.raises(SourceError, match="tries to leave its directory"):
        http.download(url, tmp_path / "package.deb")
    assert upstream.paths() == []


def test_a_download_that_cannot_be_written_is_a_source_error(
    http: HttpClient, upstream: Upstream, tmp_path: Path
) -> None:
    upstream.serve_bytes("/kiro.deb", DEB)
    dest = tmp_path / "missing-folder" / "package.deb"
    with pytest.raises(SourceError, match=r"/kiro\.deb: cannot write the download to .*"):
        http.download(upstream.url("/kiro.deb"), dest)


@pytest.fixture
def tls_upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HTTPServer]:
    """An https server on 127.0.0.1 with a certificate the client is made to trust."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def test_https_downloads_work_and_a_downgrade_to_http_is_refused(
    tls_upstream: HTTPServer, upstream: Upstream, tmp_path: Path
) -> None:
    tls_upstream.expect_request("/kiro.deb").respond_with_data(b"package bytes")
    tls_upstream.expect_request("/moved.deb").respond_with_data(
        "", status=302, headers={"Location": "/kiro.deb"}
    )
    tls_upstream.expect_request("/downgrade.deb").respond_with_data(
        "", status=302, headers={"Location": upstream.url("/kiro.deb")}
    )
    upstream.serve_bytes("/kiro.deb", b"package bytes")
    with HttpClient(FAST_HTTP) as http:
        assert http.download(tls_upstream.url_for("/kiro.deb"), tmp_path / "a.deb").size == 13
        assert http.download(tls_upstream.url_for("/moved.deb"), tmp_path / "b.deb").size == 13
        with pytest.raises(SourceError, match=r"/downgrade.deb: redirected to http://.*not https"):
            http.download(tls_upstream.url_for("/downgrade.deb"), tmp_path / "c.deb")
    assert not (tmp_path / "c.deb").exists()


def test_the_final_url_resolves_each_redirect_against_the_url_that_received_it() -> None:
    from urllib3 import HTTPResponse
    from urllib3.exceptions import ProtocolError
    from urllib3.util import Retry
    from urllib3.util.retry import RequestHistory

    from debrepo.sources.http import _final_url

    start = "https://example.com/start"
    redirect = RequestHistory("GET", start, None, 302, "files/kiro.deb")
    # The body broke off; our own retry asked for `start` again and was redirected again.
    broken = RequestHistory("GET", "/files/kiro.deb", ProtocolError("reset"), None, None)
    history = (redirect, broken, redirect)
    response = HTTPResponse(body=b"", retries=Retry(history=history))
    assert _final_url(start, response) == "https://example.com/files/kiro.deb"

    to_cdn = RequestHistory("GET", start, None, 302, "https://cdn.example.com/a/b")
    onward = RequestHistory("GET", "https://cdn.example.com/a/b", None, 301, "../c")
    response = HTTPResponse(body=b"", retries=Retry(history=(to_cdn, onward)))
    assert _final_url(start, response) == "https://cdn.example.com/c"


@pytest.mark.parametrize("kind", ["download", "json"])
def test_a_server_that_trickles_is_refused_at_the_transfer_deadline(
    upstream: Upstream, tmp_path: Path, kind: str
) -> None:
    def trickle(_request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield b"["
            for _ in range(200):  # 40 seconds, a byte at a time
                time.sleep(0.2)
                yield b" "
            yield b"]"

        return Response(body(), headers={"Content-Length": "202"}, content_type="application/json")

    upstream.server.expect_request("/slow").respond_with_handler(trickle)
    started = time.monotonic()
    with (
        HttpClient(replace(FAST_HTTP, max_transfer_seconds=1.0)) as client,
        pytest.raises(SourceError) as caught,
    ):
        if kind == "download":
            client.download(upstream.url("/slow"), tmp_path / "slow.deb")
        else:
            client.get_json(upstream.url("/slow"))
    # Refused at its deadline, long before the 40 s the whole body would take.
    assert time.monotonic() - started < 25
    assert str(caught.value).startswith(f"{upstream.url('/slow')}: still transferring after 1 ")
    assert "refusing so slow a server" in str(caught.value)
    assert not (tmp_path / "slow.deb").exists()


class _EndlessServer(RawHttpServer):
    """Every connection gets `head`, then a byte of `filler` every 0.2 s, for 40 seconds
    at most."""

    threaded = True

    def __init__(self, head: bytes, filler: bytes) -> None:
        super().__init__()
        self.head, self.filler = head, filler
        self.url = f"http://127.0.0.1:{self.port}/metadata.json"

    def _answer(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(self.head)
            for _ in range(200):
                if self._stopped.wait(0.2):
                    return
                conn.sendall(self.filler)


@pytest.mark.parametrize(
    ("head", "filler"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a"),  # headers that never end
        # Bodies urllib3 reads to their end before following or retrying the response.
        (
            b"HTTP/1.1 302 Found\r\nLocation: /next\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"1\r\nx\r\n",
        ),
        (
            b"HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"1\r\nx\r\n",
        ),
    ],
    ids=["headers", "redirect-body", "retried-body"],
)
def test_a_response_that_never_ends_is_refused_at_the_transfer_deadline(
    head: bytes, filler: bytes
) -> None:
    started = time.monotonic()
    with (
        _EndlessServer(head, filler) as server,
        HttpClient(replace(FAST_HTTP, max_transfer_seconds=1.0)) as client,
        pytest.raises(SourceError) as caught,
    ):
        client.get_json(server.url)
    assert time.monotonic() - started < 25
    assert str(caught.value).startswith(f"{server.url}: still transferring after 1 seconds")
    assert "refusing so slow a server" in str(caught.value)
