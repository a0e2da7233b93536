"""DynamoDB metadata store: the production backend (seed "DynamoDB Schema").

One item per package version in `kiro-debian-repo-manager-versions-{env}`, keyed by
`package_id` (`"{package_name}#{version}"`), with the seed's attribute names and numbers
stored as numbers. Items whose `package_id` starts with `__debrepo__#` belong to debrepo
itself (the revision counter, the publish lock) and are never returned as packages.

- Every write is one TransactWriteItems: each new record a Put conditioned on
  `attribute_not_exists(package_id)` (two concurrent runs cannot both store a version,
  seed Property 18), plus an increment of the revision counter and a new random
  change token, so `revision()` changes with every change and differs between tables.
  A batch larger than one transaction is written in chunks; when a later chunk fails,
  the records of the earlier chunks are deleted again before the error is raised, so
  afterwards readers see all of the batch or none of it.
- Every scan and query follows `LastEvaluatedKey` to the end (seed Property 3).
- Reads of the base table are strongly consistent. `by_name` queries the GSI
  `package_name-index` when the table has one; GSI reads are eventually consistent, so
  a version stored a moment ago may be missing there for a moment. Without the index it
  is the seed's scan with a filter.
- Throttling and transient failures are retried by botocore (standard mode, 3 retries
  with exponential backoff and jitter); whatever outlasts them becomes a one-line
  StoreError naming the table, the region, the action and what to do.
"""

from __future__ import annotations

import logging
import os
import random
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import botocore.loaders
import botocore.session
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    WaiterError,
)
from botocore.exceptions import ConnectionError as EndpointUnreachable

from debrepo.errors import ConfigError, DuplicatePackageError, StoreError
from debrepo.settings import aws_region
from debrepo.store.base import BaseMetadataStore

log = logging.getLogger("debrepo.store")

INTERNAL_PREFIX = "__debrepo__#"
REVISION_ID = INTERNAL_PREFIX + "revision"
LOCK_ID = INTERNAL_PREFIX + "lock"
# One item per version removed on purpose, keyed by this prefix and its package_id.
WITHDRAWN_PREFIX = INTERNAL_PREFIX + "withdrawn#"
NAME_INDEX = "package_name-index"

# DynamoDB limits: 100 actions and 4 MB of items per transaction.
MAX_TRANSACTION_ACTIONS = 100
RECORDS_PER_TRANSACTION = MAX_TRANSACTION_ACTIONS - 1  # one action counts the revision
_TRANSACTION_BYTES = 3_500_000  # below 4 MB, with room for the request's own overhead
ITEM_BYTES = 400 << 10  # DynamoDB's item size limit, attribute names included
# The seed's 3 retries: 4 attempts in all, exponential backoff with jitter (botocore).
# (botocore's `max_attempts` counts retries only; `total_max_attempts` counts them all.)
RETRY_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 4})
# Loading and parsing the service model is most of the cost of a new client.
_LOADER = botocore.loaders.create_loader()
# botocore does not retry a transaction cancelled for a conflict with another one
# (two writers bumping the revision counter at once); these re-runs do, briefly.
_CONFLICT_ATTEMPTS = 5

_TABLE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_ACCESS_KEY_RE = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
_NOT_FOUND = {"ResourceNotFoundException", "TableNotFoundException"}
_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "IncompleteSignatureException",
}
_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TooManyRequestsException",
}
_PUT_CONDITION = "attribute_not_exists(package_id)"


def table_name_problem(name: str) -> str | None:
    """Why `name` cannot be a DynamoDB table name, or None."""
    if _TABLE_NAME_RE.fullmatch(name):
        return None
    return (
        f"{name!r} is not a valid DynamoDB table name "
        "(3-255 characters: letters, digits, '_', '-', '.')"
    )


def is_internal(package_id: object) -> bool:
    """Whether an item is one of debrepo's own (revision counter, lock), not a package."""
    return isinstance(package_id, str) and package_id.startswith(INTERNAL_PREFIX)


