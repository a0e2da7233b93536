"""Settings and backend URLs in, concrete backends out."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from debrepo.errors import ConfigError
from debrepo.objects.filesystem import FilesystemObjectStore
from debrepo.ports import MetadataStore, ObjectStore
from debrepo.settings import Settings
from debrepo.signing.openpgp import OpenPGPSigner, load_or_create_signer
from debrepo.store.sqlite import SqliteMetadataStore

_LATER = {"dynamodb", "s3"}


def _local_path(url: str, scheme: str) -> Path | None:
    """The path of `scheme://PATH` or of a bare path; None for other schemes."""
    if "://" not in url:
        return Path(url).expanduser().resolve()
    parsed = urlparse(url)
    if parsed.scheme != scheme:
        return None
    return Path(url[len(scheme) + 3 :]).expanduser().resolve()


def open_store(url: str) -> MetadataStore:
    path = _local_path(url, "sqlite")
    if path is not None:
        return SqliteMetadataStore(path)
    scheme = urlparse(url).scheme
    if scheme == "dynamodb":
        from debrepo.store.dynamodb import DynamoDBMetadataStore  # boto3 only when asked

        return DynamoDBMetadataStore.from_url(url)
    if scheme in _LATER:
        raise ConfigError(f"store {url!r}: the {scheme} backend is not part of this build")
    raise ConfigError(f"store {url!r}: expected sqlite:///path/to/metadata.db or dynamodb://TABLE")


def open_object_store(url: str, role: str) -> ObjectStore:
    path = _local_path(url, "file")
    if path is not None:
        return FilesystemObjectStore(path)
    parsed = urlparse(url)
    scheme = parsed.scheme
    if scheme == "s3":
        import os

        from debrepo.objects.s3 import S3ObjectStore, acl_mode_from  # boto3 only when used

        if not parsed.netloc:
            raise ConfigError(f"{role} {url!r}: expected s3://bucket/prefix")
        acl_mode = acl_mode_from(
            os.environ.get("DEBREPO_S3_ACL_MODE", "bucket-policy"), "DEBREPO_S3_ACL_MODE"
        )
        return S3ObjectStore(parsed.netloc, parsed.path.strip("/"), acl_mode=acl_mode)
    if scheme in _LATER:
        raise ConfigError(f"{role} {url!r}: the {scheme} backend is not part of this build")
    raise ConfigError(f"{role} {url!r}: expected file:///path/to/folder or s3://bucket/prefix")


def open_signer(settings: Settings) -> OpenPGPSigner:
    return load_or_create_signer(settings.key_file, settings.key_user_id)
