"""The one-time migration from the old DynamoDB schema: a real old-schema table on the moto
server, the .debs served by a local HTTP server, the new records in a DynamoDB table made
as Terraform makes it, and the published result checked by `debrepo verify`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from debrepo import app, cli
from debrepo.app import Workspace
from debrepo.errors import ConfigError
from debrepo.services.ingest import Destination
from debrepo.services.migrate import MigrationError, parse_old_item, read_backup
from debrepo.store.dynamodb import create_table
from tests.conftest import FIXED_NOW, settings_for
from tests.sources.conftest import kiro_deb

VERSIONS = ("0.9.2", "0.10.1", "0.11.0")


def old_item(version: str, deb: bytes, url: str, **overrides: Any) -> dict[str, Any]:
    """An item as the seed's old code wrote it (DynamoDB JSON)."""
    item: dict[str, Any] = {
        "version": {"S": version},
        "deb_url": {"S": url},
        "actual_filename": {"S": f"kiro_{version}_amd64.deb"},
        "file_size": {"N": str(len(deb))},
        "md5_hash": {"S": hashlib.md5(deb).hexdigest()},
        "sha1_hash": {"S": hashlib.sha1(deb).hexdigest()},
        "sha256_hash": {"S": hashlib.sha256(deb).hexdigest()},
        "pub_date": {"S": "2025-07-14"},
        "processed_timestamp": {"S": f"2025-07-{10 + VERSIONS.index(version):02d}T08:00:00Z"},
        "notes": {"S": f"Kiro {version}"},
    }
    for key, value in overrides.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


@pytest.fixture
def debs() -> dict[str, bytes]:
    return {version: kiro_deb(version) for version in VERSIONS}


@pytest.fixture
def old_table(dynamodb_client, unique_name, httpserver_ipv4: HTTPServer, debs) -> str:
    """An old-schema table listing VERSIONS, each served by the local HTTP server."""
    name = f"{unique_name}-old"
    dynamodb_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "version", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "version", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for version, deb in debs.items():
        path = f"/kiro/{version}/kiro_{version}_amd64.deb"
        httpserver_ipv4.expect_request(path).respond_with_data(deb)
        dynamodb_client.put_item(
            TableName=name, Item=old_item(version, deb, httpserver_ipv4.url_for(path))
        )
    return name


@pytest.fixture
def ws(tmp_path: Path, unique_name: str) -> Workspace:
    table = f"{unique_name}-new"
    create_table(table)
    return Workspace(settings_for(tmp_path / "home", store=f"dynamodb://{table}"))


def downloads(server: HTTPServer) -> list[str]:
    return [request.path for request, _ in server.log if request.path.endswith(".deb")]


def scan(dynamodb_client, table: str) -> list[dict[str, Any]]:
    items = dynamodb_client.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: item["version"]["S"])


def test_dry_run_backs_up_and_changes_nothing(ws, old_table, tmp_path, httpserver_ipv4):
    backup = tmp_path / "backup.jsonl"
    report, published = app.migrate_table(
        ws, old_table=old_table, backup_file=backup, dry_run=True, now=FIXED_NOW
    )
    assert published is None
    assert report.old_items == 3
    assert [old.version for old in report.to_migrate] == ["0.9.2", "0.10.1", "0.11.0"]
    assert [json.loads(line)["version"]["S"] for line in backup.read_text().splitlines()]
    assert len(read_backup(backup)) == 3
    assert ws.store.all() == []
    assert downloads(httpserver_ipv4) == []
    assert "nothing was changed" in report.summary()