def _client(region: str | None, endpoint_url: str | None, session: Any, *, table_name: str) -> Any:
    """A DynamoDB client: from `session` if given, else as boto3 would make one (profile,
    environment, AWS_ENDPOINT_URL), sharing the parsed service model between stores."""
    if region is None and session is None:
        region = aws_region(os.environ)
    options = {"region_name": region, "endpoint_url": endpoint_url, "config": RETRY_CONFIG}
    try:
        if session is not None:  # a boto3 Session, or a botocore one
            make = getattr(session, "client", None) or session.create_client
            return make("dynamodb", **options)
        fresh = botocore.session.get_session()
        fresh.register_component("data_loader", _LOADER)
        return fresh.create_client("dynamodb", **options)
    except NoRegionError:
        raise StoreError(
            f"DynamoDB table {table_name}: no AWS region configured; "
            "set AWS_REGION (or AWS_DEFAULT_REGION)"
        ) from None
    except BotoCoreError as exc:
        raise StoreError(
            f"DynamoDB table {table_name}: cannot create a client: {_one_line(str(exc))}"
        ) from None


def _one_line(text: str) -> str:
    """Text fit for a one-line error: no line breaks, nothing resembling an access key."""
    return _ACCESS_KEY_RE.sub("<access key>", " ".join(text.split()))


