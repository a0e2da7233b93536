"""A real HTTP proxy on 127.0.0.1 between boto3 and the moto server, to make DynamoDB fail.

boto3 sends every DynamoDB request to the proxy (`endpoint_url=proxy.url`). The proxy
records each request's action (from `X-Amz-Target`), answers the ones a rule picks with
a DynamoDB error body and status, exactly as DynamoDB would, and forwards the rest to
moto unchanged. Nothing in boto3 or botocore is patched: retries, error parsing and
backoff all run as in production.

`serialize=True` forwards one request at a time. moto's server runs concurrent
TransactWriteItems unsafely (it deep-copies the table while another thread writes it,
and a cancelled transaction restores that stale copy), so tests of concurrent writers
let the proxy make moto atomic, as DynamoDB is, while the writers still race over HTTP.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

# The `__type` DynamoDB puts in the body of each error.
ERROR_TYPES = {
    "AccessDeniedException": "com.amazon.coral.service#AccessDeniedException",
    "UnrecognizedClientException": "com.amazon.coral.service#UnrecognizedClientException",
    "ThrottlingException": "com.amazon.coral.availability#ThrottlingException",
    "ProvisionedThroughputExceededException": (
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
    ),
    "RequestLimitExceeded": "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
    "TransactionCanceledException": (
        "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"
    ),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Rule:
    """Answer requests for `action` (None: any) with an error, `times` times (None: always),
    once the first `after` matching requests have gone through."""

    error: str
    message: str
    action: str | None = None
    times: int | None = None
    after: int = 0
    status: int = 400
    extra: dict[str, Any] | None = None
    matched: int = 0
    answered: int = 0

    def applies(self, action: str) -> bool:
        if self.action is not None and self.action != action:
            return False
        self.matched += 1
        if self.matched <= self.after:
            return False
        if self.times is not None and self.answered >= self.times:
            return False
        self.answered += 1
        return True


class DynamoDBProxy:
    def __init__(self, upstream: str, *, serialize: bool = False) -> None:
        parsed = urlparse(upstream)
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._serialize = threading.Lock() if serialize else None
        self._rules: list[Rule] = []
        self._edits: list[list[Any]] = []  # [action, change, times left or None]
        self._lock = threading.Lock()
        self.requests: list[str] = []  # every action received, in order
        self.injected: list[str] = []  # the actions answered with an error
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def fail(
        self,
        error: str,
        *,
        action: str | None = None,
        times: int | None = None,
        after: int = 0,
        message: str | None = None,
        status: int = 400,
        **extra: Any,
    ) -> Rule:
        rule = Rule(
            error,
            message or f"{error} (injected by the test proxy)",
            action,
            times,
            after,
            status,
            extra or None,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def edit(
        self, action: str, change: Callable[[dict[str, Any]], None], *, times: int | None = None
    ) -> None:
        """Let `change` alter the upstream's JSON answers to `action` (`times` of them)."""
        with self._lock:
            self._edits.append([action, change, times])

    def _edited(self, action: str, body: bytes) -> bytes:
        with self._lock:
            for edit in self._edits:
                name, change, left = edit
                if name == action and (left is None or left > 0):
                    if left is not None:
                        edit[2] = left - 1
                    answer = json.loads(body)
                    change(answer)
                    return json.dumps(answer).encode()
        return body

    def count(self, action: str) -> int:
        with self._lock:
            return self.requests.count(action)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _decide(self, action: str) -> Rule | None:
        with self._lock:
            self.requests.append(action)
            for rule in self._rules:
                if rule.applies(action):
                    self.injected.append(action)
                    return rule
        return None

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                action = target.rsplit(".", 1)[-1]
                rule = proxy._decide(action)
                if rule is not None:
                    payload = {
                        "__type": ERROR_TYPES.get(rule.error, rule.error),
                        "message": rule.message,
                        **(rule.extra or {}),
                    }
                    self._reply(
                        rule.status,
                        [
                            ("Content-Type", "application/x-amz-json-1.0"),
                            ("x-amzn-RequestId", "injected-by-the-test-proxy"),
                        ],
                        json.dumps(payload).encode(),
                    )
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if proxy._serialize is not None:
                    with proxy._serialize:
                        reply = proxy._forward("POST", self.path, headers, body)
                else:
                    reply = proxy._forward("POST", self.path, headers, body)
                status, reply_headers, reply_body = reply
                if status == 200:
                    reply_body = proxy._edited(action, reply_body)
                    # The answer's CRC32 header would no longer match the edited body.
                    reply_headers = [h for h in reply_headers if h[0].lower() != "x-amz-crc32"]
                self._reply(status, reply_headers, reply_body)

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
