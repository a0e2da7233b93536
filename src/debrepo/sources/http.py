"""One HTTP client for every package source: timeouts, retries, size limits, streaming.

- Connect and read timeouts on every request, and a deadline for each transfer as a
  whole (its headers, and the redirects and retried answers urllib3 reads through).
- Retries with exponential backoff on connection errors, on a connection broken while
  the body streams (the download restarts from the beginning), and on 429, 500, 502,
  503 and 504, honouring Retry-After up to `max_retry_after` seconds. All of them share
  one budget of `retries` per kind.
- A host that could not be connected to even after the retries is not tried again
  by the same client (one run): a sync or migration whose upstream is down (DNS,
  refused, timeout) fails each further file at once instead of retrying each.
- A maximum size, checked against Content-Length before the body is read and again
  while it streams.
- Downloads stream to a file, feeding MD5, SHA1, SHA256 and SHA512 in the same pass;
  peak memory does not depend on the size of the file.

Every failure is a SourceError whose message starts with the URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry, Timeout

from debrepo import __version__
from debrepo.core.control import LONE_SURROGATE, is_unicode_text
from debrepo.core.records import FileFacts
from debrepo.sources.base import NotModified, SourceError, Validators, sendable_header

log = logging.getLogger("debrepo.sources")

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CHUNK = 1 << 20
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Limits of the shared HTTP client; the defaults suit a scheduled run."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 4
    backoff_factor: float = 1.0  # seconds; waits 0, 2, 4, 8... times this (urllib3's formula)
    backoff_max: float = 60.0
    max_retry_after: int = 120
    max_download_bytes: int = 2 << 30  # the kiro .deb is hundreds of MB
    max_metadata_bytes: int = 16 << 20
    # Per transfer, whatever the read timeout: a server sending a byte every few seconds
    # would otherwise hold the publish lock for days.
    max_transfer_seconds: float = 1800.0
    user_agent: str = f"debrepo/{__version__}"
    # A monotonic time no transfer or wait may outlast (a Lambda's time limit, less what
    # the publish needs): upstream being slow must not keep the run from re-signing.
    run_deadline: float | None = None


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A file streamed to disk: its size and checksums, and the server's validators."""

    facts: FileFacts
    validators: Validators | None
    # Whether the body is known to be whole: a declared length (urllib3 holds the body
    # to it) or chunked coding ends it; otherwise only the connection closing did
    # (_delimited).
    whole: bool = True


def _validators(response: BaseHTTPResponse) -> Validators | None:
    """The response's ETag and Last-Modified, kept only if they can be sent back as
    they are (printable ASCII)."""

    def usable(name: str) -> str | None:
        value = response.headers.get(name)
        return value if value and sendable_header(value) else None

    found = Validators(usable("ETag"), usable("Last-Modified"))
    return found if found.etag or found.last_modified else None


class HttpStatusError(SourceError):
    """The server answered with a status other than 200."""

    def __init__(self, url: str, status: int, reason: str, headers: Mapping[str, str]) -> None:
        self.url = url
        self.status = status
        self.headers = {key.lower(): value for key, value in headers.items()}
        super().__init__(f"{url}: HTTP {status} {reason}".rstrip())


def url_problem(url: str) -> str | None:
    """Why `url` may not be fetched, or None.

    Only http(s) URLs of Unicode text with a host, a port from 1 to 65535 and without
    credentials; no path segment may be '.' or '..' or hide a '/' or '\\' behind
    percent-encoding. Names from URLs never become paths here, but a URL built to climb
    directories says the metadata is not to be trusted.
    """
    if not is_unicode_text(url):
        return f"{url!r} {LONE_SURROGATE}"
    try:
        parts = urlsplit(url)
        port = parts.port  # urlsplit takes a port of 99999 and only refuses it here
    except ValueError as exc:
        return f"{url!r} is not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host"
    if port == 0:
        return f"{url!r} is not a URL: port 0 (ports are 1-65535)"
    if parts.username is not None or parts.password is not None:
        return f"{url!r} carries credentials; refusing it"
    return traversal_problem(url)


def downgrade_problem(url: str, named_by: str, what: str) -> str | None:
    """Why `url` may not be fetched for a document read from `named_by` (`what` it is),
    or None: a document read over https names https URLs only. Refused for the same
    reason as a redirect from https to http: anyone on the path could swap the file."""
    if urlsplit(named_by).scheme == "https" and urlsplit(url).scheme != "https":
        return f"{url!r} is not https, as the {what} that names it is; refusing it"
    return None


def traversal_problem(reference: str) -> str | None:
    """Why the path of `reference` (a URL or a relative one) climbs directories, or None."""
    for segment in urlsplit(reference).path.split("/"):
        decoded = unquote(segment)
        if decoded in (".", "..") or any(c in decoded for c in "/\\\x00"):
            return f"{reference!r} has a path segment {segment!r} that tries to leave its directory"
    return None


