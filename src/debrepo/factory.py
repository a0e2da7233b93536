"""Settings and backend URLs in, concrete backends out.

`sqlite://PATH` / `dynamodb://TABLE` for the metadata store, `file://PATH` /
`s3://BUCKET/PREFIX` for the repository and the staging area. AWS modules are imported
only when an AWS URL asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from debrepo.errors import ConfigError, DebrepoError, StoreError
from debrepo.locking import local_lock
from debrepo.objects.filesystem import FilesystemObjectStore
from debrepo.ports import MetadataStore, ObjectStore
from debrepo.settings import Settings, local_path
from debrepo.signing.openpgp import OpenPGPSigner, load_or_create_signer
from debrepo.store.sqlite import SqliteMetadataStore

AclMode = Literal["public-read", "bucket-policy"]
# Held as a context manager; what it gives, if anything, raises LockError when called
# once the lock is no longer this process's (an expiry passed while it was paused).
# A lock's hold(wait_seconds): what it yields, if anything, raises LockError once the
# lock is no longer ours (`renew=False`: without asking the lock's backend).
Lock = Callable[[float], AbstractContextManager[Callable[..., None] | None]]


def open_store(
    url: str,
    *,
    published_from: Callable[[], str | None] = lambda: None,
    must_exist: bool = False,
) -> MetadataStore:
    """The store at `url`. An SQLite file is created on first use, but not when
    `published_from()` names evidence that a repository was already published from a
    store (a mistyped path or a lost file would otherwise publish an empty repository),
    nor when `must_exist` (commands that only read or change what is there)."""
    path = local_path(url, "sqlite")
    if path is not None:
        if path.is_dir():
            raise ConfigError(
                f"{path}: a folder, not a metadata store; --store (DEBREPO_STORE) names the "
                "SQLite file, as in sqlite:///path/to/metadata.db"
            )
        missing = not (path.is_file() and path.stat().st_size > 0)
        if missing and (evidence := published_from()):
            raise StoreError(
                f"{path}: no metadata store here, but the repository was already published "
                f"from one ({evidence}); check --store (DEBREPO_STORE) and --home, or restore "
                "the store from a backup. To start an empty repository on purpose, delete "
                "that state file first"
            )
        if missing and must_exist:
            raise ConfigError(
                f"{path}: no metadata store here, so nothing was ever added to it; "
                "check --home (DEBREPO_HOME) and --store, or start a repository with "
                "`debrepo add` or `debrepo build-repo-package`"
            )
        return SqliteMetadataStore(path)
    if urlparse(url).scheme == "dynamodb":
        from debrepo.store.dynamodb import DynamoDBMetadataStore

        return DynamoDBMetadataStore.from_url(url)
    raise ConfigError(f"store {url!r}: expected sqlite:///path/to/metadata.db or dynamodb://TABLE")


def local_folder(url: str) -> Path | None:
    """The folder a file:// (or plain path) object store URL names; None for others."""
    return local_path(url, "file")


def local_store_file(url: str) -> Path | None:
    """The file a sqlite:// (or plain path) store URL names; None for others."""
    return local_path(url, "sqlite")


def open_object_store(url: str, role: str, *, acl_mode: AclMode = "bucket-policy") -> ObjectStore:
    path = local_path(url, "file")
    if path is not None:
        return FilesystemObjectStore(path)
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from debrepo.objects.s3 import S3ObjectStore

        if not parsed.netloc:
            raise ConfigError(f"{role} {url!r}: expected s3://bucket/prefix")
        return S3ObjectStore(parsed.netloc, parsed.path.strip("/"), acl_mode=acl_mode)
    raise ConfigError(f"{role} {url!r}: expected file:///path/to/folder or s3://bucket/prefix")


def open_signer(settings: Settings, *, to_sign: bool = True) -> OpenPGPSigner:
    """The key from Secrets Manager when a secret is configured, else the key file
    (generated on first use; `to_sign`: refused if another user could have chosen it)."""
    if settings.key_secret_id:
        from debrepo.aws import load_secret_key

        secret = load_secret_key(settings.key_secret_id)
        return OpenPGPSigner(
            secret,
            source=f"secret {settings.key_secret_id}",
            remedy=(
                "store the armoured secret key itself as the secret's plaintext value: "
                f"`aws secretsmanager put-secret-value --secret-id {settings.key_secret_id} "
                "--secret-string file://key.asc` (not the console's key/value form)"
            ),
        )
    return load_or_create_signer(settings.key_file, settings.key_user_id, to_sign=to_sign)


def publish_in_progress(settings: Settings) -> str | None:
    """Who is publishing now (None: nobody, or it cannot be told), without taking the lock."""
    if urlparse(settings.store).scheme == "dynamodb":
        from debrepo.aws import DynamoDBLock

        table = settings.store.removeprefix("dynamodb://")
        try:
            return DynamoDBLock(table, ttl_seconds=settings.lock_ttl_seconds).holder()
        except DebrepoError:  # a monitoring role may not read the lock item
            return None
    from debrepo.locking import local_holder

    return local_holder(settings.home / "publish.lock")


def open_lock(settings: Settings) -> Lock:
    """The publish lock: in the DynamoDB table when the store is there, else a local file."""
    if urlparse(settings.store).scheme == "dynamodb":
        from debrepo.aws import DynamoDBLock

        table = settings.store.removeprefix("dynamodb://")
        return DynamoDBLock(table, ttl_seconds=settings.lock_ttl_seconds).hold

    def hold(wait_seconds: float) -> AbstractContextManager[None]:
        return local_lock(settings.home / "publish.lock", wait_seconds=wait_seconds)

    return hold
