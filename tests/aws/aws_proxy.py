"""A real HTTP proxy on 127.0.0.1 in front of the moto server, for every AWS service at once.

Point `AWS_ENDPOINT_URL` at `proxy.url` and every client the code under test creates
(S3, DynamoDB, STS, SNS, SQS, Secrets Manager) talks to the proxy, which forwards to moto
unchanged. The proxy names each request (service from the SigV4 credential scope,
operation from `X-Amz-Target`, the query protocol's `Action`, or the S3 REST method, path
and query), records it with its timing and response status, and can:

- answer chosen requests with the error the real service sends, in that service's own
  wire format (S3 XML, the JSON protocols' `__type`, the query protocol's ErrorResponse),
  so botocore parses, retries and backs off exactly as it would against AWS;
- run a hook just before forwarding a chosen request (delete an object behind the
  caller's back, hold a request until something else has happened).

Nothing in boto3 or botocore is patched. `serialize=True` forwards one request at a time
(moto's server is not safe for concurrent DynamoDB transactions; DynamoDB is).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "expect",
}
_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/(?P<service>[^/]+)/aws4_request")
# How each service's errors look on the wire.
JSON_SERVICES = {
    "dynamodb": "application/x-amz-json-1.0",
    "secretsmanager": "application/x-amz-json-1.1",
    "sqs": "application/x-amz-json-1.0",
}
QUERY_SERVICES = {
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
}
# DynamoDB names some of its error types with a namespace.
DYNAMODB_TYPES = {
    "ThrottlingException": "com.amazon.coral.availability#ThrottlingException",
    "AccessDeniedException": "com.amazon.coral.service#AccessDeniedException",
    "UnrecognizedClientException": "com.amazon.coral.service#UnrecognizedClientException",
    "ProvisionedThroughputExceededException": (
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
    ),
}


@dataclass
class Call:
    """One request the proxy received, and what became of it."""

    service: str
    operation: str
    method: str
    bucket: str  # S3 only
    key: str  # S3 only: the object key ("" for requests on the bucket)
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    started: float
    answered: float = 0.0  # when the upstream answer arrived (in order, when serialized)
    finished: float = 0.0
    status: int = 0
    injected: str | None = None  # the error code the proxy answered with, if it did

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    @property
    def copy_source(self) -> str:
        """`bucket/key` an S3 CopyObject reads from, or ""."""
        return unquote(self.headers.get("x-amz-copy-source", "")).split("?")[0].lstrip("/")


Match = Callable[[Call], bool]


@dataclass
class Rule:
    """Answer the requests `match` picks with `code`: `times` times (None: always), once the
    first `after` picked requests have gone through."""

    service: str
    code: str
    status: int
    message: str
    match: Match
    times: int | None = None
    after: int = 0
    matched: int = 0
    answered: int = 0

    def applies(self, call: Call) -> bool:
        if call.service != self.service or not self.match(call):
            return False
        self.matched += 1
        if self.matched <= self.after:
            return False
        if self.times is not None and self.answered >= self.times:
            return False
        self.answered += 1
        return True


@dataclass
class Hook:
    match: Match
    action: Callable[[Call], None]
    times: int | None = None
    ran: int = 0


def s3_operation(
    method: str, key: str, query: dict[str, list[str]], headers: dict[str, str]
) -> str:
    """The S3 API operation of a REST request (the ones debrepo and these tests send)."""
    copy = "x-amz-copy-source" in headers
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    if method == "GET":
        if not key:
            if "list-type" in query:
                return "ListObjectsV2"
            for sub, name in (("acl", "GetBucketAcl"), ("location", "GetBucketLocation")):
                if sub in query:
                    return name
            return "ListObjects"
        if "acl" in query:
            return "GetObjectAcl"
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "PUT":
        if not key:
            return "CreateBucket" if not query else "PutBucket" + next(iter(query)).title()
        if "acl" in query:
            return "PutObjectAcl"
        if "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "DeleteObjects" if "delete" in query else "PostObject"
    if method == "DELETE":
        if not key:
            return "DeleteBucket"
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return method


def error_reply(
    service: str, code: str, message: str, status: int, method: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """The status, headers and body `service` answers an error with."""
    request_id = "injected-by-the-test-proxy"
    if service in JSON_SERVICES:
        error_type = DYNAMODB_TYPES.get(code, code) if service == "dynamodb" else code
        body = json.dumps({"__type": error_type, "message": message}).encode()
        headers = [("Content-Type", JSON_SERVICES[service]), ("x-amzn-RequestId", request_id)]
        return status, headers, body
    if service in QUERY_SERVICES:
        body = (
            f'<ErrorResponse xmlns="{QUERY_SERVICES[service]}"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
    # S3: an XML error document, except for HEAD, which S3 answers without a body.
    headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    if method == "HEAD":
        return status, headers, b""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>test-proxy</HostId></Error>"
    ).encode()
    return status, headers, body


class AwsProxy:
    def __init__(self, upstream: str, *, serialize: bool = False) -> None:
        parsed = urlsplit(upstream)
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._serialize = threading.Lock() if serialize else None
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._hooks: list[Hook] = []
        self.calls: list[Call] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    # -- configuration --------------------------------------------------------------------
    def fail(
        self,
        service: str,
        code: str,
        *,
        status: int = 400,
        operation: str | None = None,
        match: Match | None = None,
        times: int | None = None,
        after: int = 0,
        message: str | None = None,
    ) -> Rule:
        """Answer `service` requests (of `operation`, and picked by `match`) with `code`."""

        def picks(call: Call) -> bool:
            return (operation is None or call.operation == operation) and (
                match is None or match(call)
            )

        rule = Rule(
            service,
            code,
            status,
            message or f"{code} (injected by the test proxy)",
            picks,
            times,
            after,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def before(
        self, match: Match, action: Callable[[Call], None], *, times: int | None = 1
    ) -> Hook:
        """Run `action(call)` before forwarding a request `match` picks."""
        hook = Hook(match, action, times)
        with self._lock:
            self._hooks.append(hook)
        return hook

    # -- what happened ----------------------------------------------------------------
    def sent(self, service: str | None = None, operation: str | None = None) -> list[Call]:
        with self._lock:
            return [
                c
                for c in self.calls
                if (service is None or c.service == service)
                and (operation is None or c.operation == operation)
            ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- plumbing -------------------------------------------------------------------------
    def _describe(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Call:
        scope = _SCOPE_RE.search(headers.get("authorization", ""))
        service = scope["service"] if scope else "unknown"
        split = urlsplit(path)
        query = parse_qs(split.query, keep_blank_values=True)
        bucket = key = ""
        if service == "s3":
            bucket, _, key = unquote(split.path).lstrip("/").partition("/")
            operation = s3_operation(method, key, query, headers)
        elif "x-amz-target" in headers:
            operation = headers["x-amz-target"].rsplit(".", 1)[-1]
        else:
            form = parse_qs(body.decode("utf-8", "replace"))
            operation = (form.get("Action") or query.get("Action") or [method])[0]
        return Call(service, operation, method, bucket, key, query, headers, body, time.monotonic())

    def _decide(self, call: Call) -> tuple[Rule | None, list[Hook]]:
        with self._lock:
            self.calls.append(call)
            for rule in self._rules:
                if rule.applies(call):
                    call.injected = rule.code
                    return rule, []
            hooks = []
            for hook in self._hooks:
                if (hook.times is None or hook.ran < hook.times) and hook.match(call):
                    hook.ran += 1
                    hooks.append(hook)
            return None, hooks

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            connection.request(
                method, path, body=body if method != "HEAD" else None, headers=headers
            )
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 so that `Expect: 100-continue` (every file upload) is answered at once.
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                call = proxy._describe(self.command, self.path, headers, body)
                rule, hooks = proxy._decide(call)
                if rule is not None:
                    reply = error_reply(
                        call.service, rule.code, rule.message, rule.status, self.command
                    )
                else:
                    for hook in hooks:
                        hook.action(call)
                    forwarded = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP
                    }
                    if proxy._serialize is not None:
                        with proxy._serialize:
                            reply = proxy._forward(self.command, self.path, forwarded, body)
                            call.answered = time.monotonic()
                    else:
                        reply = proxy._forward(self.command, self.path, forwarded, body)
                        call.answered = time.monotonic()
                call.status = reply[0]
                call.finished = time.monotonic()
                self._reply(*reply)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                length = str(len(body))
                for name, value in headers:
                    lower = name.lower()
                    if lower == "content-length" and self.command == "HEAD":
                        length = value  # HEAD tells the size of what GET would send
                    elif lower not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", length)
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@dataclass
class LockInterval:
    """When one publisher held the DynamoDB publish lock, as seen on the wire.

    `acquired` is when the proxy passed on the successful PutItem's answer and `released`
    when it received the DeleteItem (the holder's view); `taken` and `freed` are when the
    server answered them (the table's view, in order when the proxy serializes)."""

    owner: str
    acquired: float
    taken: float
    released: float = float("inf")
    freed: float = float("inf")

    @property
    def pid(self) -> int:
        """The process id in the owner name (`host/pid/random`)."""
        return int(self.owner.split("/")[-2])

    def holds(self, call: Call) -> bool:
        """Whether `call` was sent and answered while this owner held the lock."""
        return self.acquired <= call.started and call.finished <= self.released


def is_lock_request(call: Call, lock_id: str) -> bool:
    request = call.json() if call.service == "dynamodb" else {}
    key = request.get("Item") or request.get("Key") or {}
    return bool(key.get("package_id", {}).get("S") == lock_id)


def lock_intervals(proxy: AwsProxy, lock_id: str) -> list[LockInterval]:
    """Successful lock PutItems and the DeleteItems that released them, in order."""
    intervals: dict[str, LockInterval] = {}
    for call in proxy.sent("dynamodb"):
        if call.operation == "PutItem":
            item = call.json().get("Item", {})
            if item.get("package_id", {}).get("S") == lock_id and call.status == 200:
                owner = item["owner"]["S"]
                intervals[owner] = LockInterval(owner, call.finished, call.answered)
        elif call.operation == "DeleteItem":
            request = call.json()
            if request.get("Key", {}).get("package_id", {}).get("S") == lock_id:
                owner = request["ExpressionAttributeValues"][":me"]["S"]
                if owner in intervals and call.status == 200:
                    intervals[owner].released = call.started
                    intervals[owner].freed = call.answered
    return sorted(intervals.values(), key=lambda i: i.acquired)