def test_migration_stores_complete_records_keeps_the_old_facts_and_publishes(
    ws, old_table, tmp_path, dynamodb_client, debs, httpserver_ipv4
):
    before = scan(dynamodb_client, old_table)
    backup = tmp_path / "backup.jsonl"

    report, published = app.migrate_table(
        ws, old_table=old_table, backup_file=backup, now=FIXED_NOW
    )

    assert not report.failed
    assert sorted(r.version for r in report.migrated) == sorted(VERSIONS)
    assert published is not None and published.packages == 3
    for version, deb in debs.items():
        record = ws.store.get(f"kiro#{version}")
        assert record is not None
        assert record.sha512_hash == hashlib.sha512(deb).hexdigest()
        assert record.file_size == len(deb)
        assert record.installed_size is not None
        assert record.deb_url.endswith(f"/kiro/{version}/kiro_{version}_amd64.deb")
        assert record.pub_date == "2025-07-14"
        assert record.notes == f"Kiro {version}"
        # processed_timestamp is the old item's, not the time of the migration
        assert record.processed_timestamp.startswith(f"2025-07-{10 + VERSIONS.index(version)}")
        # the config's metadata, as for any kiro version (seed: "from config")
        assert record.homepage == "https://kiro.dev"
    assert scan(dynamodb_client, old_table) == before  # the old table is only read
    assert read_backup(backup) == before
    assert app.verify(ws, now=FIXED_NOW).ok
    assert ws.store.latest("kiro").version == "0.11.0"  # type: ignore[union-attr]

    # Running it again migrates nothing and downloads nothing.
    fetched = len(downloads(httpserver_ipv4))
    again, published_again = app.migrate_table(
        ws, old_table=old_table, backup_file=tmp_path / "backup-2.jsonl", now=FIXED_NOW
    )
    assert again.migrated == []
    assert published_again is not None and published_again.resigned_only
    assert sorted(again.already_migrated) == sorted(f"kiro#{v}" for v in VERSIONS)
    assert len(downloads(httpserver_ipv4)) == fetched


@pytest.mark.parametrize(
    ("attribute", "digits"), [("md5_hash", 32), ("sha1_hash", 40), ("sha256_hash", 64)]
)
def test_a_version_whose_download_differs_fails_alone(
    ws, old_table, tmp_path, dynamodb_client, httpserver_ipv4, attribute, digits
):
    wrong = "0" * digits
    dynamodb_client.update_item(
        TableName=old_table,
        Key={"version": {"S": "0.10.1"}},
        UpdateExpression="SET #a = :h",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":h": {"S": wrong}},
    )
    report, published = app.migrate_table(
        ws, old_table=old_table, backup_file=tmp_path / "b.jsonl", now=FIXED_NOW
    )
    assert [package_id for package_id, _ in report.failed] == ["kiro#0.10.1"]
    error = report.failed[0][1]
    assert attribute.split("_")[0].upper() in error and wrong in error
    assert "/kiro/0.10.1/" in error
    assert sorted(r.version for r in report.migrated) == ["0.11.0", "0.9.2"]
    assert ws.store.get("kiro#0.10.1") is None
    assert published is not None and published.packages == 2
    assert app.verify(ws, now=FIXED_NOW).ok


def test_unusable_old_items_stop_everything_before_any_download(
    ws, old_table, tmp_path, dynamodb_client, httpserver_ipv4
):
    dynamodb_client.put_item(
        TableName=old_table,
        Item={"version": {"S": "0.12.0"}, "sha256_hash": {"S": "ab" * 32}},
    )
    backup = tmp_path / "b.jsonl"
    with pytest.raises(MigrationError, match=r"old item 0\.12\.0: field deb_url is missing"):
        app.migrate_table(ws, old_table=old_table, backup_file=backup, now=FIXED_NOW)
    assert len(read_backup(backup)) == 4  # the backup was taken first, and kept
    assert downloads(httpserver_ipv4) == []
    assert ws.store.all() == []


def test_every_unusable_old_item_is_named_not_only_the_first_five(
    ws, old_table, tmp_path, dynamodb_client, caplog
):
    for minor in range(12, 19):  # seven broken items
        dynamodb_client.put_item(
            TableName=old_table, Item={"version": {"S": f"0.{minor}.0"}, "notes": {"S": "x"}}
        )
    with pytest.raises(MigrationError) as caught:
        app.migrate_table(ws, old_table=old_table, backup_file=None, dry_run=True)
    assert "(and 2 more, each logged above)" in str(caught.value)
    for minor in range(12, 19):
        assert f"old item 0.{minor}.0: field deb_url is missing" in caplog.text


def test_the_new_table_is_refused_as_the_old_one(ws, tmp_path):
    new_table = ws.settings.store.removeprefix("dynamodb://")
    with pytest.raises(MigrationError, match=r"keyed by package_id, not by 'version'"):
        app.migrate_table(ws, old_table=new_table, backup_file=tmp_path / "b.jsonl")
    assert not (tmp_path / "b.jsonl").exists()