class _Table:
    """Calls on one table through one client, every failure translated to a StoreError."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    @property
    def region(self) -> str:
        return str(self.client.meta.region_name)

    def _action(self, operation: str) -> str:
        api = self.client.meta.method_to_api_mapping.get(operation, operation)
        return f"dynamodb:{api}"

    def call(self, operation: str, *, passthrough: Sequence[str] = (), **kwargs: Any) -> Any:
        """Call the client; every failure becomes a StoreError except `passthrough` codes."""
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            if _code(exc) in passthrough:
                raise
            raise self._client_error(operation, exc) from None
        except BotoCoreError as exc:
            raise self.transport_error(operation, exc) from None

    def _client_error(self, operation: str, exc: ClientError) -> StoreError:
        code = _code(exc)
        message = _one_line(str(exc.response.get("Error", {}).get("Message") or ""))
        table, region, action = self.table_name, self.region, self._action(operation)
        if code in _NOT_FOUND:
            return StoreError(
                f"DynamoDB table {table} not found in region {region}; create it with "
                "`infra/terraform` or `debrepo.store.dynamodb.create_table`"
            )
        if code in _DENIED:
            return StoreError(
                f"access denied: {action} on table {table} in region {region} ({code}: "
                f"{message}); allow {action} for the AWS credentials in use, or check them"
            )
        if code in _THROTTLED:
            attempts = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
            return StoreError(
                f"DynamoDB throttled {action} on table {table} in region {region} "
                f"({code}) after {attempts} attempts; try again later, or check the "
                "table's capacity and the account's limits"
            )
        detail = f"{code}: {message}" if message else code
        return StoreError(f"{action} on table {table} in region {region} failed: {detail}")

    def transport_error(self, operation: str, exc: BotoCoreError) -> StoreError:
        table, region, action = self.table_name, self.region, self._action(operation)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StoreError(
                f"no usable AWS credentials for {action} on table {table} in region "
                f"{region}; configure a profile, environment credentials or a role"
            )
        if isinstance(exc, EndpointUnreachable | HTTPClientError):
            endpoint = self.client.meta.endpoint_url
            return StoreError(
                f"cannot reach DynamoDB at {endpoint} for {action} on table {table} "
                f"in region {region}: {_one_line(str(exc))}; check the network, the region "
                "and AWS_ENDPOINT_URL"
            )
        return StoreError(
            f"{action} on table {table} in region {region} failed: {_one_line(str(exc))}"
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


Reasons = list[tuple[str, str]]


def _cancellation_reasons(exc: ClientError) -> Reasons:
    """(code, message) for each action of a cancelled transaction; code "None" if it was fine."""
    return [
        (str(reason.get("Code") or "None"), _one_line(str(reason.get("Message") or "")))
        for reason in exc.response.get("CancellationReasons", [])
    ]


class DynamoDBMetadataStore(BaseMetadataStore):
    """Package versions in one DynamoDB table, one item per version."""

    def __init__(
        self,
        table_name: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        session: Any = None,
        scan_page_limit: int | None = None,
    ) -> None:
        problem = table_name_problem(table_name)
        if problem:
            raise ConfigError(f"store dynamodb://{table_name}: {problem}")
        if scan_page_limit is not None and scan_page_limit < 1:
            raise ValueError("scan_page_limit must be a positive number of items")
        self.table_name = table_name
        self._table = _Table(
            _client(region, endpoint_url, session, table_name=table_name), table_name
        )
        self._call = self._table.call
        self.description = f"dynamodb://{table_name}"
        self._page: dict[str, Any] = {} if scan_page_limit is None else {"Limit": scan_page_limit}
        self._name_index: bool | None = None

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str] = os.environ) -> DynamoDBMetadataStore:
        """`dynamodb://TABLE`; region from AWS_REGION or AWS_DEFAULT_REGION, endpoint as
        boto3 finds it (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB, the profile)."""
        parsed = urlparse(url)
        if parsed.scheme != "dynamodb" or parsed.path not in ("", "/") or not parsed.netloc:
            raise ConfigError(f"store {url!r}: expected dynamodb://TABLE")
        return cls(parsed.netloc, region=aws_region(environ))

    @property
    def region(self) -> str:
        return self._table.region

    @property
    def identity(self) -> str:
        return f"{self.description} in {self.region}"

    def close(self) -> None:
        self._table.client.close()

    # -- reads --------------------------------------------------------------------------
    def _pages(self, operation: str, **request: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Scan or Query, page after page, debrepo's own left out."""
        request = {"TableName": self.table_name, **self._page, **request}
        while True:
            page = self._call(operation, **request)
            for raw in page.get("Items", ()):
                item = {name: _plain(value) for name, value in raw.items()}
                if not is_internal(item.get("package_id")):
                    yield item
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def _items(self, package_name: str | None = None) -> Iterator[Mapping[str, Any]]:
        if package_name is None:
            return self._pages("scan", ConsistentRead=True)
        if self._has_name_index():
            return self._pages(
                "query",
                IndexName=NAME_INDEX,
                KeyConditionExpression="package_name = :name",
                ExpressionAttributeValues={":name": {"S": package_name}},
            )
        return self._pages(
            "scan",
            ConsistentRead=True,
            FilterExpression="package_name = :name",
            ExpressionAttributeValues={":name": {"S": package_name}},
        )

    def _has_name_index(self) -> bool:
        """Whether the table has an active `package_name-index` (asked once)."""
        if self._name_index is None:
            try:
                table = self._call(
                    "describe_table", passthrough=tuple(_DENIED), TableName=self.table_name
                )["Table"]
            except ClientError:
                # Reading without DescribeTable is allowed: scan with a filter instead.
                log.debug("cannot describe table %s; querying by name scans", self.table_name)
                self._name_index = False
            else:
                self._name_index = any(
                    index.get("IndexName") == NAME_INDEX
                    and index.get("IndexStatus", "ACTIVE") == "ACTIVE"
                    for index in table.get("GlobalSecondaryIndexes", ())
                )
        return self._name_index

    def _item(self, package_id: str) -> Mapping[str, Any] | None:
        if is_internal(package_id):
            return None
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"package_id": {"S": package_id}},
            ConsistentRead=True,
        )
        raw = response.get("Item")
        return None if raw is None else {name: _plain(value) for name, value in raw.items()}

    def package_ids(self) -> set[str]:
        return {
            str(item["package_id"])
            for item in self._pages(
                "scan",
                ConsistentRead=True,
                ProjectionExpression="#id",
                ExpressionAttributeNames={"#id": "package_id"},
            )
        }

    def revision(self, *, seed: bool = True) -> str | None:
        """The revision counter and change token, set in the same transaction as every change."""
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"package_id": {"S": REVISION_ID}},
            ConsistentRead=True,
            ProjectionExpression="#revision, #change",
            ExpressionAttributeNames={"#revision": "revision", "#change": "change"},
        )
        item = response.get("Item", {})
        if "change" not in item:
            # Never written by this debrepo (an empty table, or one an earlier version
            # counted in): without a token it could read like another table, so it gets
            # one now, once; until then it matches nothing and every publish is full.
            if not seed:
                # A token drawn now would match no published revision; no token
                # matches none either, so a dry run predicts what a real run does.
                counter = _plain(item["revision"]) if "revision" in item else 0
                return f"dynamodb:{counter}:"
            item = self._seed_change_token()
            if "change" not in item:
                return None
        return f"dynamodb:{_plain(item['revision'])}:{_plain(item['change'])}"

    def _seed_change_token(self) -> dict[str, Any]:
        """Give the revision item a change token if it has none; its attributes after."""
        try:
            response = self._call(
                "update_item",
                TableName=self.table_name,
                Key={"package_id": {"S": REVISION_ID}},
                # A writer that set a token meanwhile keeps it; ADD 0 creates the counter.
                UpdateExpression=(
                    "ADD #revision :zero SET #change = if_not_exists(#change, :change)"
                ),
                ExpressionAttributeNames={"#revision": "revision", "#change": "change"},
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":change": {"S": secrets.token_hex(12)},
                },
                ReturnValues="ALL_NEW",
            )
        except StoreError as exc:  # e.g. a role that may only read: fine, just slower
            log.info(
                "no change token on table %s (%s); every publish is full", self.table_name, exc
            )
            return {}
        attributes: dict[str, Any] = response.get("Attributes", {})
        return attributes

    # -- writes -------------------------------------------------------------------------
    def _insert(self, items: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        for item in items:
            package_id = str(item["package_id"])
            if package_id in seen:
                raise DuplicatePackageError(package_id)
            seen.add(package_id)
            # Said by name before anything is written: DynamoDB would refuse the whole
            # transaction without saying which item is too large.
            if (size := _size(item)) > ITEM_BYTES:
                largest = max(item, key=lambda name: _size(item[name]))
                shown = "its other control fields" if largest == "control_fields" else largest
                raise StoreError(
                    f"{package_id}: its record is {_kib(size)} KiB, and a DynamoDB item "
                    f"(table {self.table_name}) holds at most {ITEM_BYTES >> 10} KiB; nothing "
                    f"was stored. The largest part is {shown} ({_kib(_size(item[largest]))} KiB)"
                )
        chunks = _chunks(items)
        written: list[str] = []
        for chunk in chunks:
            try:
                self._put_chunk(chunk)
            except (DuplicatePackageError, StoreError) as exc:
                if written:
                    self._compensate(written, exc)
                raise
            written.extend(str(item["package_id"]) for item in chunk)

    def _put_chunk(self, chunk: list[dict[str, Any]]) -> None:
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": {name: _attribute(value) for name, value in item.items()},
                    "ConditionExpression": _PUT_CONDITION,
                }
            }
            for item in chunk
        ]
        reasons = self._transact([*actions, self._count_change()])
        if reasons is None:
            return
        for item, (code, _) in zip(chunk, reasons, strict=False):
            if code == "ConditionalCheckFailed":
                raise DuplicatePackageError(str(item["package_id"]))
        if not reasons:
            # No reasons given (not every endpoint sends them): find the stored one.
            for item in chunk:
                if self._item(str(item["package_id"])) is not None:
                    raise DuplicatePackageError(str(item["package_id"]))
        raise self._cancelled(reasons)

    def _delete(self, package_id: str, withdrawn_at: str | None) -> bool:
        if is_internal(package_id):
            return False
        actions: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self.table_name,
                    "Key": {"package_id": {"S": package_id}},
                    "ConditionExpression": "attribute_exists(package_id)",
                }
            },
            self._count_change(),
        ]
        if withdrawn_at is not None:
            withdrawal = _withdrawal_item(package_id, withdrawn_at)
            actions.append({"Put": {"TableName": self.table_name, "Item": withdrawal}})
        reasons = self._transact(actions)
        if reasons is None:
            return True
        first = reasons[0][0] if reasons else None
        if first == "ConditionalCheckFailed" or (not reasons and not self.exists(package_id)):
            return False
        raise self._cancelled(reasons)

    def withdraw(self, package_id: str, withdrawn_at: str) -> None:
        self._call(
            "put_item", TableName=self.table_name, Item=_withdrawal_item(package_id, withdrawn_at)
        )

    def clear_withdrawals(self, package_ids: Iterable[str]) -> None:
        deletes = [
            {
                "Delete": {
                    "TableName": self.table_name,
                    "Key": {"package_id": {"S": WITHDRAWN_PREFIX + package_id}},
                }
            }
            for package_id in package_ids
        ]
        for start in range(0, len(deletes), MAX_TRANSACTION_ACTIONS):
            reasons = self._transact(deletes[start : start + MAX_TRANSACTION_ACTIONS])
            if reasons is not None:
                raise self._cancelled(reasons)

    def withdrawn_at(self, package_id: str) -> str | None:
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"package_id": {"S": WITHDRAWN_PREFIX + package_id}},
            ConsistentRead=True,
        )
        value = (response.get("Item") or {}).get("withdrawn_at", {}).get("S")
        return None if value is None else str(value)

    def withdrawals(self) -> dict[str, str]:
        """A scan of the whole table (what `list --withdrawn` asks, rarely)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            **self._page,
            "ConsistentRead": True,
            "FilterExpression": "begins_with(package_id, :prefix)",
            "ExpressionAttributeValues": {":prefix": {"S": WITHDRAWN_PREFIX}},
        }
        found: dict[str, str] = {}
        while True:
            page = self._call("scan", **request)
            for raw in page.get("Items", ()):
                package_id = raw["package_id"]["S"].removeprefix(WITHDRAWN_PREFIX)
                found[package_id] = str(raw.get("withdrawn_at", {}).get("S", ""))
            last = page.get("LastEvaluatedKey")
            if not last:
                return found
            request["ExclusiveStartKey"] = last

    def _compensate(self, written: list[str], cause: Exception) -> None:
        """Delete what the earlier chunks of a failed batch stored."""
        try:
            for start in range(0, len(written), RECORDS_PER_TRANSACTION):
                deletes: list[dict[str, Any]] = [
                    {"Delete": {"TableName": self.table_name, "Key": {"package_id": {"S": pid}}}}
                    for pid in written[start : start + RECORDS_PER_TRANSACTION]
                ]
                reasons = self._transact([*deletes, self._count_change()])
                if reasons is not None:
                    raise self._cancelled(reasons)
        except StoreError as exc:
            raise StoreError(
                f"storing a batch in DynamoDB table {self.table_name} failed ({cause}), and "
                f"the {len(written)} records stored before the failure could not be removed "
                f"({exc}); delete them by hand: {', '.join(written[:5])}"
                + (", ..." if len(written) > 5 else "")
            ) from None

    def _count_change(self) -> dict[str, Any]:
        # The random token makes a revision name one state of one table: a new or
        # restored table that has counted as many changes still reads differently.
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"package_id": {"S": REVISION_ID}},
                "UpdateExpression": "ADD #revision :one SET #change = :change",
                "ExpressionAttributeNames": {"#revision": "revision", "#change": "change"},
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":change": {"S": secrets.token_hex(12)},
                },
            }
        }

    def _transact(self, actions: list[dict[str, Any]]) -> Reasons | None:
        """Run one transaction: None when it committed, else why each action was cancelled.

        A transaction cancelled only by a conflict with another transaction in flight
        runs again after a short random pause; botocore's retries do not cover it.
        """
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                self._call(
                    "transact_write_items",
                    passthrough=("TransactionCanceledException",),
                    # botocore fills in ClientRequestToken, the same on its retries: one
                    # whose first attempt committed but whose answer was lost succeeds
                    # again instead of failing its own conditions.
                    TransactItems=actions,
                )
            except ClientError as exc:
                reasons = _cancellation_reasons(exc)
                codes = [code for code, _ in reasons]
                conflict = "TransactionConflict" in codes and all(
                    code in ("None", "TransactionConflict") for code in codes
                )
                if conflict and attempt + 1 < _CONFLICT_ATTEMPTS:
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter
                    continue
                return reasons
            return None
        raise AssertionError("unreachable")  # pragma: no cover

    def _cancelled(self, reasons: Reasons) -> StoreError:
        """The error for a transaction cancelled for another reason than a duplicate."""
        named = [f"{code}: {text}" if text else code for code, text in reasons if code != "None"]
        retryable = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
        advice = "; try again" if {code for code, _ in reasons} - {"None"} <= retryable else ""
        return StoreError(
            f"dynamodb:TransactWriteItems on table {self.table_name} in region "
            f"{self.region} was cancelled ({'; '.join(named) or 'no reason given'}){advice}"
        )


def _withdrawal_item(package_id: str, withdrawn_at: str) -> dict[str, Any]:
    return {
        "package_id": {"S": WITHDRAWN_PREFIX + package_id},
        "withdrawn_at": {"S": withdrawn_at},
    }


def _chunks(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Items in transaction-sized groups: at most 99 records and ~3.5 MB each."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for item in items:
        item_size = _size(item)
        if current and (
            len(current) == RECORDS_PER_TRANSACTION or size + item_size > _TRANSACTION_BYTES
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


def _kib(size: int) -> int:
    """`size` bytes in KiB, rounded up: 400 KiB and one byte is not "400 KiB"."""
    return (size + 1023) >> 10


def _size(value: Any) -> int:
    """Roughly DynamoDB's item size: UTF-8 lengths of names and strings, ~21 per number."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Mapping):
        return sum(len(str(k).encode()) + _size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + _size(v) for v in value)
    return 21


