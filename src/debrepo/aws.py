"""AWS pieces that are not storage: the Lambda's settings, the publish lock, the signing
key in Secrets Manager, permission checks and CloudFront invalidation.

Every client uses botocore's standard retry mode (3 retries with exponential backoff)
and honours AWS_ENDPOINT_URL, which is how the tests point them at a local moto server.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from debrepo.errors import ConfigError, LockError, SecretUnavailableError, SigningError
from debrepo.ports import ObjectStore
from debrepo.settings import Settings, aws_region, load_settings, s3_public_url
from debrepo.store.dynamodb import LOCK_ID, RETRY_CONFIG  # the lock is an item of the table

log = logging.getLogger("debrepo.aws")

# The seed's 3 retries with exponential backoff: 4 attempts in all.
POLL_SECONDS = 2.0
T = TypeVar("T")


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client with debrepo's retry policy."""
    import boto3  # deferred: the embedded default never needs it

    region = region or aws_region(os.environ)
    return boto3.client(service, region_name=region, config=RETRY_CONFIG)


def lambda_settings(environ: Mapping[str, str], task_root: Path | None = None) -> Settings:
    """Settings for the Lambda from its environment; ConfigError names a missing variable.

    The signing key must come from Secrets Manager: one generated under /tmp would sign
    a single container's runs and be lost with it, and every client then sees a new key.
    """
    missing = [name for name in ("S3_BUCKET", "DYNAMODB_TABLE") if not environ.get(name)]
    if not (environ.get("SIGNING_KEY_SECRET_ID") or environ.get("DEBREPO_KEY_SECRET_ID")):
        missing.append("SIGNING_KEY_SECRET_ID")
    if missing:
        raise ConfigError(
            f"environment variable(s) {', '.join(missing)} must be set for the Lambda"
        )
    bucket, table = environ["S3_BUCKET"], environ["DYNAMODB_TABLE"]
    prefix = environ.get("S3_PREFIX", "").strip("/")
    region = aws_region(environ) or "us-east-1"  # the runtime always sets AWS_REGION
    root = task_root or Path(environ.get("LAMBDA_TASK_ROOT") or Path.cwd())
    flags: dict[str, Any] = {
        "home": "/tmp/debrepo",  # noqa: S108 - the only writable place in a Lambda
        "store": f"dynamodb://{table}",
        "repo": f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
        "staging": f"s3://{bucket}",
        "config_dir": str(root / "config" / "packages"),
        "public_url": environ.get("PUBLIC_URL") or s3_public_url(bucket, prefix, region),
        "key_secret_id": environ.get("SIGNING_KEY_SECRET_ID") or None,
        "s3_acl_mode": environ.get("S3_ACL_MODE") or None,
        "sns_topic_arn": environ.get("SNS_TOPIC_ARN") or None,
        "cloudfront_distribution_id": environ.get("CLOUDFRONT_DISTRIBUTION_ID") or None,
    }
    try:
        return load_settings(flags, environ=environ, cwd=Path("/tmp"))  # noqa: S108
    except ConfigError as exc:  # named as the function's environment spells them
        message = str(exc)
        for option, variable in _LAMBDA_VARIABLES.items():
            message = message.replace(f"option --{option}", f"environment variable {variable}")
        raise ConfigError(message) from None


# Settings the Lambda takes from its own variables (passed on as flags), by option name.
_LAMBDA_VARIABLES = {
    "store": "DYNAMODB_TABLE",
    "repo": "S3_BUCKET/S3_PREFIX",
    "staging": "S3_BUCKET",
    "public-url": "PUBLIC_URL",
    "key-secret-id": "SIGNING_KEY_SECRET_ID",
    "s3-acl-mode": "S3_ACL_MODE",
    "sns-topic-arn": "SNS_TOPIC_ARN",
    "cloudfront-distribution-id": "CLOUDFRONT_DISTRIBUTION_ID",
}