def test_a_missing_old_table_is_named_without_advice_to_create_it(ws, tmp_path):
    backup = tmp_path / "b.jsonl"
    with pytest.raises(MigrationError) as caught:
        app.migrate_table(ws, old_table="no-such-table", backup_file=backup)
    message = str(caught.value)
    assert "DynamoDB table no-such-table not found in region" in message
    assert "keyed by 'version'" in message and "create" not in message
    assert not backup.exists()
    backup.write_text("", encoding="utf-8")
    with pytest.raises(MigrationError, match=r"table no-such-table not found"):
        app.restore_table("no-such-table", backup)


def test_a_real_migration_needs_a_backup_file_that_does_not_exist(ws, old_table, tmp_path):
    with pytest.raises(ConfigError, match=r"--backup-file is required"):
        app.migrate_table(ws, old_table=old_table, backup_file=None)
    existing = tmp_path / "existing.jsonl"
    existing.write_text("keep me\n")
    with pytest.raises(MigrationError, match=r"existing\.jsonl: already exists"):
        app.migrate_table(ws, old_table=old_table, backup_file=existing)
    assert existing.read_text() == "keep me\n"
    assert ws.store.all() == []


def test_restore_puts_back_exactly_what_was_backed_up(ws, old_table, tmp_path, dynamodb_client):
    backup = tmp_path / "b.jsonl"
    app.migrate_table(ws, old_table=old_table, backup_file=backup, dry_run=True)
    before = scan(dynamodb_client, old_table)
    for item in before:
        dynamodb_client.delete_item(TableName=old_table, Key={"version": item["version"]})
    dynamodb_client.update_item(
        TableName=old_table,
        Key={"version": {"S": "0.9.2"}},
        UpdateExpression="SET notes = :n",
        ExpressionAttributeValues={":n": {"S": "edited after the backup"}},
    )

    assert app.restore_table(old_table, backup) == 3

    assert scan(dynamodb_client, old_table) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json\n", r"b\.jsonl:1: not an item"),
        ('{"version": {"S": "1.0"}}\n[1]\n', r"b\.jsonl:2: not an item"),
        ('{"version": {"N": "1"}}\n', r"b\.jsonl:1: the item has no version"),
        ('{"version": {"Q": "1"}}\n', r"b\.jsonl:1: not an item"),
        ('{"version": {"S": "1"}, "file_size": {"N": "abc"}}\n', r"b\.jsonl:1: .*not a number"),
        ('{"version": {"S": 5}}\n', r"b\.jsonl:1: not an item"),
        ('{"version": {"S": "1"}, "tags": {"SS": "ab"}}\n', r"b\.jsonl:1: not an item"),
        ('{"version": {"S": "1"}, "blob": {"B": "%%%"}}\n', r"b\.jsonl:1: .*not base64"),
        (
            '{"version": {"S": "1.0"}}\n{"version": {"S": "2.0"}}\n{"version": {"S": "1.0"}}\n',
            r"b\.jsonl:3: version 1\.0 is also on line 1",
        ),
    ],
)
def test_a_damaged_backup_is_refused_naming_the_line(
    old_table, tmp_path, dynamodb_client, content, message
):
    backup = tmp_path / "b.jsonl"
    backup.write_text(content)
    before = scan(dynamodb_client, old_table)
    with pytest.raises(MigrationError, match=message):
        app.restore_table(old_table, backup)
    assert scan(dynamodb_client, old_table) == before


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"deb_url": "https://x/k.deb", "sha256_hash": "a" * 64}, r"field version is missing"),
        ({"version": "1.0", "sha256_hash": "a" * 64}, r"old item 1\.0: field deb_url is missing"),
        (
            {"version": "../1.0", "deb_url": "https://x/k.deb", "sha256_hash": "a" * 64},
            r"old item \.\./1\.0: field version: ",
        ),
        (
            {"version": "1.0", "deb_url": "file:///etc/passwd", "sha256_hash": "a" * 64},
            r"old item 1\.0: field deb_url",
        ),
        ({"version": "1.0", "deb_url": "https://x/k.deb"}, r"field sha256_hash is missing"),
        (
            {"version": "1.0", "deb_url": "https://x/k.deb", "sha256_hash": "xyz"},
            r"field sha256_hash is not 64 hex digits",
        ),
        (
            {
                "version": "1.0",
                "deb_url": "https://x/k.deb",
                "sha256_hash": "a" * 64,
                "md5_hash": "a",
            },
            r"field md5_hash is not 32 hex digits",
        ),
        (
            {
                "version": "1.0",
                "deb_url": "https://x/k.deb",
                "sha256_hash": "a" * 64,
                "file_size": -1,
            },
            r"field file_size is not a size",
        ),
        (
            {
                "version": "1.0",
                "deb_url": "https://x/k.deb",
                "sha256_hash": "a" * 64,
                "processed_timestamp": "yesterday",
            },
            r"field processed_timestamp is not a date",
        ),
    ],
)
def test_old_items_are_checked_field_by_field(item, message):
    with pytest.raises(MigrationError, match=message):
        parse_old_item(item, default_package="kiro")


