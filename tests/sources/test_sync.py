"""`debrepo sync` (services/sync.py through app.sync) against a real upstream on 127.0.0.1.

The upstream serves the Kiro metadata endpoint (both shapes), .deb, certificate and
signature files, and the recorded GitHub releases response. Bad input of one package
is a clear error for that package only: the others are stored and published, and the
failed one leaves nothing in the store, the published tree, the staging area or the
temporary folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug import Request, Response

from debrepo import app, debfile
from debrepo.app import Workspace
from debrepo.core.layout import delivery_for
from debrepo.errors import ConfigError, PublishError, StoreError
from debrepo.model import PackageRecord
from debrepo.objects.filesystem import FilesystemObjectStore
from debrepo.services.ingest import Destination
from debrepo.services.refused import REFUSED_KEY
from debrepo.services.sync import (
    Outcome,
    PackageOutcome,
    SyncFailedError,
    SyncReport,
    run_sync,
)
from debrepo.sources.base import Acquired, Release, source_for
from tests.conftest import FIXED_NOW, settings_for
from tests.e2e.aptenv import AptEnv, assert_clean_update, serve_in_thread
from tests.sources.conftest import (
    FAST_HTTP,
    KIRO_CLI_DEB_PATH,
    KIRO_DEB_PATH,
    KIRO_FLAT_DEB_PATH,
    METADATA_PATH,
    RELEASES_PATH,
    FlakyServer,
    Upstream,
    kiro_cli_deb,
    kiro_deb,
    sha256,
)

KIRO = kiro_deb()
KIRO_CLI = kiro_cli_deb()
PACKAGES = "dists/stable/main/binary-amd64/Packages"
RELEASE = "dists/stable/Release"


def sync(ws: Workspace, **kwargs: Any) -> SyncReport:
    kwargs.setdefault("now", FIXED_NOW)
    return app.sync(ws, http_settings=FAST_HTTP, **kwargs)


def _the_failure(ws: Workspace, package: str) -> PackageOutcome:
    """The one failure of a sync of `package` alone, which must fail."""
    with pytest.raises(SyncFailedError) as caught:
        sync(ws, only_package=package)
    (failure,) = caught.value.report.failures
    return failure


def outcomes(report: SyncReport) -> dict[str, Outcome]:
    return {o.package_name: o.outcome for o in report.packages}


def repo_dir(ws: Workspace) -> Path:
    assert isinstance(ws.repo, FilesystemObjectStore)
    return ws.repo.root


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones too) -> SHA256 of its bytes."""
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() or path.is_symlink()
    }


@dataclass(frozen=True)
class State:
    """Everything a sync could leave behind."""

    records: list[dict[str, Any]]
    skipped: list[str]
    repo: dict[str, str]
    staging: dict[str, str]
    temp: list[str]


def state(ws: Workspace, temp: Path) -> State:
    snapshot = ws.store.snapshot()
    return State(
        records=sorted((r.to_item() for r in snapshot.records), key=lambda i: i["package_id"]),
        skipped=[e.package_id for e in snapshot.skipped],
        repo=tree(repo_dir(ws)),
        staging=tree(ws.settings.home / "staging"),
        temp=sorted(str(p.relative_to(temp)) for p in temp.rglob("*")),
    )


def assert_no_trace_of(ws: Workspace, temp: Path, name: str) -> None:
    """Nothing of package `name` in store, pool or indices; no temporary file anywhere."""
    current = state(ws, temp)
    assert not any(i["package_name"] == name for i in current.records)
    assert not any(key.startswith(f"pool/main/{name[0]}/{name}/") for key in current.repo)
    assert not any(".tmp-" in key for key in [*current.repo, *current.staging])
    assert current.temp == []
    packages = (repo_dir(ws) / PACKAGES).read_text() if (repo_dir(ws) / PACKAGES).exists() else ""
    assert f"Package: {name}\n" not in packages


# -- the happy path ---------------------------------------------------------------------


def test_sync_stores_and_publishes_new_versions_then_fetches_nothing(
    ws: Workspace, upstream: Upstream, scratch_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    caplog.set_level(logging.INFO)

    report = sync(ws)

    assert outcomes(report) == {
        "kiro": Outcome.NEW,
        "kiro-cli": Outcome.NEW,
        "kiro-repo": Outcome.NOTHING_UPSTREAM,
    }
    assert report.publish_reason == "2 new version(s)"
    assert report.published is not None and not report.refreshed
    assert ws.store.package_ids() == {"kiro#0.9.2", "kiro-cli#1.2.0"}
    kiro = ws.store.get("kiro#0.9.2")
    assert kiro is not None
    assert kiro.deb_url == upstream.url(KIRO_DEB_PATH)
    assert kiro.package_type == "external_download"
    assert kiro.pub_date == "2026-11-18T21:04:11.000Z"
    assert kiro.notes == "https://kiro.dev/changelog/ide/0-9-2/"
    assert kiro.processed_timestamp == "2026-11-24T12:00:00Z"
    assert (kiro.file_size, kiro.sha256_hash) == (len(KIRO), sha256(KIRO))
    assert kiro.section == "editors"  # from config/packages/kiro.yaml, not the control file
    cli = ws.store.get("kiro-cli#1.2.0")
    assert cli is not None
    assert cli.package_type == "github_release"
    assert cli.deb_url == upstream.url(KIRO_CLI_DEB_PATH)
    assert cli.depends == "kiro (>= 1.0)"  # the config's, as the .deb declares none
    assert cli.pub_date == "2026-11-12T14:20:38Z"

    root = repo_dir(ws)
    assert (root / "pool/main/k/kiro/kiro_0.9.2_amd64.deb").read_bytes() == KIRO
    assert (root / "pool/main/k/kiro-cli/kiro-cli_1.2.0_amd64.deb").read_bytes() == KIRO_CLI
    packages = (root / PACKAGES).read_text()
    assert "Package: kiro\nArchitecture: amd64\nVersion: 0.9.2\n" in packages
    assert "Package: kiro-cli\nArchitecture: amd64\nVersion: 1.2.0\n" in packages
    assert app.verify(ws, now=FIXED_NOW).problems == []
    notified = [r.getMessage() for r in caplog.records if r.name == "debrepo.notify"]
    assert len(notified) == 2
    assert "kiro 0.9.2" in notified[0] and "kiro-cli 1.2.0" in notified[1]
    assert list(scratch_tmp.iterdir()) == []
    assert upstream.count(KIRO_DEB_PATH) == upstream.count(KIRO_CLI_DEB_PATH) == 1

    release_before = (root / RELEASE).read_bytes()
    again = sync(ws, now=FIXED_NOW + timedelta(hours=1))

    assert outcomes(again) == {
        "kiro": Outcome.ALREADY_STORED,
        "kiro-cli": Outcome.ALREADY_STORED,
        "kiro-repo": Outcome.NOTHING_UPSTREAM,
    }
    assert again.published is None and again.publish_reason is None
    assert again.summary() == (
        "nothing new, nothing published; the Release is valid until "
        "Tue, 01 Dec 2026 12:00:00 +0000, re-signed after Sat, 28 Nov 2026 00:00:00 +0000"
    )
    assert upstream.count(KIRO_DEB_PATH) == upstream.count(KIRO_CLI_DEB_PATH) == 1
    assert upstream.count(METADATA_PATH) == upstream.count(RELEASES_PATH) == 2
    assert (root / RELEASE).read_bytes() == release_before


def test_flat_metadata_with_certificate_signature_and_checksums(
    ws: Workspace, upstream: Upstream
) -> None:
    metadata = upstream.flat_metadata() | {"sha256": sha256(KIRO), "size": len(KIRO)}
    upstream.serve_json(METADATA_PATH, metadata)
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, KIRO)
    upstream.serve_bytes(f"{KIRO_FLAT_DEB_PATH}.pem", b"-----BEGIN CERTIFICATE-----\n...\n")
    upstream.serve_bytes(f"{KIRO_FLAT_DEB_PATH}.sig", b"\x89\x01\x33signature")

    report = sync(ws, only_package="kiro")

    assert outcomes(report) == {"kiro": Outcome.NEW}
    record = ws.store.get("kiro#0.9.2")
    assert record is not None
    assert record.certificate_url == upstream.url(f"{KIRO_FLAT_DEB_PATH}.pem")
    assert record.signature_url == upstream.url(f"{KIRO_FLAT_DEB_PATH}.sig")
    assert record.notes == "Faster indexing of large workspaces; spec sessions survive restarts."
    assert upstream.paths() == [
        METADATA_PATH,
        KIRO_FLAT_DEB_PATH,
        f"{KIRO_FLAT_DEB_PATH}.pem",
        f"{KIRO_FLAT_DEB_PATH}.sig",
    ]


def _add_kiro_by_hand(ws: Workspace, tmp_path: Path) -> None:
    """kiro 0.9.2 stored with `debrepo add`, as an operator would, before any sync."""
    added = tmp_path / "kiro.deb"
    added.write_bytes(KIRO)
    app.add_packages(ws, [added], now=FIXED_NOW)


def test_a_version_already_stored_is_never_downloaded(
    ws: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    """The seed's Property 18 through sync: `P#V` in the store means no download at all."""
    _add_kiro_by_hand(ws, tmp_path)
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)

    report = sync(ws)

    assert outcomes(report)["kiro"] is Outcome.ALREADY_STORED
    assert outcomes(report)["kiro-cli"] is Outcome.NEW
    assert upstream.count(KIRO_DEB_PATH) == 0
    kiro = ws.store.get("kiro#0.9.2")
    assert kiro is not None and kiro.package_type == "manual"  # the stored record is untouched


