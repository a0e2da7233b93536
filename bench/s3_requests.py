"""S3 requests and wall time of publishing one new version into repositories of N versions.

Runs against a moto server on 127.0.0.1 (DynamoDB store, S3 repository and staging,
as in the Lambda). For each N: N records and pool objects are created (not timed), a
first publish establishes the publisher state (not timed), then one new .deb is added
and published (timed): its S3 requests, DynamoDB requests and wall time are reported.
The S3 count should not grow with N; the DynamoDB scan of the store does (1 MB pages),
and moto's scan is slow, which dominates the wall time at large N.

    python bench/s3_requests.py [--sizes 100,1000,10000] [--out bench/results/s3-requests.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from debrepo.app import Workspace, add_packages, rebuild  # noqa: E402
from debrepo.core.debwriter import DebMember, build_deb  # noqa: E402
from debrepo.core.layout import delivery_for, pool_path  # noqa: E402
from debrepo.settings import load_settings  # noqa: E402
from debrepo.signing.openpgp import generate_secret_key  # noqa: E402
from debrepo.store.dynamodb import create_table  # noqa: E402

REGION = "us-east-1"


def fake_item(index: int) -> dict[str, Any]:
    """A complete record for package benchNNNNN 1.0, with a pool object of its size."""
    name = f"bench{index:05d}"
    digest = f"{index:064x}"
    return {
        "package_id": f"{name}#1.0",
        "package_name": name,
        "version": "1.0",
        "architecture": "amd64",
        "section": "misc",
        "priority": "optional",
        "maintainer": "Bench <bench@example.com>",
        "homepage": "",
        "description": f"synthetic package {name}\n Generated for the S3 request benchmark.",
        "deb_url": f"file:///bench/{name}_1.0_amd64.deb",
        "actual_filename": f"{name}_1.0_amd64.deb",
        "file_size": 64,
        "md5_hash": digest[:32],
        "sha1_hash": digest[:40],
        "sha256_hash": digest,
        "sha512_hash": digest * 2,
        "installed_size": 1,
        "pub_date": "2026-01-01T00:00:00Z",
        "processed_timestamp": "2026-01-01T00:00:00Z",
        "package_type": "manual",
    }


def run(sizes: list[int]) -> list[dict[str, Any]]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - moto accepts anything
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
    )
    results = []
    try:
        for size in sizes:
            results.append(measure(size))
    finally:
        server.stop()
    return results


def measure(size: int) -> dict[str, Any]:
    bucket, table = f"bench-{size}", f"bench-versions-{size}"
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    create_table(table, region=REGION)
    dynamodb = boto3.resource("dynamodb", region_name=REGION).Table(table)
    with dynamodb.batch_writer() as batch:
        for index in range(size):
            batch.put_item(Item=fake_item(index))
    for index in range(size):
        key = pool_path("main", f"bench{index:05d}", f"bench{index:05d}_1.0_amd64.deb")
        s3.put_object(
            Bucket=bucket, Key=key, Body=bytes(64), ContentType=delivery_for(key).content_type
        )
    with tempfile.TemporaryDirectory() as scratch:
        key_file = Path(scratch, "key.asc")
        key_file.write_bytes(generate_secret_key("Bench <bench@example.com>"))
        settings = load_settings(
            {
                "home": str(Path(scratch, "home")),
                "store": f"dynamodb://{table}",
                "repo": f"s3://{bucket}",
                "staging": f"s3://{bucket}",
                "key_file": str(key_file),
                "config_dir": str(ROOT / "config" / "packages"),
            },
            environ={},
            cwd=Path(scratch),
        )
        now = datetime(2026, 11, 24, 12, tzinfo=UTC)
        rebuild(Workspace(settings), now=now, full=True)  # the state a running repository has

        new_deb = Path(scratch, "newcomer_1.0_amd64.deb")
        new_deb.write_bytes(
            build_deb(
                [
                    ("Package", "newcomer"),
                    ("Version", "1.0"),
                    ("Architecture", "amd64"),
                    ("Maintainer", "Bench <bench@example.com>"),
                    ("Description", "the one new version\n Added by the benchmark."),
                ],
                [DebMember("usr/share/doc/newcomer/README", b"new\n")],
                mtime=0,
            )
        )
        workspace = Workspace(settings)
        s3_stores = [workspace.repo, workspace.staging]
        dynamodb_requests = Counter[str]()
        table_client = workspace.store._table.client  # type: ignore[attr-defined]
        table_client.meta.events.register(
            "before-send", lambda **_: dynamodb_requests.update(["requests"])
        )
        s3_before = sum(store.request_count for store in s3_stores)  # type: ignore[attr-defined]
        started = time.perf_counter()
        result = add_packages(workspace, [new_deb], now=now + timedelta(hours=1))
        elapsed = time.perf_counter() - started
        s3_after = sum(store.request_count for store in s3_stores)  # type: ignore[attr-defined]
        assert result.report is not None
        return {
            "versions": size,
            "s3_requests_add": s3_after - s3_before,
            "s3_requests_publish": result.report.requests,
            "dynamodb_requests": dynamodb_requests["requests"],
            "wall_seconds": round(elapsed, 3),
            "summary": result.report.summary(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "s3-requests.json"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = run(sizes)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(
        "| versions | S3 requests (ingest + publish) | publish only | DynamoDB requests | wall s |"
    )
    print("|---:|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['versions']:,} | {row['s3_requests_add']} | {row['s3_requests_publish']} "
            f"| {row['dynamodb_requests']} | {row['wall_seconds']} |"
        )


if __name__ == "__main__":
    main()
