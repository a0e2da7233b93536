"""Seed Property 18 through a real sync: a local upstream (pytest-httpserver on
127.0.0.1, one server for the module) offers a version the store already holds, spelled
as stored or otherwise but equal as dpkg compares, and the sync downloads nothing.

The server's request log is the judge of what was downloaded; the store is read back to
judge what was stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from debrepo import app
from debrepo.model import PackageRecord
from debrepo.services.sync import Outcome
from debrepo.signing.openpgp import OpenPGPSigner
from tests.property.oracles import scratch_dir
from tests.property.strategies import (
    PHASES_WITHOUT_EXPLAIN,
    deb_filename,
    distinct_versions,
    package_records,
    respellings_of,
    with_content,
)
from tests.property.workspaces import workspace_in
from tests.sources.conftest import FAST_HTTP, make_checkout

METADATA_PATH = "/linux/metadata.json"
DEB_PATH = "/linux/kiro-latest-linux-x64.deb"  # what the sync must never ask for


@pytest.fixture(scope="module")
def upstream() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


@pytest.fixture(scope="module")
def config_dir(upstream: HTTPServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config/packages of a fresh checkout, kiro's metadata endpoint on the local server."""
    return make_checkout(tmp_path_factory.mktemp("checkout"), upstream.url_for(METADATA_PATH))


@pytest.fixture(scope="module", autouse=True)
def no_github_token() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("GITHUB_TOKEN", "DEBREPO_GITHUB_TOKEN"):
            patch.delenv(variable, raising=False)
        yield


def metadata(version: str, url: str, live: bool) -> dict[str, Any]:
    """The Kiro metadata endpoint's answer offering `version`: the seed's flat shape or
    the live one."""
    release = {"version": version, "url": url, "pub_date": "2026-11-18T21:04:11Z"}
    if not live:
        return release
    return {"currentRelease": version, "releases": [{"updateTo": release}]}


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(
    versions=distinct_versions(min_size=1, max_size=3),
    template=package_records(lean=True),
    live=st.booleans(),
    data=st.data(),
)
def test_property_18_sync_never_downloads_a_stored_version(
    signer: OpenPGPSigner,
    upstream: HTTPServer,
    config_dir: Path,
    versions: list[str],
    template: PackageRecord,
    live: bool,
    data: st.DataObject,
) -> None:
    """Feature: unified-multi-package-repo, Property 18: Version Deduplication

    kiro versions are stored (their pool files published), and the upstream metadata
    offers one of them, as stored or respelled (1.00 for 1.0, 0:1.0, 1.0-0): the sync
    reports it ALREADY_STORED under the stored version, asks for the metadata alone and
    never for the .deb, and leaves the store as it was.
    """
    chosen = data.draw(st.sampled_from(versions), label="offered again")
    offered = data.draw(respellings_of(chosen), label="as upstream spells it")
    upstream.clear()
    upstream.expect_request(METADATA_PATH).respond_with_json(
        metadata(offered, upstream.url_for(DEB_PATH), live)
    )
    upstream.expect_request(DEB_PATH).respond_with_data(b"not to be fetched")

    with (
        scratch_dir() as directory,
        workspace_in(directory, signer, with_package_configs=True, config_dir=config_dir) as ws,
    ):
        root = Path(ws.repo.root)
        stored = []
        for version in versions:
            content = hashlib.sha512(version.encode()).digest()
            record = with_content(
                template.with_changes(
                    package_name="kiro",
                    version=version,
                    architecture="amd64",
                    actual_filename=deb_filename("kiro", version, "amd64"),
                    package_type="external_download",
                ),
                content,
            )
            pool = root / "pool" / "main" / "k" / "kiro" / record.actual_filename
            pool.parent.mkdir(parents=True, exist_ok=True)
            pool.write_bytes(content)
            stored.append(record)
        ws.store.put_many(stored)

        report = app.sync(
            ws,
            only_package="kiro",
            now=datetime(2026, 11, 24, 12, tzinfo=UTC),
            http_settings=FAST_HTTP,
        )

        (outcome,) = report.packages
        assert outcome.outcome is Outcome.ALREADY_STORED, report.summary()
        assert outcome.version == chosen, report.summary()
        assert [request.path for request, _ in upstream.log] == [METADATA_PATH]
        assert sorted(ws.store.all(), key=lambda r: r.package_id) == sorted(
            stored, key=lambda r: r.package_id
        )