class _Checksums:
    """Size and the four checksums of a stream, fed chunk by chunk."""

    def __init__(self) -> None:
        self.size = 0
        self._hashes = (
            hashlib.md5(usedforsecurity=False),
            hashlib.sha1(usedforsecurity=False),
            hashlib.sha256(),
            hashlib.sha512(),
        )

    def update(self, chunk: bytes | bytearray) -> None:
        self.size += len(chunk)
        for digest in self._hashes:
            digest.update(chunk)

    def facts(self) -> FileFacts:
        md5, sha1, sha256, sha512 = (digest.hexdigest() for digest in self._hashes)
        return FileFacts(self.size, md5, sha1, sha256, sha512)


def _declared_length(response: BaseHTTPResponse) -> int | None:
    raw = (response.headers.get("Content-Length") or "").strip()
    # isdigit alone takes "²" (a Latin-1 header byte), which int refuses.
    if not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def _delimited(response: BaseHTTPResponse) -> bool:
    """Whether the message, not only the connection closing, ends the body: chunked
    coding, if it is the only transfer coding (http.client takes apart no other list, and
    reads "gzip, chunked" to the connection's end, while urllib3 then ignores any
    Content-Length), or else a Content-Length urllib3 holds the body to."""
    coding = response.headers.get("Transfer-Encoding", "").lower()
    codings = [name.strip() for name in coding.split(",")]
    if "chunked" in codings:
        return codings == ["chunked"]
    return _declared_length(response) is not None


def _describe(error: BaseException | None) -> str:
    """urllib3's errors without their repeated tuple wrapping."""
    if isinstance(error, ProtocolError) and error.args:
        return str(error.args[0])
    if isinstance(error, NewConnectionError):
        return str(error).split(": ", 1)[-1]
    return str(error)


def _final_url(url: str, response: BaseHTTPResponse) -> str:
    """The absolute URL the response came from, after the redirects urllib3 followed.

    (`response.geturl()` is only the path and query of the last request.) Each
    redirect is resolved against the URL that received it, as recorded: after a retry
    of our own the history starts again from `url`.
    """
    final = url
    for entry in response.retries.history if response.retries else ():
        if entry.redirect_location:
            final = urljoin(urljoin(final, entry.url or ""), entry.redirect_location)
    return final


def _attempts(retry: Retry) -> int:
    """Requests made so far under `retry` (redirects followed are not attempts)."""
    return 1 + sum(1 for entry in retry.history if entry.redirect_location is None)


def _normal(origin: tuple[str, str, int | None]) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port spelled out, lower-case host."""
    scheme, host, port = origin
    return scheme, host.lower(), port or {"http": 80, "https": 443}.get(scheme)


def _too_large(url: str, limit: int) -> SourceError:
    return SourceError(f"{url}: larger than the limit of {limit} bytes; refusing to download it")


class _Expired(Exception):
    """A request started after its transfer's deadline (not an error urllib3 retries)."""


_watching = threading.local()  # the _Watch of the transfer this thread is making


