"""store/dynamodb.py beyond the shared contract: scale, concurrency, schema, failures.

Everything runs against the session's moto server over HTTP. Failures DynamoDB can
produce and moto cannot (access denied, throttling, transaction conflicts) come from a
real HTTP proxy on 127.0.0.1 in front of moto (tests/aws/dynamodb_proxy.py); boto3 and
botocore run unpatched, retries and backoff included.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer

from debrepo.errors import ConfigError, DuplicatePackageError, StoreError
from debrepo.factory import open_store
from debrepo.model import PackageRecord
from debrepo.objects.filesystem import FilesystemObjectStore
from debrepo.services.ingest import Destination
from debrepo.services.publish import STATE_KEY, PublishState
from debrepo.services.sync import run_sync
from debrepo.store.dynamodb import (
    LOCK_ID,
    NAME_INDEX,
    REVISION_ID,
    DynamoDBMetadataStore,
    _client,
    _Table,
    _wait_until_active,
    create_table,
)
from tests.aws.conftest import REGION
from tests.aws.dynamodb_proxy import DynamoDBProxy
from tests.unit.helpers import make_record

PAGE_BYTES = 1_000_000  # a Scan or Query returns at most 1 MB per page
# A realistic long description: a synopsis and a few paragraphs, about 2.5 KB.
PARAGRAPH = (
    " Kiro is an agentic development environment: it plans changes from a written\n"
    " specification, writes code across many files, runs the tests it wrote and\n"
    " explains every step it takes, so a reviewer can follow and correct it.\n"
)
LONG_DESCRIPTION = "agentic IDE from spec to production\n" + " .\n".join([PARAGRAPH] * 10)
LONG_DESCRIPTION = LONG_DESCRIPTION.rstrip("\n")


@pytest.fixture
def table(unique_name: str) -> str:
    create_table(unique_name)
    return unique_name


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[DynamoDBProxy]:
    opened = DynamoDBProxy(moto_endpoint)
    yield opened
    opened.close()


def via(
    proxy: DynamoDBProxy, table: str, scan_page_limit: int | None = None
) -> DynamoDBMetadataStore:
    """A store whose every request goes through `proxy`."""
    return DynamoDBMetadataStore(table, endpoint_url=proxy.url, scan_page_limit=scan_page_limit)


def seed(client, table: str, records: list[PackageRecord]) -> int:  # type: ignore[no-untyped-def]
    """Write records straight into the table (BatchWriteItem); their total size in bytes.

    Thousands of records go in this way rather than through put_many: moto deep-copies
    the whole table for every action of a TransactWriteItems, which makes 3,000 records
    in 99-record transactions take minutes on moto (not on DynamoDB)."""
    serializer = TypeSerializer()
    total = 0
    for start in range(0, len(records), 25):
        requests = []
        for record in records[start : start + 25]:
            item = {k: serializer.serialize(v) for k, v in record.to_item().items()}
            total += sum(len(k) + len(str(v)) for k, v in record.to_item().items())
            requests.append({"PutRequest": {"Item": item}})
        response = client.batch_write_item(RequestItems={table: requests})
        assert not response.get("UnprocessedItems")
    return total


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the table ---------------------------------------------------------------------------
def test_create_table_makes_the_seed_schema(table, dynamodb_client):
    description = dynamodb_client.describe_table(TableName=table)["Table"]
    assert description["KeySchema"] == [{"AttributeName": "package_id", "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert description["SSEDescription"]["Status"] == "ENABLED"
    (index,) = description["GlobalSecondaryIndexes"]
    assert index["IndexName"] == NAME_INDEX == "package_name-index"
    assert index["KeySchema"] == [{"AttributeName": "package_name", "KeyType": "HASH"}]
    assert index["Projection"]["ProjectionType"] == "ALL"
    backups = dynamodb_client.describe_continuous_backups(TableName=table)
    recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"


def test_create_table_is_idempotent(table, dynamodb_client):
    store = DynamoDBMetadataStore(table)
    store.put(make_record("hello", "1.0"))
    create_table(table)
    assert store.package_ids() == {"hello#1.0"}
    assert [t for t in dynamodb_client.list_tables()["TableNames"] if t == table] == [table]


def test_create_table_refuses_a_table_of_another_shape(unique_name, dynamodb_client):
    dynamodb_client.create_table(
        TableName=unique_name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(StoreError) as caught:
        create_table(unique_name)
    assert unique_name in str(caught.value)
    assert "not partition key package_id" in str(caught.value)


def _creating(answer: dict[str, Any]) -> None:
    answer["Table"]["TableStatus"] = "CREATING"


def test_create_table_waits_until_the_table_is_active(unique_name, proxy):
    proxy.edit("DescribeTable", _creating, times=2)
    started = time.monotonic()
    create_table(unique_name, endpoint_url=proxy.url)
    # Two answers CREATING (the check, then the waiter's first poll), then ACTIVE.
    assert proxy.count("DescribeTable") == 3
    assert time.monotonic() - started >= 2  # the waiter's delay between polls


def test_create_table_gives_up_on_a_table_that_stays_creating(unique_name, proxy):
    create_table(unique_name)
    proxy.edit("DescribeTable", _creating)
    tables = _Table(_client(REGION, proxy.url, None, table_name=unique_name), unique_name)
    with pytest.raises(StoreError) as caught:
        _wait_until_active(tables, timeout=2, delay=1)
    assert f"DynamoDB table {unique_name} in region {REGION} is not ACTIVE after 2 s" in str(
        caught.value
    )
    assert "try again later" in str(caught.value)
    assert proxy.count("DescribeTable") == 4  # the check, two polls, one to say why


def test_a_denial_while_waiting_for_the_table_is_said_as_a_denial(unique_name, proxy):
    create_table(unique_name)
    proxy.edit("DescribeTable", _creating, times=1)  # the check sees it CREATING
    proxy.fail("AccessDeniedException", action="DescribeTable", after=1)  # then denied
    tables = _Table(_client(REGION, proxy.url, None, table_name=unique_name), unique_name)
    with pytest.raises(StoreError) as caught:
        _wait_until_active(tables, timeout=2, delay=1)
    assert str(caught.value).startswith(
        f"access denied: dynamodb:DescribeTable on table {unique_name} in region {REGION}"
    )


def test_create_table_without_point_in_time_recovery_warns(unique_name, proxy, caplog):
    proxy.fail("UnknownOperationException", action="UpdateContinuousBackups")
    with caplog.at_level(logging.WARNING, logger="debrepo.store"):
        create_table(unique_name, endpoint_url=proxy.url)
    assert proxy.count("CreateTable") == 1
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "debrepo.store"]
    assert "point-in-time recovery not enabled" in warning and unique_name in warning
    assert DynamoDBMetadataStore(unique_name).all() == []


def test_invalid_table_names_are_configuration_errors():
    for name in ("x", "has space", "a" * 256, "slash/name"):
        with pytest.raises(ConfigError):
            DynamoDBMetadataStore(name)
        with pytest.raises(ConfigError):
            create_table(name)


def test_a_table_without_a_change_token_gets_one_on_first_read(table, dynamodb_client):
    # Counted by an earlier version: two such tables could read the same, so the first
    # read gives it a token (once), keeping the count.
    dynamodb_client.put_item(
        TableName=table, Item={"package_id": {"S": REVISION_ID}, "revision": {"N": "5"}}
    )
    store = DynamoDBMetadataStore(table)
    revision = store.revision()
    assert revision is not None and revision.startswith("dynamodb:5:")
    assert store.revision() == revision  # a later read does not change it
    store.put(make_record("kiro", "1.0"))
    after = store.revision()
    assert after is not None and after.startswith("dynamodb:6:") and after != revision


def test_sync_dry_run_leaves_a_table_without_a_change_token_untouched(
    table, dynamodb_client, tmp_path
):
    dynamodb_client.put_item(
        TableName=table, Item={"package_id": {"S": REVISION_ID}, "revision": {"N": "5"}}
    )
    (tmp_path / "repo").mkdir()
    (tmp_path / "staging").mkdir()
    # Published by an earlier debrepo, which recorded no revision: the real run draws a
    # token and publishes; the dry run must predict that without drawing it.
    staging = FilesystemObjectStore(tmp_path / "staging")
    staging.put(STATE_KEY, PublishState(revision=None).to_json(), None)
    reasons = {}
    for dry_run in (True, False):
        published: list[bool] = []
        report = run_sync(
            store=DynamoDBMetadataStore(table),
            repo=FilesystemObjectStore(tmp_path / "repo"),
            staging=staging,
            configs={},
            publish=lambda now, keys, published=published: published.append(True),
            notifier=None,
            now=datetime(2026, 11, 28, tzinfo=UTC),
            suite="stable",
            destination=Destination("pool", "main", ("amd64",)),
            dry_run=dry_run,
        )
        reasons[dry_run] = report.publish_reason
        assert published == ([] if dry_run else [True])
        if dry_run:
            item = dynamodb_client.get_item(
                TableName=table, Key={"package_id": {"S": REVISION_ID}}, ConsistentRead=True
            )["Item"]
            assert item == {"package_id": {"S": REVISION_ID}, "revision": {"N": "5"}}
    assert reasons[True] == reasons[False] == "the store changed since the last publish"


def test_an_empty_table_read_by_two_stores_has_one_revision(table):
    first, second = DynamoDBMetadataStore(table), DynamoDBMetadataStore(table)
    revision = first.revision()
    assert revision is not None and revision.startswith("dynamodb:0:")
    assert second.revision() == revision


def test_a_table_that_may_only_be_read_has_no_revision_until_written(table, proxy):
    store = via(proxy, table)
    proxy.fail("AccessDeniedException", action="UpdateItem")
    assert store.revision() is None
    assert proxy.count("UpdateItem") == 1


def test_items_follow_the_seed_attribute_schema(table, dynamodb_client):
    record = make_record("kiro", "1.2.3", control_fields=(("Multi-Arch", "foreign"),))
    store = DynamoDBMetadataStore(table)
    store.put(record)
    item = dynamodb_client.get_item(TableName=table, Key={"package_id": {"S": "kiro#1.2.3"}})[
        "Item"
    ]
    assert item["package_id"] == {"S": "kiro#1.2.3"}
    assert item["package_name"] == {"S": "kiro"}
    assert item["version"] == {"S": "1.2.3"}
    assert item["file_size"] == {"N": "1234"}
    assert item["installed_size"] == {"N": "12"}
    assert item["control_fields"] == {"L": [{"L": [{"S": "Multi-Arch"}, {"S": "foreign"}]}]}
    for absent in ("depends", "certificate_url", "signature_url", "notes"):
        assert absent not in item
    assert set(item) == set(record.to_item())
    counter = dynamodb_client.get_item(TableName=table, Key={"package_id": {"S": REVISION_ID}})
    assert counter["Item"]["revision"] == {"N": "1"}
    assert store.revision() == f"dynamodb:1:{counter['Item']['change']['S']}"
    assert store.description == f"dynamodb://{table}"
    # What a publish records: the same name in another region is another table.
    assert store.identity == f"dynamodb://{table} in {REGION}"


def test_an_attribute_value_of_no_known_type_is_a_store_error_not_a_traceback():
    from debrepo.store.dynamodb import _plain

    assert _plain({"L": [{"N": "7"}, {"N": "0.5"}, {"S": "x"}]}) == [7, Decimal("0.5"), "x"]
    with pytest.raises(StoreError, match="unexpected DynamoDB attribute value"):
        _plain({"Q": "7"})


# -- Property 3 at scale -----------------------------------------------------------------
def test_thousands_of_records_larger_than_a_page_all_come_back(table, proxy, dynamodb_client):
    """Seed Property 3: N stored records, N retrieved, however many pages they take."""
    records = [
        make_record(
            "kiro-repo" if i % 75 == 0 else "kiro",
            f"{i // 100}.{i % 100}.0",
            description=LONG_DESCRIPTION,
            sha512_hash=None,
        )
        for i in range(3000)
    ]
    table_bytes = seed(dynamodb_client, table, records)
    assert table_bytes > 8 * PAGE_BYTES

    store = via(proxy, table)
    stored = store.all()
    assert len(stored) == 3000
    assert {r.package_id for r in stored} == {r.package_id for r in records}
    assert stored[0].description == LONG_DESCRIPTION
    # moto, like DynamoDB, cuts a Scan at 1 MB: the store had to follow LastEvaluatedKey.
    assert proxy.count("Scan") >= table_bytes // PAGE_BYTES

    paged = via(proxy, table, scan_page_limit=250)
    before = proxy.count("Scan")
    assert paged.package_ids() == {r.package_id for r in records}
    assert proxy.count("Scan") - before >= 3000 // 250

    before = proxy.count("Query")
    repo_versions = {r.package_id for r in records if r.package_name == "kiro-repo"}
    small_pages = via(proxy, table, scan_page_limit=7)
    assert {r.package_id for r in small_pages.by_name("kiro-repo")} == repo_versions
    assert proxy.count("Query") - before >= len(repo_versions) // 7
    assert small_pages.latest("kiro-repo").version == "29.25.0"


def test_query_by_name_without_the_index_scans_every_page(unique_name, proxy, dynamodb_client):
    """A table made without the GSI (as the seed's was): the seed's scan with a filter."""
    dynamodb_client.create_table(
        TableName=unique_name,
        AttributeDefinitions=[{"AttributeName": "package_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "package_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    records = [make_record("kiro" if i % 3 else "kiro-cli", f"1.{i}") for i in range(60)]
    store = via(proxy, unique_name, scan_page_limit=8)
    store.put_many(records)
    found = store.by_name("kiro-cli")
    assert sorted(r.package_id for r in found) == sorted(
        r.package_id for r in records if r.package_name == "kiro-cli"
    )
    assert proxy.count("Query") == 0
    assert proxy.count("Scan") >= 61 // 8  # 60 records and the revision counter
    assert proxy.count("DescribeTable") == 1
    store.by_name("kiro")
    assert proxy.count("DescribeTable") == 1  # asked once


# -- Property 18 under concurrency -------------------------------------------------------
def test_two_runs_storing_one_version_at_once_store_it_once(table, moto_endpoint):
    """Seed Property 18: of two concurrent puts of one package_id, exactly one wins."""
    atomic = DynamoDBProxy(moto_endpoint, serialize=True)
    try:
        first, second = via(atomic, table), via(atomic, table)
        rounds = 12
        for number in range(rounds):
            record = make_record("kiro", f"1.{number}")
            outcomes: list[str] = []
            barrier = threading.Barrier(2)

            def run(
                store: DynamoDBMetadataStore,
                record: PackageRecord = record,
                barrier: threading.Barrier = barrier,
                outcomes: list[str] = outcomes,
            ) -> None:
                barrier.wait()
                try:
                    store.put(record)
                    outcomes.append("stored")
                except DuplicatePackageError as exc:
                    outcomes.append(f"duplicate {exc.package_id}")

            threads = [threading.Thread(target=run, args=(s,)) for s in (first, second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert sorted(outcomes) == [f"duplicate kiro#1.{number}", "stored"]
            assert first.get(record.package_id) == record
        assert first.revision().startswith(f"dynamodb:{rounds}:")
        assert len(first.all()) == rounds
    finally:
        atomic.close()


def test_two_overlapping_batches_at_once_one_wins_whole(table, moto_endpoint):
    atomic = DynamoDBProxy(moto_endpoint, serialize=True)
    try:
        left = [make_record("alpha", "1.0"), make_record("shared", "1.0")]
        right = [make_record("shared", "1.0"), make_record("beta", "1.0")]
        outcomes: dict[str, str] = {}
        barrier = threading.Barrier(2)

        def run(name: str, batch: list[PackageRecord]) -> None:
            store = via(atomic, table)
            barrier.wait()
            try:
                store.put_many(batch)
                outcomes[name] = "stored"
            except DuplicatePackageError as exc:
                outcomes[name] = exc.package_id

        threads = [
            threading.Thread(target=run, args=("left", left)),
            threading.Thread(target=run, args=("right", right)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes.values()) == ["shared#1.0", "stored"]
        winner = left if outcomes["left"] == "stored" else right
        assert DynamoDBMetadataStore(table).package_ids() == {r.package_id for r in winner}
    finally:
        atomic.close()


# -- debrepo's own items -----------------------------------------------------------------
def test_internal_items_are_never_returned(table, dynamodb_client, caplog):
    store = DynamoDBMetadataStore(table)
    store.put_many([make_record("kiro", "1.0"), make_record("kiro", "2.0")])
    lock = {
        "package_id": {"S": LOCK_ID},
        "package_name": {"S": "kiro"},  # even one that looks like a package
        "holder": {"S": "scheduled-sync"},
        "expires_at": {"N": "1795000000"},
    }
    dynamodb_client.put_item(TableName=table, Item=lock)
    stored = {"kiro#1.0", "kiro#2.0"}
    for page_limit in (None, 1):
        paged = DynamoDBMetadataStore(table, scan_page_limit=page_limit)
        with caplog.at_level(logging.WARNING, logger="debrepo.store"):
            assert {r.package_id for r in paged.all()} == stored
            snapshot = paged.snapshot()
            assert {r.package_id for r in snapshot.records} == stored
            assert snapshot.skipped == []
            assert paged.package_ids() == stored
            assert {r.package_id for r in paged.by_name("kiro")} == stored
            assert paged.latest("kiro").version == "2.0"
            assert paged.incomplete() == []
        assert [r for r in caplog.records if r.name.startswith("debrepo")] == []
    for internal in (LOCK_ID, REVISION_ID):
        assert store.get(internal) is None
        assert not store.exists(internal)
        assert store.delete(internal) is False
    assert "Item" in dynamodb_client.get_item(TableName=table, Key={"package_id": {"S": LOCK_ID}})
    assert store.revision().startswith("dynamodb:1:")


# -- batches -----------------------------------------------------------------------------
def test_batches_are_split_by_size_as_well_as_count(table, proxy):
    records = big_records(25)  # ~7.5 MB: more than one transaction may carry
    store = via(proxy, table)
    store.put_many(records)
    assert proxy.count("TransactWriteItems") == 3
    assert store.package_ids() == {r.package_id for r in records}


def big_records(count: int) -> list[PackageRecord]:
    """Records of ~300 KB each: a dozen fill a transaction (4 MB), so few make a batch of
    several transactions (moto copies the table for every action of a transaction)."""
    text = "a package with a very long description\n" + "\n".join(
        f" line {n} " + "x" * 70 for n in range(3800)
    )
    return [make_record("kiro", f"1.{i}", description=text) for i in range(count)]


def test_a_failed_later_chunk_removes_what_the_earlier_ones_stored(table, proxy):
    records = big_records(25)  # three transactions
    store = via(proxy, table)
    proxy.fail("AccessDeniedException", action="TransactWriteItems", after=2, times=1)
    with pytest.raises(StoreError) as caught:
        store.put_many(records)
    assert "dynamodb:TransactWriteItems" in str(caught.value)
    assert proxy.count("TransactWriteItems") == 3 + 1  # three chunks, then one to undo two
    assert store.package_ids() == set()


def test_a_compensation_that_fails_names_what_was_left(table, proxy):
    records = big_records(25)
    store = via(proxy, table)
    proxy.fail("AccessDeniedException", action="TransactWriteItems", after=2)
    with pytest.raises(StoreError) as caught:
        store.put_many(records)
    message = str(caught.value)
    assert "could not be removed" in message and "kiro#1.0" in message
    assert "\n" not in message
    left = store.package_ids()
    assert 10 < len(left) < 25
    assert str(len(left)) in message


def test_a_transaction_conflict_is_run_again(table, proxy):
    proxy.fail(
        "TransactionCanceledException",
        action="TransactWriteItems",
        times=2,
        message="Transaction cancelled, please refer cancellation reasons for specific "
        "reasons [None, TransactionConflict]",
        CancellationReasons=[
            {"Code": "None"},
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
        ],
    )
    store = via(proxy, table)
    store.put(make_record("kiro", "1.0"))
    assert proxy.count("TransactWriteItems") == 3
    assert store.package_ids() == {"kiro#1.0"}
    assert store.revision().startswith("dynamodb:1:")


def test_a_conflict_that_persists_is_a_clear_error(table, proxy):
    proxy.fail(
        "TransactionCanceledException",
        action="TransactWriteItems",
        CancellationReasons=[
            {"Code": "None"},
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
        ],
    )
    with pytest.raises(StoreError) as caught:
        via(proxy, table).put(make_record("kiro", "1.0"))
    message = str(caught.value)
    assert f"dynamodb:TransactWriteItems on table {table} in region {REGION}" in message
    assert "TransactionConflict: Transaction is ongoing for the item" in message
    assert message.endswith("try again")
    assert proxy.count("TransactWriteItems") == 5


def test_a_transaction_cancelled_for_another_reason_names_it(table, proxy):
    proxy.fail(
        "TransactionCanceledException",
        action="TransactWriteItems",
        CancellationReasons=[
            {"Code": "ValidationError", "Message": "Item size to update has exceeded the limit"},
            {"Code": "None"},
        ],
    )
    with pytest.raises(StoreError) as caught:
        via(proxy, table).put(make_record("kiro", "1.0"))
    message = str(caught.value)
    assert "(ValidationError: Item size to update has exceeded the limit)" in message
    assert "try again" not in message
    assert proxy.count("TransactWriteItems") == 1


def test_an_item_larger_than_dynamodb_allows_is_a_clear_error(table):
    # debrepo takes control files of up to 512 KiB (apt reads stanzas of up to 1 MiB);
    # a DynamoDB item holds 400 KiB, names and values together. DynamoDB itself would
    # refuse the whole transaction without naming the package.
    text = "an enormous description\n" + "\n".join(" " + "y" * 80 for _ in range(6000))
    store = DynamoDBMetadataStore(table)
    with pytest.raises(StoreError) as caught:
        store.put_many([make_record("small", "1.0"), make_record("kiro", "1.0", description=text)])
    message = str(caught.value)
    assert message.startswith("kiro#1.0: its record is 48"), message
    assert f"and a DynamoDB item (table {table}) holds at most 400 KiB" in message
    kib = -(-len(text.encode()) // 1024)
    assert message.endswith(f"The largest part is description ({kib} KiB)"), message
    assert store.package_ids() == set()


def test_a_cancellation_without_reasons_is_still_understood(table, proxy):
    store = via(proxy, table)
    store.put(make_record("kiro", "1.0"))
    proxy.fail("TransactionCanceledException", action="TransactWriteItems", times=2)
    with pytest.raises(DuplicatePackageError):
        store.put(make_record("kiro", "1.0"))
    assert store.delete("kiro#9.9") is False


# -- failures ----------------------------------------------------------------------------
def test_missing_table_is_a_clear_error(unique_name):
    store = DynamoDBMetadataStore(unique_name)
    operations = {
        "all": store.all,
        "snapshot": store.snapshot,
        "package_ids": store.package_ids,
        "revision": store.revision,
        "get": lambda: store.get("kiro#1.0"),
        "by_name": lambda: store.by_name("kiro"),
        "put": lambda: store.put(make_record("kiro", "1.0")),
        "delete": lambda: store.delete("kiro#1.0"),
    }
    for name, operation in operations.items():
        with pytest.raises(StoreError) as caught:
            operation()
        message = str(caught.value)
        assert message == (
            f"DynamoDB table {unique_name} not found in region {REGION}; create it with "
            "`infra/terraform` or `debrepo.store.dynamodb.create_table`"
        ), name


def test_access_denied_names_the_action_and_the_table(table, proxy):
    store = via(proxy, table)
    proxy.fail(
        "AccessDeniedException",
        action="Scan",
        message=f"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
        f"dynamodb:Scan on resource: arn:aws:dynamodb:{REGION}:123456789012:table/{table}",
    )
    with pytest.raises(StoreError) as caught:
        store.all()
    message = str(caught.value)
    assert f"access denied: dynamodb:Scan on table {table} in region {REGION}" in message
    assert "user/ci is not authorized" in message
    assert proxy.count("Scan") == 1  # not retried

    proxy.fail("AccessDeniedException", action="TransactWriteItems")
    with pytest.raises(StoreError) as caught:
        store.put(make_record("kiro", "1.0"))
    assert f"dynamodb:TransactWriteItems on table {table}" in str(caught.value)


def test_rejected_credentials_name_the_action_and_never_a_key(table, proxy):
    proxy.fail(
        "UnrecognizedClientException",
        action="GetItem",
        message="The security token included in the request is invalid: AKIAIOSFODNN7EXAMPLE",
    )
    with pytest.raises(StoreError) as caught:
        via(proxy, table).get("kiro#1.0")
    message = str(caught.value)
    assert f"dynamodb:GetItem on table {table}" in message
    assert "UnrecognizedClientException" in message
    assert "AKIAIOSFODNN7EXAMPLE" not in message and "<access key>" in message
    assert "testing" not in message  # the secret key of the test credentials


def test_query_by_name_without_describe_permission_scans(table, proxy):
    store = via(proxy, table)
    store.put_many([make_record("kiro", "1.0"), make_record("kiro-cli", "1.0")])
    proxy.fail("AccessDeniedException", action="DescribeTable")
    assert [r.package_id for r in store.by_name("kiro")] == ["kiro#1.0"]
    assert proxy.count("Query") == 0 and proxy.count("Scan") == 1


def test_throttling_is_survived_by_retrying(table, proxy):
    store = via(proxy, table)
    proxy.fail("ProvisionedThroughputExceededException", action="TransactWriteItems", times=1)
    proxy.fail("ThrottlingException", action="TransactWriteItems", times=1)
    store.put(make_record("kiro", "1.0"))
    assert proxy.count("TransactWriteItems") == 3
    assert proxy.injected == ["TransactWriteItems", "TransactWriteItems"]
    assert store.revision().startswith("dynamodb:1:")  # the write happened once
    assert [r.package_id for r in store.all()] == ["kiro#1.0"]


def test_throttling_beyond_the_retry_budget_is_a_clear_error(table, proxy):
    proxy.fail("ThrottlingException", action="GetItem")
    with pytest.raises(StoreError) as caught:
        via(proxy, table).get("kiro#1.0")
    message = str(caught.value)
    assert f"DynamoDB throttled dynamodb:GetItem on table {table} in region {REGION}" in message
    assert "after 4 attempts" in message
    assert proxy.count("GetItem") == 4  # the seed's 3 retries


def test_unreachable_endpoint_is_a_clear_error(unique_name):
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = DynamoDBMetadataStore(unique_name, endpoint_url=endpoint)
    with pytest.raises(StoreError) as caught:
        store.all()
    message = str(caught.value)
    assert f"cannot reach DynamoDB at {endpoint}" in message
    assert unique_name in message and "\n" not in message


def test_no_region_is_a_clear_error(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    with pytest.raises(StoreError) as caught:
        DynamoDBMetadataStore("kiro-debian-repo-manager-versions-dev")
    assert str(caught.value) == (
        "DynamoDB table kiro-debian-repo-manager-versions-dev: no AWS region configured; "
        "set AWS_REGION (or AWS_DEFAULT_REGION)"
    )


def test_aws_region_alone_is_enough_to_create_and_open_a_table(monkeypatch, tmp_path, unique_name):
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # botocore's own variable
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # what the Lambda runtime and CLIs set
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    create_table(unique_name)
    store = DynamoDBMetadataStore(unique_name)
    store.put(make_record("kiro", "1.0"))
    assert store.package_ids() == {"kiro#1.0"}
    assert store.region == "eu-west-1"


def test_no_credentials_is_a_clear_error(table, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    with pytest.raises(StoreError) as caught:
        DynamoDBMetadataStore(table).get("kiro#1.0")
    message = str(caught.value)
    assert f"no usable AWS credentials for dynamodb:GetItem on table {table}" in message


# -- opening the store -------------------------------------------------------------------
def test_open_store_from_a_url(table, monkeypatch):
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    store = open_store(f"dynamodb://{table}")
    assert isinstance(store, DynamoDBMetadataStore)
    assert store.description == f"dynamodb://{table}"
    store.put(make_record("kiro", "1.0"))  # endpoint from AWS_ENDPOINT_URL: the moto server
    assert store.package_ids() == {"kiro#1.0"}

    monkeypatch.delenv("AWS_REGION")
    elsewhere = open_store(f"dynamodb://{table}")
    with pytest.raises(StoreError) as caught:
        elsewhere.all()
    assert "not found in region eu-west-1" in str(caught.value)


@pytest.mark.parametrize("url", ["dynamodb://", "dynamodb://table/extra", "dynamodb://x"])
def test_malformed_urls_are_configuration_errors(url):
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    assert url in str(caught.value)


def test_a_given_session_is_used(table, moto_endpoint):
    session = boto3.session.Session(
        aws_access_key_id="other", aws_secret_access_key="other", region_name=REGION
    )
    store = DynamoDBMetadataStore(table, session=session, endpoint_url=moto_endpoint)
    store.put(make_record("kiro", "1.0"))
    assert DynamoDBMetadataStore(table).package_ids() == {"kiro#1.0"}
