"""What the Lambda tests share: a deployment on the moto server, an invocation context,
the handler's log stream, and ways to read back what a run left in AWS.

A `Deployment` is what infra/terraform creates, made on moto over HTTP: the bucket, the
DynamoDB table (`create_table`), an SNS topic with an SQS queue subscribed (moto delivers
SNS to SQS, so notifications come back as real messages), a Secrets Manager secret
holding an armoured signing key, and a task root holding config/packages and templates
as the deployment zip does. `environment()` is the function's environment variables.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import boto3

from debrepo.signing.openpgp import generate_secret_key
from debrepo.store.dynamodb import create_table
from tests.sources.conftest import make_checkout

REGION = "us-east-1"
KEY_USER_ID = "Kiro Repository Signing Key <support@kiro.dev>"
DISTS = "dists/stable"
RELEASE_FILES = (f"{DISTS}/Release", f"{DISTS}/Release.gpg", f"{DISTS}/InRelease")
PACKAGES = f"{DISTS}/main/binary-amd64/Packages"
LOCK_ID = "__debrepo__#lock"


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the Lambda context object the handler and Powertools read."""

    function_name: str = "kiro-debian-repo-manager-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:kiro-debian-repo-manager-test"
    )
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/kiro-debian-repo-manager-test"
    log_stream_name: str = "2026/11/24/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass(frozen=True)
class Notification:
    subject: str
    message: dict[str, Any]


def clients(endpoint: str) -> dict[str, Any]:
    """Test-side clients that always talk to moto directly (never through a proxy)."""
    return {
        name: boto3.client(name, region_name=REGION, endpoint_url=endpoint)
        for name in ("s3", "dynamodb", "sns", "sqs", "secretsmanager")
    }


@dataclass
class Deployment:
    name: str
    endpoint: str
    task_root: Path
    secret_key: bytes
    topic_arn: str
    queue_url: str
    secret_id: str
    acl_mode: str = "public-read"
    aws: dict[str, Any] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        return self.name

    @property
    def table(self) -> str:
        return f"{self.name}-versions"

    @property
    def s3(self) -> Any:
        return self.aws["s3"]

    @property
    def dynamodb(self) -> Any:
        return self.aws["dynamodb"]

    def environment(self) -> dict[str, str]:
        """The function's environment, as infra/terraform sets it."""
        return {
            "S3_BUCKET": self.bucket,
            "DYNAMODB_TABLE": self.table,
            "AWS_REGION": REGION,
            "SNS_TOPIC_ARN": self.topic_arn,
            "SIGNING_KEY_SECRET_ID": self.secret_id,
            "S3_ACL_MODE": self.acl_mode,
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "POWERTOOLS_SERVICE_NAME": "debrepo",
            "POWERTOOLS_METRICS_NAMESPACE": "debrepo",
        }

    # -- reading back ---------------------------------------------------------------------
    def objects(self) -> dict[str, int]:
        """Every object of the bucket -> its size."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", ())}

    def get(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def release_files(self) -> dict[str, bytes]:
        """The signed Release files that exist, by key."""
        keys = self.objects()
        return {key: self.get(key) for key in RELEASE_FILES if key in keys}

    def download(self, folder: Path, *, skip_prefix: str = "staging/") -> list[str]:
        """Every object but those under `skip_prefix` into `folder`, as a web root."""
        written = []
        for key in sorted(self.objects()):
            if key.startswith(skip_prefix):
                continue
            target = folder / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.get(key))
            written.append(key)
        return written

    def notifications(self) -> list[Notification]:
        """Every message the topic delivered to the queue since the last call."""
        sqs = self.aws["sqs"]
        found: list[Notification] = []
        while True:
            response = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = response.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append(Notification(envelope["Subject"], json.loads(envelope["Message"])))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def lock_item(self) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"package_id": {"S": LOCK_ID}}, ConsistentRead=True
        ).get("Item")
        return dict(item) if item else None


def create_deployment(
    name: str, endpoint: str, root: Path, metadata_endpoint: str, *, acl_mode: str = "public-read"
) -> Deployment:
    aws = clients(endpoint)
    aws["s3"].create_bucket(Bucket=name)
    create_table(f"{name}-versions", region=REGION, endpoint_url=endpoint)
    topic_arn = aws["sns"].create_topic(Name=f"{name}-events")["TopicArn"]
    queue_url = aws["sqs"].create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = aws["sqs"].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    aws["sns"].subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    secret_key = generate_secret_key(KEY_USER_ID)
    secret_id = aws["secretsmanager"].create_secret(
        Name=f"{name}/signing-key", SecretString=secret_key.decode("ascii")
    )["ARN"]
    task_root = root / "task"
    make_checkout(task_root, metadata_endpoint)
    return Deployment(
        name=name,
        endpoint=endpoint,
        task_root=task_root,
        secret_key=secret_key,
        topic_arn=topic_arn,
        queue_url=queue_url,
        secret_id=secret_id,
        acl_mode=acl_mode,
        aws=aws,
    )


# -- the handler's log stream ------------------------------------------------------------
_powertools: dict[str, Any] = {}


@contextmanager
def lambda_module(stream: TextIO | None = None) -> Iterator[ModuleType]:
    """`debrepo.aws_lambda`, its JSON log lines written to `stream` (default: the current
    sys.stdout, which is what capsys reads).

    Importing the module configures the `debrepo` logger for Powertools (a stdout handler,
    level INFO) for the rest of the process; the logger is put back as it was afterwards,
    so tests that read debrepo's log records with caplog are not affected."""
    std = logging.getLogger("debrepo")
    saved = (list(std.handlers), std.level, std.propagate)
    from debrepo import aws_lambda

    if not _powertools:  # as the import configured it
        _powertools.update(handler=aws_lambda.logger.registered_handler, level=std.level)
    handler = _powertools["handler"]
    assert isinstance(handler, logging.StreamHandler)
    std.handlers = [handler]
    std.setLevel(_powertools["level"])
    previous = handler.setStream(stream or sys.stdout)
    try:
        yield aws_lambda
    finally:
        handler.setStream(previous)
        std.handlers, std.level, std.propagate = saved


def parse_output(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The handler's stdout as (log records, EMF metric blobs); every line must be JSON."""
    records, metrics = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"a line of the handler's output is not JSON: {line!r}") from exc
        assert isinstance(document, dict), line
        (metrics if "_aws" in document else records).append(document)
    return records, metrics


def metric_values(blobs: list[dict[str, Any]]) -> dict[str, float]:
    """Metric name -> total over the EMF blobs given (a value may be a list of values)."""
    values: dict[str, float] = {}
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                total = sum(value) if isinstance(value, list) else value
                values[metric["Name"]] = values.get(metric["Name"], 0.0) + float(total)
    return values
