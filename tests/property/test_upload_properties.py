"""Seed Properties 15, 16 and 17: where each published object goes, the Content-Type it
is served with, and its public-read ACL.

Packages are added and removed through the app on the embedded default; the repository
and the staging area are wrapped in recorders (oracles.WriteRecorder) that keep every
key written with the Delivery (Content-Type, Cache-Control) the publisher hands to the
object store. What S3 would be sent for each of those writes is read from the S3 object
store's own write arguments, in `public-read` ACL mode. The expected key patterns and
Content-Types are written out here from the seed and DESIGN, not taken from debrepo.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from debrepo import app
from debrepo.factory import open_object_store
from debrepo.objects.s3 import S3ObjectStore
from debrepo.signing.openpgp import OpenPGPSigner
from debrepo.versions import dpkg_identity
from tests.conftest import deb_bytes
from tests.property.oracles import WriteRecorder, release_fields, scratch_dir
from tests.property.strategies import (
    PHASES_WITHOUT_EXPLAIN,
    debian_versions,
    package_names,
    version_without_epoch,
)
from tests.property.workspaces import workspace_in

ARCHITECTURES = ("amd64", "arm64")
DEB = "application/vnd.debian.binary-package"
# Seed Property 16: .deb files, Packages and Release files, index.html. The others as
# their formats are registered: gzip (RFC 6713), xz, OpenPGP keys (RFC 3156). A detached
# signature may be served as a Release file (text/plain, the seed) or as what it is.
CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    "deb": (DEB,),
    "Packages": ("text/plain",),
    "Packages.gz": ("application/gzip", "application/x-gzip"),
    "Packages.xz": ("application/x-xz",),
    "Release": ("text/plain",),
    "InRelease": ("text/plain",),
    "Release.gpg": ("text/plain", "application/pgp-signature"),
    "index.html": ("text/html",),
    "keyring": ("application/pgp-keys",),
}
# A by-hash object holds one of the indices under its digest: served as that index is,
# or as opaque bytes.
BY_HASH_EXTRA = ("application/octet-stream",)

# Seed Property 15 (generalised over the repository's architectures) and DESIGN
# "Repository layout": every object the publisher may write to the repository.
DISTS_PATTERNS = (
    r"dists/stable/(Release|Release\.gpg|InRelease)",
    r"dists/stable/main/binary-(amd64|arm64)/Packages(\.gz|\.xz)?",
    r"dists/stable/main/binary-(amd64|arm64)/by-hash/SHA256/[0-9a-f]{64}",
    r"dists/stable/main/binary-(amd64|arm64)/by-hash/SHA512/[0-9a-f]{128}",
)
ROOT_PATTERNS = (r"index\.html", r"kiro-repo\.deb", r"kiro-archive-keyring\.(gpg|asc)")


def file_type(key: str) -> str:
    """The kind of file at a repository key, from the seed's layout alone."""
    name = key.rsplit("/", 1)[-1]
    if name.endswith(".deb"):
        return "deb"
    if re.fullmatch(r"kiro-archive-keyring\.(gpg|asc)", key):
        return "keyring"
    return name


def media_type(content_type: str) -> str:
    media, _, parameters = content_type.partition(";")
    if parameters.strip():
        assert parameters.strip().lower().replace(" ", "") == "charset=utf-8", content_type
    return media.strip().lower()


def max_age(cache_control: str) -> int:
    found = re.search(r"max-age=(\d+)", cache_control)
    assert found, cache_control
    return int(found.group(1))


REPOSITORY_PREFIXES = ("", "apt", "repo/apt", "public")


@pytest.fixture(scope="module")
def s3_stores() -> dict[str, S3ObjectStore]:
    """S3 object stores as the factory opens them for s3:// URLs, in public-read mode, and
    in bucket-policy mode under `policy:` (no request is sent: only their write
    arguments are read). Made once: a boto3 client costs a tenth of a second."""
    urls = [f"s3://bucket/{prefix}".rstrip("/") for prefix in REPOSITORY_PREFIXES]
    urls.append("s3://bucket/staging")
    stores = {url: open_object_store(url, "property test", acl_mode="public-read") for url in urls}
    stores.update({f"policy:{url}": open_object_store(url, "property test") for url in urls})
    assert all(isinstance(store, S3ObjectStore) for store in stores.values())
    return stores  # type: ignore[return-value]