class _Deserializer(TypeDeserializer):  # type: ignore[misc]  # boto3 ships no types
    """boto3's, with integral numbers as `int`: sizes are compared and added as ints."""

    def _deserialize_n(self, value: str) -> int | Decimal:
        return _number(value)


_SERIALIZER = TypeSerializer()
_DESERIALIZER = _Deserializer()


def _attribute(value: Any) -> dict[str, Any]:
    """A plain value (text, integer, list, mapping) as a DynamoDB attribute value."""
    attribute: dict[str, Any] = _SERIALIZER.serialize(value)
    return attribute


def _number(text: str) -> int | Decimal:
    """A DynamoDB number: int when integral (the record's fast path), else Decimal."""
    try:
        return int(text)
    except ValueError:
        number = Decimal(text)
        return int(number) if number == number.to_integral_value() else number


def _plain(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as a plain Python value."""
    try:
        return _DESERIALIZER.deserialize(value)
    except (TypeError, AttributeError) as exc:
        raise StoreError(f"unexpected DynamoDB attribute value {value!r:.80}") from exc


def create_table(
    table_name: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    session: Any = None,
) -> None:
    """Create the table as infra/terraform does; a no-op (but for the checks) if it exists.

    On-demand billing, partition key `package_id`, GSI `package_name-index` (all
    attributes), server-side encryption, point-in-time recovery where the endpoint
    supports it. Returns once the table is ACTIVE.
    """
    problem = table_name_problem(table_name)
    if problem:
        raise ConfigError(problem)
    tables = _Table(_client(region, endpoint_url, session, table_name=table_name), table_name)
    try:
        tables.call(
            "create_table",
            passthrough=("ResourceInUseException",),
            TableName=table_name,
            AttributeDefinitions=[
                {"AttributeName": "package_id", "AttributeType": "S"},
                {"AttributeName": "package_name", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "package_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            GlobalSecondaryIndexes=[
                {
                    "IndexName": NAME_INDEX,
                    "KeySchema": [{"AttributeName": "package_name", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            SSESpecification={"Enabled": True},
        )
    except ClientError:
        log.debug("DynamoDB table %s exists already", table_name)
    _wait_until_active(tables)
    _enable_point_in_time_recovery(tables)


def _wait_until_active(tables: _Table, *, timeout: float = 300.0, delay: int = 2) -> None:
    """Check the key schema, then wait for ACTIVE with botocore's `table_exists` waiter."""
    table = tables.call("describe_table", TableName=tables.table_name)["Table"]
    keys = [(k.get("AttributeName"), k.get("KeyType")) for k in table.get("KeySchema", ())]
    if keys != [("package_id", "HASH")]:
        raise StoreError(
            f"DynamoDB table {tables.table_name} in region {tables.region} exists with "
            f"key schema {keys}, not partition key package_id; use another table name"
        )
    if table.get("TableStatus") == "ACTIVE":
        return
    waiter = tables.client.get_waiter("table_exists")
    try:
        waiter.wait(
            TableName=tables.table_name,
            WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(timeout / delay))},
        )
    except WaiterError as exc:
        # Asked once more through `call`: a denial or an endpoint gone since is said as
        # such, not as a table that never became ACTIVE.
        tables.call("describe_table", TableName=tables.table_name)
        raise StoreError(
            f"DynamoDB table {tables.table_name} in region {tables.region} is not ACTIVE "
            f"after {timeout:.0f} s ({_one_line(str(exc))}); try again later"
        ) from None
    except BotoCoreError as exc:  # the waiter calls the client itself, not through `call`
        raise tables.transport_error("describe_table", exc) from None


def _enable_point_in_time_recovery(tables: _Table) -> None:
    try:
        tables.call(
            "update_continuous_backups",
            passthrough=(
                "ContinuousBackupsUnavailableException",
                "UnknownOperationException",
                "ValidationException",
            ),
            TableName=tables.table_name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    except ClientError as exc:
        log.warning(
            "point-in-time recovery not enabled on DynamoDB table %s (%s); enable it later "
            "with infra/terraform or the console",
            tables.table_name,
            _code(exc),
        )