class _Watch:
    """Ends a transfer at its deadline whatever it waits for. The read timeout counts
    from the last byte received, so headers sent a byte at a time, or the body of a
    redirect or of a retried error (which urllib3 reads to its end before going on),
    would go on for ever: at the deadline the transfer's sockets are shut down, and the
    transfer is a SourceError, however it ended."""

    def __init__(self, url: str, seconds: float) -> None:
        self._url, self._seconds = url, seconds
        self._expired = False
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watch:
        _watching.current = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        _watching.current = None
        with self._lock:
            expired, self._connections = self._expired, []
        if expired:
            raise SourceError(
                f"{self._url}: still transferring after {self._seconds:g} seconds; refusing so "
                "slow a server"
            ) from None

    def add(self, connection: HTTPConnection) -> None:
        """Shut `connection` down at the deadline; _Expired if it has passed."""
        with self._lock:
            if self._expired:
                raise _Expired
            self._connections.append(connection)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            connections = self._connections
        for connection in connections:
            if (sock := connection.sock) is not None:
                with contextlib.suppress(OSError):  # already closed
                    # socket.socket's: an SSLSocket's own would unwrap TLS first
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedConnection(HTTPConnection):
    """A connection the transfer's _Watch can shut down at its deadline."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        if watch := getattr(_watching, "current", None):
            watch.add(self)
        super().request(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        if watch := getattr(_watching, "current", None):
            watch.add(self)  # connected after the deadline passed: _Expired


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class HttpClient:
    """A urllib3 PoolManager with debrepo's timeouts, retries and limits."""

    def __init__(self, settings: HttpSettings | None = None) -> None:
        self.settings = settings or HttpSettings()
        self._pool = urllib3.PoolManager(
            timeout=Timeout(connect=self.settings.connect_timeout, read=self.settings.read_timeout)
        )
        self._pool.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        # (scheme, host, port) -> why it could not be reached
        self._unreachable: dict[tuple[str, str, int | None], str] = {}

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.clear()

    def _time_left(self, url: str) -> float | None:
        """Seconds left before `run_deadline` (None: no deadline); SourceError when none."""
        if self.settings.run_deadline is None:
            return None
        left = self.settings.run_deadline - time.monotonic()
        if left <= 1:
            raise SourceError(
                f"{url}: not fetched: this run's time for upstream is used up (the rest is "
                "kept for the publish); the next run tries again"
            )
        return left

    def _retry(self, time_left: float | None = None) -> Retry:
        retries = self.settings.retries
        waits = self.settings.max_retry_after
        if time_left is not None:  # every wait of every attempt within what is left
            waits = max(1, min(waits, int(time_left / (retries + 1))))
        return Retry(
            total=None,
            connect=retries,
            read=retries,
            status=retries,
            other=retries,
            redirect=MAX_REDIRECTS,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=self.settings.backoff_factor,
            backoff_max=min(self.settings.backoff_max, waits),
            raise_on_status=False,
            respect_retry_after_header=True,
            retry_after_max=waits,
        )

    def _fetch(
        self,
        url: str,
        headers: Mapping[str, str] | None,
        consume: Callable[[BaseHTTPResponse, tuple[float, float]], T],
    ) -> T:
        """GET `url` and hand a 200 response to `consume`; a body broken off is fetched again."""
        problem = url_problem(url)
        if problem:
            raise SourceError(problem)
        parts = urlsplit(url)
        origin = _normal((parts.scheme, parts.hostname or "", parts.port))
        if origin in self._unreachable:
            raise SourceError(
                f"{url}: not tried: {parts.netloc} could not be reached earlier in this run "
                f"({self._unreachable[origin]})"
            )
        sent = {"User-Agent": self.settings.user_agent, **(headers or {})}
        for name, value in sent.items():
            if not sendable_header(value):
                # http.client would refuse it with the value in the message (a token).
                raise SourceError(
                    f"{url}: the {name} header holds a line break or a character other than "
                    "printable ASCII; refusing to send it"
                )
        retry = self._retry(self._time_left(url))
        while True:
            deadline = self._deadline()
            with _Watch(url, deadline[1]):
                try:
                    response = self._pool.request(
                        "GET", url, headers=sent, retries=retry, preload_content=False
                    )
                except MaxRetryError as exc:
                    reason = _describe(exc.reason)
                    # Not connecting at all (name, refusal, timeout; NewConnectionError is a
                    # ConnectTimeoutError): the host is the problem, not this file. The pool
                    # is the host that failed, which after a redirect is not the one asked.
                    if isinstance(exc.reason, ConnectTimeoutError):
                        pool = exc.pool
                        failed = (
                            origin if pool is None else (pool.scheme or "", pool.host, pool.port)
                        )
                        self._unreachable[_normal(failed)] = reason
                    raise SourceError(
                        f"{url}: cannot fetch it, after {self.settings.retries + 1} attempts: "
                        f"{reason}"
                    ) from None
                except HTTPError as exc:
                    raise SourceError(f"{url}: {exc}") from None
                except ValueError as exc:  # urllib3 joining a redirect's Location, e.g. '//[::1'
                    raise SourceError(
                        f"{url}: redirected to a Location that is not a URL: {exc}"
                    ) from None
                used = response.retries or retry
                done = False
                try:
                    self._check_response(url, response, _attempts(used))
                    result = consume(response, deadline)
                    done = True
                    return result
                except (ProtocolError, ReadTimeoutError) as exc:
                    broken: HTTPError = exc
                except HTTPError as exc:  # e.g. a body its Content-Encoding does not describe
                    raise SourceError(
                        f"{url}: cannot read the response: {_describe(exc)}"
                    ) from None
                finally:
                    if not done:
                        response.close()
                    response.release_conn()
            try:
                retry = used.increment("GET", url, error=broken)
            except MaxRetryError:
                raise SourceError(
                    f"{url}: the connection broke off during the transfer, "
                    f"{_attempts(used)} attempt(s): {_describe(broken)}"
                ) from None
            log.warning("%s: connection broke off (%s); retrying", url, _describe(broken))
            self._time_left(url)
            retry.sleep()

    def _check_response(self, url: str, response: BaseHTTPResponse, attempts: int) -> None:
        if response.status != 200:
            after = f" after {attempts} attempts" if attempts > 1 else ""
            raise HttpStatusError(
                url, response.status, f"{response.reason or ''}{after}", response.headers
            )
        final = _final_url(url, response)
        if urlsplit(url).scheme == "https" and urlsplit(final).scheme != "https":
            raise SourceError(f"{url}: redirected to {final}, which is not https; refusing it")
        if final != url and (problem := url_problem(final)):
            # The same rules as for the URL asked for: a redirect does not get around them.
            raise SourceError(f"{url}: redirected to a URL debrepo does not fetch: {problem}")

    def _deadline(self) -> tuple[float, float]:
        allowed = self.settings.max_transfer_seconds
        if self.settings.run_deadline is not None:
            allowed = max(0.0, min(allowed, self.settings.run_deadline - time.monotonic()))
        return time.monotonic() + allowed, allowed

    def get_json(
        self, url: str, *, headers: Mapping[str, str] | None = None, max_bytes: int | None = None
    ) -> Any:
        """The decoded JSON document at `url`; SourceError for HTML, bad JSON or a bad status."""
        limit = self.settings.max_metadata_bytes if max_bytes is None else max_bytes

        def consume(response: BaseHTTPResponse, deadline: tuple[float, float]) -> bytes:
            declared = _declared_length(response)
            if declared is not None and declared > limit:
                raise _too_large(url, limit)
            buffer = io.BytesIO()
            _stream(response, buffer, None, url, limit, deadline)
            body = buffer.getvalue()
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if "html" in content_type or body.lstrip()[:1] == b"<":
                raise SourceError(
                    f"{url}: expected JSON but got an HTML page (Content-Type "
                    f"{content_type or 'not given'}); check the URL"
                )
            return body

        body = self._fetch(url, headers, consume)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise SourceError(f"{url}: not valid JSON: {exc}") from None
        except RecursionError:
            raise SourceError(f"{url}: not valid JSON: nested too deeply") from None

    def download(
        self,
        url: str,
        dest: Path,
        *,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> FileFacts:
        """Stream `url` into `dest`, returning its size and four checksums.

        `dest` is removed again if the download fails.
        """
        return self.download_file(url, dest, headers=headers, max_bytes=max_bytes).facts

    def download_file(
        self,
        url: str,
        dest: Path,
        *,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        unchanged_since: Validators | None = None,
    ) -> Downloaded:
        """As `download`, also returning the server's validators. With `unchanged_since`,
        the request is conditional: NotModified (nothing written) when the server
        answers 304 Not Modified."""
        limit = self.settings.max_download_bytes if max_bytes is None else max_bytes
        conditional = unchanged_since.conditional_headers() if unchanged_since else {}

        def consume(response: BaseHTTPResponse, deadline: tuple[float, float]) -> Downloaded:
            declared = _declared_length(response)
            if declared is not None and declared > limit:
                raise _too_large(url, limit)
            checksums = _Checksums()
            try:
                with dest.open("wb") as sink:
                    _stream(response, sink, checksums, url, limit, deadline)
            except OSError as exc:
                raise SourceError(
                    f"{url}: cannot write the download to {dest}: {exc.strerror or exc}"
                ) from None
            return Downloaded(checksums.facts(), _validators(response), _delimited(response))

        try:
            return self._fetch(url, {**(headers or {}), **conditional}, consume)
        except HttpStatusError as exc:
            dest.unlink(missing_ok=True)
            if exc.status == 304 and conditional:
                raise NotModified(f"{url}: not modified since it was last fetched") from None
            raise
        except BaseException:
            dest.unlink(missing_ok=True)
            raise


def _stream(
    response: BaseHTTPResponse,
    sink: BinaryIO,
    checksums: _Checksums | None,
    url: str,
    limit: int,
    deadline: tuple[float, float],
) -> None:
    """Copy the body into `sink` (and `checksums`), refusing more than `limit` bytes or a
    transfer still going at `deadline` (a monotonic time, and the seconds it allows)."""
    size = 0
    pending = bytearray()
    # read1: what one read of the socket gives, so that a trickle meets the deadline
    # check (read would wait for a whole CHUNK). Over TLS that is 16 KiB at a time:
    # hashed and written a CHUNK at a time all the same, which costs a third less CPU.
    while piece := response.read1(CHUNK):
        size += len(piece)
        if size > limit:
            raise _too_large(url, limit)
        if time.monotonic() > deadline[0]:
            raise SourceError(
                f"{url}: still transferring after {deadline[1]:g} seconds ({size} bytes so "
                "far); refusing so slow a server"
            )
        pending += piece
        if len(pending) >= CHUNK:
            _deliver(pending, sink, checksums)
            pending = bytearray()
    if pending:
        _deliver(pending, sink, checksums)


def _deliver(data: bytearray, sink: BinaryIO, checksums: _Checksums | None) -> None:
    if checksums is not None:
        checksums.update(data)
    sink.write(data)
