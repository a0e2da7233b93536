"""The Lambda handler (`debrepo.aws_lambda.handler`) against AWS on the moto server.

Everything runs over HTTP on 127.0.0.1: moto in server mode for S3, DynamoDB, SNS (with an
SQS queue subscribed, so notifications are read back as delivered messages), Secrets
Manager and STS; pytest-httpserver as the Kiro metadata endpoint, the GitHub releases API
and the download hosts. Failures are real AWS error responses sent by a proxy in front of
moto (tests/aws/aws_proxy.py); no boto3 or botocore call is patched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from debian import deb822
from pytest_httpserver import HTTPServer

from debrepo import app
from debrepo.app import Workspace
from debrepo.aws import DynamoDBLock, lambda_settings
from debrepo.core.layout import delivery_for
from debrepo.errors import LockError
from debrepo.signing.openpgp import OpenPGPSigner
from debrepo.store.dynamodb import create_table
from tests.aws import served
from tests.aws.aws_proxy import AwsProxy, Call, Rule, is_lock_request, lock_intervals
from tests.aws.lambda_harness import (
    LOCK_ID,
    PACKAGES,
    REGION,
    RELEASE_FILES,
    Deployment,
    LambdaContext,
    Notification,
    create_deployment,
    lambda_module,
    metric_values,
    parse_output,
)
from tests.conftest import PROJECT_ROOT, deb_bytes
from tests.e2e.aptenv import AptEnv, assert_clean_update, debrepo_executable, serve_in_thread
from tests.sources.conftest import (
    KIRO_CLI_DEB_PATH,
    KIRO_DEB_PATH,
    METADATA_PATH,
    RELEASES_PATH,
    Upstream,
    free_port,
    kiro_cli_deb,
    kiro_deb,
)
from tests.tools import require_tool

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
# Credentials no log line may ever show (moto accepts any).
ACCESS_KEY_ID = "AKIAZLAMBDATEST7Q2X"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzLambdaSecret"
SESSION_TOKEN = "FwoGZXIvYXdzEPr//////////session-token-for-lambda-tests"
KIRO = kiro_deb()
KIRO_CLI = kiro_cli_deb()
KIRO_REPO_STAGED = "staging/kiro-repo/kiro-repo_{version}_all.deb"
# What EventBridge sends on a schedule (infra/terraform's aws_cloudwatch_event_rule).
SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-24T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/kiro-debian-repo-manager-test"],
    "detail": {},
}
# Seed Property 2: what every stored package carries.
REQUIRED_FIELDS = (
    "package_name",
    "version",
    "architecture",
    "deb_url",
    "actual_filename",
    "file_size",
    "md5_hash",
    "sha1_hash",
    "sha256_hash",
    "section",
    "priority",
    "maintainer",
    "homepage",
    "description",
    "pub_date",
    "processed_timestamp",
    "package_type",
)

DEB_TYPE = "application/vnd.debian.binary-package"  # what apt and browsers expect


@pytest.fixture
def upstream(httpserver_ipv4: HTTPServer) -> Upstream:
    return Upstream(httpserver_ipv4)


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder of every tempfile call in this process (Lambda's /tmp)."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def deployment(
    tmp_path: Path,
    unique_name: str,
    moto_endpoint: str,
    upstream: Upstream,
    scratch: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Deployment:
    """The deployed resources, and the function's environment in this process."""
    for variable in list(os.environ):
        if variable.startswith("DEBREPO_") or variable in ("GITHUB_TOKEN", "PUBLIC_URL"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    deployed = create_deployment(unique_name, moto_endpoint, tmp_path, upstream.url(METADATA_PATH))
    for name, value in deployed.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEBREPO_GITHUB_API_URL", f"{upstream.base}/api")
    return deployed


@pytest.fixture
def proxy(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsProxy]:
    """Every AWS request of this process (but the test's own clients) through the proxy."""
    opened = AwsProxy(moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", opened.url)
    yield opened
    opened.close()


@dataclass
class Invocation:
    result: dict[str, Any]
    records: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    output: str
    context: LambdaContext

    @property
    def status(self) -> int:
        return int(self.result["statusCode"])

    @property
    def body(self) -> str:
        return str(self.result["body"])

    def describe(self) -> str:
        return f"{self.result}\n--- output\n{self.output}"

    def metric_values(self) -> dict[str, Any]:
        return metric_values([m for m in self.metrics if "ColdStart" not in m])


Invoke = Callable[..., Invocation]


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Invoke:
    """Call the handler as the Lambda runtime does; its stdout comes back parsed."""

    def call(event: Any) -> Invocation:
        context = LambdaContext()
        with lambda_module() as module:
            capsys.readouterr()
            result = module.handler(event, context)
            output = capsys.readouterr().out
        records, metrics = parse_output(output)
        return Invocation(result, records, metrics, output, context)

    return call


def workspace() -> Workspace:
    """The backends the function uses, from its environment in this process."""
    return Workspace(lambda_settings(os.environ))


def stage_kiro_repo(version: str = "1.0.0") -> None:
    """kiro-repo built, staged and recorded (not published), as the build script does."""
    app.build_kiro_repo(workspace(), version=version, publish_after=False)


def gpgv(keyring: Path, *files: Path, home: Path) -> subprocess.CompletedProcess[str]:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return subprocess.run(
        [require_tool("gpgv"), "--homedir", str(home), "--keyring", str(keyring), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def public_grants(deployed: Deployment, key: str) -> list[str]:
    grants = deployed.s3.get_object_acl(Bucket=deployed.bucket, Key=key)["Grants"]
    return [g["Permission"] for g in grants if g["Grantee"].get("URI") == ALL_USERS]


def key_fragments(secret_key: bytes) -> list[str]:
    """Marks of the armoured secret key: its header and a line from its middle."""
    lines = secret_key.decode("ascii").splitlines()
    body = [line for line in lines if len(line) >= 40 and not line.startswith("-----")]
    return ["PRIVATE KEY", body[len(body) // 2]]


def files_containing(root: Path, needles: list[str]) -> list[Path]:
    if not root.exists():
        return []
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(needle.encode() in data for needle in needles):
                found.append(path)
    return found


def packages_in(packages_text: bytes) -> dict[str, str]:
    return {
        p["Package"]: p["Version"] for p in deb822.Deb822.iter_paragraphs(packages_text.decode())
    }


# -- the whole flow --------------------------------------------------------------------


def test_scheduled_runs_and_a_force_rebuild_publish_a_repository_apt_installs_from(
    deployment: Deployment,
    upstream: Upstream,
    proxy: AwsProxy,
    invoke: Invoke,
    scratch: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Build script stages kiro-repo; a scheduled run stores and publishes kiro and kiro-cli
    and notifies; a force rebuild; a scheduled run with nothing new. The bucket, synced to a
    folder and served, is what real apt trusts through the published key. The handler
    runs with no gpg or gpgv on PATH; gpgv checks its signatures afterwards."""
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)

    # The build script's step in AWS: build kiro-repo, stage it, record it, publish nothing.
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    env = {
        **os.environ,
        "DEBREPO_KEY_SECRET_ID": deployment.secret_id,
        "DEBREPO_CONFIG_DIR": str(deployment.task_root / "config" / "packages"),
    }
    built = subprocess.run(
        [
            debrepo_executable(),
            "--store",
            f"dynamodb://{deployment.table}",
            "--repo",
            f"s3://{deployment.bucket}",
            "--staging",
            f"s3://{deployment.bucket}",
            "--public-url",
            f"https://{deployment.bucket}.s3.us-east-1.amazonaws.com",
            "build-repo-package",
            "--version",
            "1.0.0",
            "--no-publish",
        ],
        cwd=build_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert built.stdout.startswith("built kiro-repo_1.0.0_all.deb ("), built.stdout
    assert set(deployment.objects()) == {KIRO_REPO_STAGED.format(version="1.0.0")}
    assert files_containing(build_dir, key_fragments(deployment.secret_key)) == []

    no_gpg = tmp_path / "bin-without-gpg"
    no_gpg.mkdir()
    with monkeypatch.context() as lambda_path:
        lambda_path.setenv("PATH", str(no_gpg))
        assert shutil.which("gpg") is None and shutil.which("gpgv") is None
        first = invoke(SCHEDULED_EVENT)
        first_notifications = deployment.notifications()
        before_rebuild = len(proxy.sent())
        rebuilt = invoke({"force_rebuild": True})
        rebuild_calls = proxy.sent()[before_rebuild:]
        rebuilt_notifications = deployment.notifications()
        release_after_rebuild = deployment.release_files()
        idle = invoke({})
        idle_notifications = deployment.notifications()

    # Scheduled run: two new packages, one notification each.
    assert first.result == {
        "statusCode": 200,
        "body": "Successfully processed 2 new packages",
    }, first.describe()
    by_subject = {n.subject: n.message for n in first_notifications}
    assert set(by_subject) == {"New package: kiro 0.9.2", "New package: kiro-cli 1.2.0"}
    assert by_subject["New package: kiro 0.9.2"]["sha256"] == hashlib.sha256(KIRO).hexdigest()
    assert by_subject["New package: kiro 0.9.2"]["event"] == "package_published"
    assert by_subject["New package: kiro-cli 1.2.0"]["size"] == len(KIRO_CLI)

    # Force rebuild: from the store alone, no notification.
    assert rebuilt.result == {
        "statusCode": 200,
        "body": "Successfully rebuilt repository with 3 packages",
    }, rebuilt.describe()
    assert rebuilt_notifications == []
    read_during_rebuild = [c.key for c in rebuild_calls if c.operation == "GetObject"]
    assert not [key for key in read_during_rebuild if key.endswith(".deb")], read_during_rebuild

    # Nothing new: nothing published, the Release is left as it was.
    assert idle.result == {"statusCode": 200, "body": "No new packages to process"}, idle.describe()
    assert idle_notifications == []
    assert deployment.release_files() == release_after_rebuild
    assert deployment.lock_item() is None

    # Every log line of every run is JSON carrying the request id and the operation.
    for run, operation in ((first, "sync"), (rebuilt, "force_rebuild"), (idle, "sync")):
        assert run.records, run.describe()
        for record in run.records:
            assert record["function_request_id"] == run.context.aws_request_id, record
            assert record["operation"] == operation, record
    assert first.metric_values()["packages_processed"] == 2
    assert rebuilt.metric_values()["total_packages"] == 3

    # The store: three packages, the lock and the revision counter never among them.
    ws = workspace()
    assert sorted(r.package_id for r in ws.store.all()) == [
        "kiro#0.9.2",
        "kiro-cli#1.2.0",
        "kiro-repo#1.0.0",
    ]
    assert ws.store.package_ids() == {"kiro#0.9.2", "kiro-cli#1.2.0", "kiro-repo#1.0.0"}
    assert [r.package_id for r in ws.store.by_name("kiro")] == ["kiro#0.9.2"]  # Property 5
    # Properties 1-2, in the table as the Lambda wrote it: every seed field, the source type.
    items = deployment.dynamodb.scan(TableName=deployment.table, ConsistentRead=True)["Items"]
    packages = {i["package_id"]["S"]: i for i in items if not i["package_id"]["S"].startswith("__")}
    assert set(packages) == ws.store.package_ids()
    for package_id, item in packages.items():
        assert set(REQUIRED_FIELDS) <= set(item), (package_id, set(REQUIRED_FIELDS) - set(item))
        assert all(next(iter(item[name].values())) != "" for name in REQUIRED_FIELDS), item
        assert "N" in item["file_size"], item["file_size"]
        assert package_id == f"{item['package_name']['S']}#{item['version']['S']}"
    assert {pid: item["package_type"]["S"] for pid, item in packages.items()} == {
        "kiro#0.9.2": "external_download",
        "kiro-cli#1.2.0": "github_release",
        "kiro-repo#1.0.0": "build_script",
    }

    # Property 11/12: kiro-repo.deb is a regular object, copied server-side from the pool,
    # with the version in its metadata.
    keys = deployment.objects()
    pool_key = "pool/main/k/kiro-repo/kiro-repo_1.0.0_all.deb"
    record = ws.store.get("kiro-repo#1.0.0")
    assert record is not None
    head = deployment.s3.head_object(Bucket=deployment.bucket, Key="kiro-repo.deb")
    body = deployment.get("kiro-repo.deb")
    assert len(body) == head["ContentLength"] == record.file_size
    assert hashlib.sha256(body).hexdigest() == record.sha256_hash
    assert head["ETag"] == deployment.s3.head_object(Bucket=deployment.bucket, Key=pool_key)["ETag"]
    assert head["Metadata"] == {"package": "kiro-repo", "version": "1.0.0"}
    assert "WebsiteRedirectLocation" not in head
    convenience_writes = [
        c for c in proxy.sent("s3") if c.key == "kiro-repo.deb" and c.method in ("PUT", "POST")
    ]
    assert convenience_writes
    assert {c.operation for c in convenience_writes} == {"CopyObject"}
    assert {c.copy_source for c in convenience_writes} == {f"{deployment.bucket}/{pool_key}"}
    assert all(c.headers["x-amz-metadata-directive"] == "REPLACE" for c in convenience_writes)

    # Properties 15-17: where everything is, its Content-Type, public except staging/.
    assert {k for k in keys if k.startswith("staging/")} == {
        "staging/.state/publish-state.json",
        "staging/.state/publish-pool.json",
        KIRO_REPO_STAGED.format(version="1.0.0"),
    }
    assert {
        *RELEASE_FILES,
        PACKAGES,
        f"{PACKAGES}.gz",
        f"{PACKAGES}.xz",
        "pool/main/k/kiro/kiro_0.9.2_amd64.deb",
        "pool/main/k/kiro-cli/kiro-cli_1.2.0_amd64.deb",
        pool_key,
        "kiro-repo.deb",
        "index.html",
        "kiro-archive-keyring.gpg",
        "kiro-archive-keyring.asc",
    } <= set(keys)
    for key in keys:
        head = deployment.s3.head_object(Bucket=deployment.bucket, Key=key)
        assert head["ContentType"] == served.content_type(key), key
        grants = [] if key.startswith("staging/") else ["READ"]
        assert public_grants(deployment, key) == grants, key
    content_types = {
        pool_key: DEB_TYPE,
        "kiro-repo.deb": DEB_TYPE,
        "pool/main/k/kiro/kiro_0.9.2_amd64.deb": DEB_TYPE,
        PACKAGES: "text/plain",
        "dists/stable/Release": "text/plain",
        "dists/stable/InRelease": "text/plain",
        "index.html": "text/html",
    }
    for key, content_type in content_types.items():
        head = deployment.s3.head_object(Bucket=deployment.bucket, Key=key)
        assert head["ContentType"].split(";")[0] == content_type, key
    writes = [c for c in proxy.sent("s3") if c.operation in ("PutObject", "CopyObject")]
    for call in writes:
        private = call.key.startswith("staging/")
        assert call.headers.get("x-amz-acl") == (None if private else "public-read"), call.key
    # An index's bytes go up once, under SHA256; the SHA512 name is a server-side copy.
    by_hash = [c for c in writes if "/by-hash/" in c.key]
    assert {c.operation for c in by_hash if "/SHA256/" in c.key} == {"PutObject"}
    sha512 = [c for c in by_hash if "/SHA512/" in c.key]
    assert sha512 and {c.operation for c in sha512} == {"CopyObject"}
    assert all("/by-hash/SHA256/" in c.copy_source for c in sha512)
    assert packages_in(deployment.get(PACKAGES)) == {
        "kiro": "0.9.2",
        "kiro-cli": "1.2.0",
        "kiro-repo": "1.0.0",
    }

    # The signing key: only in memory; nothing on disk, nothing left in the temporary folder.
    signer = OpenPGPSigner(deployment.secret_key, source="test")
    assert deployment.get("kiro-archive-keyring.gpg") == signer.public_key_binary()
    assert list(scratch.iterdir()) == []
    assert files_containing(Path("/tmp/debrepo"), key_fragments(deployment.secret_key)) == []

    # The bucket as a web root: real apt trusts it through the published key, and installs.
    site = tmp_path / "site"
    downloaded = deployment.download(site)
    assert not any(key.startswith("staging/") for key in downloaded)
    keyring = site / "kiro-archive-keyring.gpg"
    dists = site / "dists" / "stable"
    for signed in ((dists / "Release.gpg", dists / "Release"), (dists / "InRelease",)):
        checked = gpgv(keyring, *signed, home=tmp_path / "gnupg")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "Good signature" in checked.stderr, checked.stderr
    with serve_in_thread(site) as server:
        apt = AptEnv(tmp_path / "aptroot")
        apt.use_source(server.url, keyring)
        assert_clean_update(apt.update())
        install = apt.install("kiro-repo", "kiro")
        assert install.returncode == 0, install.describe()
        assert install.problems() == [], install.describe()
        assert apt.installed() == {"kiro": "0.9.2", "kiro-repo": "1.0.0"}
        assert apt.path("/etc/apt/sources.list.d/kiro.sources").is_file()
        assert apt.path("/usr/share/kiro/kiro").read_text() == "#!/bin/sh\necho 'Kiro 0.9.2'\n"


# -- logs and metrics ------------------------------------------------------------------


def no_secrets_in(output: str, deployed: Deployment) -> None:
    for needle in [*key_fragments(deployed.secret_key), ACCESS_KEY_ID, SECRET_ACCESS_KEY]:
        assert needle not in output, f"the handler's output shows {needle[:12]}..."
    assert SESSION_TOKEN not in output and SESSION_TOKEN[-20:] not in output


def test_logs_are_cloudwatch_json_with_request_id_operation_durations_and_counts(
    deployment: Deployment,
    upstream: Upstream,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a topic, notifications are log lines; no line ever shows key material or
    credentials, not even when the secret holds a broken key."""
    monkeypatch.delenv("SNS_TOPIC_ARN")
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()

    run = invoke({})
    assert run.result["statusCode"] == 200, run.describe()
    no_secrets_in(run.output, deployment)
    for record in run.records:
        assert record["function_request_id"] == run.context.aws_request_id, record
        assert record["function_name"] == run.context.function_name, record
        assert record["operation"] == "sync", record
        assert record["service"] == "debrepo", record
        assert {"level", "message", "timestamp", "location"} <= set(record), record
    by_message = {r["message"]: r for r in run.records}
    assert by_message["access checked"]["checked"] == [
        "sts:GetCallerIdentity the AWS credentials",
        f"s3:ListBucket bucket {deployment.bucket}",
        f"dynamodb:DescribeTable table {deployment.table}",
        f"secretsmanager:DescribeSecret secret {deployment.secret_id}",
    ]
    published = by_message["published"]
    assert published["files_written"] > 0 and published["s3_requests"] > 0, published
    # kiro and kiro-cli went straight into the pool; kiro-repo is copied from staging.
    assert published["summary"].startswith("3 package(s) published, 3 pool file(s) added")
    done = by_message["Successfully processed 2 new packages"]
    assert isinstance(done["duration_ms"], int) and done["duration_ms"] >= 0
    assert done["level"] == "INFO"
    # Per package, with its name as a field; notifications as log lines.
    assert {r["package"] for r in run.records if "package" in r} >= {"kiro", "kiro-cli"}
    notified = [r["notification"] for r in run.records if "notification" in r]
    assert sorted((n["package"], n["version"]) for n in notified) == [
        ("kiro", "0.9.2"),
        ("kiro-cli", "1.2.0"),
    ]
    metrics = run.metric_values()
    assert metrics["packages_processed"] == 2
    assert metrics["packages_failed"] == 0
    assert metrics["operations_completed"] == 1
    assert metrics["total_packages"] == 3
    assert "operations_failed" not in metrics
    emf = [m for m in run.metrics if "packages_processed" in m]
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "debrepo"

    # The secret now holds a damaged key: the failure is reported, the key is not.
    lines = deployment.secret_key.decode("ascii").splitlines()
    damaged = "\n".join([*lines[: len(lines) * 2 // 3], lines[-1]]) + "\n"
    deployment.aws["secretsmanager"].put_secret_value(
        SecretId=deployment.secret_id, SecretString=damaged
    )
    failed = invoke({"force_rebuild": True})
    assert failed.status == 500, failed.describe()
    assert failed.body.startswith(
        f"Error processing repository: secret {deployment.secret_id} is not an OpenPGP secret key"
    ), failed.body
    no_secrets_in(failed.output, deployment)
    assert damaged not in failed.output
    errors = [r for r in failed.records if r["level"] == "ERROR"]
    assert [r["message"] for r in errors] == [
        "run failed",
        f"force_rebuild failed: {failed.body.removeprefix('Error processing repository: ')}",
    ]
    assert errors[0]["error"] == failed.body.removeprefix("Error processing repository: ")
    assert isinstance(errors[0]["duration_ms"], int)
    assert all(r["operation"] == "force_rebuild" for r in failed.records)
    assert all(r["function_request_id"] == failed.context.aws_request_id for r in failed.records)
    assert failed.metric_values() == {"operations_failed": 1}


def test_a_package_that_fails_alone_is_notified_and_the_others_are_published(
    deployment: Deployment, upstream: Upstream, invoke: Invoke
) -> None:
    upstream.serve_kiro_live(KIRO)
    upstream.server.expect_request(RELEASES_PATH).respond_with_json(
        {"message": "Not Found"}, status=404
    )
    stage_kiro_repo()
    run = invoke(SCHEDULED_EVENT)
    assert run.result == {
        "statusCode": 200,
        "body": "Successfully processed 1 new packages",
    }, run.describe()
    notifications = {n.subject: n.message for n in deployment.notifications()}
    assert set(notifications) == {"New package: kiro 0.9.2", "debrepo sync of kiro-cli failed"}
    failure = notifications["debrepo sync of kiro-cli failed"]
    assert failure["event"] == "run_failed" and failure["operation"] == "sync of kiro-cli"
    assert "repository kiro-dev/kiro-cli not found" in failure["error"], failure
    assert packages_in(deployment.get(PACKAGES)) == {"kiro": "0.9.2", "kiro-repo": "1.0.0"}
    metrics = run.metric_values()
    assert (metrics["packages_processed"], metrics["packages_failed"]) == (1, 1)
    errors = [r for r in run.records if r["level"] == "ERROR"]
    assert [r.get("package") for r in errors] == ["kiro-cli"], run.describe()
    assert errors[0]["message"].startswith("kiro-cli: sync failed: "), errors


def test_release_notes_too_long_for_a_dynamodb_item_are_shortened_and_the_package_published(
    deployment: Deployment, upstream: Upstream, invoke: Invoke
) -> None:
    # Upstreams set no size for release notes; a DynamoDB item holds 400 KiB in all.
    body = "Kiro CLI 1.2.0 ✓ " + "ü✓ notes " * 50_000
    releases = upstream.github_releases(KIRO_CLI)
    for release in releases:
        release["body"] = body
    upstream.server.expect_request(RELEASES_PATH).respond_with_json(releases)
    upstream.serve_bytes(KIRO_CLI_DEB_PATH, KIRO_CLI)
    upstream.serve_kiro_live(KIRO)
    run = invoke(SCHEDULED_EVENT)
    assert run.status == 200, run.describe()
    assert packages_in(deployment.get(PACKAGES))["kiro-cli"] == "1.2.0"
    stored = workspace().store.get("kiro-cli#1.2.0")
    assert stored is not None and stored.notes is not None
    assert len(stored.notes.encode()) <= 64 * 1024
    assert stored.notes.startswith("Kiro CLI 1.2.0 ✓ ü✓ notes")
    upstream_size = len(body.strip().encode())  # GitHub bodies are taken stripped
    assert stored.notes.endswith(f"\n[shortened by debrepo: {upstream_size} bytes upstream]")
    warnings = [r["message"] for r in run.records if r["level"] == "WARNING"]
    assert any("stored the first 64 KiB of its release notes" in m for m in warnings), warnings


def test_a_refused_kiro_is_not_downloaded_by_every_scheduled_run(
    deployment: Deployment, upstream: Upstream, invoke: Invoke
) -> None:
    """The refusal is remembered in the staging bucket; `retry_refused` fetches again."""
    upstream.serve_json(METADATA_PATH, upstream.live_metadata())
    upstream.serve_file(KIRO_DEB_PATH, kiro_deb("0.9.1"))  # 0.9.2 offered, 0.9.1 inside
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()

    runs = [invoke(SCHEDULED_EVENT), invoke(SCHEDULED_EVENT), invoke({"retry_refused": True})]

    assert upstream.statuses(KIRO_DEB_PATH) == [200, 304, 200]
    assert [run.result["statusCode"] for run in runs] == [200, 200, 200], runs[-1].describe()
    errors = [n.message["error"] for n in deployment.notifications() if "kiro " in n.subject]
    assert len(errors) == 3, errors
    assert "control file says Version '0.9.1', but the source says '0.9.2'" in errors[0]
    assert "not downloaded again (its server says the file has not changed)" in errors[1]
    assert errors[2] == errors[0]  # judged again: the same verdict
    assert packages_in(deployment.get(PACKAGES)) == {"kiro-cli": "1.2.0", "kiro-repo": "1.0.0"}


# -- up-front validation ---------------------------------------------------------------


def assert_failed_cleanly(
    deployed: Deployment,
    run: Invocation,
    message: str,
    *,
    releases_before: dict[str, bytes] | None = None,
    notified: bool = True,
    operation: str = "sync",
) -> None:
    """A 500 whose body is `message`, a failure notification, the failure in the logs and
    metrics, the published Release files untouched and the lock released."""
    assert run.result == {
        "statusCode": 500,
        "body": f"Error processing repository: {message}",
    }, run.describe()
    expected = [
        Notification(
            f"debrepo {operation} failed",
            {"event": "run_failed", "operation": operation, "error": message},
        )
    ]
    assert deployed.notifications() == (expected if notified else [])
    failures = [r for r in run.records if r["message"] == "run failed"]
    assert [r["error"] for r in failures] == [message], run.describe()
    assert run.metric_values().get("operations_failed") == 1
    assert deployed.release_files() == (releases_before or {})
    assert deployed.lock_item() is None
    no_secrets_in(run.output, deployed)


def missing(kind: str) -> Callable[[Deployment, AwsProxy, pytest.MonkeyPatch], str]:
    def arrange(deployed: Deployment, proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch) -> str:
        if kind == "bucket":
            monkeypatch.setenv("S3_BUCKET", f"{deployed.bucket}-gone")
            return (
                f"bucket {deployed.bucket}-gone does not exist in region {REGION} (checked with "
                "s3:ListBucket)"
            )
        if kind == "table":
            monkeypatch.setenv("DYNAMODB_TABLE", f"{deployed.table}-gone")
            return (
                f"table {deployed.table}-gone does not exist in region {REGION} (checked with "
                "dynamodb:DescribeTable)"
            )
        secret = f"{deployed.name}/no-such-key"
        monkeypatch.setenv("SIGNING_KEY_SECRET_ID", secret)
        return (
            f"secret {secret} does not exist in region {REGION} (checked with "
            "secretsmanager:DescribeSecret)"
        )

    return arrange


def denied(service: str) -> Callable[[Deployment, AwsProxy, pytest.MonkeyPatch], str]:
    def arrange(deployed: Deployment, proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch) -> str:
        if service == "s3":
            # HEAD has no body: S3 answers a refused HeadBucket with a bare 403.
            proxy.fail("s3", "AccessDenied", status=403, operation="HeadBucket")
            return f"permission s3:ListBucket is missing for bucket {deployed.bucket}"
        if service == "dynamodb":
            proxy.fail("dynamodb", "AccessDeniedException", operation="DescribeTable")
            return f"permission dynamodb:DescribeTable is missing for table {deployed.table}"
        proxy.fail("secretsmanager", "AccessDeniedException", operation="DescribeSecret")
        return (
            f"permission secretsmanager:DescribeSecret is missing for secret {deployed.secret_id}"
        )

    return arrange


def secret_without_value(
    deployed: Deployment, proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> str:
    # Terraform creates the secret; the key is put into it by hand, or forgotten.
    import boto3

    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name=f"{deployed.name}/empty")["ARN"]
    monkeypatch.setenv("SIGNING_KEY_SECRET_ID", arn)
    return (
        f"signing key secret {arn!r} has no value yet (Secrets Manager can't find the "
        "specified secret value for staging label: AWSCURRENT); store the armoured secret "
        "key in it with `aws secretsmanager put-secret-value`"
    )


def unset_bucket_variable(
    deployed: Deployment, proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.delenv("S3_BUCKET")
    return "environment variable(s) S3_BUCKET must be set for the Lambda"


def unset_secret_variable(
    deployed: Deployment, proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> str:
    # Not a key generated under /tmp, lost with the container: clients would see a new one.
    monkeypatch.setenv("SIGNING_KEY_SECRET_ID", "")
    return "environment variable(s) SIGNING_KEY_SECRET_ID must be set for the Lambda"


@pytest.mark.parametrize(
    "arrange",
    [
        missing("bucket"),
        missing("table"),
        missing("secret"),
        denied("s3"),
        denied("dynamodb"),
        denied("secretsmanager"),
        secret_without_value,
        unset_bucket_variable,
        unset_secret_variable,
    ],
    ids=[
        "missing-bucket",
        "missing-table",
        "missing-secret",
        "bucket-access-denied",
        "table-access-denied",
        "secret-access-denied",
        "secret-without-value",
        "bucket-variable-unset",
        "secret-variable-unset",
    ],
)
def test_a_missing_resource_or_permission_stops_the_run_before_any_work(
    arrange: Callable[[Deployment, AwsProxy, pytest.MonkeyPatch], str],
    deployment: Deployment,
    upstream: Upstream,
    proxy: AwsProxy,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = arrange(deployment, proxy, monkeypatch)
    run = invoke({})
    assert_failed_cleanly(deployment, run, message)
    assert deployment.objects() == {}
    assert upstream.paths() == []  # no source was asked, nothing downloaded
    writes = {"PutObject", "CopyObject", "TransactWriteItems", "PutItem", "DeleteItem"}
    assert [c.operation for c in proxy.sent() if c.operation in writes] == []


def test_invalid_credentials_are_named_and_the_notification_that_cannot_go_is_logged(
    deployment: Deployment, upstream: Upstream, proxy: AwsProxy, invoke: Invoke
) -> None:
    """Every service refuses the credentials, SNS too: the run says so, and logs that the
    failure notification could not be sent."""
    proxy.fail("sts", "InvalidClientTokenId", status=403)
    proxy.fail("sns", "InvalidClientTokenId", status=403)
    proxy.fail("s3", "InvalidAccessKeyId", status=403)
    proxy.fail("dynamodb", "UnrecognizedClientException")
    proxy.fail("secretsmanager", "UnrecognizedClientException")
    run = invoke({})
    message = "the AWS credentials are not valid (InvalidClientTokenId, sts:GetCallerIdentity)"
    assert_failed_cleanly(deployment, run, message, notified=False)
    assert [c.operation for c in proxy.sent("sns")] == ["Publish"]
    cannot_notify = [r for r in run.records if r["message"].startswith("cannot notify ")]
    assert len(cannot_notify) == 1 and cannot_notify[0]["level"] == "ERROR", run.describe()
    assert deployment.topic_arn in cannot_notify[0]["message"]
    assert deployment.objects() == {} and upstream.paths() == []


# -- throttling ------------------------------------------------------------------------


def test_throttling_that_stops_is_survived(
    deployment: Deployment, upstream: Upstream, proxy: AwsProxy, invoke: Invoke
) -> None:
    """The first requests of S3, DynamoDB, STS and Secrets Manager calls are throttled;
    botocore's retries carry the run through."""
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()
    rules = [
        proxy.fail("sts", "Throttling", operation="GetCallerIdentity", times=1),
        proxy.fail("secretsmanager", "ThrottlingException", operation="GetSecretValue", times=1),
        proxy.fail(
            "dynamodb", "ProvisionedThroughputExceededException", operation="PutItem", times=1
        ),
        proxy.fail("dynamodb", "ThrottlingException", operation="TransactWriteItems", times=1),
        proxy.fail("s3", "SlowDown", status=503, operation="PutObject", times=2),
    ]
    run = invoke({})
    assert run.result == {
        "statusCode": 200,
        "body": "Successfully processed 2 new packages",
    }, run.describe()
    assert [rule.answered for rule in rules] == [1, 1, 1, 1, 2]
    for service, operation in [
        ("sts", "GetCallerIdentity"),
        ("secretsmanager", "GetSecretValue"),
        ("dynamodb", "PutItem"),
        ("dynamodb", "TransactWriteItems"),
        ("s3", "PutObject"),
    ]:
        sent = proxy.sent(service, operation)
        assert any(c.injected for c in sent) and any(c.status == 200 for c in sent), operation
    assert packages_in(deployment.get(PACKAGES)) == {
        "kiro": "0.9.2",
        "kiro-cli": "1.2.0",
        "kiro-repo": "1.0.0",
    }
    assert {n.subject for n in deployment.notifications()} == {
        "New package: kiro 0.9.2",
        "New package: kiro-cli 1.2.0",
    }
    assert deployment.lock_item() is None


def never_ending_s3_throttle(deployed: Deployment, proxy: AwsProxy) -> tuple[list[str], Rule, int]:
    rule = proxy.fail(
        "s3",
        "SlowDown",
        status=503,
        operation="PutObject",
        match=lambda call: call.key.startswith("dists/"),
    )
    # One call: the first attempt and botocore's 3 retries.
    return ["S3 kept throttling s3:PutObject (SlowDown) through 4 attempts"], rule, 4


def never_ending_dynamodb_throttle(
    deployed: Deployment, proxy: AwsProxy
) -> tuple[list[str], Rule, int]:
    # The full scan a publish reads its snapshot with (ingest's scans project package_id).
    rule = proxy.fail(
        "dynamodb",
        "ThrottlingException",
        operation="Scan",
        match=lambda call: "ProjectionExpression" not in call.json(),
    )
    message = (
        f"DynamoDB throttled dynamodb:Scan on table {deployed.table} in region us-east-1 "
        "(ThrottlingException) after 4 attempts"
    )
    return [message], rule, 4


def s3_policy_refuses_the_indices(
    deployed: Deployment, proxy: AwsProxy
) -> tuple[list[str], Rule, int]:
    rule = proxy.fail(
        "s3",
        "AccessDenied",
        status=403,
        operation="PutObject",
        match=lambda call: call.key.startswith("dists/"),
        message="Access Denied",
    )
    expected = [
        f"access denied: s3:PutObject on s3://{deployed.bucket}/dists/stable/main/binary-amd64/"
        "by-hash/",
        "grant s3:PutObject and s3:PutObjectAcl (acl mode public-read) on "
        f"arn:aws:s3:::{deployed.bucket}/* to these credentials",
    ]
    return expected, rule, 1  # refusals are not retried


@pytest.mark.parametrize(
    "arrange",
    [never_ending_s3_throttle, never_ending_dynamodb_throttle, s3_policy_refuses_the_indices],
    ids=["s3-throttled", "dynamodb-throttled", "s3-access-denied"],
)
def test_a_publish_that_cannot_finish_fails_the_run_before_any_release(
    arrange: Callable[[Deployment, AwsProxy], tuple[list[str], Rule, int]],
    deployment: Deployment,
    upstream: Upstream,
    proxy: AwsProxy,
    invoke: Invoke,
) -> None:
    """Throttling that never stops, or a bucket policy that refuses the index writes."""
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()
    expected, rule, attempts = arrange(deployment, proxy)
    run = invoke({})
    assert run.status == 500, run.describe()
    for text in expected:
        assert text in run.body, run.body
    assert_failed_cleanly(deployment, run, run.body.removeprefix("Error processing repository: "))
    assert not [key for key in deployment.objects() if key.startswith("dists/")]
    assert rule.answered == attempts


# -- the function pointed at another table ----------------------------------------------


def test_a_new_empty_table_does_not_unpublish_what_the_old_one_published(
    deployment: Deployment,
    upstream: Upstream,
    invoke: Invoke,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DYNAMODB_TABLE changed before `migrate-table` ran (or mistyped): refused, not
    published without kiro-repo, whose pool file would be deleted a few runs later."""
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()
    assert invoke({}).status == 200
    published = {
        key: deployment.get(key) for key in deployment.objects() if not key.startswith("staging/")
    }
    new_table = f"{deployment.table}-new"
    create_table(new_table, region=REGION, endpoint_url=moto_endpoint)
    monkeypatch.setenv("DYNAMODB_TABLE", new_table)
    run = invoke({})
    assert run.status == 500, run.describe()
    assert f"was last published from the store dynamodb://{deployment.table}" in run.body
    assert "lists kiro-repo 1.0.0, which the store dynamodb://" in run.body
    assert '`debrepo rebuild --replace` (the Lambda: {"replace": true})' in run.body
    # A force rebuild is thorough, not a licence to drop: the same refusal.
    forced = invoke({"force_rebuild": True})
    assert forced.status == 500 and "was last published from the store" in forced.body
    now = {
        key: deployment.get(key) for key in deployment.objects() if not key.startswith("staging/")
    }
    assert now == published
    # Saying so replaces it with what the new table holds (the versions the sync stored).
    replaced = invoke({"replace": True})
    assert replaced.status == 200, replaced.describe()
    listed = packages_in(deployment.get("dists/stable/main/binary-amd64/Packages"))
    assert "kiro-repo" not in listed and "kiro" in listed


def test_a_rotated_secret_is_not_published_by_a_scheduled_run(
    deployment: Deployment, upstream: Upstream, invoke: Invoke
) -> None:
    """A new key in the secret would fail every client's `apt update` (NO_PUBKEY): the
    scheduled run refuses, and `replace` publishes it when that is what is meant."""
    import boto3

    from debrepo.signing.openpgp import generate_secret_key

    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()
    assert invoke({}).status == 200
    keyring = deployment.get("kiro-archive-keyring.gpg")
    releases = deployment.release_files()
    new_key = generate_secret_key("Rotated <ops@example.com>").decode("ascii")
    boto3.client("secretsmanager").put_secret_value(
        SecretId=deployment.secret_id, SecretString=new_key
    )

    run = invoke({"force_rebuild": True})

    assert run.status == 500, run.describe()
    assert "NO_PUBKEY" in run.body and '{"replace": true}' in run.body
    assert deployment.get("kiro-archive-keyring.gpg") == keyring
    assert deployment.release_files() == releases
    replaced = invoke({"replace": True})
    assert replaced.status == 200, replaced.describe()
    assert deployment.get("kiro-archive-keyring.gpg") != keyring


def test_an_announced_key_is_kept_by_scheduled_runs_and_takes_over_from_the_secret(
    deployment: Deployment,
    upstream: Upstream,
    invoke: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Announced from the CLI, the next key stays in the keyring through the function's
    runs (the announcement is in the publisher state, in the bucket); put into the secret
    after a kiro-repo that installs it, the next scheduled run signs with it once
    key_switch_days have passed."""
    import boto3
    import pysequoia as sq

    from debrepo.signing.openpgp import generate_secret_key

    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()
    assert invoke({}).status == 200
    [old] = sq.Cert.split_bytes(deployment.get("kiro-archive-keyring.gpg"))
    next_key = tmp_path / "next.asc"
    next_key.write_bytes(generate_secret_key("Next <ops@example.com>"))
    announced, _, _ = app.announce_key(workspace(), next_key)

    def keyring() -> list[str]:
        return [
            str(c.fingerprint)
            for c in sq.Cert.split_bytes(deployment.get("kiro-archive-keyring.gpg"))
        ]

    assert keyring() == [str(old.fingerprint), announced]
    assert invoke({"force_rebuild": True}).status == 200
    assert keyring() == [str(old.fingerprint), announced]
    app.build_kiro_repo(workspace(), version="1.1.0")  # installs both keys
    boto3.client("secretsmanager").put_secret_value(
        SecretId=deployment.secret_id, SecretString=next_key.read_text()
    )

    # The scheduled run, with nothing new upstream, notices the key in the secret.
    early = invoke({})
    assert early.status == 500 and "(key_switch_days)" in early.body, early.describe()
    assert keyring() == [str(old.fingerprint), announced]
    monkeypatch.setenv("DEBREPO_KEY_SWITCH_DAYS", "0")

    switched = invoke({})

    assert switched.status == 200, switched.describe()
    assert keyring() == [announced]
    (tmp_path / "keyring.gpg").write_bytes(deployment.get("kiro-archive-keyring.gpg"))
    (tmp_path / "InRelease").write_bytes(deployment.get("dists/stable/InRelease"))
    checked = gpgv(tmp_path / "keyring.gpg", tmp_path / "InRelease", home=tmp_path / "gnupg")
    assert checked.returncode == 0, checked.stderr


def test_verify_on_s3_warns_of_a_stray_pool_object_and_survives_a_role_that_cannot_list(
    deployment: Deployment, upstream: Upstream, invoke: Invoke, proxy: AwsProxy
) -> None:
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()
    assert invoke({}).status == 200
    assert not [w for w in app.verify(workspace()).warnings if "stray" in w or "pool/" in w]
    stray = "pool/main/z/zeta/zeta_1.0_amd64.deb"
    workspace().repo.put(stray, deb_bytes("zeta", "1.0"), delivery_for(stray))
    warned = app.verify(workspace())
    assert warned.ok, warned.problems
    assert any(stray in w for w in warned.warnings), warned.warnings

    proxy.fail("s3", "AccessDenied", status=403, operation="ListObjectsV2")
    unlisted = app.verify(workspace())
    assert unlisted.ok, unlisted.problems  # every object it may read is still checked
    assert any(w.startswith("the pool was not checked for stray files") for w in unlisted.warnings)


# -- an object that disappears ---------------------------------------------------------


def publish_kiro_repo_then_stage_another(deployed: Deployment) -> dict[str, bytes]:
    """kiro-repo 1.0.0 published, 1.0.1 staged and recorded; the Release files then."""
    app.build_kiro_repo(workspace(), version="1.0.0")
    stage_kiro_repo("1.0.1")
    deployed.notifications()
    releases = deployed.release_files()
    assert set(releases) == set(RELEASE_FILES)
    return releases


def test_a_staged_file_deleted_before_the_run_publishes_nothing_and_says_which(
    deployment: Deployment, upstream: Upstream, invoke: Invoke
) -> None:
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    releases = publish_kiro_repo_then_stage_another(deployment)
    staged = KIRO_REPO_STAGED.format(version="1.0.1")
    kept = deployment.get(staged)
    deployment.s3.delete_object(Bucket=deployment.bucket, Key=staged)
    keys_before = set(deployment.objects())

    run = invoke({})
    assert_failed_cleanly(
        deployment,
        run,
        "kiro-repo#1.0.1: pool/main/k/kiro-repo/kiro-repo_1.0.1_all.deb is missing or holds "
        f"other bytes, and {staged} is not in the staging area s3://{deployment.bucket}/ (put "
        "the .deb "
        "back at pool/main/k/kiro-repo/kiro-repo_1.0.1_all.deb: `debrepo add` of that very "
        "file does, or remove kiro-repo 1.0.1); "
        "nothing was published; kiro 0.9.2, kiro-cli 1.2.0 stored but not published: fix "
        "that, then run `debrepo rebuild` (or let the next sync publish it)",
        releases_before=releases,
    )
    # The new packages' pool files went up before the publish, nothing a client could see;
    # their announcements wait in the staging area.
    added = set(deployment.objects()) - keys_before
    assert added == {
        "pool/main/k/kiro/kiro_0.9.2_amd64.deb",
        "pool/main/k/kiro-cli/kiro-cli_1.2.0_amd64.deb",
        "staging/.state/notifications-owed.json",
    }
    assert packages_in(deployment.get(PACKAGES)) == {"kiro-repo": "1.0.0"}

    # With the staged file back, the next scheduled run publishes everything.
    deployment.s3.put_object(Bucket=deployment.bucket, Key=staged, Body=kept)
    again = invoke({})
    assert again.result == {"statusCode": 200, "body": "No new packages to process"}, (
        again.describe()
    )
    assert packages_in(deployment.get(PACKAGES)) == {
        "kiro": "0.9.2",
        "kiro-cli": "1.2.0",
        "kiro-repo": "1.0.1",
    }
    head = deployment.s3.head_object(Bucket=deployment.bucket, Key="kiro-repo.deb")
    assert head["Metadata"] == {"package": "kiro-repo", "version": "1.0.1"}
    # Subscribers hear of kiro 0.9.2 and kiro-cli 1.2.0 now that they are published.
    assert sorted(n.subject for n in deployment.notifications()) == [
        "New package: kiro 0.9.2",
        "New package: kiro-cli 1.2.0",
    ]
    assert "staging/.state/notifications-owed.json" not in deployment.objects()


def test_a_staged_file_that_disappears_between_reading_and_copying_publishes_nothing(
    deployment: Deployment, proxy: AwsProxy, invoke: Invoke
) -> None:
    releases = publish_kiro_repo_then_stage_another(deployment)
    staged = KIRO_REPO_STAGED.format(version="1.0.1")
    deleted: list[Call] = []

    def delete_the_source(call: Call) -> None:
        deployment.s3.delete_object(Bucket=deployment.bucket, Key=staged)
        deleted.append(call)

    before = len(proxy.sent())
    proxy.before(
        lambda call: (
            call.operation == "CopyObject" and call.copy_source == f"{deployment.bucket}/{staged}"
        ),
        delete_the_source,
    )
    run = invoke({"force_rebuild": True})
    assert len(deleted) == 1
    checked = [c.operation for c in proxy.sent()[before:] if c.key == staged]
    assert checked[:2] == ["HeadObject", "GetObject"], checked  # it was there when read
    assert_failed_cleanly(
        deployment,
        run,
        f"s3://{deployment.bucket}/{staged}: no such object",
        releases_before=releases,
        operation="force_rebuild",
    )
    assert "pool/main/k/kiro-repo/kiro-repo_1.0.1_all.deb" not in deployment.objects()
    assert deployment.s3.head_object(Bucket=deployment.bucket, Key="kiro-repo.deb")["Metadata"] == {
        "package": "kiro-repo",
        "version": "1.0.0",
    }


# -- one publisher at a time -----------------------------------------------------------


def test_two_publishers_at_once_take_turns_and_lose_no_package(
    deployment: Deployment, moto_endpoint: str, tmp_path: Path
) -> None:
    """Two `debrepo add --wait` processes on the same table and bucket, both through one
    proxy that records every request. The first lock release is held back until the other
    process has been refused the lock at least once, so the two really do overlap."""
    proxy = AwsProxy(moto_endpoint, serialize=True)

    def refused_lock_attempts() -> list[Call]:
        return [
            c
            for c in proxy.sent("dynamodb", "PutItem")
            if is_lock_request(c, LOCK_ID) and c.status == 400
        ]

    def hold_until_someone_waits(call: Call) -> None:
        deadline = time.monotonic() + 30
        while not refused_lock_attempts() and time.monotonic() < deadline:
            time.sleep(0.05)

    proxy.before(
        lambda call: call.operation == "DeleteItem" and is_lock_request(call, LOCK_ID),
        hold_until_someone_waits,
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": proxy.url,
        "DEBREPO_KEY_SECRET_ID": deployment.secret_id,
    }
    processes = {}
    try:
        for name, version in (("alpha", "1.0"), ("beta", "2.0")):
            folder = tmp_path / name
            folder.mkdir()
            deb = folder / f"{name}_{version}_amd64.deb"
            deb.write_bytes(deb_bytes(name, version))
            processes[name] = subprocess.Popen(
                [
                    debrepo_executable(),
                    "--store",
                    f"dynamodb://{deployment.table}",
                    "--repo",
                    f"s3://{deployment.bucket}",
                    "--staging",
                    f"s3://{deployment.bucket}",
                    "--config-dir",
                    str(deployment.task_root / "config" / "packages"),
                    "add",
                    "--wait",
                    "60",
                    str(deb),
                ],
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        outputs = {name: p.communicate(timeout=120) for name, p in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        proxy.close()

    for name, process in processes.items():
        stdout, stderr = outputs[name]
        assert process.returncode == 0, stdout + stderr
        assert stdout.startswith(f"added {name} "), stdout

    first, second = lock_intervals(proxy, LOCK_ID)
    pids = {process.pid: name for name, process in processes.items()}
    assert {first.pid, second.pid} == set(pids)
    assert first.released <= second.acquired  # no overlap
    refused = refused_lock_attempts()
    assert refused, "the second publisher never found the lock taken"
    for call in refused:
        assert call.json()["Item"]["owner"]["S"] == second.owner
        assert first.taken < call.answered < first.freed  # refused while the first held it
    # Every write to the store or the bucket happened while its writer held the lock.
    writes = [
        c
        for c in proxy.sent()
        if c.operation in ("PutObject", "CopyObject", "DeleteObject", "TransactWriteItems")
    ]
    assert len(writes) > 10
    for call in writes:
        assert first.holds(call) != second.holds(call), (call.operation, call.key)
    for interval in (first, second):
        name = pids[interval.pid]
        pool_writes = [c for c in writes if c.key.startswith(f"pool/main/{name[0]}/{name}/")]
        assert pool_writes and all(interval.holds(c) for c in pool_writes), name
        releases = [c for c in writes if c.key in RELEASE_FILES and interval.holds(c)]
        assert [c.key for c in releases][-1] == "dists/stable/InRelease"

    ws = workspace()
    assert ws.store.package_ids() == {"alpha#1.0", "beta#2.0"}
    assert packages_in(deployment.get(PACKAGES)) == {"alpha": "1.0", "beta": "2.0"}
    assert deployment.lock_item() is None


def put_lock_item(
    deployed: Deployment, owner: str, *, expires_in: int, acquired_at: str | None = None
) -> None:
    """The lock item another process writes when it takes the lock."""
    item = {
        "package_id": {"S": LOCK_ID},
        "owner": {"S": owner},
        "expires_at": {"N": str(int(time.time()) + expires_in)},
    }
    if acquired_at is not None:
        item["acquired_at"] = {"S": acquired_at}
    deployed.dynamodb.put_item(TableName=deployed.table, Item=item)


def test_a_held_lock_stops_a_second_publisher_at_once_or_makes_it_wait(
    deployment: Deployment, proxy: AwsProxy, invoke: Invoke, tmp_path: Path
) -> None:
    """While the lock is held: the store never shows it, a publisher that will not wait
    fails at once with a clear message (the Lambda too, and notifies), one that waits
    publishes once the lock is released. A lock whose holder died is taken over.
    Attempts at the lock are counted on the wire (the proxy), not guessed from timing."""

    def refused_lock_attempts() -> int:
        return sum(
            1
            for c in proxy.sent("dynamodb", "PutItem")
            if is_lock_request(c, LOCK_ID) and c.status == 400
        )

    debs = {}
    for name, version in (("alpha", "1.0"), ("beta", "2.0")):
        debs[name] = tmp_path / f"{name}_{version}_amd64.deb"
        debs[name].write_bytes(deb_bytes(name, version))
    ws = workspace()
    holder = DynamoDBLock(deployment.table, ttl_seconds=600)
    waited: dict[str, Any] = {}

    def wait_for_the_lock() -> None:
        try:
            waited["result"] = app.add_packages(workspace(), [debs["alpha"]], wait_seconds=30)
        except Exception as exc:  # reported by the assertions below
            waited["error"] = exc

    waiter = threading.Thread(target=wait_for_the_lock)
    with holder.hold():
        item = deployment.lock_item()
        assert item is not None and item["owner"]["S"] == holder.owner
        assert int(item["expires_at"]["N"]) - time.time() > 590
        assert ws.store.all() == [] and ws.store.package_ids() == set()
        assert ws.store.get(LOCK_ID) is None and not ws.store.exists(LOCK_ID)

        expires = datetime.fromtimestamp(int(item["expires_at"]["N"]), UTC)
        message = (
            f"another debrepo process is publishing ({holder.owner} since "
            f"{item['acquired_at']['S']}); lock {LOCK_ID} in {deployment.table}; if that "
            f"process died, the lock expires at {expires.isoformat(timespec='seconds')} (in "
        )
        refused = refused_lock_attempts()
        started = time.monotonic()
        with pytest.raises(LockError) as caught:
            app.add_packages(ws, [debs["alpha"]], wait_seconds=0)
        # At once: one attempt, refused, and no other; nor any waiting (the publisher
        # below is allowed 30 s, and this lock stays held throughout).
        assert refused_lock_attempts() == refused + 1
        assert time.monotonic() - started < 20
        assert str(caught.value).startswith(message)
        assert str(caught.value).endswith(" s) (a live holder renews it)")
        assert ws.store.package_ids() == set() and deployment.objects() == {}

        run = invoke({"force_rebuild": True})
        assert run.status == 500, run.describe()
        assert run.body.startswith(f"Error processing repository: {message}"), run.describe()
        error = run.body.removeprefix("Error processing repository: ")
        assert deployment.notifications() == [
            Notification(
                "debrepo force_rebuild failed",
                {"event": "run_failed", "operation": "force_rebuild", "error": error},
            )
        ]

        refused = refused_lock_attempts()
        waiter.start()
        # Refused twice: it found the lock held and, rather than give up, tried again.
        deadline = time.monotonic() + 60
        while refused_lock_attempts() < refused + 2 and time.monotonic() < deadline:
            assert waiter.is_alive(), waited
            time.sleep(0.05)
        assert refused_lock_attempts() >= refused + 2, waited
        assert waiter.is_alive(), waited
        assert ws.store.package_ids() == set()
    waiter.join(timeout=30)
    assert "error" not in waited, waited
    assert [r.package_id for r in waited["result"].records] == ["alpha#1.0"]
    assert packages_in(deployment.get(PACKAGES)) == {"alpha": "1.0"}
    assert deployment.lock_item() is None

    # A holder that crashed: its lock expired a minute ago.
    put_lock_item(
        deployment,
        "crashed-host/4242/0badc0de",
        expires_in=-60,
        acquired_at="2026-11-24T11:00:00+00:00",
    )
    assert ws.store.package_ids() == {"alpha#1.0"}
    app.add_packages(ws, [debs["beta"]], wait_seconds=0)
    assert packages_in(deployment.get(PACKAGES)) == {"alpha": "1.0", "beta": "2.0"}
    assert deployment.lock_item() is None


def test_a_holder_working_longer_than_the_expiry_keeps_the_lock(deployment: Deployment) -> None:
    # Renewed every 0.3 s, an expiry of 5 s leaves the heartbeat seconds of slack on a
    # busy machine.
    holder = DynamoDBLock(deployment.table, ttl_seconds=5, heartbeat_seconds=0.3)
    other = DynamoDBLock(deployment.table, ttl_seconds=5)
    with holder.hold():
        taken = deployment.lock_item()
        assert taken is not None and taken["owner"]["S"] == holder.owner
        first_expiry = int(taken["expires_at"]["N"])
        # A long download: wait until the expiry set when the lock was taken has passed
        # (the table compares whole seconds).
        while time.time() < first_expiry + 1:
            time.sleep(0.1)
        with (
            pytest.raises(LockError, match="another debrepo process is publishing"),
            other.hold(),
        ):
            pass
        item = deployment.lock_item()
        assert item is not None and item["owner"]["S"] == holder.owner
        assert int(item["expires_at"]["N"]) >= time.time()
    assert not holder.lost
    assert deployment.lock_item() is None


def test_a_lock_taken_over_after_a_pause_is_reported_as_lost(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    holder = DynamoDBLock(deployment.table, ttl_seconds=60, heartbeat_seconds=0.2)
    with caplog.at_level(logging.ERROR, logger="debrepo.aws"), holder.hold():
        # What another process does once a paused holder's lock has expired.
        put_lock_item(deployment, "other/1/feedface", expires_in=60)
        deadline = time.monotonic() + 30
        while not holder.lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert holder.lost
    assert "was taken by another process" in caplog.text
    item = deployment.lock_item()
    assert item is not None and item["owner"]["S"] == "other/1/feedface"  # not released


def test_a_publisher_whose_lock_was_taken_over_writes_no_release(
    deployment: Deployment, tmp_path: Path
) -> None:
    deb = tmp_path / "alpha_1.0_amd64.deb"
    deb.write_bytes(deb_bytes("alpha", "1.0"))
    app.add_packages(workspace(), [deb])
    releases = deployment.release_files()
    ws = workspace()
    with ws.lock():
        # Paused past its expiry; another process took the lock meanwhile.
        put_lock_item(deployment, "other/1/feedface", expires_in=600)
        with pytest.raises(LockError, match="expired and was taken by another process"):
            ws.publish(now=datetime.now(UTC), full=True)
    assert deployment.release_files() == releases
    item = deployment.lock_item()
    assert item is not None and item["owner"]["S"] == "other/1/feedface"


def test_a_publisher_stopped_past_its_lock_expiry_writes_nothing_more(
    deployment: Deployment, proxy: AwsProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A laptop suspended mid-publish: when it wakes, another process holds the lock. Its
    plain indices and pool map must not overwrite what that process published (as they
    did when only the Release files were guarded)."""
    import debrepo.aws

    deb = tmp_path / "alpha_1.0_amd64.deb"
    deb.write_bytes(deb_bytes("alpha", "1.0"))
    app.add_packages(workspace(), [deb])
    before = {key: deployment.get(key) for key in deployment.objects()}

    class Clock:  # debrepo.aws's clock, which the stop moves on
        offset = 0.0

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def time(self) -> float:
            return time.time() + self.offset

    clock = Clock()
    monkeypatch.setattr(debrepo.aws, "time", clock)

    ws = workspace()

    def stopped_longer_than_the_lock_lives(call: Call) -> None:
        clock.offset = ws.settings.lock_ttl_seconds + 1
        put_lock_item(deployment, "other/1/feedface", expires_in=600)

    with ws.lock():
        # Stopped while it reads the publisher state, before any write.
        proxy.before(
            lambda call: call.key.endswith("publish-state.json"), stopped_longer_than_the_lock_lives
        )
        sent_before = len(proxy.sent("s3"))
        with pytest.raises(LockError, match="expired while this process ran"):
            ws.publish(now=datetime.now(UTC), full=True)
    assert [
        c.key
        for c in proxy.sent("s3")[sent_before:]
        if c.operation in ("PutObject", "CopyObject", "DeleteObject")
    ] == []
    assert {key: deployment.get(key) for key in deployment.objects()} == before


def test_verify_says_a_publish_holds_the_lock(deployment: Deployment, tmp_path: Path) -> None:
    deb = tmp_path / "alpha_1.0_amd64.deb"
    deb.write_bytes(deb_bytes("alpha", "1.0"))
    app.add_packages(workspace(), [deb])
    assert app.verify(workspace()).warnings == []
    put_lock_item(deployment, "other/1/feedface", expires_in=600)
    (warning,) = app.verify(workspace()).warnings
    assert warning.startswith("a publish ran during this check (other/1/feedface, lock expiring")
    put_lock_item(deployment, "crashed/2/deadbeef", expires_in=-5)  # expired: nobody
    assert app.verify(workspace()).warnings == []


def test_a_lock_write_whose_answer_was_lost_is_known_as_ours(
    deployment: Deployment, proxy: AwsProxy
) -> None:
    """The PutItem landed, its answer was lost, and botocore's retry failed the condition
    against our own item: that is the lock taken, not another publisher holding it."""
    lock = DynamoDBLock(deployment.table, ttl_seconds=60)

    def first_attempt_landed(call: Call) -> None:
        put_lock_item(deployment, lock.owner, expires_in=60)

    proxy.before(
        lambda call: call.operation == "PutItem" and is_lock_request(call, LOCK_ID),
        first_attempt_landed,
    )
    with lock.hold() as still_ours:
        still_ours()
        item = deployment.lock_item()
        assert item is not None and item["owner"]["S"] == lock.owner
    assert deployment.lock_item() is None  # released, not left for its expiry


def test_a_lock_that_cannot_be_confirmed_before_the_release_stops_the_publish(
    deployment: Deployment, proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    lock = DynamoDBLock(deployment.table, ttl_seconds=60, heartbeat_seconds=600)
    with lock.hold() as still_ours:
        still_ours()  # confirmed
        proxy.fail("dynamodb", "ProvisionedThroughputExceededException", operation="UpdateItem")
        with pytest.raises(LockError, match=r"cannot confirm that this process still holds"):
            still_ours()
        assert not lock.lost  # not taken by another: released as usual


def test_a_store_write_retried_by_botocore_carries_the_same_request_token(
    deployment: Deployment, proxy: AwsProxy, tmp_path: Path
) -> None:
    """DynamoDB runs a transaction once per token, which botocore fills in: a retry of one
    that committed but whose answer was lost must carry the same token, or it fails its
    own conditions and calls the version a duplicate."""
    deb = tmp_path / "alpha_1.0_amd64.deb"
    deb.write_bytes(deb_bytes("alpha", "1.0"))
    proxy.fail(
        "dynamodb", "InternalServerError", status=500, operation="TransactWriteItems", times=1
    )
    app.add_packages(workspace(), [deb], publish=False)
    sent = proxy.sent("dynamodb", "TransactWriteItems")
    tokens = [call.json().get("ClientRequestToken") for call in sent]
    assert len(sent) >= 2 and sent[0].injected == "InternalServerError"
    assert tokens[0] and tokens[0] == tokens[1]
    assert len(set(tokens)) == len(sent) - 1  # each transaction its own token
    assert workspace().store.get("alpha#1.0") is not None


def test_a_secret_that_cannot_be_read_or_holds_no_key_says_what_to_do(
    deployment: Deployment, proxy: AwsProxy, invoke: Invoke
) -> None:
    secrets = deployment.aws["secretsmanager"]
    secrets.put_secret_value(
        SecretId=deployment.secret_id, SecretString='{"signing-key": "-----BEGIN PGP"}'
    )  # the console's key/value form
    console = invoke({"force_rebuild": True})
    assert console.status == 500, console.describe()
    assert f"secret {deployment.secret_id} is not an OpenPGP secret key" in console.body
    assert "aws secretsmanager put-secret-value" in console.body
    assert "DEBREPO_KEY_FILE" not in console.body  # no key file is involved

    secrets.put_secret_value(
        SecretId=deployment.secret_id, SecretString=deployment.secret_key.decode("ascii")
    )
    proxy.fail(
        "secretsmanager",
        "AccessDeniedException",
        operation="GetSecretValue",
        message="Access to KMS is not allowed",
    )
    denied = invoke({"force_rebuild": True})
    assert denied.status == 500, denied.describe()
    assert (
        f"not allowed to read the signing key secret '{deployment.secret_id}': Access to KMS "
        "is not allowed (the role needs secretsmanager:GetSecretValue, and kms:Decrypt"
    ) in denied.body


def test_upstream_gets_the_functions_time_less_what_the_publish_needs() -> None:
    """A slow upstream (Retry-After, a trickling download) must not run the function into
    its time limit before it publishes: the Release would then never be re-signed."""
    from debrepo.aws_lambda import PUBLISH_RESERVE_SECONDS, _http_within

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 900_000

    before = time.monotonic()
    settings = _http_within(Context())
    assert settings.run_deadline is not None
    budget = settings.run_deadline - before
    assert 900 - PUBLISH_RESERVE_SECONDS <= budget <= 900 - PUBLISH_RESERVE_SECONDS + 5
    assert _http_within(object()).run_deadline is None  # no context: no limit but its own


def test_lock_failures_are_one_line_naming_the_table(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    lock = DynamoDBLock(deployment.table, ttl_seconds=60)
    with pytest.raises(LockError) as caught, lock.hold():
        pass
    message = str(caught.value)
    assert message.startswith(
        f"cannot write (dynamodb:PutItem) for the publish lock in table {deployment.table}: "
    )
    assert "Could not connect to the endpoint URL" in message and "\n" not in message


def test_a_missing_table_for_the_lock_is_named_with_its_region(deployment: Deployment) -> None:
    lock = DynamoDBLock(f"{deployment.table}-gone", ttl_seconds=60)
    with pytest.raises(LockError) as caught, lock.hold():
        pass
    assert str(caught.value).startswith(
        f"DynamoDB table {deployment.table}-gone not found in region {REGION} (for the "
        "publish lock); check --store (DEBREPO_STORE) and AWS_REGION"
    )


# -- the deployment artifact -----------------------------------------------------------


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scripts/build-lambda.sh's zip, built once per session."""
    output = tmp_path_factory.mktemp("artifact") / "debrepo-lambda.zip"
    built = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / "build-lambda.sh"), str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return output


ARTIFACT_PROGRAM = """
import json, sys

root = sys.argv[1]
sys.path.insert(0, root)
from debrepo.aws_lambda import handler

import aws_lambda_powertools, boto3, botocore, debian, debrepo, pysequoia, yaml, zstandard

class Context:
    function_name = "kiro-debian-repo-manager-test"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:artifact"
    aws_request_id = "artifact-request"

modules = (aws_lambda_powertools, boto3, botocore, debian, debrepo, pysequoia, yaml, zstandard)
result = handler({"force_rebuild": True}, Context())
print("RESULT " + json.dumps({
    "result": result,
    "origins": {m.__name__: m.__file__ for m in modules},
    "path": sys.path,
}))
"""


def test_the_deployment_zip_runs_the_handler_from_its_own_contents_alone(
    lambda_zip: Path, deployment: Deployment, tmp_path: Path
) -> None:
    with zipfile.ZipFile(lambda_zip) as archive:
        names = set(archive.namelist())
        unpacked = tmp_path / "function"
        archive.extractall(unpacked)
    assert {
        "config/packages/kiro.yaml",
        "config/packages/kiro-repo.yaml",
        "config/packages/kiro-cli.yaml",
        "debrepo/aws_lambda.py",
    } <= names
    template_files = {
        f"templates/kiro-repo/{path.name}"
        for path in (PROJECT_ROOT / "templates/kiro-repo").iterdir()
    }
    assert template_files <= names
    assert any(name.startswith("pysequoia/") and name.endswith(".so") for name in names)
    assert not [name for name in names if "__pycache__" in name]

    # A tiny repository, not yet published: kiro-repo from the build script, one package.
    stage_kiro_repo()
    hello = tmp_path / "hello_1.0_amd64.deb"
    hello.write_bytes(deb_bytes("hello", "1.0"))
    app.add_packages(workspace(), [hello], publish=False)
    assert deployment.release_files() == {}

    no_gpg = tmp_path / "bin-without-gpg"
    no_gpg.mkdir()
    scratch = tmp_path / "function-tmp"
    scratch.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        **deployment.environment(),
        "LAMBDA_TASK_ROOT": str(unpacked),
        "PATH": str(no_gpg),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
    }
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", ARTIFACT_PROGRAM, str(unpacked)],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    *log_lines, last = done.stdout.splitlines()
    assert last.startswith("RESULT "), done.stdout + done.stderr
    report = json.loads(last.removeprefix("RESULT "))
    assert report["result"] == {
        "statusCode": 200,
        "body": "Successfully rebuilt repository with 2 packages",
    }, done.stdout + done.stderr
    for name, origin in report["origins"].items():
        assert origin.startswith(f"{unpacked}/"), (name, origin)
    assert not [p for p in report["path"] if "site-packages" in p], report["path"]
    records, _metrics = parse_output("\n".join(log_lines))
    assert records and all(r["function_request_id"] == "artifact-request" for r in records)

    assert packages_in(deployment.get(PACKAGES)) == {"hello": "1.0", "kiro-repo": "1.0.0"}
    site = tmp_path / "site"
    deployment.download(site)
    dists = site / "dists" / "stable"
    keyring = site / "kiro-archive-keyring.gpg"
    for signed in ((dists / "Release.gpg", dists / "Release"), (dists / "InRelease",)):
        checked = gpgv(keyring, *signed, home=tmp_path / "gnupg")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert list(scratch.iterdir()) == []


def test_a_publish_invalidates_the_configured_cloudfront_distribution(
    deployment: Deployment,
    upstream: Upstream,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
) -> None:
    import boto3

    from tests.aws.test_cloudfront import _distribution

    distribution = _distribution(moto_endpoint, deployment.bucket)
    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", distribution)
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()

    run = invoke({})
    assert run.result["statusCode"] == 200, run.describe()
    cloudfront = boto3.client("cloudfront", endpoint_url=moto_endpoint, region_name="us-east-1")
    invalidations = cloudfront.list_invalidations(DistributionId=distribution)
    items = invalidations["InvalidationList"].get("Items", [])
    assert len(items) == 1, invalidations
    found = cloudfront.get_invalidation(DistributionId=distribution, Id=items[0]["Id"])
    paths = found["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]
    assert {
        "/dists/*",
        "/pool/main/k/kiro/kiro_0.9.2_amd64.deb",
        "/pool/main/k/kiro-cli/kiro-cli_1.2.0_amd64.deb",
        "/pool/main/k/kiro-repo/kiro-repo_1.0.0_all.deb",
    } <= set(paths)
    by_message = {r["message"]: r for r in run.records}
    assert by_message["cloudfront invalidated"]["invalidation_id"] == items[0]["Id"]


def test_a_failed_invalidation_is_a_warning_and_the_next_run_retries_it(
    deployment: Deployment,
    upstream: Upstream,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
) -> None:
    import boto3

    from tests.aws.test_cloudfront import _distribution

    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", "E2NOSUCHDIST")
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    stage_kiro_repo()

    run = invoke({})
    assert run.result == {"statusCode": 200, "body": "Successfully processed 2 new packages"}
    (warning,) = [r for r in run.records if r["level"] == "WARNING"]
    assert warning["message"].startswith(
        "CloudFront distribution E2NOSUCHDIST: cannot invalidate what was published "
        "(NoSuchDistribution: "
    )
    assert packages_in(deployment.get(PACKAGES)).keys() == {"kiro", "kiro-cli", "kiro-repo"}

    # The next run has nothing new to publish, and still owes the invalidation.
    distribution = _distribution(moto_endpoint, deployment.bucket)
    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", distribution)
    run = invoke({})
    assert run.result == {"statusCode": 200, "body": "No new packages to process"}
    cloudfront = boto3.client("cloudfront", endpoint_url=moto_endpoint, region_name="us-east-1")
    listed = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]
    assert len(listed.get("Items", [])) == 1
    found = cloudfront.get_invalidation(DistributionId=distribution, Id=listed["Items"][0]["Id"])
    paths = found["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]
    # The pool files of the run whose invalidation failed are owed too.
    assert "/pool/main/k/kiro/kiro_0.9.2_amd64.deb" in paths
    assert "/dists/*" in paths

    # Paid: a run that changes nothing invalidates nothing.
    invoke({})
    listed = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]
    assert len(listed.get("Items", [])) == 1


def test_the_cli_invalidates_the_configured_distribution_after_a_publish(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str
) -> None:
    import boto3

    from tests.aws.test_cloudfront import _distribution

    distribution = _distribution(moto_endpoint, deployment.bucket)
    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", distribution)
    app.build_kiro_repo(workspace(), version="1.0.0")  # what the build script runs

    cloudfront = boto3.client("cloudfront", endpoint_url=moto_endpoint, region_name="us-east-1")
    listed = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]
    assert len(listed.get("Items", [])) == 1


@pytest.mark.parametrize(
    ("value", "rebuild"),
    [
        (True, True),
        ("true", True),
        ("TRUE", True),
        (1, True),
        (False, False),
        ("false", False),
        ("0", False),
        (None, False),
    ],
)
def test_force_rebuild_reads_yes_and_no_as_they_are_meant(value: object, rebuild: bool) -> None:
    from debrepo.aws_lambda import _flag

    assert _flag({"force_rebuild": value}, "force_rebuild") is rebuild
    assert _flag({"replace": value}, "replace") is rebuild


def test_a_force_rebuild_value_that_is_neither_yes_nor_no_is_a_bad_request(
    deployment: Deployment, invoke: Invoke
) -> None:
    run = invoke({"force_rebuild": "maybe"})
    assert run.result == {
        "statusCode": 400,
        "body": "Bad request: event field force_rebuild must be true or false, not 'maybe'",
    }
    assert deployment.objects() == {}  # nothing was run
    both = invoke({"force_rebuild": True, "retry_refused": "yes"})
    assert both.result == {
        "statusCode": 400,
        "body": "Bad request: event field retry_refused is for a sync, not a force rebuild",
    }
    assert deployment.objects() == {}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("S3_ACL_MODE", "public", "environment variable S3_ACL_MODE must be one of "),
        ("PUBLIC_URL", "ftp://x", "environment variable PUBLIC_URL: 'ftp://x' is not an http"),
    ],
)
def test_a_bad_function_variable_is_named_as_the_function_spells_it(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    from debrepo.errors import ConfigError

    environ = {"S3_BUCKET": "b", "DYNAMODB_TABLE": "t", "SIGNING_KEY_SECRET_ID": "s"}
    (tmp_path / "config" / "packages").mkdir(parents=True)
    with pytest.raises(ConfigError) as caught:
        lambda_settings({**environ, variable: value}, task_root=tmp_path)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("prefix", "repo", "url"),
    [
        ("", "s3://bkt", "https://bkt.s3.eu-west-1.amazonaws.com"),
        ("/apt/", "s3://bkt/apt", "https://bkt.s3.eu-west-1.amazonaws.com/apt"),
    ],
)
def test_the_default_public_url_is_where_the_repository_is_in_the_bucket(
    tmp_path: Path, prefix: str, repo: str, url: str
) -> None:
    environ = {
        "S3_BUCKET": "bkt",
        "DYNAMODB_TABLE": "tbl",
        "AWS_REGION": "eu-west-1",
        "S3_PREFIX": prefix,
        "SIGNING_KEY_SECRET_ID": "repo-key",
    }
    (tmp_path / "config" / "packages").mkdir(parents=True)  # bundled with the function
    settings = lambda_settings(environ, task_root=tmp_path)
    assert (settings.repo, settings.public_url, settings.staging) == (repo, url, "s3://bkt")
    # The public URL is what index.html and kiro-repo's sources file point clients at.
    environ["PUBLIC_URL"] = "https://apt.example.com"
    assert lambda_settings(environ, task_root=tmp_path).public_url == "https://apt.example.com"


def test_release_notes_too_long_for_sns_are_shortened_not_lost(deployment: Deployment) -> None:
    from debrepo.notify import MESSAGE_LIMIT, SnsNotifier, package_message
    from tests.unit.helpers import make_record

    notes = "漢字のリリースノート" * 12_000  # 360,000 bytes of UTF-8; GitHub allows such bodies
    record = make_record("kiro", "1.0", notes=notes)
    SnsNotifier(deployment.topic_arn).package_published(record)

    (delivered,) = deployment.notifications()
    assert delivered.subject == "New package: kiro 1.0"
    sent = delivered.message
    assert sent["notes"].endswith(" [...]")
    assert notes.startswith(sent["notes"].removesuffix(" [...]"))
    assert len(sent["notes"]) > 40_000  # shortened to fit (6 bytes each, escaped), not dropped
    assert {k: v for k, v in sent.items() if k != "notes"} == {
        k: v for k, v in package_message(record).items() if k != "notes"
    }
    assert len(json.dumps(sent, sort_keys=True)) <= MESSAGE_LIMIT
