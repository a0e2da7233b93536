"""`debrepo serve`: the published folder over HTTP on the loopback interface only.

Meant for trying the repository with apt on the same machine and for tests; in
production the folder (or the S3 bucket) sits behind a real web server or CDN.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from debrepo.core.layout import delivery_for
from debrepo.errors import ConfigError, DebrepoError

log = logging.getLogger("debrepo.serve")


class RepositoryRequestHandler(SimpleHTTPRequestHandler):
    """Static files with the Content-Type and Cache-Control the S3 backend would set."""

    def send_head(self) -> Any:
        # Last-Modified has one-second resolution: a republish within the same second
        # as a client's previous fetch would be answered 304 and the client would keep
        # the old InRelease. A loopback test server can afford full answers.
        del self.headers["If-Modified-Since"]
        # Only files inside the folder: not a NUL (which the file system calls would
        # raise on), nor a symbolic link out of it (the repository publishes none).
        path = self.translate_path(self.path)
        root = os.path.realpath(str(self.directory))
        if "\0" in path or os.path.commonpath([root, os.path.realpath(path)]) != root:
            self.send_error(404, "Not Found")
            return None
        return super().send_head()

    def guess_type(self, path: str | Any) -> str:
        return delivery_for(self._key_of(str(path))).content_type

    def _key_of(self, path: str) -> str:
        """The repository key a translated path serves (`..` and %-escapes resolved)."""
        relative = Path(path).relative_to(Path(self.directory)).as_posix()
        return "index.html" if relative in ("", ".") else relative

    _status = 0

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def end_headers(self) -> None:
        if self._status == 200:
            # Of the file served, not of the request's text: `/pool/../dists/stable/
            # InRelease` must not be cached as a pool file is, for a year.
            key = self._key_of(self.translate_path(self.path))
            self.send_header("Cache-Control", delivery_for(key).cache_control)
        else:
            self.send_header("Cache-Control", "no-store")  # a 404 today may be a file tomorrow
        super().end_headers()

    def list_directory(self, path: str | Any) -> None:
        self.send_error(404, "Not Found")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6  # ThreadingHTTPServer's own is IPv4 only


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """An HTTP server for `root`, bound to a loopback address only."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(
            f"--bind {host}: debrepo serve only listens on loopback addresses (127.0.0.1, ::1); "
            "publish the folder with a web server for other machines"
        )
    # A folder that does not exist yet is served too (404 until the first publish
    # creates it): the URL learnt with --port 0 is what kiro-repo is built with.
    handler = partial(RepositoryRequestHandler, directory=str(root))
    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    try:
        return server_class((host, port), handler)
    except OSError as exc:
        message = f"cannot listen on {host}:{port}: {exc.strerror}"
        if exc.errno == errno.EADDRINUSE:  # another program's, for now: not a setting
            raise DebrepoError(
                f"{message} (another program listens there: stop it, or choose another --port)"
            ) from None
        raise ConfigError(message) from None