def test_of_several_debs_of_a_release_the_one_for_the_architecture_is_downloaded(
    ws: Workspace, upstream: Upstream
) -> None:
    """An arm64 build listed before the amd64 one is neither downloaded nor stored."""
    document = upstream.live_metadata()
    deb_entry = document["releases"][1]["updateTo"]
    arm_path = "/kiro/releases/stable/linux-arm64/signed/0.9.2/deb/kiro-ide-0.9.2-linux-arm64.deb"
    document["releases"].insert(0, {"updateTo": {**deb_entry, "url": upstream.url(arm_path)}})
    upstream.serve_json(METADATA_PATH, document)
    upstream.serve_bytes(arm_path, b"not this one")
    upstream.serve_bytes(KIRO_DEB_PATH, KIRO)

    report = sync(ws, only_package="kiro")

    assert outcomes(report) == {"kiro": Outcome.NEW}
    assert upstream.count(arm_path) == 0 and upstream.count(KIRO_DEB_PATH) == 1
    stored = ws.store.get("kiro#0.9.2")
    assert stored is not None and stored.deb_url == upstream.url(KIRO_DEB_PATH)


def test_a_version_removed_on_purpose_is_not_fetched_again_until_added_by_hand(
    ws: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    """Upstream still offers a broken release the operator pulled: the next scheduled
    sync must not put it back."""
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    assert outcomes(sync(ws))["kiro"] is Outcome.NEW
    app.remove_package(ws, "kiro", "0.9.2", now=FIXED_NOW)
    assert ws.store.withdrawals() == {"kiro#0.9.2": FIXED_NOW.isoformat(timespec="seconds")}
    downloads = upstream.count(KIRO_DEB_PATH)

    report = sync(ws, now=FIXED_NOW + timedelta(hours=1))

    (kiro,) = [o for o in report.packages if o.package_name == "kiro"]
    assert kiro.outcome is Outcome.WITHDRAWN and kiro.version == "0.9.2"
    assert kiro.line() == (
        f"kiro: 0.9.2 was removed with `debrepo remove` ({FIXED_NOW.isoformat(timespec='seconds')}"
        "); not fetched again (`debrepo add` of its .deb takes it back)"
    )
    assert not report.all_failed and report.failures == []
    assert upstream.count(KIRO_DEB_PATH) == downloads  # not even downloaded
    assert ws.store.get("kiro#0.9.2") is None
    assert "Package: kiro\n" not in (repo_dir(ws) / PACKAGES).read_text()

    # Added back by hand: stored, so wanted again.
    _add_kiro_by_hand(ws, tmp_path)
    assert outcomes(sync(ws))["kiro"] is Outcome.ALREADY_STORED


def test_upstream_stating_other_bytes_for_a_stored_version_is_said_not_fetched(
    ws: Workspace, upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _add_kiro_by_hand(ws, tmp_path)
    replaced = "ab" * 32  # upstream re-published 0.9.2 with other bytes
    upstream.serve_json(METADATA_PATH, upstream.flat_metadata() | {"sha256": replaced})

    report = sync(ws, only_package="kiro")

    (kiro,) = report.packages
    assert kiro.outcome is Outcome.ALREADY_STORED
    note = (
        f"upstream now states sha256 {replaced[:12]}... (stored {sha256(KIRO)[:12]}...); the "
        "stored file stays, published versions being immutable"
    )
    assert kiro.line() == f"kiro: 0.9.2 is already stored; nothing to fetch ({note})"
    assert f"kiro 0.9.2: {note}" in caplog.text
    assert upstream.paths() == [METADATA_PATH]  # nothing downloaded
    stored = ws.store.get("kiro#0.9.2")
    assert stored is not None and stored.sha256_hash == sha256(KIRO)


def test_a_version_removed_while_sync_downloaded_it_is_not_stored(
    ws: Workspace, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sources are asked and downloads made before the lock: an operator may add and
    remove that very version meanwhile; the removal stands."""
    upstream.serve_kiro_live(KIRO)
    original = Workspace.lock

    @contextlib.contextmanager
    def lock_after_a_removal(self: Workspace, wait_seconds: float = 0.0) -> Iterator[None]:
        monkeypatch.setattr(Workspace, "lock", original)
        by_hand = tmp_path / "kiro.deb"
        by_hand.write_bytes(KIRO)
        app.add_packages(self, [by_hand], now=FIXED_NOW)
        app.remove_package(self, "kiro", "0.9.2", now=FIXED_NOW)
        with original(self, wait_seconds):
            yield

    monkeypatch.setattr(Workspace, "lock", lock_after_a_removal)
    report = sync(ws, only_package="kiro", now=FIXED_NOW + timedelta(hours=1))

    assert outcomes(report)["kiro"] is Outcome.WITHDRAWN
    assert ws.store.get("kiro#0.9.2") is None
    assert ws.store.withdrawn_at("kiro#0.9.2") is not None


def test_a_lost_record_is_never_fetched_over_its_published_file_with_other_bytes(
    ws: Workspace, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """A table restored from an older backup, then upstream re-published the version."""
    upstream.serve_kiro_live(KIRO)
    assert outcomes(sync(ws, only_package="kiro"))["kiro"] is Outcome.NEW
    pool_file = repo_dir(ws) / "pool/main/k/kiro/kiro_0.9.2_amd64.deb"
    assert ws.store.delete("kiro#0.9.2")  # lost, not removed on purpose
    upstream.server.clear()
    upstream.serve_kiro_live(kiro_deb("0.9.2", depends="libc6"))

    # The download is refused, and the publish that follows refuses the loss.
    with pytest.raises(PublishError, match=r"publishing would drop kiro 0\.9\.2"):
        sync(ws, only_package="kiro", now=FIXED_NOW + timedelta(hours=1))
    assert "pool/main/k/kiro/kiro_0.9.2_amd64.deb already holds other bytes" in caplog.text
    assert pool_file.read_bytes() == KIRO
    assert ws.store.get("kiro#0.9.2") is None


def test_a_stored_but_incomplete_version_counts_as_stored_not_as_a_failure(
    ws: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    """Publish skips such a record with a warning; sync must not fail on it every run."""
    _add_kiro_by_hand(ws, tmp_path)
    with sqlite3.connect(ws.settings.home / "metadata.db") as db:
        db.execute("UPDATE packages SET description = NULL WHERE package_id = 'kiro#0.9.2'")
    upstream.serve_kiro_live(KIRO)

    report = sync(ws, only_package="kiro")

    assert outcomes(report) == {"kiro": Outcome.ALREADY_STORED}
    assert report.failures == [] and upstream.count(KIRO_DEB_PATH) == 0


# -- bad input: one package fails, the others publish, nothing is left behind -------------


def _metadata(upstream: Upstream, **fields: Any) -> None:
    document = {"version": "0.9.2", "url": upstream.url(KIRO_FLAT_DEB_PATH)} | fields
    upstream.serve_json(METADATA_PATH, {k: v for k, v in document.items() if v is not None})


def _invalid_json(upstream: Upstream, _stack: ExitStack) -> None:
    upstream.serve_bytes(METADATA_PATH, b'{"currentRelease": "0.9.2", "rel', "application/json")


def _missing_version(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, version=None)
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, KIRO)


def _missing_url(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, url=None)


def _html(upstream: Upstream, _stack: ExitStack) -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Kiro</title></head><body>Download</body></html>"
    upstream.serve_bytes(METADATA_PATH, page, "text/html; charset=utf-8")


def _metadata_404(upstream: Upstream, _stack: ExitStack) -> None:
    upstream.server.expect_request(METADATA_PATH).respond_with_data("Not Found", status=404)


def _deb_500(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream)
    upstream.server.expect_request(KIRO_FLAT_DEB_PATH).respond_with_data("oops", status=500)


def _reset_mid_download(upstream: Upstream, stack: ExitStack) -> None:
    server = stack.enter_context(FlakyServer(KIRO, resets=1000))
    _metadata(upstream, url=server.url)


def _checksum_mismatch(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, sha256=sha256(b"the file upstream meant to publish"))
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, KIRO)


def _size_mismatch(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, size=len(KIRO) + 1)
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, KIRO)


def _other_package(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream)
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, kiro_deb(name="kiro-nightly"))


def _other_version(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream)
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, kiro_deb("0.9.1"))


def _other_architecture(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream)
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, kiro_deb(architecture="arm64"))


def _not_a_deb(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream)
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, b"<html>Access denied</html>", "text/html")


def _path_traversal(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, url=upstream.url("/kiro-flat/linux/..%2F..%2F..%2Fetc%2Fcron.d%2Fkiro"))
    upstream.serve_bytes("/etc/cron.d/kiro", KIRO)


def _missing_certificate(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, certificate=upstream.url("/kiro-flat/linux/kiro.pem"))
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, KIRO)
    upstream.server.expect_request("/kiro-flat/linux/kiro.pem").respond_with_data("", status=404)


def _raw_metadata(upstream: Upstream, **fields: Any) -> None:
    """The flat metadata as JSON text, where a lone surrogate is a `\\ud800` escape."""
    document = {"version": "0.9.2", "url": upstream.url(KIRO_FLAT_DEB_PATH)} | fields
    upstream.serve_bytes(METADATA_PATH, json.dumps(document).encode(), "application/json")
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, KIRO)


def _url_port_out_of_range(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, url="http://127.0.0.1:99999/kiro_0.9.2_amd64.deb")


def _url_unclosed_ipv6(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, url="http://[::1/kiro_0.9.2_amd64.deb")


def _live_url_unclosed_ipv6(upstream: Upstream, _stack: ExitStack) -> None:
    document = upstream.live_metadata()
    for entry in document["releases"]:
        if entry["updateTo"]["url"].endswith(".deb"):
            entry["updateTo"]["url"] = "http://[::1/kiro-ide-0.9.2-stable-linux-x64.deb"
    upstream.serve_json(METADATA_PATH, document)


def _certificate_port_out_of_range(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, certificate="http://127.0.0.1:99999/kiro.pem")
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, KIRO)


def _certificate_unclosed_ipv6(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, certificate="http://[::1/kiro.pem")
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, KIRO)


def _surrogate_in_notes(upstream: Upstream, _stack: ExitStack) -> None:
    _raw_metadata(upstream, notes="Faster \ud800 indexing")


def _surrogate_in_pub_date(upstream: Upstream, _stack: ExitStack) -> None:
    _raw_metadata(upstream, pub_date="2026-11-18\udcff")


def _surrogate_in_url(upstream: Upstream, _stack: ExitStack) -> None:
    _raw_metadata(upstream, url=upstream.url("/kiro-flat/linux/kiro_0.9.2\ud800_amd64.deb"))


class _RawRedirect(Response):
    """A redirect whose Location is sent as written (werkzeug would parse it first)."""

    def __init__(self, location: str) -> None:
        super().__init__("", status=302)
        self.raw_location = location

    def get_wsgi_headers(self, environ: Any) -> Any:
        headers = super().get_wsgi_headers(environ)
        headers["Location"] = self.raw_location
        return headers


def _redirect_to_unclosed_ipv6(upstream: Upstream, _stack: ExitStack) -> None:
    _metadata(upstream, url=upstream.url("/moved/kiro_0.9.2_amd64.deb"))
    upstream.server.expect_request("/moved/kiro_0.9.2_amd64.deb").respond_with_response(
        _RawRedirect("http://[::1/kiro_0.9.2_amd64.deb")
    )


BAD_KIRO: list[tuple[str, Callable[[Upstream, ExitStack], None], str]] = [
    ("invalid JSON", _invalid_json, f"{METADATA_PATH}: not valid JSON: Unterminated string"),
    ("no version", _missing_version, f"{METADATA_PATH}: the metadata has no version"),
    ("no URL", _missing_url, f"{METADATA_PATH}: the metadata has no url for version 0.9.2"),
    (
        "HTML",
        _html,
        f"{METADATA_PATH}: expected JSON but got an HTML page (Content-Type text/html)",
    ),
    ("404", _metadata_404, f"{METADATA_PATH}: HTTP 404 NOT FOUND"),
    ("500", _deb_500, f"{KIRO_FLAT_DEB_PATH}: HTTP 500 INTERNAL SERVER ERROR after 3 attempts"),
    (
        "reset",
        _reset_mid_download,
        "kiro_0.9.2_amd64.deb: the connection broke off during the transfer, 3 attempt(s): "
        "Connection broken: ConnectionResetError(104, 'Connection reset by peer')",
    ),
    (
        "checksum",
        _checksum_mismatch,
        f"{KIRO_FLAT_DEB_PATH}: SHA256 of the download is {sha256(KIRO)}, but upstream says "
        f"{sha256(b'the file upstream meant to publish')}; refusing the file",
    ),
    ("size", _size_mismatch, f"downloaded {len(KIRO)} bytes, but upstream says {len(KIRO) + 1}"),
    (
        "package",
        _other_package,
        f"{KIRO_FLAT_DEB_PATH}: control file says Package 'kiro-nightly', but the source says "
        "'kiro'; nothing was added",
    ),
    (
        "version",
        _other_version,
        f"{KIRO_FLAT_DEB_PATH}: control file says Version '0.9.1', but the source says '0.9.2'",
    ),
    (
        "architecture",
        _other_architecture,
        f"{KIRO_FLAT_DEB_PATH}: control file says Architecture 'arm64', but the source says "
        "'amd64'",
    ),
    (
        "not a deb",
        _not_a_deb,
        f"{KIRO_FLAT_DEB_PATH}: not a Debian package (no ar archive signature); nothing was added",
    ),
    (
        "traversal",
        _path_traversal,
        "has a path segment '..%2F..%2F..%2Fetc%2Fcron.d%2Fkiro' that tries to leave its directory",
    ),
    ("certificate", _missing_certificate, "/kiro-flat/linux/kiro.pem: HTTP 404 NOT FOUND"),
    (
        "url port",
        _url_port_out_of_range,
        f"{METADATA_PATH}: field url: 'http://127.0.0.1:99999/kiro_0.9.2_amd64.deb' is not a "
        "URL: Port out of range 0-65535",
    ),
    (
        "url IPv6",
        _url_unclosed_ipv6,
        f"{METADATA_PATH}: field url: 'http://[::1/kiro_0.9.2_amd64.deb' is not a URL: Invalid "
        "IPv6 URL",
    ),
    (
        "live url IPv6",
        _live_url_unclosed_ipv6,
        f"{METADATA_PATH}: field url: 'http://[::1/kiro-ide-0.9.2-stable-linux-x64.deb' is not a "
        "URL: Invalid IPv6 URL",
    ),
    (
        "certificate port",
        _certificate_port_out_of_range,
        f"{METADATA_PATH}: field certificate: 'http://127.0.0.1:99999/kiro.pem' is not a URL: "
        "Port out of range 0-65535",
    ),
    (
        "certificate IPv6",
        _certificate_unclosed_ipv6,
        f"{METADATA_PATH}: field certificate: 'http://[::1/kiro.pem' is not a URL: Invalid IPv6 "
        "URL",
    ),
    (
        "notes surrogate",
        _surrogate_in_notes,
        f"{METADATA_PATH}: field notes holds a lone surrogate (such as a \\ud800 escape), which "
        "is not Unicode text",
    ),
    ("pub_date surrogate", _surrogate_in_pub_date, f"{METADATA_PATH}: field pub_date holds a lone"),
    ("url surrogate", _surrogate_in_url, f"{METADATA_PATH}: field url holds a lone surrogate"),
    (
        "redirect IPv6",
        _redirect_to_unclosed_ipv6,
        "/moved/kiro_0.9.2_amd64.deb: redirected to a Location that is not a URL: Invalid IPv6 URL",
    ),
]


@pytest.mark.parametrize(
    ("setup", "message"),
    [pytest.param(setup, message, id=name) for name, setup, message in BAD_KIRO],
)
def test_bad_kiro_input_fails_kiro_only_and_leaves_nothing_behind(
    ws: Workspace,
    upstream: Upstream,
    scratch_tmp: Path,
    setup: Callable[[Upstream, ExitStack], None],
    message: str,
) -> None:
    upstream.serve_kiro_cli(KIRO_CLI)
    with ExitStack() as stack:
        setup(upstream, stack)
        report = sync(ws)

        failed = {o.package_name: o.message for o in report.failures}
        assert list(failed) == ["kiro"]
        assert message in failed["kiro"]
        failed["kiro"].encode("utf-8")  # a line any terminal or log can take
        assert outcomes(report)["kiro-cli"] is Outcome.NEW
        assert report.published is not None
        assert "Package: kiro-cli\n" in (repo_dir(ws) / PACKAGES).read_text()
        assert ws.store.package_ids() == {"kiro-cli#1.2.0"}
        assert_no_trace_of(ws, scratch_tmp, "kiro")

        # Alone, the failing package fails the run, and changes nothing at all.
        before = state(ws, scratch_tmp)
        with pytest.raises(SyncFailedError) as caught:
            sync(ws, only_package="kiro", now=FIXED_NOW + timedelta(hours=1))
        assert str(caught.value).startswith("sync failed for every package checked: kiro: ")
        assert state(ws, scratch_tmp) == before


# -- downloads refused for what they hold are not downloaded again ------------------------


def _kiro_holding_the_wrong_version(upstream: Upstream) -> Callable[[bytes], None]:
    """kiro 0.9.2 offered, its file holding 0.9.1 (a release published by mistake),
    served with validators; returns what replaces the file upstream."""
    _metadata(upstream)
    return upstream.serve_file(KIRO_FLAT_DEB_PATH, kiro_deb("0.9.1"))


WRONG_VERSION = "control file says Version '0.9.1', but the source says '0.9.2'"


def test_a_refused_download_is_not_transferred_again_while_its_server_says_unchanged(
    ws: Workspace, upstream: Upstream, scratch_tmp: Path
) -> None:
    replace = _kiro_holding_the_wrong_version(upstream)
    first = _the_failure(ws, "kiro")
    assert WRONG_VERSION in first.message
    stored_before = state(ws, scratch_tmp)

    later = FIXED_NOW + timedelta(hours=1)
    with pytest.raises(SyncFailedError) as caught:
        sync(ws, only_package="kiro", now=later)

    (again,) = caught.value.report.failures
    assert upstream.statuses(KIRO_FLAT_DEB_PATH) == [200, 304]  # asked; nothing transferred
    assert "If-None-Match" in upstream.headers_of(KIRO_FLAT_DEB_PATH)[1]
    assert again.message.startswith(
        "0.9.2 was refused on 2026-11-24T12:00:00Z and is not downloaded again (its "
        f"server says the file has not changed): {first.message}; "
    )
    assert again.message.endswith(
        '`debrepo sync --retry-refused` (the Lambda: {"retry_refused": true})'
    )
    assert state(ws, scratch_tmp) == stored_before  # the refusal, its first date, unchanged

    # Upstream mends the file: fetched, stored, and the refusal forgotten.
    replace(KIRO)
    report = sync(ws, only_package="kiro", now=later + timedelta(hours=1))
    assert outcomes(report) == {"kiro": Outcome.NEW}
    assert upstream.statuses(KIRO_FLAT_DEB_PATH) == [200, 304, 200]
    assert ws.staging.get(REFUSED_KEY) is None


def test_retry_refused_downloads_and_judges_the_unchanged_file_again(
    ws: Workspace, upstream: Upstream
) -> None:
    _kiro_holding_the_wrong_version(upstream)
    first = _the_failure(ws, "kiro")
    remembered = ws.staging.get(REFUSED_KEY)

    with pytest.raises(SyncFailedError) as caught:
        sync(ws, only_package="kiro", retry_refused=True, now=FIXED_NOW + timedelta(hours=1))

    assert [f.message for f in caught.value.report.failures] == [first.message]
    assert upstream.statuses(KIRO_FLAT_DEB_PATH) == [200, 200]
    assert "If-None-Match" not in upstream.headers_of(KIRO_FLAT_DEB_PATH)[1]
    assert ws.staging.get(REFUSED_KEY) == remembered  # refused since its first date


def test_a_refused_file_whose_checksum_upstream_states_is_not_even_asked_for(
    ws: Workspace, upstream: Upstream
) -> None:
    """A server without validators: upstream's own SHA256 says it is the same file."""
    wrong = kiro_deb("0.9.1")
    _metadata(upstream, sha256=sha256(wrong), size=len(wrong))
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, wrong)
    _the_failure(ws, "kiro")

    again = _the_failure(ws, "kiro")

    assert "(upstream states the SHA256 of the file refused)" in again.message
    assert WRONG_VERSION in again.message
    assert upstream.count(KIRO_FLAT_DEB_PATH) == 1


def test_a_dry_run_says_a_refused_file_whose_checksum_upstream_states_is_not_fetched(
    ws: Workspace, upstream: Upstream
) -> None:
    """The real run would send no request and fail: the dry run says so, and counts
    no new version to publish."""
    wrong = kiro_deb("0.9.1")
    _metadata(upstream, sha256=sha256(wrong), size=len(wrong))
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, wrong)
    _the_failure(ws, "kiro")

    with pytest.raises(SyncFailedError) as caught:
        sync(ws, only_package="kiro", dry_run=True)

    (kiro,) = caught.value.report.packages
    assert kiro.outcome is Outcome.FAILED
    assert "(upstream states the SHA256 of the file refused)" in kiro.message
    assert "new version" not in (caught.value.report.publish_reason or "")
    assert upstream.count(KIRO_FLAT_DEB_PATH) == 1


def test_a_refused_file_is_judged_again_once_its_package_definition_changes(
    ws: Workspace, upstream: Upstream, config_dir: Path, tmp_path: Path
) -> None:
    _kiro_holding_the_wrong_version(upstream)
    _the_failure(ws, "kiro")
    definition = config_dir / "kiro.yaml"
    definition.write_text(definition.read_text().replace("priority: optional", "priority: extra"))
    edited = Workspace(settings_for(tmp_path / "home", config_dir=str(config_dir)))

    again = _the_failure(edited, "kiro")

    assert upstream.statuses(KIRO_FLAT_DEB_PATH) == [200, 200]
    assert again.message.startswith(f"{upstream.url(KIRO_FLAT_DEB_PATH)}: ")  # judged again


@pytest.mark.parametrize("setup", [_checksum_mismatch, _deb_500], ids=["checksum", "server"])
def test_failures_not_about_what_a_file_holds_are_not_remembered(
    ws: Workspace, upstream: Upstream, setup: Callable[[Upstream, ExitStack], None]
) -> None:
    """A wrong checksum may be a download gone wrong, a 500 a passing outage: the next
    run fetches the file again."""
    setup(upstream, ExitStack())
    _the_failure(ws, "kiro")
    assert ws.staging.get(REFUSED_KEY) is None


def test_a_download_refused_for_the_settings_is_not_remembered(
    ws: Workspace, upstream: Upstream, config_dir: Path, tmp_path: Path
) -> None:
    """Not for the file's bytes but for what this repository publishes: once the
    settings are mended, the next run fetches the file again."""
    _metadata(upstream)
    upstream.serve_file(KIRO_FLAT_DEB_PATH, KIRO)
    arm_only = Workspace(
        settings_for(tmp_path / "home", config_dir=str(config_dir), architectures="arm64")
    )
    failure = _the_failure(arm_only, "kiro")
    assert "which this repository does not publish" in failure.message
    assert ws.staging.get(REFUSED_KEY) is None

    report = sync(ws, only_package="kiro", now=FIXED_NOW + timedelta(hours=1))

    assert outcomes(report) == {"kiro": Outcome.NEW}
    assert upstream.statuses(KIRO_FLAT_DEB_PATH) == [200, 200]


def test_a_download_that_could_not_be_read_back_is_not_remembered(
    ws: Workspace, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error reading the scratch copy says nothing of the file upstream serves:
    the next run fetches it again rather than ask whether it changed."""
    _metadata(upstream)
    upstream.serve_file(KIRO_FLAT_DEB_PATH, KIRO)
    walk_ar = debfile._walk_ar

    def unreadable(*args: Any, **kwargs: Any) -> bool:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(debfile, "_walk_ar", unreadable)
    assert "cannot read: Input/output error" in _the_failure(ws, "kiro").message
    monkeypatch.setattr(debfile, "_walk_ar", walk_ar)

    report = sync(ws, only_package="kiro", now=FIXED_NOW + timedelta(hours=1))

    assert outcomes(report) == {"kiro": Outcome.NEW}
    assert upstream.statuses(KIRO_FLAT_DEB_PATH) == [200, 200]
    assert ws.staging.get(REFUSED_KEY) is None


def test_a_body_that_may_have_been_cut_short_is_not_remembered_as_refused(
    ws: Workspace, upstream: Upstream
) -> None:
    """No Content-Length, no chunked coding: the body ends where the connection closes,
    so a truncated .deb may be a transfer cut short. The next run fetches it again."""
    with FlakyServer(KIRO[: len(KIRO) // 2], resets=0, declare_length=False, etag="half") as server:
        _metadata(upstream, url=server.url)
        failure = _the_failure(ws, "kiro")
        assert failure.message.startswith(f"{server.url}: ")
        assert ws.staging.get(REFUSED_KEY) is None
        _the_failure(ws, "kiro")
        assert server.requests == 2


@pytest.mark.parametrize("stated", ["size", "md5"])
def test_a_body_ended_by_the_connection_is_remembered_as_refused_if_upstream_vouches_for_it(
    ws: Workspace, upstream: Upstream, stated: str
) -> None:
    """What upstream states about the file (its size, or any checksum) was checked: the
    download is that file, however its body ended."""
    half = KIRO[: len(KIRO) // 2]
    vouched = {"size": len(half), "md5": hashlib.md5(half).hexdigest()}[stated]
    with FlakyServer(half, resets=0, declare_length=False, etag="half") as server:
        _metadata(upstream, url=server.url, **{stated: vouched})
        _the_failure(ws, "kiro")
        assert ws.staging.get(REFUSED_KEY) is not None


def test_an_unreadable_record_of_refusals_means_downloading_again(
    ws: Workspace, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    _kiro_holding_the_wrong_version(upstream)
    _the_failure(ws, "kiro")
    ws.staging.put(REFUSED_KEY, b'{"kiro": {"version": 3}}', delivery_for(REFUSED_KEY))

    again = _the_failure(ws, "kiro")

    assert upstream.statuses(KIRO_FLAT_DEB_PATH) == [200, 200]
    assert again.message.startswith(f"{upstream.url(KIRO_FLAT_DEB_PATH)}: ")
    assert f"{REFUSED_KEY} is unreadable; downloads refused before are fetched again" in (
        caplog.text
    )
    assert json.loads(ws.staging.get(REFUSED_KEY) or b"")["kiro"]["version"] == "0.9.2"


def test_retry_refused_through_the_command_line(
    tmp_path: Path,
    config_dir: Path,
    sync_env: None,
    upstream: Upstream,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from debrepo.cli import main

    _kiro_holding_the_wrong_version(upstream)
    argv = ["--home", str(tmp_path / "home"), "--config-dir", str(config_dir), "sync"]

    def run(*options: str) -> tuple[int | str | None, str]:
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--package", "kiro", *options])
        return exited.value.code, capsys.readouterr().out

    assert run() == run("--retry-refused")  # judged again, with the same verdict
    code, out = run()
    assert code == 1 and "is not downloaded again (its server says" in out
    assert upstream.statuses(KIRO_FLAT_DEB_PATH) == [200, 200, 304]


def test_a_dry_run_says_a_version_was_refused_before(ws: Workspace, upstream: Upstream) -> None:
    _kiro_holding_the_wrong_version(upstream)
    _the_failure(ws, "kiro")

    (kiro,) = sync(ws, only_package="kiro", dry_run=True).packages

    assert kiro.outcome is Outcome.WOULD_FETCH
    assert kiro.line() == (
        f"kiro: would fetch 0.9.2 from {upstream.url(KIRO_FLAT_DEB_PATH)} (refused on "
        "2026-11-24T12:00:00Z; fetched only if upstream changed the file)"
    )
    assert upstream.count(KIRO_FLAT_DEB_PATH) == 1


def test_checksum_mismatch_names_both_digests(ws: Workspace, upstream: Upstream) -> None:
    claimed = sha256(b"the file upstream meant to publish")
    _checksum_mismatch(upstream, ExitStack())
    failure = _the_failure(ws, "kiro")
    assert failure.message == (
        f"{upstream.url(KIRO_FLAT_DEB_PATH)}: SHA256 of the download is {sha256(KIRO)}, but "
        f"upstream says {claimed}; refusing the file"
    )


def test_a_traversal_url_fetches_nothing_and_writes_nowhere(
    ws: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    _path_traversal(upstream, ExitStack())
    with pytest.raises(SyncFailedError):
        sync(ws, only_package="kiro")
    assert upstream.paths() == [METADATA_PATH]
    assert not list(tmp_path.rglob("cron.d"))


def test_github_release_without_a_matching_asset_fails_kiro_cli_only(
    ws: Workspace, upstream: Upstream, scratch_tmp: Path
) -> None:
    upstream.serve_kiro_live(KIRO)
    releases = upstream.github_releases()
    for release in releases:
        release["assets"] = [a for a in release["assets"] if not a["name"].endswith("amd64.deb")]
    upstream.serve_json(RELEASES_PATH, releases)

    report = sync(ws)

    (failure,) = report.failures
    assert failure.package_name == "kiro-cli"
    assert failure.message == (
        f"{upstream.base}/api/repos/kiro-dev/kiro-cli/releases?per_page=30: release v1.2.0 of "
        "kiro-dev/kiro-cli has no asset matching 'kiro-cli_*_amd64.deb' (assets: "
        "kiro-cli_1.2.0_arm64.deb, kiro-cli-1.2.0-x86_64-linux.tar.gz, SHA256SUMS)"
    )
    assert outcomes(report)["kiro"] is Outcome.NEW
    assert ws.store.package_ids() == {"kiro#0.9.2"}
    assert_no_trace_of(ws, scratch_tmp, "kiro-cli")


def _nightly(number: int) -> dict[str, Any]:
    return {
        "tag_name": f"v2.0.0-nightly.{number}",
        "prerelease": True,
        "draft": False,
        "assets": [],
    }


def _serve_release_pages(upstream: Upstream, *pages: list[dict[str, Any]]) -> None:
    """The releases API answering page 1, 2, ... with `pages`, 30 to a page."""
    for number, page in enumerate(pages, 1):
        query = "per_page=30" if number == 1 else f"per_page=30&page={number}"
        upstream.server.expect_request(RELEASES_PATH, query_string=query).respond_with_json(page)


def test_github_pages_of_pre_releases_are_read_through_to_the_newest_release(
    ws: Workspace, upstream: Upstream
) -> None:
    nightlies = [_nightly(n) for n in range(60, 0, -1)]
    _serve_release_pages(
        upstream, nightlies[:30], nightlies[30:], upstream.github_releases(KIRO_CLI)
    )
    upstream.serve_bytes(KIRO_CLI_DEB_PATH, KIRO_CLI)

    report = sync(ws, only_package="kiro-cli")

    assert outcomes(report) == {"kiro-cli": Outcome.NEW}
    assert ws.store.package_ids() == {"kiro-cli#1.2.0"}
    assert upstream.count(RELEASES_PATH) == 3  # and no page after the one with a release


def test_github_with_only_pre_releases_says_so_after_the_last_page(
    ws: Workspace, upstream: Upstream
) -> None:
    _serve_release_pages(
        upstream, [_nightly(n) for n in range(40, 10, -1)], [_nightly(n) for n in range(10, 0, -1)]
    )

    failure = _the_failure(ws, "kiro-cli")
    assert failure.message == (
        f"{upstream.base}/api/repos/kiro-dev/kiro-cli/releases?per_page=30: kiro-dev/kiro-cli "
        "has no published release (drafts, pre-releases and tags that are not versions are "
        "ignored)"
    )
    assert upstream.count(RELEASES_PATH) == 2


def test_github_digest_that_does_not_match_the_download(
    ws: Workspace, upstream: Upstream, scratch_tmp: Path
) -> None:
    upstream.serve_json(RELEASES_PATH, upstream.github_releases())  # digest as recorded
    upstream.serve_bytes(KIRO_CLI_DEB_PATH, KIRO_CLI)
    failure = _the_failure(ws, "kiro-cli")
    assert f"downloaded {len(KIRO_CLI)} bytes, but upstream says 18734112" in failure.message
    assert_no_trace_of(ws, scratch_tmp, "kiro-cli")


def test_github_rate_limit_is_a_clear_message_with_the_reset_time(
    ws: Workspace, upstream: Upstream
) -> None:
    reset = int(datetime(2026, 11, 24, 12, 34, 56, tzinfo=UTC).timestamp())
    upstream.server.expect_request(RELEASES_PATH).respond_with_json(
        {"message": "API rate limit exceeded for 127.0.0.1."},
        status=403,
        headers={
            "X-RateLimit-Limit": "60",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        },
    )
    failure = _the_failure(ws, "kiro-cli")
    assert failure.message == (
        f"{upstream.base}/api/repos/kiro-dev/kiro-cli/releases?per_page=30: GitHub API rate "
        "limit exhausted; it resets at 2026-11-24 12:34:56 UTC; set GITHUB_TOKEN (or "
        "DEBREPO_GITHUB_TOKEN) for a higher limit"
    )
    assert upstream.count(RELEASES_PATH) == 1


def test_a_refused_github_token_is_named_as_the_cause(
    ws: Workspace, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_revoked")
    upstream.server.expect_request(RELEASES_PATH).respond_with_json(
        {"message": "Bad credentials"}, status=401
    )
    failure = _the_failure(ws, "kiro-cli")
    assert failure.message == (
        f"{upstream.base}/api/repos/kiro-dev/kiro-cli/releases?per_page=30: HTTP 401 "
        "UNAUTHORIZED: the token (GITHUB_TOKEN or DEBREPO_GITHUB_TOKEN) was refused: check "
        "that it is valid and may read kiro-dev/kiro-cli"
    )
    assert "ghp_revoked" not in failure.message


def test_github_token_goes_to_the_api_only(
    ws: Workspace, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_exampletoken")
    upstream.serve_kiro_cli(KIRO_CLI)
    report = sync(ws, only_package="kiro-cli")
    assert outcomes(report) == {"kiro-cli": Outcome.NEW}
    (api,) = upstream.headers_of(RELEASES_PATH)
    assert api["Authorization"] == "Bearer ghp_exampletoken"
    assert api["Accept"] == "application/vnd.github+json"
    (download,) = upstream.headers_of(KIRO_CLI_DEB_PATH)
    assert "Authorization" not in download


def _releases_with(upstream: Upstream, change: Callable[[dict[str, Any]], None]) -> None:
    """The recorded releases, v1.2.0 changed by `change`, as JSON text (where a lone
    surrogate is a `\\ud800` escape)."""
    releases = upstream.github_releases(KIRO_CLI)
    change(next(r for r in releases if r["tag_name"] == "v1.2.0"))
    upstream.serve_bytes(RELEASES_PATH, json.dumps(releases).encode(), "application/json")
    upstream.serve_bytes(KIRO_CLI_DEB_PATH, KIRO_CLI)


def _asset(release: dict[str, Any]) -> dict[str, Any]:
    asset: dict[str, Any] = next(
        a for a in release["assets"] if a["name"] == "kiro-cli_1.2.0_amd64.deb"
    )
    return asset


def _set_asset(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda release: _asset(release).update(fields)


def _set_release(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda release: release.update(fields)


RELEASES = "/api/repos/kiro-dev/kiro-cli/releases?per_page=30"
BAD_GITHUB: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "assets a number",
        _set_release(assets=5),
        f"{RELEASES}: release v1.2.0 of kiro-dev/kiro-cli: field assets must be an array, found "
        "a number",
    ),
    (
        "url port",
        _set_asset(browser_download_url="http://127.0.0.1:99999/kiro-cli_1.2.0_amd64.deb"),
        f"{RELEASES}: asset kiro-cli_1.2.0_amd64.deb of release v1.2.0: "
        "'http://127.0.0.1:99999/kiro-cli_1.2.0_amd64.deb' is not a URL: Port out of range "
        "0-65535",
    ),
    (
        "url surrogate",
        _set_asset(browser_download_url="http://127.0.0.1:9/kiro-cli\ud800.deb"),
        f"{RELEASES}: asset kiro-cli_1.2.0_amd64.deb of release v1.2.0: field "
        "browser_download_url holds a lone surrogate",
    ),
    (
        "asset name surrogate",
        _set_asset(name="kiro-cli_1.2.0\udcff_amd64.deb"),
        f"{RELEASES}: an asset of release v1.2.0: field name holds a lone surrogate",
    ),
    (
        "body surrogate",
        _set_release(body="## What's Changed\n\ud800"),
        f"{RELEASES}: release v1.2.0: field body holds a lone surrogate (such as a \\ud800 "
        "escape), which is not Unicode text",
    ),
    (
        "published_at surrogate",
        _set_release(published_at="2026-11-12T14:20:38Z\ud800"),
        f"{RELEASES}: release v1.2.0: field published_at holds a lone surrogate",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [pytest.param(change, message, id=name) for name, change, message in BAD_GITHUB],
)
def test_bad_github_release_fails_kiro_cli_only_and_leaves_nothing_behind(
    ws: Workspace,
    upstream: Upstream,
    scratch_tmp: Path,
    change: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    upstream.serve_kiro_live(KIRO)
    _releases_with(upstream, change)

    report = sync(ws)

    failed = {o.package_name: o.message for o in report.failures}
    assert list(failed) == ["kiro-cli"]
    assert failed["kiro-cli"].startswith(f"{upstream.base}{message}")
    failed["kiro-cli"].encode("utf-8")
    assert outcomes(report)["kiro"] is Outcome.NEW
    assert ws.store.package_ids() == {"kiro#0.9.2"}
    assert upstream.count(KIRO_CLI_DEB_PATH) == 0
    assert_no_trace_of(ws, scratch_tmp, "kiro-cli")


def test_github_rate_limit_reset_beyond_any_date_is_still_one_clear_message(
    ws: Workspace, upstream: Upstream
) -> None:
    upstream.server.expect_request(RELEASES_PATH).respond_with_json(
        {"message": "API rate limit exceeded for 127.0.0.1."},
        status=403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "99999999999999999"},
    )
    failure = _the_failure(ws, "kiro-cli")
    assert failure.message == (
        f"{upstream.base}/api/repos/kiro-dev/kiro-cli/releases?per_page=30: GitHub API rate "
        "limit exhausted; it resets at an unknown time (x-ratelimit-reset 99999999999999999 is "
        "out of range); set GITHUB_TOKEN (or DEBREPO_GITHUB_TOKEN) for a higher limit"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "GITHUB_TOKEN",
            "a\nb",
            "GITHUB_TOKEN: not a GitHub token (it holds a space, a line break or a character "
            "other than printable ASCII); set it to the token alone",
        ),
        ("DEBREPO_GITHUB_TOKEN", "ghp_t\u00f6ken", "DEBREPO_GITHUB_TOKEN: not a GitHub token"),
        ("GITHUB_TOKEN", "ghp_token\r", "GITHUB_TOKEN: not a GitHub token"),
        (
            "DEBREPO_GITHUB_API_URL",
            "http://127.0.0.1:99999/api",
            "DEBREPO_GITHUB_API_URL: 'http://127.0.0.1:99999/api' is not a URL: Port out of "
            "range 0-65535",
        ),
        (
            "DEBREPO_GITHUB_API_URL",
            "http://[::1/api",
            "DEBREPO_GITHUB_API_URL: 'http://[::1/api' is not a URL: Invalid IPv6 URL",
        ),
    ],
)
def test_a_bad_github_variable_fails_kiro_cli_only_naming_the_variable(
    ws: Workspace,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)

    report = sync(ws)

    failed = {o.package_name: o.message for o in report.failures}
    assert list(failed) == ["kiro-cli"]
    assert failed["kiro-cli"].startswith(message)
    assert "ghp_" not in failed["kiro-cli"] and "a\nb" not in failed["kiro-cli"]  # no secret
    assert outcomes(report)["kiro"] is Outcome.NEW
    assert upstream.count(RELEASES_PATH) == 0  # nothing was sent


def _in_turn(*responses: Response) -> Callable[[Request], Response]:
    calls: list[int] = []

    def handler(_request: Request) -> Response:
        calls.append(1)
        return responses[min(len(calls), len(responses)) - 1]

    return handler


def test_transient_failures_are_retried(ws: Workspace, upstream: Upstream) -> None:
    upstream.server.expect_request(METADATA_PATH).respond_with_handler(
        _in_turn(
            Response("upstream timeout", status=504),
            Response(
                response=b'{"version": "0.9.2", "url": "'
                + upstream.url(KIRO_FLAT_DEB_PATH).encode()
                + b'"}',
                content_type="application/json",
            ),
        )
    )
    upstream.server.expect_request(KIRO_FLAT_DEB_PATH).respond_with_handler(
        _in_turn(
            Response("oops", status=500), Response(KIRO, content_type="application/octet-stream")
        )
    )
    report = sync(ws, only_package="kiro")
    assert outcomes(report) == {"kiro": Outcome.NEW}
    assert upstream.paths() == [METADATA_PATH] * 2 + [KIRO_FLAT_DEB_PATH] * 2


def test_a_reset_download_is_restarted_and_stored(ws: Workspace, upstream: Upstream) -> None:
    with FlakyServer(KIRO, resets=1) as server:
        _metadata(upstream, url=server.url)
        report = sync(ws, only_package="kiro")
    assert outcomes(report) == {"kiro": Outcome.NEW}
    assert server.requests == 2
    record = ws.store.get("kiro#0.9.2")
    assert record is not None and record.sha256_hash == sha256(KIRO)


def test_every_package_failing_fails_the_run_but_still_publishes_what_is_due(
    ws: Workspace, upstream: Upstream, scratch_tmp: Path
) -> None:
    _metadata_404(upstream, ExitStack())
    upstream.server.expect_request(RELEASES_PATH).respond_with_data("oops", status=502)
    app.build_kiro_repo(ws, version="1.0.0", publish_after=False, now=FIXED_NOW)

    with pytest.raises(SyncFailedError) as caught:
        sync(ws)

    report = caught.value.report
    assert sorted(o.package_name for o in report.failures) == ["kiro", "kiro-cli"]
    assert report.publish_reason == "the store changed since the last publish"
    assert report.published is not None  # kiro-repo, recorded earlier, went out anyway
    assert (repo_dir(ws) / "kiro-repo.deb").exists()
    message = str(caught.value)
    assert "kiro: " in message and "kiro-cli: " in message and "HTTP 502" in message
    assert upstream.count(RELEASES_PATH) == 3
    assert list(scratch_tmp.iterdir()) == []


def test_every_package_failing_on_a_new_home_publishes_no_empty_repository(
    ws: Workspace, upstream: Upstream
) -> None:
    _metadata_404(upstream, ExitStack())
    upstream.server.expect_request(RELEASES_PATH).respond_with_data("oops", status=502)

    with pytest.raises(SyncFailedError) as caught:
        sync(ws)

    report = caught.value.report
    assert report.published is None
    assert report.summary() == "nothing new, nothing published"
    assert not repo_dir(ws).exists() or list(repo_dir(ws).rglob("Release")) == []
    assert ws.store.package_ids() == set()

    # Once upstream answers, the first run that stores something publishes it.
    upstream.server.clear()
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    report = sync(ws, now=FIXED_NOW + timedelta(hours=1))
    assert report.published is not None
    assert "Package: kiro\n" in (repo_dir(ws) / PACKAGES).read_text()


def test_an_unexpected_error_in_one_source_is_isolated(ws: Workspace, upstream: Upstream) -> None:
    upstream.serve_kiro_live(KIRO)

    class Broken:
        def __init__(self, config: Any) -> None:
            self.config = config

        def latest(self) -> Release:
            raise RuntimeError("bug in a source")

        def acquire(self, release: Release, scratch_dir: Path) -> Acquired:
            raise AssertionError("never called")

    report = run_sync(
        store=ws.store,
        repo=ws.repo,
        staging=ws.staging,
        configs=ws.configs,
        publish=lambda now, keys: ws.publisher().publish(now=now, just_written=keys),
        notifier=_Collect(),
        now=FIXED_NOW,
        suite="stable",
        destination=Destination("pool", "main", ("amd64",)),
        http_settings=FAST_HTTP,
        make_source=lambda config, http: (
            Broken(config)
            if config.package_name == "kiro-cli"
            else source_for(config, http=http, environ={})
        ),
    )
    assert outcomes(report)["kiro"] is Outcome.NEW
    (failure,) = report.failures
    assert failure.message == "unexpected RuntimeError: bug in a source"


# -- dry run, one package, notifications ---------------------------------------------------


def test_dry_run_reports_and_changes_nothing(
    ws: Workspace, upstream: Upstream, scratch_tmp: Path
) -> None:
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)

    report = sync(ws, dry_run=True)

    assert [o.line() for o in report.packages] == [
        f"kiro: would fetch 0.9.2 from {upstream.url(KIRO_DEB_PATH)}",
        f"kiro-cli: would fetch 1.2.0 from {upstream.url(KIRO_CLI_DEB_PATH)}",
        "kiro-repo: nothing to fetch (versions come from the build script: debrepo "
        "build-repo-package)",
    ]
    assert report.summary() == "dry run: would publish (2 new version(s)); nothing was changed"
    assert report.published is None
    assert upstream.paths() == [METADATA_PATH, RELEASES_PATH]
    # Not even an empty store, repository folder or signing key was made (a dry run on
    # a mistyped --home must not leave a home that looks started).
    assert not ws.settings.home.exists()
    assert list(scratch_tmp.iterdir()) == []


def test_a_dry_run_reports_a_lost_store_and_reads_no_secret(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.build_kiro_repo(ws, version="1.0.0", now=FIXED_NOW)
    # A key in a secret that cannot be reached (no credentials): a dry run never asks.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    secret = Workspace(ws.settings._replace(key_secret_id="arn:aws:secretsmanager:x"))
    quiet = sync(secret, only_package="kiro-repo", dry_run=True)
    assert quiet.summary() == "dry run: nothing new, nothing to publish; nothing was changed"
    longer = Workspace(secret.settings._replace(valid_days=10.0))
    changed = sync(longer, only_package="kiro-repo", dry_run=True)
    assert changed.summary() == (  # the settings are compared without the key
        "dry run: would publish (the settings or the signing key changed since the last "
        "publish); nothing was changed"
    )

    Path(ws.store.path).unlink()  # lost: the dry run must say so, as a real run does
    with pytest.raises(StoreError, match=r"no metadata store here, but the repository was"):
        sync(Workspace(ws.settings), only_package="kiro-repo", dry_run=True)


def test_a_dry_run_on_an_empty_store_file_writes_nothing(ws: Workspace) -> None:
    ws.settings.home.mkdir()
    store_file = ws.settings.home / "metadata.db"
    store_file.touch()  # what `: > metadata.db` leaves; opening it would create the tables
    report = sync(Workspace(ws.settings), only_package="kiro-repo", dry_run=True)
    assert report.summary().endswith("; nothing was changed")
    assert store_file.stat().st_size == 0
    assert sorted(p.name for p in ws.settings.home.iterdir()) == ["metadata.db"]


def test_a_failed_clear_of_owed_notifications_does_not_fail_a_good_publish(
    ws: Workspace,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from debrepo.errors import ObjectStoreError
    from debrepo.services.sync import OWED_NOTIFICATIONS_KEY

    upstream.serve_kiro_live(KIRO)
    delete = FilesystemObjectStore.delete

    def failing(self: FilesystemObjectStore, key: str) -> None:
        if key == OWED_NOTIFICATIONS_KEY:
            raise ObjectStoreError(f"{key}: cannot delete: Permission denied")
        delete(self, key)

    monkeypatch.setattr(FilesystemObjectStore, "delete", failing)
    notified = _Collect()
    report = sync(ws, notifier=notified, only_package="kiro")
    assert report.published is not None
    assert [r.package_id for r in notified.records] == ["kiro#0.9.2"]
    assert f"cannot clear {OWED_NOTIFICATIONS_KEY} (sent already)" in caplog.text


def test_a_version_upstream_spells_otherwise_is_downloaded_once(
    ws: Workspace, upstream: Upstream
) -> None:
    """A GitHub asset's file name cannot hold the epoch of the .deb inside (`1:1.2.0` in
    kiro-cli_1.2.0_amd64.deb); Kiro's metadata may write a version dpkg takes for the
    stored one (0.9.02 for 0.9.2). Neither is a new version to download every run."""
    upstream.serve_kiro_cli(kiro_cli_deb("1:1.2.0"))
    first = sync(ws, only_package="kiro-cli")
    assert outcomes(first) == {"kiro-cli": Outcome.NEW}, first.summary()
    assert ws.store.package_ids() == {"kiro-cli#1:1.2.0"}
    again = sync(ws, only_package="kiro-cli", now=FIXED_NOW + timedelta(hours=1))
    assert outcomes(again) == {"kiro-cli": Outcome.ALREADY_STORED}
    assert again.packages[0].message == "upstream calls it 1.2.0; stored as 1:1.2.0"
    assert upstream.count(KIRO_CLI_DEB_PATH) == 1

    upstream.serve_kiro_live(KIRO)
    assert outcomes(sync(ws, only_package="kiro")) == {"kiro": Outcome.NEW}
    metadata = json.dumps(upstream.live_metadata()).replace('"0.9.2"', '"0.9.02"')
    assert '"0.9.02"' in metadata
    upstream.server.clear()  # the first answer registered for a path would win
    upstream.serve_json(METADATA_PATH, json.loads(metadata))
    upstream.serve_bytes(KIRO_DEB_PATH, KIRO)
    respelled = sync(ws, only_package="kiro", now=FIXED_NOW + timedelta(hours=2))
    assert outcomes(respelled) == {"kiro": Outcome.ALREADY_STORED}, respelled.summary()
    assert respelled.packages[0].message == "upstream calls it 0.9.02; stored as 0.9.2"
    assert upstream.count(KIRO_DEB_PATH) == 0  # not since the log was cleared


def test_only_one_package(ws: Workspace, upstream: Upstream) -> None:
    upstream.serve_kiro_cli(KIRO_CLI)
    report = sync(ws, only_package="kiro-cli")
    assert outcomes(report) == {"kiro-cli": Outcome.NEW}
    assert METADATA_PATH not in upstream.paths()
    with pytest.raises(ConfigError, match=r"package 'kiro-ide' is not defined .*kiro, kiro-cli"):
        sync(ws, only_package="kiro-ide")


class _Collect:
    def __init__(self, fail: bool = False) -> None:
        self.records: list[PackageRecord] = []
        self.fail = fail

    def package_published(self, record: PackageRecord) -> None:
        self.records.append(record)
        if self.fail:
            raise ConnectionError("notification service down")


def test_one_notification_per_new_version_and_a_failed_one_is_sent_by_the_next_sync(
    ws: Workspace, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    notifier = _Collect(fail=True)
    report = sync(ws, notifier=notifier)
    assert [r.package_id for r in notifier.records] == ["kiro#0.9.2", "kiro-cli#1.2.0"]
    assert report.published is not None  # a lost notification does not fail the run
    assert "cannot notify about kiro#0.9.2 (the next sync tries again)" in caplog.text
    retried = _Collect()
    again = sync(ws, notifier=retried, now=FIXED_NOW + timedelta(minutes=5))
    assert again.published is None
    assert [r.package_id for r in retried.records] == ["kiro#0.9.2", "kiro-cli#1.2.0"]
    quiet = _Collect()
    sync(ws, notifier=quiet, now=FIXED_NOW + timedelta(minutes=10))
    assert quiet.records == []


def test_notifications_are_owed_before_the_publish_starts(
    ws: Workspace, upstream: Upstream
) -> None:
    """A run killed during its publish (a Lambda's timeout) runs no `except`: what it owes
    is on record already, and the next sync sends it."""
    from debrepo.services.sync import OWED_NOTIFICATIONS_KEY

    upstream.serve_kiro_live(KIRO)
    owed_at_publish: list[bytes | None] = []

    def killed(now: datetime, keys: Any) -> Any:
        owed_at_publish.append(ws.staging.get(OWED_NOTIFICATIONS_KEY))
        raise SystemExit(137)

    with pytest.raises(SystemExit):
        run_sync(
            store=ws.store,
            repo=ws.repo,
            staging=ws.staging,
            configs=ws.configs,
            publish=killed,
            notifier=_Collect(),
            now=FIXED_NOW,
            suite="stable",
            destination=Destination("pool", "main", ("amd64",)),
            http_settings=FAST_HTTP,
            only_package="kiro",
        )
    assert owed_at_publish == [b'["kiro#0.9.2"]']
    later = _Collect()
    report = sync(ws, notifier=later, only_package="kiro")
    assert report.published is not None  # the store changed since the last publish
    assert [r.package_id for r in later.records] == ["kiro#0.9.2"]
    assert ws.staging.get(OWED_NOTIFICATIONS_KEY) is None


def test_versions_whose_publish_failed_are_named_and_announced_once_published(
    ws: Workspace, upstream: Upstream
) -> None:
    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    blocker = repo_dir(ws) / "dists"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the indices must go\n", encoding="utf-8")
    first = _Collect()
    with pytest.raises(PublishError) as caught:
        sync(ws, notifier=first)
    assert str(caught.value).endswith(
        "; kiro 0.9.2, kiro-cli 1.2.0 stored but not published: fix that, then run "
        "`debrepo rebuild` (or let the next sync publish it)"
    )
    assert "cannot create directory" in str(caught.value)
    assert first.records == []
    assert ws.store.package_ids() == {"kiro#0.9.2", "kiro-cli#1.2.0"}

    # The operator fixes it and rebuilds; the next sync has nothing new, and announces
    # what it owes once.
    blocker.unlink()
    app.rebuild(ws, now=FIXED_NOW + timedelta(minutes=1))
    later = _Collect()
    report = sync(ws, notifier=later, now=FIXED_NOW + timedelta(minutes=2))
    assert report.published is None
    assert [r.package_id for r in later.records] == ["kiro#0.9.2", "kiro-cli#1.2.0"]
    quiet = _Collect()
    sync(ws, notifier=quiet, now=FIXED_NOW + timedelta(minutes=3))
    assert quiet.records == []


def test_an_unreadable_record_of_owed_notifications_is_reported_once_and_dropped(
    ws: Workspace, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    from debrepo.core.layout import delivery_for
    from debrepo.services.sync import OWED_NOTIFICATIONS_KEY

    upstream.serve_kiro_live(KIRO)
    upstream.serve_kiro_cli(KIRO_CLI)
    ws.staging.put(OWED_NOTIFICATIONS_KEY, b"{not json", delivery_for(OWED_NOTIFICATIONS_KEY))
    collected = _Collect()
    sync(ws, notifier=collected)
    assert [r.package_id for r in collected.records] == ["kiro#0.9.2", "kiro-cli#1.2.0"]
    assert f"{OWED_NOTIFICATIONS_KEY} is unreadable" in caplog.text
    assert ws.staging.get(OWED_NOTIFICATIONS_KEY) is None


# -- the staging area (build_script) --------------------------------------------------------


def test_a_staged_version_recorded_without_publishing_is_published_by_sync(
    ws: Workspace,
) -> None:
    app.build_kiro_repo(ws, version="1.0.0", now=FIXED_NOW)
    app.build_kiro_repo(ws, version="1.1.0", publish_after=False, now=FIXED_NOW)
    assert not (repo_dir(ws) / "pool/main/k/kiro-repo/kiro-repo_1.1.0_all.deb").exists()

    report = sync(ws, only_package="kiro-repo")

    assert outcomes(report) == {"kiro-repo": Outcome.NOTHING_UPSTREAM}
    assert report.publish_reason == "the store changed since the last publish"
    assert report.published is not None
    pool = repo_dir(ws) / "pool/main/k/kiro-repo/kiro-repo_1.1.0_all.deb"
    staged = ws.settings.home / "staging/kiro-repo/kiro-repo_1.1.0_all.deb"
    assert pool.read_bytes() == staged.read_bytes()
    assert report.published.convenience_version == "1.1.0"


def test_a_staged_file_that_differs_from_its_record_is_refused(ws: Workspace) -> None:
    app.build_kiro_repo(ws, version="1.0.0", publish_after=False, now=FIXED_NOW)
    staged = ws.settings.home / "staging/kiro-repo/kiro-repo_1.0.0_all.deb"
    data = bytearray(staged.read_bytes())
    data[-1] ^= 0xFF
    staged.write_bytes(bytes(data))
    with pytest.raises(
        PublishError, match=r"staged file .* does not match the stored size and SHA256"
    ):
        sync(ws, only_package="kiro-repo")
    assert not (repo_dir(ws) / "pool/main/k/kiro-repo").exists()


# -- Valid-Until -------------------------------------------------------------------------------


def test_unchanged_repository_is_re_signed_past_half_its_validity(ws: Workspace) -> None:
    app.build_kiro_repo(ws, version="1.0.0", now=FIXED_NOW)  # Valid-Until: FIXED_NOW + 7 days
    root = repo_dir(ws)
    published = tree(root)

    early = sync(ws, only_package="kiro-repo", now=FIXED_NOW + timedelta(days=3, hours=11))
    assert early.published is None and not early.refreshed
    assert tree(root) == published

    moment = FIXED_NOW + timedelta(days=3, hours=12)
    due = sync(ws, only_package="kiro-repo", now=moment)

    assert due.refreshed and due.published is not None and due.published.resigned_only
    assert due.summary() == (
        "nothing new; the Release is past half of its validity window "
        "(Sat, 28 Nov 2026 00:00:00 +0000): Release re-signed and re-published"
    )
    release = (root / RELEASE).read_text()
    assert "Date: Sat, 28 Nov 2026 00:00:00 +0000\n" in release
    assert "Valid-Until: Sat, 05 Dec 2026 00:00:00 +0000\n" in release
    changed = {key for key in tree(root) if tree(root)[key] != published.get(key)}
    assert changed == {RELEASE, "dists/stable/InRelease", "dists/stable/Release.gpg"}
    assert app.verify(ws, now=moment + timedelta(days=3)).problems == []
    # Re-signed just now, so the next run has nothing to do again.
    assert sync(ws, only_package="kiro-repo", now=moment + timedelta(hours=1)).published is None


def test_a_changed_setting_is_published_by_a_sync_with_nothing_new(ws: Workspace) -> None:
    """A scheduled run is how the Lambda's settings and key reach the repository: one
    changed since the last publish is published without waiting for a re-sign."""
    app.build_kiro_repo(ws, version="1.0.0", now=FIXED_NOW)
    assert sync(ws, only_package="kiro-repo").published is None  # nothing changed
    longer = Workspace(ws.settings._replace(valid_days=10.0))
    moment = FIXED_NOW + timedelta(hours=1)

    planned = sync(longer, only_package="kiro-repo", now=moment, dry_run=True)
    assert planned.summary() == (
        "dry run: would publish (the settings or the signing key changed since the last "
        "publish); nothing was changed"
    )
    report = sync(longer, only_package="kiro-repo", now=moment)

    assert report.published is not None and not report.refreshed
    assert report.summary() == (
        "the settings or the signing key changed since the last publish; published"
    )
    release = (repo_dir(ws) / RELEASE).read_text()
    assert "Valid-Until: Fri, 04 Dec 2026 13:00:00 +0000\n" in release  # 10 days on
    assert sync(longer, only_package="kiro-repo", now=moment).published is None


def test_a_sync_after_an_upgrade_that_renders_the_indices_otherwise_says_so(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The indices are rendered again, and nobody is sent looking for a changed setting
    or key."""
    with monkeypatch.context() as patched:
        patched.setattr("debrepo.services.publish.RENDER_VERSION", "2")  # the last publish's
        app.build_kiro_repo(ws, version="1.0.0", now=FIXED_NOW)
    moment = FIXED_NOW + timedelta(hours=1)
    reason = "this debrepo renders the indices otherwise than the last publish did"

    planned = sync(ws, only_package="kiro-repo", now=moment, dry_run=True)
    assert planned.summary() == f"dry run: would publish ({reason}); nothing was changed"
    report = sync(ws, only_package="kiro-repo", now=moment)

    assert report.published is not None and not report.published.resigned_only
    assert report.summary() == f"{reason}; published"
    assert sync(ws, only_package="kiro-repo", now=moment).published is None


@pytest.mark.e2e
def test_apt_accepts_the_re_signed_repository_after_refusing_the_expired_one(
    ws: Workspace, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    app.build_kiro_repo(ws, version="1.0.0", now=now - timedelta(days=8))
    root = repo_dir(ws)
    with serve_in_thread(root) as server:
        apt = AptEnv(tmp_path / "aptroot")
        apt.use_source(server.url, root / "kiro-archive-keyring.gpg")
        expired = apt.update()
        assert any("is expired" in line for line in expired.lines), expired.describe()

        report = sync(ws, only_package="kiro-repo", now=now)
        assert report.refreshed

        assert_clean_update(apt.update())
        install = apt.install("kiro-repo")
        assert install.returncode == 0, install.describe()
        assert apt.installed() == {"kiro-repo": "1.0.0"}


def test_sync_without_package_definitions_is_a_configuration_error(tmp_path: Path) -> None:
    empty = tmp_path / "config" / "packages"
    empty.mkdir(parents=True)
    ws = Workspace(settings_for(tmp_path / "home", config_dir=str(empty)))
    with pytest.raises(ConfigError, match=r"/config/packages: no package definitions"):
        sync(ws)


# -- the repository lock ------------------------------------------------------------------


def test_the_lock_is_free_while_downloading_and_held_while_storing(
    ws: Workspace, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another `add` may publish while sync waits on a slow upstream."""
    from debrepo.errors import LockError
    from debrepo.locking import local_lock
    from debrepo.services import sync as sync_module

    lock_file = ws.settings.home / "publish.lock"

    def lock_is_free() -> bool:
        try:
            with local_lock(lock_file):  # another file description: flock conflicts
                return True
        except LockError:
            return False

    during_download: list[bool] = []

    def serve_deb(request: Request) -> Response:
        during_download.append(lock_is_free())
        return Response(KIRO, content_type="application/vnd.debian.binary-package")

    upstream.serve_json(METADATA_PATH, upstream.live_metadata())
    upstream.server.expect_request(KIRO_DEB_PATH).respond_with_handler(serve_deb)
    during_store: list[bool] = []
    real_ingest = sync_module.ingest_files

    def ingest(*args: Any, **kwargs: Any) -> list[PackageRecord]:
        during_store.append(lock_is_free())
        return real_ingest(*args, **kwargs)

    monkeypatch.setattr(sync_module, "ingest_files", ingest)

    report = sync(ws, only_package="kiro")

    assert outcomes(report) == {"kiro": Outcome.NEW}
    assert during_download == [True]
    assert during_store == [False]
    assert lock_is_free()


def test_a_version_stored_by_another_run_during_the_download_counts_as_stored(
    ws: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    """The same bytes, stored while this sync was downloading them: nothing to add."""
    deb = tmp_path / "kiro.deb"
    deb.write_bytes(KIRO)

    def serve_deb(request: Request) -> Response:
        other = Workspace(ws.settings)  # the other run, with its own connections
        app.add_packages(other, [deb], publish=False, now=FIXED_NOW)
        return Response(KIRO, content_type="application/vnd.debian.binary-package")

    upstream.serve_json(METADATA_PATH, upstream.live_metadata())
    upstream.server.expect_request(KIRO_DEB_PATH).respond_with_handler(serve_deb)

    report = sync(ws, only_package="kiro")

    assert outcomes(report) == {"kiro": Outcome.ALREADY_STORED}
    assert report.publish_reason == "the store changed since the last publish"
    assert report.published is not None
    assert "Package: kiro\n" in (repo_dir(ws) / PACKAGES).read_text()


def test_a_lock_held_by_another_run_after_the_download_stores_nothing(
    ws: Workspace, upstream: Upstream, scratch_tmp: Path
) -> None:
    from debrepo.errors import LockError
    from debrepo.locking import local_lock

    held = ExitStack()

    def serve_deb(request: Request) -> Response:  # another run takes the lock meanwhile
        held.enter_context(local_lock(ws.settings.home / "publish.lock"))
        return Response(KIRO, content_type="application/vnd.debian.binary-package")

    upstream.serve_json(METADATA_PATH, upstream.live_metadata())
    upstream.server.expect_request(KIRO_DEB_PATH).respond_with_handler(serve_deb)
    before = state(ws, scratch_tmp)
    with held, pytest.raises(LockError, match="another debrepo process is publishing"):
        sync(ws, only_package="kiro")
    assert state(ws, scratch_tmp) == before  # nothing stored, no download left behind
    assert upstream.count(KIRO_DEB_PATH) == 1


def _sync_as_cron_runs_it(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """The arguments of `debrepo sync` as cron runs it, with no DEBREPO_ setting in the
    environment but the local GitHub API."""
    for variable in [v for v in os.environ if v.startswith("DEBREPO_")]:
        if variable != "DEBREPO_GITHUB_API_URL":
            monkeypatch.delenv(variable)
    return ["--home", str(tmp_path / "home"), "--config-dir", str(config_dir), "sync"]


def test_upstream_text_reaches_the_terminal_escaped(
    tmp_path: Path,
    config_dir: Path,
    sync_env: None,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A URL or asset name upstream gives, said in an outcome line, cannot drive the
    terminal (set its title, clear it)."""
    from debrepo.cli import main

    argv = _sync_as_cron_runs_it(tmp_path, config_dir, monkeypatch)
    _metadata(upstream, url=upstream.url("/kiro-flat/\x1b]0;owned\x07kiro_0.9.2_amd64.deb"))
    releases = upstream.github_releases()
    for release in releases:
        for asset in release["assets"]:
            asset["name"] = f"\x1b[2J{asset['name']}"
    upstream.serve_json(RELEASES_PATH, releases)
    with pytest.raises(SystemExit):
        main(argv)
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\x07" not in out + err
    kiro, kiro_cli = out.splitlines()[:2]
    assert kiro.startswith("kiro: failed: ") and "/kiro-flat/\\x1b]0;owned\\x07kiro_" in kiro
    assert kiro_cli.startswith("kiro-cli: failed: ") and "\\x1b[2Jkiro-cli_" in kiro_cli


def test_bad_upstream_data_through_the_command_line_is_one_line_each_and_the_exit_status(
    tmp_path: Path,
    config_dir: Path,
    sync_env: None,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`debrepo sync` as run by cron: no traceback, 1 when every package failed, 3 when
    some did."""
    from debrepo.cli import main

    argv = _sync_as_cron_runs_it(tmp_path, config_dir, monkeypatch)
    monkeypatch.setenv("GITHUB_TOKEN", "a\nb")
    _raw_metadata(upstream, notes="Faster \ud800 indexing")

    def run() -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "unexpected" not in out + err, out + err
        return exited.value.code if isinstance(exited.value.code, int) else -1, out, err

    code, out, err = run()
    assert code == 1
    assert out.splitlines()[:2] == [
        f"kiro: failed: {upstream.url(METADATA_PATH)}: field notes holds a lone surrogate (such "
        "as a \\ud800 escape), which is not Unicode text",
        "kiro-cli: failed: GITHUB_TOKEN: not a GitHub token (it holds a space, a line break or "
        "a character other than printable ASCII); set it to the token alone",
    ]
    assert "debrepo: error: sync failed for every package checked: kiro: " in err

    upstream.server.clear()
    upstream.serve_kiro_live(KIRO)
    code, out, err = run()
    assert code == 3
    assert out.startswith("kiro: stored 0.9.2 from ")
    assert "debrepo: error: sync failed for kiro-cli: GITHUB_TOKEN: not a GitHub token" in err


def test_release_notes_too_long_to_keep_are_said_on_the_terminal(
    tmp_path: Path,
    config_dir: Path,
    sync_env: None,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from debrepo.cli import main
    from debrepo.errors import OUTCOME_REPORTED

    argv = _sync_as_cron_runs_it(tmp_path, config_dir, monkeypatch)
    _metadata(upstream, notes="Faster indexing. " * 10_000)  # 170,000 bytes
    upstream.serve_bytes(KIRO_FLAT_DEB_PATH, KIRO)
    main([*argv, "--package", "kiro"])
    assert capsys.readouterr().out.startswith("kiro: stored 0.9.2 from ")
    (said,) = [r for r in caplog.records if "release notes" in r.getMessage()]
    assert said.levelno == logging.WARNING
    assert said.getMessage() == (
        "kiro 0.9.2: stored the first 64 KiB of its release notes (167 KiB upstream)"
    )
    # The outcome line says nothing of the notes: the terminal's handler must not drop it.
    assert not getattr(said, OUTCOME_REPORTED, False)