def test_cli_dry_run_then_migrate(ws, old_table, tmp_path, capsys):
    home = tmp_path / "home"
    base = ["--home", str(home), "--store", ws.settings.store]
    cli.main([*base, "migrate-table", "--from-table", old_table, "--dry-run"])
    out = capsys.readouterr().out
    assert "would migrate kiro 0.11.0 from http://" in out
    assert "dry run: 3 old item(s), 3 to migrate" in out

    backup = tmp_path / "cli-backup.jsonl"
    cli.main([*base, "migrate-table", "--from-table", old_table, "--backup-file", str(backup)])
    out = capsys.readouterr().out
    assert f"backed up 3 old item(s) to {backup}" in out
    assert "migrated kiro 0.9.2" in out
    assert "3 migrated" in out
    assert "published" in out


def test_cli_missing_backup_file_is_a_usage_error(ws, old_table, tmp_path, capsys):
    with pytest.raises(SystemExit) as ended:
        base = ["--home", str(tmp_path / "home"), "--store", ws.settings.store]
        cli.main([*base, "migrate-table", "--from-table", old_table])
    assert ended.value.code == 2
    assert "--backup-file is required" in capsys.readouterr().err


def test_cli_exits_1_naming_the_version_that_failed(
    ws, old_table, tmp_path, dynamodb_client, capsys
):
    dynamodb_client.update_item(
        TableName=old_table,
        Key={"version": {"S": "0.9.2"}},
        UpdateExpression="SET file_size = :s",
        ExpressionAttributeValues={":s": {"N": "12"}},
    )
    with pytest.raises(SystemExit) as ended:
        base = ["--home", str(tmp_path / "home"), "--store", ws.settings.store]
        backup = ["--backup-file", str(tmp_path / "b.jsonl")]
        cli.main([*base, "migrate-table", "--from-table", old_table, *backup])
    assert ended.value.code == 1
    captured = capsys.readouterr()
    assert "debrepo: error: kiro#0.9.2: " in captured.err and "12" in captured.err
    assert "2 migrated" in captured.out and "1 failed" in captured.out


SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "migrate-dynamodb-schema.sh"


def run_script(tmp_path: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "DEBREPO": str(Path(sys.executable).with_name("debrepo")),
        "DEBREPO_HOME": str(tmp_path / "home"),
        "DEBREPO_STORE": store,
    }
    return subprocess.run(
        [str(SCRIPT), *args], cwd=tmp_path, env=environ, capture_output=True, text=True
    )