def _expiry(holder: Mapping[str, Any]) -> str:
    """When a lock item expires, as a time and how far off, from its `expires_at`."""
    raw = holder.get("expires_at", {}).get("N")
    try:
        at = int(raw)
    except (TypeError, ValueError):
        return "by itself"
    left = max(0, at - int(time.time()))
    when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    return f"at {when} (in {left // 60} min {left % 60} s)"


_THE_SECRETS_FAULT = frozenset({"InvalidRequestException", "InvalidParameterException"})


def load_secret_key(secret_id: str, region: str | None = None) -> bytes:
    """The armoured secret key stored in Secrets Manager; never logged or written out."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client("secretsmanager", region).get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        if code == "ResourceNotFoundException" and "secret value" in message:
            # The secret exists (Terraform creates it empty) but holds no key yet.
            raise SigningError(
                f"signing key secret {secret_id!r} has no value yet ({message}); store the "
                "armoured secret key in it with `aws secretsmanager put-secret-value`"
            ) from None
        if code == "ResourceNotFoundException":
            raise SecretUnavailableError(f"signing key secret {secret_id!r} not found") from None
        if code in ("AccessDeniedException", "AccessDenied"):
            # AWS's own message says which: the secret's policy, or KMS for its key.
            raise SecretUnavailableError(
                f"not allowed to read the signing key secret {secret_id!r}: {message} (the "
                "role needs secretsmanager:GetSecretValue, and kms:Decrypt if the secret "
                "uses a customer managed key)"
            ) from None
        # The secret's own state (e.g. marked for deletion): the next publish would fail
        # on it too. Anything else (permissions, KMS's included; credentials; a passing
        # service condition) may be this caller's alone.
        error = SigningError if code in _THE_SECRETS_FAULT else SecretUnavailableError
        detail = f"{code} {message}".strip()
        raise error(f"cannot read the signing key secret {secret_id!r}: {detail}") from None
    except BotoCoreError as exc:
        raise SecretUnavailableError(
            f"cannot reach Secrets Manager for {secret_id!r}: {exc}"
        ) from None
    if response.get("SecretString"):
        return str(response["SecretString"]).encode("utf-8")
    if response.get("SecretBinary"):
        return bytes(response["SecretBinary"])
    raise SigningError(f"signing key secret {secret_id!r} is empty")


class DynamoDBLock:
    """One publisher at a time across machines: a conditional write in the metadata table.

    The lock item names its owner and an expiry; a holder that crashed stops blocking
    others once its expiry passes. A live holder renews the expiry every third of it
    (a run uploading a large pool file for longer than the expiry keeps the lock).
    Release deletes the item only if we still own it.
    """

    def __init__(
        self,
        table: str,
        *,
        ttl_seconds: int,
        region: str | None = None,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self.table = table
        self.ttl_seconds = ttl_seconds
        self.heartbeat_seconds = heartbeat_seconds or ttl_seconds / 3
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._client = self._call("connect to DynamoDB", lambda: client("dynamodb", region))
        self.lost = False  # set when a renewal found the lock taken by another
        # The expiry (wall clock, as every process compares it) our last write of the
        # lock item set: past it, another process may hold the lock, whatever we know.
        self._expires_at = 0.0

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """`call`, with any AWS failure as one LockError line naming the table."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                region = self._client.meta.region_name
                raise LockError(
                    f"DynamoDB table {self.table} not found in region {region} (for the "
                    "publish lock); check --store (DEBREPO_STORE) and AWS_REGION, or create it "
                    "with `infra/terraform`"
                ) from None
            raise LockError(
                f"cannot {what} for the publish lock in table {self.table}: "
                f"{_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
            ) from None
        except BotoCoreError as exc:
            raise LockError(
                f"cannot {what} for the publish lock in table {self.table}: {exc}"
            ) from None

    def _try_acquire(self) -> dict[str, Any] | None:
        """Take the lock; on failure return the current holder's item."""
        from botocore.exceptions import ClientError

        now = int(time.time())
        self._expires_at = now + self.ttl_seconds

        def put() -> bool:
            try:
                self._client.put_item(
                    TableName=self.table,
                    Item={
                        "package_id": {"S": LOCK_ID},
                        "owner": {"S": self.owner},
                        "acquired_at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
                        "expires_at": {"N": str(now + self.ttl_seconds)},
                    },
                    ConditionExpression="attribute_not_exists(package_id) OR expires_at < :now",
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                )
            except ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
            return True

        if self._call("write (dynamodb:PutItem)", put):
            return None
        holder = self._call(
            "read (dynamodb:GetItem)",
            lambda: self._client.get_item(
                TableName=self.table, Key={"package_id": {"S": LOCK_ID}}, ConsistentRead=True
            ),
        ).get("Item", {})
        if holder.get("owner", {}).get("S") == self.owner:
            # Our own write: it succeeded, its answer was lost and botocore's retry then
            # failed the condition against it.
            return None
        return dict(holder) or {"owner": {"S": "unknown"}}

    def _if_ours(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """The condition of a write that only the lock's owner may make."""
        return {
            "ConditionExpression": "#owner = :me",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":me": {"S": self.owner}, **(values or {})},
        }

    def _renew(self) -> bool | None:
        """Push the expiry out again; False if the lock is no longer ours, None if that
        cannot be told now (throttled, denied, the network)."""
        from botocore.exceptions import ClientError

        until = int(time.time()) + self.ttl_seconds
        try:
            self._client.update_item(
                TableName=self.table,
                Key={"package_id": {"S": LOCK_ID}},
                UpdateExpression="SET expires_at = :until",
                **self._if_ours({":until": {"N": str(until)}}),
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            log.warning(
                "cannot renew (dynamodb:UpdateItem) the publish lock in %s (will retry): %s",
                self.table,
                exc,
            )
            return None
        except Exception as exc:  # a network hiccup: the next beat tries again
            log.warning(
                "cannot renew (dynamodb:UpdateItem) the publish lock in %s (will retry): %s",
                self.table,
                exc,
            )
            return None
        self._expires_at = until
        return True

    def _keep_alive(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_seconds):
            if self._renew() is False:  # unknown: the next beat tries again
                self.lost = True
                log.error(
                    "the publish lock in %s expired and was taken by another process; "
                    "this run's publish may interleave with it: check with `debrepo verify`",
                    self.table,
                )
                return

    def check(self, *, renew: bool = True) -> None:
        """LockError unless the lock is still ours, with its expiry pushed out now. Asked
        before a Release is written: a renewal that cannot be confirmed stops it too (a
        Release written by two processes at once is worse than a run done again).

        `renew=False` asks no one, for a check before every other write that another
        publisher could overwrite: the lock must not be known lost, nor its expiry near
        (a process stopped, or a machine suspended, for longer than the lock lives)."""
        if not renew:
            margin = min(60.0, self.ttl_seconds / 10)
            if self.lost or time.time() >= self._expires_at - margin:
                self.lost = True
                raise LockError(
                    f"the publish lock in {self.table} expired while this process ran (it "
                    "was stopped or too slow to renew it); it stopped before writing more "
                    "(run it again, then `debrepo verify`)"
                )
            return
        renewed = False if self.lost else self._renew()  # botocore has retried already
        if renewed is False:
            self.lost = True
            raise LockError(
                f"the publish lock in {self.table} expired and was taken by another process "
                "while this one ran; it stopped before writing a Release (run it again)"
            )
        if renewed is None:
            raise LockError(
                f"cannot confirm that this process still holds the publish lock in "
                f"{self.table} (see the warnings above); it stopped before writing a Release "
                "(run it again)"
            )

    def holder(self) -> str | None:
        """Who holds the lock now (its owner, until when), None if nobody does."""
        item = self._call(
            "read (dynamodb:GetItem)",
            lambda: self._client.get_item(
                TableName=self.table, Key={"package_id": {"S": LOCK_ID}}, ConsistentRead=True
            ),
        ).get("Item")
        if not item or int(item.get("expires_at", {}).get("N", "0")) < time.time():
            return None
        return f"{item.get('owner', {}).get('S', 'unknown')}, lock expiring {_expiry(item)}"

    @contextmanager
    def hold(self, wait_seconds: float = 0.0) -> Iterator[Callable[[], None]]:
        deadline = time.monotonic() + wait_seconds
        while (holder := self._try_acquire()) is not None:
            if time.monotonic() >= deadline:
                owner = holder.get("owner", {}).get("S", "unknown")
                since = holder.get("acquired_at", {}).get("S", "?")
                raise LockError(
                    f"another debrepo process is publishing ({owner} since {since}); lock "
                    f"{LOCK_ID} in {self.table}; if that process died, the lock expires "
                    f"{_expiry(holder)} (a live holder renews it)"
                )
            time.sleep(min(POLL_SECONDS, max(0.1, deadline - time.monotonic())))
        stop = threading.Event()
        beat = threading.Thread(target=self._keep_alive, args=(stop,), daemon=True)
        beat.start()
        try:
            yield self.check
        finally:
            stop.set()
            beat.join(timeout=5)  # a renewal in flight may hang on retries; it is harmless
            self._release()

    def _release(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_item(
                TableName=self.table, Key={"package_id": {"S": LOCK_ID}}, **self._if_ours()
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                log.warning("the publish lock in %s was no longer ours on release", self.table)
            else:  # it expires by itself
                log.warning(
                    "cannot release the publish lock in %s; it stays until it expires (%d s "
                    "after its last renewal): %s",
                    self.table,
                    self.ttl_seconds,
                    exc,
                )
        except BotoCoreError as exc:  # it expires by itself
            log.warning("cannot release the publish lock in %s: %s", self.table, exc)


# Set while an invalidation is owed: a publish whose invalidation failed leaves it for
# the next publish to retry, even one that changes nothing.
CDN_PENDING_KEY = "staging/.state/cdn-invalidation-pending"


# New pool files named one by one up to this many; more are covered by one `/pool/*`
# (CloudFront bills per path, and a wildcard counts as one).
POOL_PATHS_LIMIT = 15
WHOLE_POOL = "pool/*"


def cdn_paths(settings: Settings, new_pool_keys: Sequence[str] = ()) -> tuple[str, ...]:
    """What a CDN must not keep serving stale after a publish: the metadata, and the new
    pool files (a version removed and added again with other bytes reuses its file name,
    which a CDN may have cached as immutable). By-hash objects never change under their
    names. (CloudFront takes `*` only at the end of a path.)"""
    from urllib.parse import quote

    from debrepo.core.layout import CONVENIENCE_COPY, INDEX_HTML

    keyring = settings.keyring_name
    if len(new_pool_keys) > POOL_PATHS_LIMIT or WHOLE_POOL in new_pool_keys:
        pool: tuple[str, ...] = (f"/{WHOLE_POOL}",)
    else:
        # CloudFront wants the characters RFC 1738 calls unsafe encoded; `~` (1.0~rc1)
        # is one of them, though Python's quote() leaves it.
        pool = tuple(
            "/" + quote(key, safe="/").replace("~", "%7E") for key in sorted(new_pool_keys)
        )
    return (
        "/dists/*",
        f"/{INDEX_HTML}",
        f"/{CONVENIENCE_COPY}",
        f"/{keyring}.gpg",
        f"/{keyring}.asc",
        *pool,
    )


def invalidate_after_publish(
    settings: Settings,
    staging: ObjectStore,
    *,
    changed: bool,
    new_pool_keys: Sequence[str] = (),
) -> str | None:
    """Invalidate the published metadata in CloudFront when a publish changed it (or an
    earlier invalidation failed); the invalidation id, or None if none was made.

    A failure is a warning, not an error: the repository is published, and the CDN
    serves the new files once its cache expires (60 s for metadata). It is retried by
    the next publish.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from debrepo.core.layout import delivery_for

    distribution = settings.cloudfront_distribution_id
    owed = _owed_pool_keys(staging)
    if not (changed or owed is not None):
        return None
    pool_keys = sorted({*new_pool_keys, *(owed or ())})
    try:
        invalidation = invalidate_cloudfront(distribution, cdn_paths(settings, pool_keys))
    except (BotoCoreError, ClientError) as exc:
        log.warning(
            "CloudFront distribution %s: cannot invalidate what was published (%s: %s); "
            "the next publish tries again (the metadata is served fresh once cached "
            "copies expire, in 60 s)",
            distribution,
            _code(exc),
            exc,
        )
        owing = json.dumps(pool_keys).encode()
        staging.put(CDN_PENDING_KEY, owing, delivery_for(CDN_PENDING_KEY))
        return None
    pending = owed is not None
    if pending:
        staging.delete(CDN_PENDING_KEY)
    log.info(
        "cloudfront invalidated",
        extra={"distribution_id": distribution, "invalidation_id": invalidation},
    )
    return invalidation


def _owed_pool_keys(staging: ObjectStore) -> list[str] | None:
    """The pool keys an earlier failed invalidation still owes; None if nothing is owed."""
    raw = staging.get(CDN_PENDING_KEY)
    if raw is None:
        return None
    try:
        keys = json.loads(raw)
    except ValueError:
        keys = None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return [WHOLE_POOL]  # what it owes is unknown: all of it
    return keys


def invalidate_cloudfront(distribution_id: str, paths: Sequence[str]) -> str:
    """Invalidate the top-level metadata paths; returns the invalidation id."""
    response = client("cloudfront").create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": list(paths)},
            "CallerReference": f"debrepo-{uuid.uuid4().hex}",
        },
    )
    return str(response["Invalidation"]["Id"])


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or type(exc).__name__


def check_access(settings: Settings) -> list[str]:
    """Prove up front that the credentials reach every resource a run needs.

    Returns what was checked; raises ConfigError naming the first missing permission
    (or missing resource) rather than failing halfway through a publish.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    def bucket_of(url: str) -> str:
        return url.removeprefix("s3://").split("/", 1)[0]

    checks: list[tuple[str, str, Any]] = []
    sts = client("sts")
    checks.append(
        ("sts:GetCallerIdentity", "the AWS credentials", lambda: sts.get_caller_identity())
    )
    s3 = client("s3")
    for url in dict.fromkeys(u for u in (settings.repo, settings.staging) if u.startswith("s3://")):
        bucket = bucket_of(url)
        checks.append(
            ("s3:ListBucket", f"bucket {bucket}", lambda b=bucket: s3.head_bucket(Bucket=b))
        )
    if settings.store.startswith("dynamodb://"):
        table = settings.store.removeprefix("dynamodb://")
        dynamodb = client("dynamodb")
        checks.append(
            (
                "dynamodb:DescribeTable",
                f"table {table}",
                lambda: dynamodb.describe_table(TableName=table),
            )
        )
    if settings.key_secret_id:
        secrets = client("secretsmanager")
        secret = settings.key_secret_id
        checks.append(
            (
                "secretsmanager:DescribeSecret",
                f"secret {secret}",
                lambda: secrets.describe_secret(SecretId=secret),
            )
        )
    if settings.sns_topic_arn:
        sns = client("sns")
        topic = settings.sns_topic_arn
        checks.append(
            (
                "sns:GetTopicAttributes",
                f"topic {topic}",
                lambda: sns.get_topic_attributes(TopicArn=topic),
            )
        )
    done = []
    for action, what, call in checks:
        try:
            call()
        except ClientError as exc:
            code = _code(exc)
            if code in ("404", "NoSuchBucket", "ResourceNotFoundException", "NotFound"):
                # The clients take their region from the environment, as here.
                region = aws_region(os.environ)
                where = f" in region {region}" if region else ""
                raise ConfigError(f"{what} does not exist{where} (checked with {action})") from None
            if code in ("403", "AccessDenied", "AccessDeniedException", "AuthorizationError"):
                raise ConfigError(f"permission {action} is missing for {what}") from None
            if code in ("InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken"):
                raise ConfigError(f"the AWS credentials are not valid ({code}, {action})") from None
            raise ConfigError(f"{action} on {what} failed: {code}") from None
        except BotoCoreError as exc:
            raise ConfigError(f"cannot reach AWS for {action} on {what}: {exc}") from None
        done.append(f"{action} {what}")
    return done