def s3_write_args(store: S3ObjectStore, key: str, delivery: Any) -> dict[str, Any]:
    args: dict[str, Any] = store._write_args(key, store._key(key), delivery)
    return args


Package = tuple[str, str, str]


@st.composite
def package_sets(draw: st.DrawFn) -> list[Package]:
    """One to four packages, any valid names (notable ones and kiro-repo among them),
    with distinct pool file names and distinct identities."""
    packages: dict[str, Package] = {}
    ids: set[tuple[str, str]] = set()
    for _ in range(draw(st.integers(1, 4))):
        name = draw(package_names())
        version = draw(debian_versions())
        architecture = draw(st.sampled_from((*ARCHITECTURES, "all")))
        filename = f"{name}_{version_without_epoch(version)}_{architecture}.deb"
        same_name = [v for n, v, _ in packages.values() if n == name]
        if filename in packages or (name, version) in ids:
            continue
        if any(version_without_epoch(v) == version_without_epoch(version) for v in same_name):
            continue
        if any(dpkg_identity(v) == dpkg_identity(version) for v in same_name):
            continue
        packages[filename] = (name, version, architecture)
        ids.add((name, version))
    return list(packages.values())


def check_uploads(
    events: list[tuple[str, str, Any]],
    staging_events: list[tuple[str, str, Any]],
    pool_keys: set[str],
    release: bytes,
    s3_stores: dict[str, S3ObjectStore],
) -> None:
    parsed = release_fields(release)
    held: dict[str, str] = {}  # by-hash key -> the index file it holds
    for field, directory in (("SHA256", "SHA256"), ("SHA512", "SHA512")):
        for entry in parsed[field]:
            folder, _, index = entry["name"].rpartition("/")
            held[f"dists/stable/{folder}/by-hash/{directory}/{entry[field.lower()]}"] = index
    for operation, key, delivery in events:
        if operation not in ("put", "copy"):
            continue
        # Property 15: the key is one of the seed's paths.
        if key.startswith("pool/"):
            assert key in pool_keys, key
        elif key.startswith("dists/"):
            assert any(re.fullmatch(p, key) for p in DISTS_PATTERNS), key
        else:
            assert any(re.fullmatch(p, key) for p in ROOT_PATTERNS), key
        # Property 16: the Content-Type is the file type's.
        media = media_type(delivery.content_type)
        if "/by-hash/" in key:
            assert key in held, key
            allowed = CONTENT_TYPES[held[key]] + BY_HASH_EXTRA
        else:
            allowed = CONTENT_TYPES[file_type(key)]
        assert media in allowed, (key, delivery.content_type)
        # DESIGN "No Hash Sum mismatch": what never changes under its name is cached for
        # good, what clients poll only briefly.
        if key.startswith("pool/") or "/by-hash/" in key:
            assert "immutable" in delivery.cache_control, (key, delivery.cache_control)
        else:
            assert "immutable" not in delivery.cache_control, (key, delivery.cache_control)
            assert max_age(delivery.cache_control) <= 300, (key, delivery.cache_control)
        # Property 17: sent to S3 with the public-read ACL, under any repository prefix.
        for url in ("s3://bucket", "s3://bucket/apt"):
            args = s3_write_args(s3_stores[url], key, delivery)
            assert args.get("ACL") == "public-read", (url, key)
            assert args["ContentType"] == delivery.content_type
            assert args["CacheControl"] == delivery.cache_control
    for operation, key, delivery in staging_events:
        if operation not in ("put", "copy"):
            continue
        # DESIGN: the staging area is the `staging/` prefix, never public.
        assert key.startswith("staging/"), key
        for url in ("s3://bucket", "s3://bucket/staging"):
            assert "ACL" not in s3_write_args(s3_stores[url], key, delivery), (url, key)


