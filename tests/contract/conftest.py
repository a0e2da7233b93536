"""One `store` fixture, one fresh store per backend: every contract test runs on each.

The DynamoDB store talks HTTP to the session's moto server on 127.0.0.1 (fixtures of
tests/aws/conftest.py); its table is created per test by `create_table`, as operators do.
A test that must damage an item the way a migration or a hand edit could writes it
behind the store's back: raw SQL for SQLite, a plain PutItem for DynamoDB.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from debrepo.store.base import BaseMetadataStore
from debrepo.store.dynamodb import DynamoDBMetadataStore, create_table
from debrepo.store.sqlite import SqliteMetadataStore
from tests.aws.conftest import (  # noqa: F401 - fixtures, shared with tests/aws
    aws_environment,
    dynamodb_client,
    moto_endpoint,
    unique_name,
)

BACKENDS = ("sqlite", "dynamodb")


@dataclass
class Backend:
    """A fresh store, and a way to write an item as is, past every check of the store."""

    kind: str
    store: BaseMetadataStore
    write_raw: Callable[[Mapping[str, Any]], None]
    close: Callable[[], None]


def sqlite_backend(path: Path) -> Backend:
    store = SqliteMetadataStore(path)

    def write_raw(item: Mapping[str, Any]) -> None:
        columns = dict(item)
        if isinstance(columns.get("control_fields"), list):
            columns["control_fields"] = json.dumps(columns["control_fields"])
        connection = sqlite3.connect(path)
        with connection:
            connection.execute(
                f"INSERT INTO packages ({', '.join(columns)}) "  # noqa: S608 - test data
                f"VALUES ({', '.join('?' for _ in columns)})",
                tuple(columns.values()),
            )
        connection.close()

    return Backend("sqlite", store, write_raw, store.close)


def dynamodb_backend(table_name: str, client: Any) -> Backend:
    create_table(table_name)
    store = DynamoDBMetadataStore(table_name)
    serializer = TypeSerializer()

    def write_raw(item: Mapping[str, Any]) -> None:
        client.put_item(
            TableName=table_name,
            Item={name: serializer.serialize(value) for name, value in item.items()},
        )

    return Backend("dynamodb", store, write_raw, store.close)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        opened = sqlite_backend(tmp_path / "store" / "metadata.db")
    else:
        opened = dynamodb_backend(
            request.getfixturevalue("unique_name"), request.getfixturevalue("dynamodb_client")
        )
    yield opened
    opened.close()


@pytest.fixture
def store(backend: Backend) -> BaseMetadataStore:
    return backend.store
