"""S3 object store: a published repository or staging area under a bucket prefix.

Every S3 write is atomic (readers see the old object or the new one, never a part),
so the filesystem backend's temporary names have no counterpart here. Each write sets
Content-Type, Cache-Control and user metadata from its Delivery; in `public-read` mode it
also sends the `public-read` canned ACL (seed Property 17), except under a private
prefix (`staging/`), which is never public. `bucket-policy` mode sends no ACL at all,
for buckets created with ACLs disabled: public read then comes from the bucket policy.

Large files go up as multipart uploads read part by part from disk, and copies within
the bucket happen server-side, so memory does not grow with the size of a package.
Every HTTP request the client sends (retries included) is counted in `request_count`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import posixpath
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast, get_args

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from debrepo.core.layout import Delivery
from debrepo.errors import ConfigError, ObjectStoreError
from debrepo.ports import ObjectInfo, ObjectStore

log = logging.getLogger("debrepo.objects.s3")

AclMode = Literal["public-read", "bucket-policy"]
ACL_MODES: tuple[str, ...] = get_args(AclMode)

HEADS_BEFORE_LISTING = 50
MAX_RETRIES = 3  # the seed's 3 retries after the first attempt (botocore "max_attempts")
PART_SIZE = 8 << 20  # multipart threshold and part size: parts are read from disk one by one
TRANSFER_CONCURRENCY = 4
COPY_PART_SIZE = 512 << 20  # parts of a managed copy, used only beyond CopyObject's 5 GB
MAX_KEY_BYTES = 1024

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_BUCKET_ACTIONS = frozenset({"s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketVersions"})
_ACCESS_DENIED = {"403", "AccessDenied", "Forbidden", "AllAccessDisabled"}
_THROTTLED = {
    "503",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}
_WRONG_REGION = {"PermanentRedirect", "AuthorizationHeaderMalformed", "301"}


def acl_mode_from(text: str, source: str) -> AclMode:
    """Validate an ACL mode read from settings or the environment."""
    if text not in ACL_MODES:
        raise ConfigError(
            f"{source}: S3 ACL mode {text!r} is not one of {', '.join(ACL_MODES)}; use "
            "bucket-policy for buckets with ACLs disabled (the default for new buckets)"
        )
    return cast("AclMode", text)


def _key_problem(key: str) -> bool:
    return (
        not key
        or key[0] == "/"
        or "\\" in key
        or "\x00" in key
        or "//" in key
        or key[-1] == "/"
        or any(part in (".", "..") for part in key.split("/"))
        or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES
    )


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    if not code:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(status or "")
    return code


def _client_error_in(exc: BaseException) -> ClientError | None:
    """The ClientError behind an exception (boto3 wraps some in S3UploadFailedError)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ClientError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class S3ObjectStore:
    """Objects under `s3://bucket/prefix`, addressed by the same keys as a folder."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        acl_mode: AclMode = "bucket-policy",
        private_prefixes: tuple[str, ...] = ("staging/",),
        region: str | None = None,
        endpoint_url: str | None = None,
        session: Any = None,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigError(f"s3://{bucket}/{prefix}: {bucket!r} is not an S3 bucket name")
        self.bucket = bucket
        stripped = prefix.strip("/")
        if stripped and _key_problem(stripped):
            raise ConfigError(f"s3://{bucket}/{prefix}: {prefix!r} is not a usable key prefix")
        self.prefix = f"{stripped}/" if stripped else ""
        self.description = f"s3://{bucket}/{stripped}"
        self.acl_mode = acl_mode_from(acl_mode, self.description)
        self.private_prefixes = tuple(private_prefixes)
        self.attempts = max_retries + 1
        session = session if session is not None else boto3.session.Session()
        self.client: Any = session.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                retries={"mode": "standard", "max_attempts": max_retries},
                max_pool_connections=max(10, TRANSFER_CONCURRENCY * 2),
                user_agent_appid="debrepo",
            ),
        )
        self._requests = 0
        self._by_operation: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.client.meta.events.register("before-send.s3", self._count_request)
        self._transfer = TransferConfig(
            multipart_threshold=PART_SIZE,
            multipart_chunksize=PART_SIZE,
            max_concurrency=TRANSFER_CONCURRENCY,
            preferred_transfer_client="classic",
        )
        # Bounds what a non-seekable stream (another store's body) buffers in memory.
        self._transfer.max_in_memory_upload_chunks = TRANSFER_CONCURRENCY
        self._copy_transfer = TransferConfig(
            multipart_threshold=COPY_PART_SIZE,
            multipart_chunksize=COPY_PART_SIZE,
            max_concurrency=TRANSFER_CONCURRENCY,
            preferred_transfer_client="classic",
        )

    # -- request accounting -----------------------------------------------------------
    def _count_request(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._count_lock:
            self._requests += 1
            self._by_operation[operation] += 1

    @property
    def request_count(self) -> int:
        """HTTP requests this store's client has sent, retries included."""
        return self._requests

    def requests_by_operation(self) -> dict[str, int]:
        with self._count_lock:
            return dict(self._by_operation)

    def reset_request_count(self) -> int:
        """Start counting afresh; returns the count so far."""
        with self._count_lock:
            count, self._requests = self._requests, 0
            self._by_operation.clear()
        return count

    # -- keys and errors ----------------------------------------------------------------
    def _key(self, key: str) -> str:
        """The S3 key of `key`; refuses keys a folder-backed store would refuse."""
        if _key_problem(key):
            raise ObjectStoreError(f"{key!r} is not a safe object key under {self.description}")
        return self.prefix + key

    def _url(self, full_key: str | None = None) -> str:
        return f"s3://{self.bucket}/{full_key}" if full_key is not None else f"s3://{self.bucket}"

    def _same_bucket(self, other: S3ObjectStore) -> bool:
        return (
            other.bucket == self.bucket
            and other.client.meta.endpoint_url == self.client.meta.endpoint_url
        )

    def _write_args(self, key: str, full_key: str, delivery: Delivery) -> dict[str, Any]:
        args: dict[str, Any] = {
            "ContentType": delivery.content_type,
            "CacheControl": delivery.cache_control,
            "Metadata": dict(delivery.metadata),
        }
        if self.acl_mode == "public-read" and not self._is_private(key, full_key):
            args["ACL"] = "public-read"
        return args

    def _is_private(self, key: str, full_key: str) -> bool:
        return any(
            key.startswith(private) or full_key.startswith(private)
            for private in self.private_prefixes
        )

    def _failure(
        self,
        exc: BaseException,
        action: str,
        full_key: str | None,
        *,
        acl: bool = False,
        source: str | None = None,
    ) -> ObjectStoreError:
        """One line naming the object, what failed and what to do about it.

        `source` is the S3 key a server-side copy reads from (it needs s3:GetObject)."""
        where = self._url(full_key)
        what = f"{action} on {where}"
        if source is not None:
            what += f" (copying {self._url(source)})"
        client_error = _client_error_in(exc)
        if client_error is not None:
            code = _error_code(client_error)
            message = client_error.response.get("Error", {}).get("Message") or code
            if code == "NoSuchBucket":
                return ObjectStoreError(
                    f"{self._url()}: the bucket does not exist ({what}); create it or correct "
                    f"the bucket name in {self.description}"
                )
            if code == "AccessControlListNotSupported":
                return ObjectStoreError(
                    f"{where}: the bucket has ACLs disabled; use acl mode bucket-policy "
                    "(DEBREPO_S3_ACL_MODE=bucket-policy) and grant public read in the bucket policy"
                )
            if code in _ACCESS_DENIED:
                needed = [action]
                if acl:
                    needed.append("s3:PutObjectAcl (acl mode public-read)")
                if source is not None:
                    needed.append("s3:GetObject on the source")
                hint = (
                    "; without s3:ListBucket S3 also answers 403 for a missing object"
                    if action == "s3:GetObject"
                    else ""
                )
                # Bucket-level actions are granted on the bucket's ARN, object ones on
                # its keys: the other resource would grant nothing.
                resource = (
                    f"arn:aws:s3:::{self.bucket}"
                    if action in _BUCKET_ACTIONS
                    else f"arn:aws:s3:::{self.bucket}/{self.prefix}*"
                )
                return ObjectStoreError(
                    f"access denied: {what}; grant {' and '.join(needed)} on "
                    f"{resource} to these credentials{hint}"
                )
            if code in _THROTTLED:
                return ObjectStoreError(
                    f"{where}: S3 kept throttling {action} ({code}) through "
                    f"{self.attempts} attempts; retry later, and run one publisher at a time"
                )
            if code in _BAD_CREDENTIALS:
                return ObjectStoreError(
                    f"{what}: the AWS credentials were refused ({code}); renew them or check "
                    "AWS_PROFILE / AWS_ACCESS_KEY_ID"
                )
            if code in _WRONG_REGION:
                region = (
                    client_error.response.get("ResponseMetadata", {})
                    .get("HTTPHeaders", {})
                    .get("x-amz-bucket-region", "another region")
                )
                return ObjectStoreError(
                    f"{self._url()}: the bucket is in {region} ({what}); set AWS_REGION to it"
                )
            return ObjectStoreError(f"{what} failed: {code}: {message}")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return ObjectStoreError(
                f"{what}: no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run with an IAM role"
            )
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            endpoint = self.client.meta.endpoint_url
            return ObjectStoreError(
                f"{what}: cannot reach S3 at {endpoint} after {self.attempts} attempts "
                f"({exc}); check the endpoint URL, the region and the network"
            )
        return ObjectStoreError(f"{what} failed: {exc}")

    def _head(self, full_key: str) -> dict[str, Any] | None:
        try:
            response: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=full_key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return None
            raise self._failure(exc, "s3:GetObject", full_key) from None
        except BotoCoreError as exc:
            raise self._failure(exc, "s3:GetObject", full_key) from None
        return response

    # -- reading --------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        full_key = self._key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full_key)
            with contextlib.closing(response["Body"]) as body:
                data: bytes = body.read()
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return None
            raise self._failure(exc, "s3:GetObject", full_key) from None
        except BotoCoreError as exc:
            raise self._failure(exc, "s3:GetObject", full_key) from None
        return data

    def stat(self, key: str) -> ObjectInfo | None:
        head = self._head(self._key(key))
        if head is None:
            return None
        return ObjectInfo(key, int(head["ContentLength"]), head.get("ETag"))

    def stat_many(self, keys: Sequence[str]) -> dict[str, int]:
        """HEAD per key for a few keys; for many, one listing of their common folder
        (one request per 1,000 objects instead of one per key)."""
        if len(keys) <= HEADS_BEFORE_LISTING:
            sizes = {}
            for key in keys:
                info = self.stat(key)
                if info is not None:
                    sizes[key] = info.size
            return sizes
        folder = posixpath.commonpath([posixpath.dirname(key) for key in keys])
        wanted = set(keys)
        listing = self.list(f"{folder}/" if folder else "")
        return {info.key: info.size for info in listing if info.key in wanted}

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        return self._open(key)

    @contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        full_key = self._key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full_key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise ObjectStoreError(f"{self._url(full_key)}: no such object") from None
            raise self._failure(exc, "s3:GetObject", full_key) from None
        except BotoCoreError as exc:
            raise self._failure(exc, "s3:GetObject", full_key) from None
        body = response["Body"]
        try:
            yield cast("BinaryIO", body)
        except (HTTPClientError, IncompleteReadError) as exc:
            # Raised by body.read() in the caller's block: the download broke off.
            raise ObjectStoreError(
                f"{self._url(full_key)}: reading was interrupted ({exc}); try again"
            ) from None
        finally:
            body.close()

    def same_bytes(self, key: str, data: bytes) -> bool:
        """One HEAD: the size, then the ETag, which is the MD5 of a single-part object
        stored unencrypted or with SSE-S3. Other ETags are compared by reading."""
        head = self._head(self._key(key))
        if head is None or int(head["ContentLength"]) != len(data):
            return False
        etag = str(head.get("ETag", "")).strip('"')
        encrypted = str(head.get("ServerSideEncryption", "")).startswith("aws:kms") or bool(
            head.get("SSECustomerAlgorithm")
        )
        if etag and "-" not in etag and not encrypted:
            return etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
        return self.get(key) == data

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix` (a directory prefix ending in '/', or '')."""
        directory = prefix.strip("/")
        scan = self._key(directory) + "/" if directory else self.prefix
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=scan):
                for item in page.get("Contents", ()):
                    key = str(item["Key"])[len(self.prefix) :]
                    if _key_problem(key):
                        # Folder markers ("dir/") and keys no folder could hold.
                        log.debug("not listing %s", self._url(str(item["Key"])))
                        continue
                    yield ObjectInfo(key, int(item["Size"]))
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(exc, "s3:ListBucket", scan) from None

    # -- writing --------------------------------------------------------------------
    def put(self, key: str, data: bytes, delivery: Delivery) -> str | None:
        full_key = self._key(key)
        args = self._write_args(key, full_key, delivery)
        try:
            answer = self.client.put_object(Bucket=self.bucket, Key=full_key, Body=data, **args)
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(exc, "s3:PutObject", full_key, acl="ACL" in args) from None
        etag = answer.get("ETag")
        return str(etag) if etag else None

    def put_file(self, key: str, path: Path, delivery: Delivery, *, move: bool = False) -> None:
        """Managed upload: multipart beyond PART_SIZE, parts read from disk one by one."""
        full_key = self._key(key)
        args = self._write_args(key, full_key, delivery)
        try:
            self.client.upload_file(
                str(path), self.bucket, full_key, ExtraArgs=args, Config=self._transfer
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(exc, "s3:PutObject", full_key, acl="ACL" in args) from None
        except OSError as exc:
            raise ObjectStoreError(
                f"{self._url(full_key)}: cannot write from {path}: {exc.strerror or exc}"
            ) from None
        except Exception as exc:  # S3UploadFailedError wraps the ClientError
            if _client_error_in(exc) is None:
                raise
            raise self._failure(exc, "s3:PutObject", full_key, acl="ACL" in args) from None
        if move:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("uploaded %s but cannot remove %s: %s", full_key, path, exc.strerror)

    def copy_from(
        self,
        source: ObjectStore,
        source_key: str,
        key: str,
        delivery: Delivery,
        *,
        shared: bool = False,  # S3 objects share nothing
    ) -> None:
        full_key = self._key(key)
        args = self._write_args(key, full_key, delivery)
        if isinstance(source, S3ObjectStore) and self._same_bucket(source):
            self._copy_within_bucket(source._key(source_key), full_key, args)
            return
        with source.open(source_key) as reader:
            try:
                self.client.upload_fileobj(
                    reader, self.bucket, full_key, ExtraArgs=args, Config=self._transfer
                )
            except (ClientError, BotoCoreError) as exc:
                raise self._failure(exc, "s3:PutObject", full_key, acl="ACL" in args) from None
            except OSError as exc:  # reading the source broke off
                raise ObjectStoreError(
                    f"{self._url(full_key)}: cannot copy {source_key} from "
                    f"{source.description}: {exc.strerror or exc}"
                ) from None

    def _copy_within_bucket(self, origin: str, full_key: str, args: dict[str, Any]) -> None:
        """Server-side CopyObject with new headers; a managed multipart copy past 5 GB."""
        copy_source = {"Bucket": self.bucket, "Key": origin}
        acl = "ACL" in args
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=full_key,
                CopySource=copy_source,
                MetadataDirective="REPLACE",
                **args,
            )
            return
        except ClientError as exc:
            code = _error_code(exc)
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if code in _NOT_FOUND:
                raise ObjectStoreError(f"{self._url(origin)}: no such object") from None
            if not (code == "InvalidRequest" and "larger than the maximum" in message):
                raise self._failure(exc, "s3:PutObject", full_key, acl=acl, source=origin) from None
        except BotoCoreError as exc:
            raise self._failure(exc, "s3:PutObject", full_key, acl=acl, source=origin) from None
        try:
            self.client.copy(
                copy_source,
                self.bucket,
                full_key,
                ExtraArgs={**args, "MetadataDirective": "REPLACE"},
                Config=self._copy_transfer,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(exc, "s3:PutObject", full_key, acl=acl, source=origin) from None

    def flush(self) -> None:
        """Nothing to do: S3 has stored an object durably when its PUT returns."""

    def delete(self, key: str) -> None:
        full_key = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full_key)
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(exc, "s3:DeleteObject", full_key) from None