@settings(max_examples=100, deadline=None, phases=PHASES_WITHOUT_EXPLAIN)
@given(packages=package_sets(), remove=st.booleans(), data=st.data())
def test_property_15_16_17_every_upload_has_its_path_type_and_acl(
    signer: OpenPGPSigner,
    s3_stores: dict[str, S3ObjectStore],
    packages: list[Package],
    remove: bool,
    data: st.DataObject,
) -> None:
    """Feature: unified-multi-package-repo, Property 15: S3 Upload Path Correctness
    Feature: unified-multi-package-repo, Property 16: Content-Type Headers
    Feature: unified-multi-package-repo, Property 17: Public Read Permissions

    Packages of any valid names are added (and one maybe removed again), each time
    published. Every object written to the repository is at one of the seed's keys
    (dists/stable/{Release,Release.gpg,InRelease}, dists/stable/main/binary-<arch>/
    Packages[.gz|.xz] and their by-hash copies, pool/main/<first letter>/<name>/
    <name>_<version>_<arch>.deb of an added package, index.html, kiro-repo.deb, the
    keyring), with the Content-Type its file type requires and Cache-Control immutable
    exactly for pool and by-hash objects; the S3 object store would send each with the
    public-read ACL. Everything written to the staging area is under staging/ and
    would be sent without an ACL.
    """
    with (
        scratch_dir() as directory,
        workspace_in(directory, signer, architectures=",".join(ARCHITECTURES)) as ws,
    ):
        repo, staging = WriteRecorder(ws.repo), WriteRecorder(ws.staging)
        ws.__dict__["repo"], ws.__dict__["staging"] = repo, staging
        root = Path(repo.root)
        paths: list[Path] = []
        for name, version, architecture in packages:
            path = directory / "incoming" / f"{len(paths)}.deb"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(deb_bytes(name, version, architecture))
            paths.append(path)
        pool_keys = {
            f"pool/main/{name[0]}/{name}/{name}_{version_without_epoch(version)}_{arch}.deb"
            for name, version, arch in packages
        }
        now = datetime(2026, 11, 24, 12, tzinfo=UTC)
        app.add_packages(ws, paths, now=now)
        written = {key for operation, key, _ in repo.events if key.startswith("pool/")}
        assert written == pool_keys
        assert ("kiro-repo.deb" in {key for _, key, _ in repo.events}) == any(
            name == "kiro-repo" for name, _, _ in packages
        )
        release = (root / "dists/stable/Release").read_bytes()
        check_uploads(repo.events, staging.events, pool_keys, release, s3_stores)

        if remove:
            name, version, _ = data.draw(st.sampled_from(packages), label="removed")
            mark, staging_mark = len(repo.events), len(staging.events)
            app.remove_package(ws, name, version, now=now + timedelta(hours=1))
            release = (root / "dists/stable/Release").read_bytes()
            check_uploads(
                repo.events[mark:], staging.events[staging_mark:], pool_keys, release, s3_stores
            )


_SEGMENT = st.text(string.ascii_letters + string.digits + "._+~-", min_size=1, max_size=12).filter(
    lambda part: part not in (".", "..")
)
_KEYS = st.lists(_SEGMENT, min_size=1, max_size=5).map("/".join)


@settings(max_examples=200, deadline=None)
@given(
    public=_KEYS.filter(lambda key: not key.startswith("staging/")),
    private=_KEYS.map(lambda key: "staging/" + key),
    prefix=st.sampled_from(REPOSITORY_PREFIXES),
)
def test_property_17_public_read_for_every_public_key_none_under_staging(
    s3_stores: dict[str, S3ObjectStore], public: str, private: str, prefix: str
) -> None:
    """Feature: unified-multi-package-repo, Property 17: Public Read Permissions

    In public-read mode the S3 object store sends the public-read ACL with every object
    outside the staging area, whatever the repository's prefix, and none with an object
    under `staging/` (DESIGN: the staging prefix is never public); in bucket-policy mode
    it sends no ACL at all. Content-Type and Cache-Control go as the Delivery says.
    """
    from debrepo.core.layout import Delivery

    delivery = Delivery("text/x-test", "no-store", (("k", "v"),))
    url = f"s3://bucket/{prefix}".rstrip("/")
    repository = s3_stores[url]
    args = s3_write_args(repository, public, delivery)
    assert args["ACL"] == "public-read", (url, public)
    assert (args["ContentType"], args["CacheControl"], args["Metadata"]) == (
        "text/x-test",
        "no-store",
        {"k": "v"},
    )
    staging = s3_stores["s3://bucket/staging"]
    for store in (repository, s3_stores["s3://bucket"], staging):
        assert "ACL" not in s3_write_args(store, private, delivery), (store.description, private)
    assert "ACL" not in s3_write_args(staging, public, delivery), public
    for key in (public, private):
        assert "ACL" not in s3_write_args(s3_stores[f"policy:{url}"], key, delivery), key
