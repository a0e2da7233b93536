"""A real moto server on 127.0.0.1 for the AWS backends: boto3 talks HTTP to it.

Every test gets fresh resource names (the server lives for the whole session), and
AWS credentials that can only ever reach this server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
_names = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """Dummy credentials and the moto endpoint for every AWS client a test creates."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_endpoint


@pytest.fixture
def unique_name() -> str:
    """A name no other test in this session uses (buckets, tables, topics, secrets)."""
    return f"debrepo-test-{next(_names)}"


@pytest.fixture
def s3_client(moto_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def dynamodb_client(moto_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint)
