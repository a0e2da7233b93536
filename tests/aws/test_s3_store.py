"""objects/s3.py against moto in server mode: the object store contract, and a publish into
S3 (seed Properties 10-12, 15-17), through real boto3 clients and HTTP on 127.0.0.1.

Requests are observed, never changed: a botocore `before-send` handler records each
request's operation, URL and headers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from debrepo import app
from debrepo.app import Workspace
from debrepo.core.layout import Delivery, delivery_for, pool_path
from debrepo.core.records import Provenance
from debrepo.errors import ConfigError, ObjectStoreError, StoreError
from debrepo.factory import open_object_store
from debrepo.objects import filesystem
from debrepo.objects.filesystem import FilesystemObjectStore
from debrepo.objects.s3 import PART_SIZE, TRANSFER_CONCURRENCY, S3ObjectStore
from debrepo.ports import ObjectInfo
from debrepo.services.ingest import Destination, IngestItem, ingest_files
from debrepo.services.publish import POOL_STATE_KEY, STATE_KEY, PublishState
from tests.aws import served
from tests.conftest import FIXED_NOW, settings_for
from tests.unit.helpers import make_record
from tests.unit.test_services_ingest import FailingRecordStore, ingest_alpha_and_beta

DELIVERY = delivery_for("pool/main/h/hello/hello_1.0_amd64.deb")
DISTS = "dists/stable"
BINARY = f"{DISTS}/main/binary-amd64"
RELEASE_FILES = [f"{DISTS}/Release.gpg", f"{DISTS}/Release", f"{DISTS}/InRelease"]
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
WRITES = {
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "DeleteObject",
    "PutObjectAcl",
}
UNSAFE_KEYS = [
    "",
    "/etc/passwd",
    "..",
    "../outside",
    "a/../../outside",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "a\x00b",
    "a\\..\\b",
    "k" * 1025,
]

DEB_TYPE = "application/vnd.debian.binary-package"  # what apt and browsers expect


def at(hours: int):
    return FIXED_NOW + timedelta(hours=hours)


@dataclass(frozen=True)
class Sent:
    operation: str
    method: str
    key: str  # the S3 key the request addressed, "" for bucket-level requests
    headers: dict[str, str]


class Recorder:
    """Records every request the given stores' clients send (retries included)."""

    def __init__(self, *stores: S3ObjectStore) -> None:
        self.sent: list[Sent] = []
        for store in stores:
            store.client.meta.events.register("before-send.s3", self._record)

    def _record(self, request: Any, event_name: str, **_: Any) -> None:
        url = urlsplit(request.url)
        path = unquote(url.path).lstrip("/")
        headers = {
            str(name).lower(): value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        # A listing is addressed to the bucket: its prefix stands for the key.
        key = path.partition("/")[2] or parse_qs(url.query).get("prefix", [""])[0]
        self.sent.append(Sent(event_name.rsplit(".", 1)[-1], request.method, key, headers))

    def operations(self) -> Counter[str]:
        return Counter(sent.operation for sent in self.sent)

    def writes(self) -> list[tuple[str, str]]:
        return [(s.operation, s.key) for s in self.sent if s.operation in WRITES]

    def clear(self) -> None:
        self.sent.clear()


@pytest.fixture
def bucket(s3_client, unique_name) -> str:
    s3_client.create_bucket(Bucket=unique_name)
    return unique_name


@pytest.fixture
def store(bucket) -> S3ObjectStore:
    return S3ObjectStore(bucket, "apt")


def bucket_keys(s3_client, bucket: str) -> dict[str, int]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", ())}


def public_grants(s3_client, bucket: str, key: str) -> list[str]:
    grants = s3_client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return [g["Permission"] for g in grants if g["Grantee"].get("URI") == ALL_USERS]


def big_file(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        for offset in range(0, size, 1 << 20):
            handle.write(os.urandom(min(1 << 20, size - offset)))
    return path


def sha256_streamed(store: S3ObjectStore, key: str) -> str:
    digest = hashlib.sha256()
    with store.open(key) as reader:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- the object store contract ---------------------------------------------------------


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused_before_any_request(store, tmp_path, key):
    local = tmp_path / "f"
    local.write_bytes(b"x")
    operations = [
        lambda: store.get(key),
        lambda: store.stat(key),
        lambda: store.put(key, b"x", DELIVERY),
        lambda: store.put_file(key, local, DELIVERY),
        lambda: store.delete(key),
        lambda: store.same_bytes(key, b"x"),
        lambda: store.copy_from(store, "safe", key, DELIVERY),
        lambda: store.copy_from(store, key, "safe", DELIVERY),
    ]
    for operation in operations:
        with pytest.raises(ObjectStoreError) as caught:
            operation()
        assert "is not a safe object key under s3://" in str(caught.value)
    with pytest.raises(ObjectStoreError), store.open(key):
        pass
    assert store.request_count == 0


def test_description_and_keys_live_under_the_prefix(bucket, s3_client):
    store = S3ObjectStore(bucket, "/apt/repo/")
    assert store.description == f"s3://{bucket}/apt/repo"
    assert S3ObjectStore(bucket).description == f"s3://{bucket}/"
    store.put("dists/stable/Release", b"Origin: Test\n", delivery_for("dists/stable/Release"))
    assert set(bucket_keys(s3_client, bucket)) == {"apt/repo/dists/stable/Release"}


@pytest.mark.parametrize("prefix", ["a/../b", "a//b", "./x"])
def test_unusable_prefixes_are_refused(bucket, prefix):
    with pytest.raises(ConfigError, match=r"not a usable key prefix"):
        S3ObjectStore(bucket, prefix)


def test_put_get_stat_open_round_trip(store):
    store.put("dists/stable/Release", b"Origin: Test\n", DELIVERY)
    assert store.get("dists/stable/Release") == b"Origin: Test\n"
    first = store.stat("dists/stable/Release")
    assert first is not None and (first.key, first.size) == ("dists/stable/Release", 13)
    with store.open("dists/stable/Release") as handle:
        assert handle.read(7) == b"Origin:"
        assert handle.read() == b" Test\n"
    store.put("dists/stable/Release", b"replaced", DELIVERY)
    assert store.get("dists/stable/Release") == b"replaced"
    # The version (ETag) tells a rewrite apart without reading the object.
    second = store.stat("dists/stable/Release")
    assert second is not None and second.version and first.version
    assert second.version != first.version


def test_every_write_carries_its_delivery(store, s3_client, bucket, tmp_path):
    delivery = Delivery("text/x-test", "max-age=5", (("package", "hello"), ("version", "2:1.0")))
    local = tmp_path / "local"
    local.write_bytes(b"from disk")
    other = FilesystemObjectStore(tmp_path / "folder")
    other.put("file", b"from a folder", DELIVERY)
    store.put("put", b"bytes", delivery)
    store.put_file("put_file", local, delivery)
    store.copy_from(store, "put", "copied", delivery)
    store.copy_from(other, "file", "streamed", delivery)
    for key in ("put", "put_file", "copied", "streamed"):
        head = s3_client.head_object(Bucket=bucket, Key=f"apt/{key}")
        assert head["ContentType"] == "text/x-test", key
        assert head["CacheControl"] == "max-age=5", key
        assert head["Metadata"] == {"package": "hello", "version": "2:1.0"}, key
    assert store.get("streamed") == b"from a folder"
    assert store.get("put_file") == b"from disk"


def test_missing_objects(store):
    assert store.get("nothing/here") is None
    assert store.stat("nothing/here") is None
    assert store.same_bytes("nothing/here", b"") is False
    missing = r"s3://.*/apt/nothing/here: no such object"
    with pytest.raises(ObjectStoreError, match=missing), store.open("nothing/here"):
        pass


def test_key_below_an_object_is_missing_not_an_error(store):
    store.put("file", b"x", DELIVERY)
    assert store.get("file/below") is None
    assert store.stat("file/below") is None


def test_list_filters_by_prefix_and_strips_the_store_prefix(store, s3_client, bucket):
    store.put("dists/stable/Release", b"r", DELIVERY)
    store.put("dists/stable/main/binary-amd64/Packages", b"pp", DELIVERY)
    store.put("pool/main/h/hello/hello_1.0_amd64.deb", b"deb", DELIVERY)
    s3_client.put_object(Bucket=bucket, Key="apt/pool/", Body=b"")  # a console folder marker
    s3_client.put_object(Bucket=bucket, Key="aptly/pool/x.deb", Body=b"other store")
    s3_client.put_object(Bucket=bucket, Key="apt/poolside", Body=b"not in pool/")
    s3_client.put_object(Bucket=bucket, Key="apt/odd//key", Body=b"no folder holds this")
    everything = {info.key: info.size for info in store.list("")}
    assert everything == {
        "dists/stable/Release": 1,
        "dists/stable/main/binary-amd64/Packages": 2,
        "pool/main/h/hello/hello_1.0_amd64.deb": 3,
        "poolside": 12,
    }
    expected = [ObjectInfo("pool/main/h/hello/hello_1.0_amd64.deb", 3)]
    assert list(store.list("pool/")) == expected
    assert list(store.list("pool")) == expected
    assert list(store.list("absent/")) == []
    with pytest.raises(ObjectStoreError, match=r"not a safe object key"):
        list(store.list("../"))


def test_same_bytes_is_one_head_request(store):
    written = store.put("k", b"abc", DELIVERY)
    stamp = store.stat("k")
    assert stamp is not None and written == stamp.version  # the ETag the write answered
    recorder = Recorder(store)
    assert store.same_bytes("k", b"abc")
    assert not store.same_bytes("k", b"abd")
    assert not store.same_bytes("k", b"abcd")
    assert recorder.operations() == Counter({"HeadObject": 3})


def test_same_bytes_of_a_multipart_object_reads_only_when_sizes_match(store, s3_client, tmp_path):
    data = big_file(tmp_path / "big", PART_SIZE + 1).read_bytes()
    store.put_file("big", tmp_path / "big", DELIVERY)
    assert "-" in s3_client.head_object(Bucket=store.bucket, Key="apt/big")["ETag"]
    recorder = Recorder(store)
    assert store.same_bytes("big", data)
    assert recorder.operations() == Counter({"HeadObject": 1, "GetObject": 1})
    assert not store.same_bytes("big", data[:-1] + bytes([data[-1] ^ 1]))
    recorder.clear()
    assert not store.same_bytes("big", data[:-1])
    assert recorder.operations() == Counter({"HeadObject": 1})


def test_delete(store):
    store.put("a/b", b"x", DELIVERY)
    store.delete("a/b")
    assert store.get("a/b") is None
    store.delete("a/b")
    store.delete("never/existed")


def test_copy_within_the_bucket_is_one_server_side_copy(bucket, s3_client):
    repo = S3ObjectStore(bucket, "apt")
    staging = S3ObjectStore(bucket)
    staging.put("staging/hello/hello_1.0_amd64.deb", b"package bytes", delivery_for("staging/x"))
    recorder = Recorder(repo, staging)
    repo.copy_from(staging, "staging/hello/hello_1.0_amd64.deb", "pool/hello.deb", DELIVERY)
    assert [(s.operation, s.key) for s in recorder.sent] == [("CopyObject", "apt/pool/hello.deb")]
    (copy,) = recorder.sent
    assert copy.headers["x-amz-metadata-directive"] == "REPLACE"
    assert unquote(copy.headers["x-amz-copy-source"]).lstrip("/") == (
        f"{bucket}/staging/hello/hello_1.0_amd64.deb"
    )
    assert repo.get("pool/hello.deb") == b"package bytes"
    head = s3_client.head_object(Bucket=bucket, Key="apt/pool/hello.deb")
    assert head["CacheControl"] == served.CACHED_FOR_A_YEAR
    source = s3_client.head_object(Bucket=bucket, Key="staging/hello/hello_1.0_amd64.deb")
    assert source["CacheControl"] == served.REVALIDATED_EACH_MINUTE
    assert head["ETag"] == source["ETag"]


def test_copy_from_a_folder_streams_multipart_when_large(store, tmp_path, s3_client):
    folder = FilesystemObjectStore(tmp_path / "folder")
    payload = os.urandom(PART_SIZE + 5)
    folder.put("x.deb", payload, DELIVERY)
    recorder = Recorder(store)
    store.copy_from(folder, "x.deb", "pool/x.deb", DELIVERY)
    assert recorder.operations()["CreateMultipartUpload"] == 1
    assert recorder.operations()["UploadPart"] == 2
    assert sha256_streamed(store, "pool/x.deb") == hashlib.sha256(payload).hexdigest()


def test_copy_from_another_bucket_streams(store, s3_client, unique_name):
    s3_client.create_bucket(Bucket=f"{unique_name}-other")
    other = S3ObjectStore(f"{unique_name}-other")
    other.put("staging/a.deb", b"elsewhere", DELIVERY)
    recorder = Recorder(store)
    store.copy_from(other, "staging/a.deb", "pool/a.deb", DELIVERY)
    assert recorder.operations() == Counter({"PutObject": 1})
    assert store.get("pool/a.deb") == b"elsewhere"


def test_a_folder_copies_from_s3(store, tmp_path):
    """Streamed in chunks (no folder to link from), and nothing left of a failed copy."""
    payload = os.urandom(3 * filesystem.COPY_CHUNK + 5)
    store.put("pool/a.deb", payload, DELIVERY)
    folder = FilesystemObjectStore(tmp_path / "folder")
    folder.copy_from(store, "pool/a.deb", "pool/a.deb", DELIVERY)
    assert folder.get("pool/a.deb") == payload
    with pytest.raises(ObjectStoreError, match=r"s3://.*/apt/pool/absent.deb: no such object"):
        folder.copy_from(store, "pool/absent.deb", "pool/b.deb", DELIVERY)
    assert folder.get("pool/b.deb") is None
    assert [p.name for p in (tmp_path / "folder").rglob("*") if p.is_file()] == ["a.deb"]


def test_a_failed_batch_deletes_what_it_uploaded_to_s3(bucket, s3_client, tmp_path, make_deb):
    """The records cannot be written: the files already uploaded go again."""
    ws = s3_workspace(tmp_path, bucket)
    recorder = Recorder(ws.staging)
    with pytest.raises(StoreError, match="disk I/O error; nothing was added"):
        ingest_alpha_and_beta(make_deb, FailingRecordStore(ws.store), ws.staging, kind="staging")
    uploaded = {key for operation, key in recorder.writes() if operation == "PutObject"}
    assert uploaded == {"staging/alpha/alpha_1.0_amd64.deb", "staging/beta/beta_1.0_amd64.deb"}
    assert bucket_keys(s3_client, bucket) == {}
    assert ws.store.package_ids() == set()


def test_ingest_writes_the_pool_file_into_s3(bucket, s3_client, tmp_path, make_deb):
    ws = s3_workspace(tmp_path, bucket)
    deb = make_deb("alpha", "1.0")
    records = ingest_files(
        [IngestItem(deb, Provenance(deb_url="file:///x", package_type="manual"))],
        store=ws.store,
        target=ws.staging,
        destination=Destination("staging", "main", ("amd64",)),
        configs={},
        now=FIXED_NOW,
    )
    assert [r.package_id for r in records] == ["alpha#1.0"]
    body = s3_client.get_object(Bucket=bucket, Key="staging/alpha/alpha_1.0_amd64.deb")["Body"]
    assert body.read() == deb.read_bytes()


def test_copy_from_a_missing_source(store, tmp_path):
    with pytest.raises(ObjectStoreError, match=r"s3://.*/apt/pool/absent.deb: no such object"):
        store.copy_from(store, "pool/absent.deb", "kiro-repo.deb", DELIVERY)
    with pytest.raises(ObjectStoreError, match=r"no such file"):
        store.copy_from(FilesystemObjectStore(tmp_path / "f"), "absent", "x", DELIVERY)
    assert store.get("kiro-repo.deb") is None
    assert store.get("x") is None


def test_put_file_copies(tmp_path, store):
    source = tmp_path / "local.deb"
    source.write_bytes(b"local")
    store.put_file("pool/local.deb", source, DELIVERY)
    assert store.get("pool/local.deb") == b"local"
    assert source.exists()


def test_put_file_moves(tmp_path, store):
    source = tmp_path / "scratch.deb"
    source.write_bytes(b"moved")
    store.put_file("pool/moved.deb", source, DELIVERY, move=True)
    assert store.get("pool/moved.deb") == b"moved"
    assert not source.exists()


def test_put_file_missing_source(tmp_path, store):
    with pytest.raises(ObjectStoreError) as caught:
        store.put_file("pool/x.deb", tmp_path / "absent.deb", DELIVERY, move=True)
    assert "cannot write from" in str(caught.value)
    assert str(tmp_path / "absent.deb") in str(caught.value)
    assert store.stat("pool/x.deb") is None


def test_request_count_counts_every_request_and_resets(store):
    recorder = Recorder(store)
    store.put("a", b"1", DELIVERY)
    store.get("a")
    store.stat("missing")
    assert store.request_count == 3 == len(recorder.sent)
    assert store.requests_by_operation() == {"PutObject": 1, "GetObject": 1, "HeadObject": 1}
    assert store.reset_request_count() == 3
    assert store.request_count == 0
    assert store.requests_by_operation() == {}


# -- large files -----------------------------------------------------------------------

UPLOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys, tracemalloc
    from pathlib import Path
    from debrepo.core.layout import delivery_for
    from debrepo.objects.s3 import S3ObjectStore

    bucket, key, path = sys.argv[1:]
    store = S3ObjectStore(bucket, "apt")
    operations = []
    store.client.meta.events.register(
        "before-send.s3", lambda event_name, **_: operations.append(event_name.split(".")[-1])
    )
    store.stat(key)  # the client's lazily loaded parts are loaded before measuring
    store.reset_request_count()
    operations.clear()
    tracemalloc.start()
    store.put_file(key, Path(path), delivery_for(key))
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"peak": peak, "operations": operations, "requests": store.request_count}))
    """
)


def test_large_file_streams_as_a_multipart_upload_in_bounded_memory(
    store, s3_client, bucket, tmp_path
):
    size = 40_000_000  # five parts of at most 8 MiB
    path = big_file(tmp_path / "kiro_1.0_amd64.deb", size)
    key = "pool/main/k/kiro/kiro_1.0_amd64.deb"
    # The moto server lives in this process; measuring in a child process counts only
    # what the uploading side allocates.
    child = subprocess.run(
        [sys.executable, "-c", UPLOAD_SCRIPT, bucket, key, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    operations = Counter(result["operations"])
    assert operations["CreateMultipartUpload"] == 1
    assert operations["UploadPart"] == 5  # 8 MiB parts
    assert operations["CompleteMultipartUpload"] == 1
    assert "PutObject" not in operations
    assert result["requests"] == len(result["operations"])
    # Each part in flight is read from disk in chunks: memory is bounded by the number
    # of parts in flight, not by the size of the file.
    bound = TRANSFER_CONCURRENCY * 3 * 2**20
    assert bound < size / 3
    assert result["peak"] < bound, f"peak {result['peak']} bytes for a {size} byte file"
    head = s3_client.head_object(Bucket=bucket, Key=f"apt/{key}")
    assert head["ContentLength"] == size
    assert head["ETag"].endswith('-5"')
    assert head["ContentType"] == DEB_TYPE
    assert head["CacheControl"] == served.CACHED_FOR_A_YEAR
    assert sha256_streamed(store, key) == hashlib.sha256(path.read_bytes()).hexdigest()


# -- ACL modes (seed Property 17) ------------------------------------------------------


def test_public_read_mode_makes_objects_public_except_under_private_prefixes(
    bucket, s3_client, tmp_path
):
    store = S3ObjectStore(bucket, acl_mode="public-read", private_prefixes=("staging/", "keep/"))
    local = tmp_path / "f.deb"
    for key in ("index.html", "staging/kiro-repo/a.deb", "keep/x", "pool/main/a/a/a_1_all.deb"):
        local.write_bytes(b"x")
        store.put_file(key, local, DELIVERY)
        store.put(f"{key}.put", b"x", DELIVERY)
        store.copy_from(store, key, f"{key}.copy", DELIVERY)
    keys = bucket_keys(s3_client, bucket)
    assert len(keys) == 12  # each of the 4 keys written, put and copied
    for key in keys:
        private = key.startswith(("staging/", "keep/"))
        assert public_grants(s3_client, bucket, key) == ([] if private else ["READ"]), key


def test_private_prefix_applies_to_the_bucket_key_as_well(bucket, s3_client):
    store = S3ObjectStore(bucket, "staging", acl_mode="public-read")
    store.put("kiro-repo/a.deb", b"x", DELIVERY)
    assert public_grants(s3_client, bucket, "staging/kiro-repo/a.deb") == []


def test_bucket_policy_mode_sends_no_acl(bucket, s3_client, tmp_path):
    store = S3ObjectStore(bucket, "apt")
    recorder = Recorder(store)
    store.put("index.html", b"x", DELIVERY)
    store.put_file("pool/big.deb", big_file(tmp_path / "big", PART_SIZE + 1), DELIVERY)
    store.copy_from(store, "index.html", "kiro-repo.deb", DELIVERY)
    assert recorder.operations()["CreateMultipartUpload"] == 1
    for sent in recorder.sent:
        assert not any(h == "x-amz-acl" or h.startswith("x-amz-grant") for h in sent.headers)
    # moto 5.2.5 answers GetObjectAcl on an object completed from a multipart upload
    # without an ACL with a 500; the headers above are the proof for that one.
    for key in set(bucket_keys(s3_client, bucket)) - {"apt/pool/big.deb"}:
        assert public_grants(s3_client, bucket, key) == [], key


def test_acl_mode_is_checked(bucket):
    with pytest.raises(ConfigError, match=r"'public' is not one of public-read, bucket-policy"):
        S3ObjectStore(bucket, acl_mode="public")  # type: ignore[arg-type]


def test_bucket_with_acls_disabled(s3_client, unique_name):
    """Real S3 refuses ACLs on such a bucket; moto 5.2.5 stores them. Either way
    bucket-policy mode writes there, and a refusal is reported clearly."""
    s3_client.create_bucket(Bucket=unique_name, ObjectOwnership="BucketOwnerEnforced")
    public = S3ObjectStore(unique_name, acl_mode="public-read")
    try:
        public.put("index.html", b"x", DELIVERY)
    except ObjectStoreError as exc:
        assert "the bucket has ACLs disabled; use acl mode bucket-policy" in str(exc)
    else:
        assert public_grants(s3_client, unique_name, "index.html") == ["READ"]
    S3ObjectStore(unique_name).put("index.html", b"y", DELIVERY)
    assert public_grants(s3_client, unique_name, "index.html") == []


# -- errors ------------------------------------------------------------------------------


def s3_error(code: str, message: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>stub</RequestId><HostId>stub</HostId></Error>"
    )


@pytest.fixture
def refusing_endpoint(httpserver_ipv4):
    """A real HTTP endpoint on 127.0.0.1 that answers every request with one S3 error."""

    def respond(status: int, code: str, message: str):
        httpserver_ipv4.expect_request(re.compile(".*")).respond_with_data(
            s3_error(code, message), status=status, content_type="application/xml"
        )
        return httpserver_ipv4.url_for("/").rstrip("/")

    return respond


def test_missing_bucket(unique_name):
    store = S3ObjectStore(unique_name, "apt")
    for operation in (
        lambda: store.put("index.html", b"x", DELIVERY),
        lambda: list(store.list("")),
        lambda: store.delete("index.html"),
    ):
        with pytest.raises(ObjectStoreError) as caught:
            operation()
        assert str(caught.value).startswith(f"s3://{unique_name}: the bucket does not exist (")
        assert "create it or correct the bucket name" in str(caught.value)
    assert store.stat("index.html") is None  # HEAD cannot tell a missing bucket from a key


def test_access_denied_names_the_action_and_the_object(refusing_endpoint):
    endpoint = refusing_endpoint(403, "AccessDenied", "Access Denied")
    store = S3ObjectStore("bucket", "apt", acl_mode="public-read", endpoint_url=endpoint)
    with pytest.raises(ObjectStoreError) as caught:
        store.put("index.html", b"x", DELIVERY)
    message = str(caught.value)
    assert message.startswith("access denied: s3:PutObject on s3://bucket/apt/index.html;")
    assert "s3:PutObjectAcl" in message and "arn:aws:s3:::bucket/apt/*" in message
    with pytest.raises(
        ObjectStoreError, match=r"^access denied: s3:GetObject on s3://bucket/apt/k;"
    ):
        store.stat("k")
    with pytest.raises(ObjectStoreError, match=r"^access denied: s3:PutObject on .*\(copying "):
        store.copy_from(store, "pool/a.deb", "kiro-repo.deb", DELIVERY)
    with pytest.raises(ObjectStoreError, match=r"^access denied: s3:ListBucket on") as listing:
        list(store.list("pool/"))
    # A bucket-level action: granted on the bucket's ARN, where bucket/* grants nothing.
    assert "grant s3:ListBucket on arn:aws:s3:::bucket to these" in str(listing.value)
    assert "\n" not in message


def test_acls_refused_by_the_bucket(refusing_endpoint, tmp_path):
    endpoint = refusing_endpoint(
        400, "AccessControlListNotSupported", "The bucket does not allow ACLs"
    )
    store = S3ObjectStore("bucket", acl_mode="public-read", endpoint_url=endpoint)
    local = tmp_path / "a.deb"
    local.write_bytes(b"x")
    for operation in (
        lambda: store.put("index.html", b"x", DELIVERY),
        lambda: store.put_file("pool/a.deb", local, DELIVERY),
        lambda: store.copy_from(store, "pool/a.deb", "kiro-repo.deb", DELIVERY),
    ):
        with pytest.raises(ObjectStoreError) as caught:
            operation()
        assert "the bucket has ACLs disabled; use acl mode bucket-policy" in str(caught.value)


def test_throttling_beyond_retries(refusing_endpoint, httpserver_ipv4):
    endpoint = refusing_endpoint(503, "SlowDown", "Please reduce your request rate.")
    store = S3ObjectStore("bucket", endpoint_url=endpoint, max_retries=1)
    with pytest.raises(ObjectStoreError) as caught:
        store.put("dists/stable/InRelease", b"x", DELIVERY)
    assert "S3 kept throttling s3:PutObject (SlowDown) through 2 attempts" in str(caught.value)
    assert len(httpserver_ipv4.log) == 2
    assert store.request_count == 2


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, "InvalidAccessKeyId", "the AWS credentials were refused (InvalidAccessKeyId)"),
        (500, "InternalError", "s3:DeleteObject on s3://bucket/apt/k failed: InternalError"),
        (400, "InvalidArgument", "s3:DeleteObject on s3://bucket/apt/k failed: InvalidArgument"),
    ],
)
def test_other_refusals_are_one_line_naming_the_object(refusing_endpoint, status, code, expected):
    endpoint = refusing_endpoint(status, code, "refused")
    store = S3ObjectStore("bucket", "apt", endpoint_url=endpoint, max_retries=0)
    with pytest.raises(ObjectStoreError) as caught:
        store.delete("k")
    assert expected in str(caught.value)
    assert "s3://bucket" in str(caught.value) and "\n" not in str(caught.value)


def test_unreachable_endpoint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    store = S3ObjectStore("bucket", endpoint_url=endpoint, max_retries=1)
    with pytest.raises(ObjectStoreError) as caught:
        store.get("dists/stable/Release")
    assert f"cannot reach S3 at {endpoint} after 2 attempts" in str(caught.value)
    assert str(caught.value).startswith("s3:GetObject on s3://bucket/dists/stable/Release:")
    assert store.request_count == 2


# -- the factory -------------------------------------------------------------------------


def test_factory_opens_s3_urls(bucket):
    store = open_object_store(f"s3://{bucket}/apt/repo", "repository")
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix, store.acl_mode) == (bucket, "apt/repo/", "bucket-policy")
    store = open_object_store(f"s3://{bucket}", "staging area", acl_mode="public-read")
    assert isinstance(store, S3ObjectStore)
    assert (store.prefix, store.acl_mode) == ("", "public-read")
    with pytest.raises(ConfigError, match=r"expected s3://bucket/prefix"):
        open_object_store("s3:///apt", "repository")


def test_acl_mode_setting_reaches_the_workspace_stores(bucket, tmp_path):
    from debrepo.app import Workspace
    from tests.conftest import settings_for

    public = Workspace(
        settings_for(tmp_path / "home", repo=f"s3://{bucket}", s3_acl_mode="public-read")
    )
    assert isinstance(public.repo, S3ObjectStore) and public.repo.acl_mode == "public-read"
    default = Workspace(settings_for(tmp_path / "home2", repo=f"s3://{bucket}"))
    assert isinstance(default.repo, S3ObjectStore) and default.repo.acl_mode == "bucket-policy"
    with pytest.raises(ConfigError, match=r"s3-acl-mode"):
        settings_for(tmp_path / "home3", s3_acl_mode="private")


# -- publishing into S3 (seed Properties 10-12, 15-17) -----------------------------------


def s3_workspace(tmp_path: Path, bucket: str, acl_mode: str = "bucket-policy") -> Workspace:
    """The embedded metadata store and key, publishing to `apt/` and staging at the root."""
    ws = Workspace(settings_for(tmp_path / "home"))
    ws.__dict__["repo"] = S3ObjectStore(bucket, "apt", acl_mode=acl_mode)  # type: ignore[arg-type]
    ws.__dict__["staging"] = S3ObjectStore(bucket, acl_mode=acl_mode)  # type: ignore[arg-type]
    return ws


def publish_small_repository(ws: Workspace, make_deb) -> None:
    app.add_packages(ws, [make_deb("alpha", "1.0"), make_deb("beta", "2.0", "all")], now=at(0))
    app.build_kiro_repo(ws, version="1.0", now=at(1))
    app.build_kiro_repo(ws, version="1.1", now=at(2))
    app.build_kiro_repo(ws, version="1.0.5", now=at(3))  # older than 1.1


REPO_KEY_PATTERNS = [
    re.compile(r"dists/stable/(InRelease|Release|Release\.gpg)"),
    re.compile(r"dists/stable/main/binary-amd64/Packages(\.gz|\.xz)?"),
    re.compile(r"dists/stable/main/binary-amd64/by-hash/SHA(256|512)/[0-9a-f]{64,128}"),
    re.compile(
        r"pool/main/(?P<letter>[a-z0-9])/(?P<name>[a-z0-9][a-z0-9.+-]*)/(?P=name)_[^/]+\.deb"
    ),
    re.compile(r"index\.html|kiro-repo\.deb|kiro-archive-keyring\.(gpg|asc)"),
]


def test_publish_places_every_key_where_the_seed_says(tmp_path, bucket, s3_client, make_deb):
    """Property 15: Packages in dists/stable/main/binary-amd64/, Release files in
    dists/stable/, packages in pool/main/<letter>/<name>/, index.html at the root."""
    ws = s3_workspace(tmp_path, bucket)
    publish_small_repository(ws, make_deb)
    keys = bucket_keys(s3_client, bucket)
    repo_keys = {key[len("apt/") :] for key in keys if key.startswith("apt/")}
    assert {key for key in keys if not key.startswith("apt/")} == {
        "staging/kiro-repo/kiro-repo_1.0_all.deb",
        "staging/kiro-repo/kiro-repo_1.1_all.deb",
        "staging/kiro-repo/kiro-repo_1.0.5_all.deb",
        STATE_KEY,
        POOL_STATE_KEY,
    }
    assert ws.settings.keyring_name == "kiro-archive-keyring"
    for key in repo_keys:
        matches = [p.fullmatch(key) for p in REPO_KEY_PATTERNS]
        assert sum(m is not None for m in matches) == 1, key
        pool = matches[3]
        if pool is not None:
            assert pool["letter"] == pool["name"][0], key
    assert {
        *RELEASE_FILES,
        f"{BINARY}/Packages",
        f"{BINARY}/Packages.gz",
        f"{BINARY}/Packages.xz",
        "pool/main/a/alpha/alpha_1.0_amd64.deb",
        "pool/main/b/beta/beta_2.0_all.deb",
        "pool/main/k/kiro-repo/kiro-repo_1.0_all.deb",
        "pool/main/k/kiro-repo/kiro-repo_1.1_all.deb",
        "pool/main/k/kiro-repo/kiro-repo_1.0.5_all.deb",
        "index.html",
        "kiro-repo.deb",
    } <= repo_keys
    for record in ws.store.all():
        key = pool_path("main", record.package_name, record.actual_filename)
        assert keys[f"apt/{key}"] == record.file_size


def test_content_type_and_cache_control(tmp_path, bucket, s3_client, make_deb):
    """Property 16, and Cache-Control: immutable for what never changes under its name."""
    ws = s3_workspace(tmp_path, bucket)
    publish_small_repository(ws, make_deb)
    heads = {
        key: s3_client.head_object(Bucket=bucket, Key=key) for key in bucket_keys(s3_client, bucket)
    }
    for key, head in heads.items():
        relative = key.removeprefix("apt/")
        assert head["ContentType"] == served.content_type(relative), key
    content_types = {
        "pool/main/a/alpha/alpha_1.0_amd64.deb": DEB_TYPE,
        "kiro-repo.deb": DEB_TYPE,
        f"{BINARY}/Packages": "text/plain",
        f"{DISTS}/Release": "text/plain",
        f"{DISTS}/InRelease": "text/plain",
        "index.html": "text/html",
    }
    for key, content_type in content_types.items():
        assert heads[f"apt/{key}"]["ContentType"].split(";")[0] == content_type, key
    short = [*RELEASE_FILES, f"{BINARY}/Packages", f"{BINARY}/Packages.gz"]
    short += [f"{BINARY}/Packages.xz", "index.html", "kiro-repo.deb"]
    for key in short:
        assert heads[f"apt/{key}"]["CacheControl"] == served.REVALIDATED_EACH_MINUTE, key
    by_hash = [key for key in heads if "/by-hash/" in key]
    assert by_hash
    # Pool files the publisher copies from the staging area (services/ingest.py writes
    # the pool files of `add` with its own Delivery).
    copied = [key for key in heads if key.startswith("apt/pool/main/k/kiro-repo/")]
    assert len(copied) == 3
    for key in by_hash + copied:
        assert heads[key]["CacheControl"] == served.CACHED_FOR_A_YEAR, key


def test_public_read_publish_makes_every_published_object_public(
    tmp_path, bucket, s3_client, make_deb
):
    """Property 17 in public-read mode; the staging prefix is never public."""
    ws = s3_workspace(tmp_path, bucket, acl_mode="public-read")
    publish_small_repository(ws, make_deb)
    app.rebuild(ws, now=at(4), full=True)
    keys = bucket_keys(s3_client, bucket)
    assert any(key.startswith("staging/") for key in keys)
    for key in keys:
        expected = [] if key.startswith("staging/") else ["READ"]
        assert public_grants(s3_client, bucket, key) == expected, key


def test_bucket_policy_publish_sends_no_acl_header(tmp_path, bucket, s3_client, make_deb):
    ws = s3_workspace(tmp_path, bucket)
    recorder = Recorder(ws.repo, ws.staging)  # type: ignore[arg-type]
    publish_small_repository(ws, make_deb)
    app.rebuild(ws, now=at(4), full=True)
    assert recorder.writes()
    for sent in recorder.sent:
        assert not any(h == "x-amz-acl" or h.startswith("x-amz-grant") for h in sent.headers)
    for key in bucket_keys(s3_client, bucket):
        assert public_grants(s3_client, bucket, key) == [], key


def test_convenience_copy_is_a_server_side_copy_of_the_newest_kiro_repo(
    tmp_path, bucket, s3_client, make_deb
):
    """Properties 10-12: kiro-repo.deb at the root is a regular object with the newest
    kiro-repo's bytes and ETag, made by CopyObject with replaced metadata."""
    ws = s3_workspace(tmp_path, bucket)
    recorder = Recorder(ws.repo, ws.staging)  # type: ignore[arg-type]
    publish_small_repository(ws, make_deb)
    newest = ws.store.latest("kiro-repo")
    assert newest is not None and newest.version == "1.1"
    pool_key = "apt/pool/main/k/kiro-repo/kiro-repo_1.1_all.deb"
    head = s3_client.head_object(Bucket=bucket, Key="apt/kiro-repo.deb")
    pool = s3_client.head_object(Bucket=bucket, Key=pool_key)
    body = s3_client.get_object(Bucket=bucket, Key="apt/kiro-repo.deb")["Body"].read()
    assert len(body) == head["ContentLength"] == newest.file_size > 0
    assert hashlib.sha256(body).hexdigest() == newest.sha256_hash
    assert head["ETag"] == pool["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert head["Metadata"] == {"package": "kiro-repo", "version": "1.1"}
    assert "WebsiteRedirectLocation" not in head
    to_copy = [s for s in recorder.sent if s.key == "apt/kiro-repo.deb" and s.method == "PUT"]
    assert [s.operation for s in to_copy] == ["CopyObject", "CopyObject"]  # 1.0, then 1.1
    assert unquote(to_copy[-1].headers["x-amz-copy-source"]).lstrip("/") == f"{bucket}/{pool_key}"
    assert all(s.headers["x-amz-metadata-directive"] == "REPLACE" for s in to_copy)


def test_nothing_changed_uploads_only_the_release_files(tmp_path, bucket, make_deb):
    ws = s3_workspace(tmp_path, bucket)
    publish_small_repository(ws, make_deb)
    recorder = Recorder(ws.repo, ws.staging)  # type: ignore[arg-type]

    report = app.rebuild(ws, now=at(5))
    assert report.resigned_only
    assert report.written == RELEASE_FILES
    assert recorder.writes() == [("PutObject", f"apt/{key}") for key in RELEASE_FILES]
    assert not any(s.key.startswith("apt/pool/") for s in recorder.sent)
    # The indices' ETags, recorded when they were published, vouch for them: no download.
    index_reads = {(s.operation, s.key) for s in recorder.sent if "/Packages" in s.key}
    assert index_reads and {op for op, _ in index_reads} == {"HeadObject"}

    # Publisher state lost: the pool is listed once (no request per file), nothing in
    # it is uploaded again, and no index whose bytes are the same is rewritten.
    ws.staging.delete(STATE_KEY)
    ws.staging.delete(POOL_STATE_KEY)
    recorder.clear()
    report = app.rebuild(ws, now=at(6))
    assert report.pool_copied == []
    assert sorted(recorder.writes()) == sorted(
        [("PutObject", f"apt/{key}") for key in RELEASE_FILES]
        + [
            ("CopyObject", "apt/kiro-repo.deb"),
            ("PutObject", STATE_KEY),
            ("PutObject", POOL_STATE_KEY),
        ]
    )
    pool_requests = [s.operation for s in recorder.sent if s.key.startswith("apt/pool/")]
    assert pool_requests == ["ListObjectsV2"]


def repository_of(tmp_path: Path, bucket: str, s3_client, versions: int) -> Workspace:
    """A published repository of `versions` versions (10 packages), built quickly: records
    straight into the store, pool objects straight into the bucket."""
    ws = s3_workspace(tmp_path, bucket)
    records = [make_record(f"pkg{i % 10}", f"1.{i // 10}", file_size=64) for i in range(versions)]
    ws.store.put_many(records)
    keys = [pool_path("main", r.package_name, r.actual_filename) for r in records]
    with ThreadPoolExecutor(16) as pool:
        for key in keys:
            pool.submit(s3_client.put_object, Bucket=bucket, Key=f"apt/{key}", Body=b"p" * 64)
    ws.publisher().publish(now=at(0), just_written=keys)
    return ws


def test_publishing_one_new_version_costs_the_same_at_any_size(
    tmp_path, unique_name, s3_client, make_deb
):
    counts = {}
    reads = {}
    for versions in (100, 1000):
        bucket = f"{unique_name}-{versions}"
        s3_client.create_bucket(Bucket=bucket)
        ws = repository_of(tmp_path / str(versions), bucket, s3_client, versions)
        repo, staging = ws.repo, ws.staging
        assert isinstance(repo, S3ObjectStore) and isinstance(staging, S3ObjectStore)
        # An index of several compressed pieces is read back (Packages.gz, Packages.xz)
        # to reuse the unchanged ones: two GETs that only some sizes need.
        layout = PublishState.parse(staging.get(STATE_KEY)).index_pieces
        pieces_read = sum(len(layout[f"{BINARY}/Packages{s}"].pieces) > 1 for s in (".gz", ".xz"))
        repo.reset_request_count()
        staging.reset_request_count()
        result = app.add_packages(ws, [make_deb("pkg0", "9.0")], now=at(1))
        assert result.report is not None
        assert result.report.pool_copied == []  # ingest wrote it; publish trusts it
        assert f"{BINARY}/Packages" in result.report.written
        operations = Counter(repo.requests_by_operation()) + Counter(
            staging.requests_by_operation()
        )
        assert sum(operations.values()) == repo.request_count + staging.request_count
        counts[versions] = operations - Counter(GetObject=pieces_read)
        reads[versions] = pieces_read
        repo.reset_request_count()
        assert len(list(repo.list("pool/"))) == versions + 1  # 1,001 objects: two pages
        assert repo.requests_by_operation() == {"ListObjectsV2": 1 if versions < 1000 else 2}
    assert counts[100] == counts[1000]
    assert reads[1000] == 2  # 1,000 stanzas make several pieces
    assert sum(counts[1000].values()) + reads[1000] <= 39
    assert counts[1000]["ListObjectsV2"] == 0


def test_stat_many_lists_once_instead_of_one_head_per_key(store):
    keys = [f"pool/main/p/pkg{i:03d}/pkg{i:03d}_1.0_all.deb" for i in range(80)]
    for index, key in enumerate(keys[:60]):
        store.put(key, bytes(index), delivery_for(key))
    store.put("dists/stable/Release", b"elsewhere", delivery_for("dists/stable/Release"))
    store.reset_request_count()

    sizes = store.stat_many(keys)

    assert sizes == {key: index for index, key in enumerate(keys[:60])}
    assert store.requests_by_operation() == {"ListObjectsV2": 1}


def test_stat_many_of_a_few_keys_is_one_head_each(store):
    store.put("pool/main/a/alpha/alpha_1.0_all.deb", b"abc", delivery_for("x.deb"))
    store.reset_request_count()
    sizes = store.stat_many(
        ["pool/main/a/alpha/alpha_1.0_all.deb", "pool/main/b/beta/beta_1.0_all.deb"]
    )
    assert sizes == {"pool/main/a/alpha/alpha_1.0_all.deb": 3}
    assert store.requests_by_operation() == {"HeadObject": 2}