def test_the_seed_style_script_backs_up_migrates_verifies_and_restores(
    ws, old_table, tmp_path, dynamodb_client
):
    before = scan(dynamodb_client, old_table)
    dry = run_script(tmp_path, ws.settings.store, "--from-table", old_table, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 3 old item(s), 3 to migrate" in dry.stdout
    assert list(tmp_path.glob("backup-*.jsonl")) == []

    done = run_script(tmp_path, ws.settings.store, "--from-table", old_table)
    assert done.returncode == 0, done.stderr
    (backup,) = tmp_path.glob(f"backup-{old_table}-*.jsonl")
    assert read_backup(backup) == before
    assert "3 migrated" in done.stdout
    assert "OK: 3 package(s)" in done.stdout  # debrepo verify ran on the result

    for item in before:
        dynamodb_client.delete_item(TableName=old_table, Key={"version": item["version"]})
    restored = run_script(
        tmp_path, ws.settings.store, "--restore", "--from-table", old_table,
        "--backup-file", str(backup),
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert scan(dynamodb_client, old_table) == before


def test_the_script_needs_an_environment_or_a_table(tmp_path):
    ended = run_script(tmp_path, "dynamodb://unused")
    assert ended.returncode == 2
    assert "usage:" in ended.stderr


def test_a_run_that_stored_everything_but_did_not_publish_is_finished_by_a_re_run(
    ws, old_table, tmp_path
):
    first, published = app.migrate_table(
        ws, old_table=old_table, backup_file=tmp_path / "b1.jsonl", publish_after=False
    )
    assert len(first.migrated) == 3 and published is None
    assert ws.repo.stat("dists/stable/InRelease") is None

    again, published = app.migrate_table(
        ws, old_table=old_table, backup_file=tmp_path / "b2.jsonl", now=FIXED_NOW
    )
    assert again.migrated == [] and len(again.already_migrated) == 3
    assert published is not None and published.packages == 3
    assert app.verify(ws, now=FIXED_NOW).ok


def test_skipped_versions_are_left_out_and_unknown_ones_refused(
    ws, old_table, tmp_path, dynamodb_client, httpserver_ipv4
):
    dynamodb_client.update_item(
        TableName=old_table,
        Key={"version": {"S": "0.10.1"}},
        UpdateExpression="REMOVE deb_url",
    )
    with pytest.raises(MigrationError, match=r"--skip 9\.9: no such version"):
        app.migrate_table(
            ws, old_table=old_table, backup_file=None, dry_run=True, skip_versions=["9.9"]
        )

    report, published = app.migrate_table(
        ws, old_table=old_table, backup_file=tmp_path / "b.jsonl", skip_versions=["0.10.1"]
    )
    assert report.skipped == ["kiro#0.10.1"] and not report.failed
    assert published is not None and published.packages == 2
    assert sorted(r.version for r in report.migrated) == ["0.11.0", "0.9.2"]
    assert "1 skipped" in report.summary()
    assert not any("/0.10.1/" in path for path in downloads(httpserver_ipv4))


def test_a_failure_after_the_download_names_the_url_not_a_scratch_path(
    ws, old_table, tmp_path, dynamodb_client, httpserver_ipv4, debs
):
    url = httpserver_ipv4.url_for("/kiro/0.9.2/kiro_0.9.2_amd64.deb")
    item = old_item("0.9.2", debs["0.9.2"], url)
    item["version"] = {"S": "0.9.3"}  # the old table says 0.9.3; the .deb is 0.9.2
    item["processed_timestamp"] = {"S": "2025-07-20T08:00:00Z"}
    dynamodb_client.put_item(TableName=old_table, Item=item)
    report, _ = app.migrate_table(ws, old_table=old_table, backup_file=tmp_path / "b.jsonl")
    [(package_id, error)] = report.failed
    assert package_id == "kiro#0.9.3"
    assert error.startswith(f"{url}: control file says Version '0.9.2'"), error
    assert str(tmp_path) not in error and "debrepo-" not in error


def test_a_version_skipped_or_removed_is_not_migrated_again(ws, old_table, tmp_path):
    report, _ = app.migrate_table(
        ws, old_table=old_table, backup_file=tmp_path / "1.jsonl", skip_versions=["0.11.0"]
    )
    assert report.skipped == ["kiro#0.11.0"]
    assert ws.store.withdrawn_at("kiro#0.11.0") is not None
    migrated = sorted(ws.store.package_ids())
    app.remove_package(ws, "kiro", migrated[0].partition("#")[2])
    again, _ = app.migrate_table(ws, old_table=old_table, backup_file=tmp_path / "2.jsonl")
    assert again.migrated == [] and not again.failed
    assert sorted(again.withdrawn) == sorted(["kiro#0.11.0", migrated[0]])
    assert "2 removed on purpose" in again.summary()
    assert ws.store.withdrawn_at("kiro#0.11.0") is not None
    assert migrated[0] not in ws.store.package_ids()


def test_skip_withdraws_the_items_own_package(ws, old_table, tmp_path, dynamodb_client):
    dynamodb_client.update_item(
        TableName=old_table,
        Key={"version": {"S": "0.11.0"}},
        UpdateExpression="SET package_name = :name",
        ExpressionAttributeValues={":name": {"S": "kiro-cli"}},
    )
    report, _ = app.migrate_table(
        ws, old_table=old_table, backup_file=tmp_path / "1.jsonl", skip_versions=["0.11.0"]
    )
    assert report.skipped == ["kiro-cli#0.11.0"]
    assert ws.store.withdrawn_at("kiro-cli#0.11.0") is not None
    assert ws.store.withdrawn_at("kiro#0.11.0") is None


def test_a_version_added_meanwhile_counts_as_migrated(ws, old_table, tmp_path, debs):
    """A scheduled sync may store a version between the plan and its turn."""
    from debrepo.services.migrate import OldTable, migrate_versions, plan_migration

    table = OldTable(old_table)
    report = plan_migration(table.scan(), store=ws.store, default_package="kiro")
    deb = tmp_path / "kiro_0.10.1_amd64.deb"
    deb.write_bytes(debs["0.10.1"])
    app.add_packages(ws, [deb], now=FIXED_NOW)

    migrate_versions(
        report,
        store=ws.store,
        repo=ws.repo,
        configs=ws.configs,
        destination=Destination("pool", "main", ("amd64",)),
        now=FIXED_NOW,
        lock=lambda: ws.lock(0),
    )

    assert report.failed == []
    assert report.already_migrated == ["kiro#0.10.1"]
    assert sorted(r.version for r in report.migrated) == ["0.11.0", "0.9.2"]


def test_binary_attributes_survive_backup_and_restore(ws, old_table, tmp_path, dynamodb_client):
    dynamodb_client.update_item(
        TableName=old_table,
        Key={"version": {"S": "0.9.2"}},
        UpdateExpression="SET certificate_der = :b, extra_blobs = :s",
        ExpressionAttributeValues={":b": {"B": b"\x00\xffkiro"}, ":s": {"BS": [b"a", b"\x01"]}},
    )
    before = scan(dynamodb_client, old_table)
    backup = tmp_path / "b.jsonl"
    app.migrate_table(ws, old_table=old_table, backup_file=backup, dry_run=True)
    assert read_backup(backup) == before
    for item in before:
        dynamodb_client.delete_item(TableName=old_table, Key={"version": item["version"]})

    app.restore_table(old_table, backup)

    assert scan(dynamodb_client, old_table) == before


def test_the_script_refuses_restore_with_dry_run(tmp_path):
    ended = run_script(tmp_path, "dynamodb://unused", "--restore", "--env", "dev", "--dry-run")
    assert ended.returncode == 2
    assert "--restore has no --dry-run" in ended.stderr


def test_the_script_stops_when_terraform_fails(tmp_path, old_table):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "terraform").write_text("#!/bin/sh\necho 'No outputs found' >&2\nexit 1\n")
    (fake / "terraform").chmod(0o755)
    environ_path = f"{fake}:{os.environ['PATH']}"
    ended = subprocess.run(
        [str(SCRIPT), "--from-table", old_table, "--terraform-dir", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PATH": environ_path, "DEBREPO_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
    )
    assert ended.returncode != 0
    assert "No outputs found" in ended.stderr
    assert list(tmp_path.glob("backup-*.jsonl")) == []  # stopped before debrepo ran


def test_the_script_reads_the_new_table_from_terraform_outputs(ws, old_table, tmp_path):
    # One version already in the new table tells it apart from an empty local store.
    app.migrate_table(
        ws,
        old_table=old_table,
        backup_file=tmp_path / "first.jsonl",
        skip_versions=["0.10.1", "0.11.0"],
        publish_after=False,
    )
    fake = tmp_path / "bin"
    fake.mkdir()
    new_table = ws.settings.store.removeprefix("dynamodb://")
    outputs = {
        "table": new_table,
        "bucket": "unused-bucket",
        "signing_key_secret_arn": "unused-secret",
        "topic_arn": "unused-topic",
        "region": "us-east-1",
    }
    cases = "".join(f"  {name}) printf %s '{value}' ;;\n" for name, value in outputs.items())
    (fake / "terraform").write_text(
        f'#!/bin/sh\nfor last in "$@"; do :; done\ncase "$last" in\n{cases}  *) exit 1 ;;\nesac\n'
    )
    (fake / "terraform").chmod(0o755)
    environ = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "DEBREPO_HOME": str(tmp_path / "home"),
        "DEBREPO": str(Path(sys.executable).with_name("debrepo")),
    }
    ended = subprocess.run(
        [str(SCRIPT), "--from-table", old_table, "--terraform-dir", str(tmp_path), "--dry-run"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
    )
    assert ended.returncode == 0, ended.stderr
    assert (
        "dry run: 3 old item(s), 0 to migrate, 1 already in the store, 2 removed on purpose"
        in ended.stdout
    )


def _onto_the_old_deployment(
    tmp_path: Path, table: str, debs: dict[str, bytes]
) -> tuple[Workspace, Path]:
    """A new store (DynamoDB `table`) set to publish onto the folder an old deployment
    published every version of `debs` to; that deployment's home."""
    old_home = tmp_path / "old"
    paths = []
    for version, deb in debs.items():
        path = tmp_path / f"kiro_{version}_amd64.deb"
        path.write_bytes(deb)
        paths.append(path)
    app.add_packages(Workspace(settings_for(old_home)), paths)
    create_table(table)
    ws = Workspace(
        settings_for(
            tmp_path / "home",
            store=f"dynamodb://{table}",
            repo=(old_home / "repo").as_uri(),
            key_file=str(old_home / "keys/signing-key.asc"),
        )
    )
    return ws, old_home


def test_a_migration_onto_the_old_deployments_repository_drops_what_it_skipped(
    old_table, tmp_path, unique_name, debs
):
    """The bucket the old code published holds every version and no debrepo record."""
    ws, old_home = _onto_the_old_deployment(tmp_path, f"{unique_name}-onto-old", debs)

    report, published = app.migrate_table(
        ws, old_table=old_table, backup_file=tmp_path / "b.jsonl", skip_versions=["0.10.1"]
    )

    assert report.skipped == ["kiro#0.10.1"] and published is not None
    packages = (old_home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    assert "Version: 0.10.1\n" not in packages and "Version: 0.11.0\n" in packages


@pytest.mark.parametrize("then", ["rebuild", "sync"])
def test_a_migration_with_no_publish_leaves_the_skipped_versions_to_the_next_run(
    old_table, tmp_path, unique_name, debs, then
):
    """As the README says, the next scheduled run publishes: the skip stands for it too
    (it is recorded as a withdrawal), so neither a rebuild nor a sync refuses."""
    ws, old_home = _onto_the_old_deployment(tmp_path, f"{unique_name}-no-publish", debs)
    app.migrate_table(
        ws,
        old_table=old_table,
        backup_file=tmp_path / "b.jsonl",
        skip_versions=["0.10.1"],
        publish_after=False,
    )
    assert ws.store.withdrawn_at("kiro#0.10.1") is not None

    if then == "rebuild":
        app.rebuild(ws)
    else:
        report = app.sync(ws, only_package="kiro-repo")  # nothing to fetch: publishes the store
        assert report.published is not None
    packages = (old_home / "repo/dists/stable/main/binary-amd64/Packages").read_text()
    assert "Version: 0.10.1\n" not in packages and "Version: 0.11.0\n" in packages


def test_a_migration_never_replaces_a_published_pool_file_holding_other_bytes(
    old_table, tmp_path, unique_name, debs
):
    """The old deployment published a 0.11.0 whose file upstream has since replaced:
    its indices name those bytes, so the download is refused, not put in their place."""
    published_then = {**debs, "0.11.0": kiro_deb("0.11.0", depends="libc6")}
    ws, old_home = _onto_the_old_deployment(tmp_path, f"{unique_name}-other-bytes", published_then)
    pool_file = old_home / "repo/pool/main/k/kiro/kiro_0.11.0_amd64.deb"

    report, _published = app.migrate_table(
        ws, old_table=old_table, backup_file=tmp_path / "b.jsonl", publish_after=False
    )

    assert [package_id for package_id, _ in report.failed] == ["kiro#0.11.0"]
    assert "already holds other bytes" in report.failed[0][1]
    assert pool_file.read_bytes() == published_then["0.11.0"]
    assert sorted(r.version for r in report.migrated) == ["0.10.1", "0.9.2"]
