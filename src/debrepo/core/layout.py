"""Where every file of the published repository lives, and how it is served.

Pool paths follow the seed's Property 7 (`pool/<component>/<first letter>/<package>/`);
the file name is the record's validated `actual_filename`, never a name from outside.
"""

from __future__ import annotations

from typing import NamedTuple

from debrepo.core.control import package_name_problem, pool_filename_problem

CONVENIENCE_COPY = "kiro-repo.deb"
CONVENIENCE_PACKAGE = "kiro-repo"
INDEX_HTML = "index.html"
HASH_DIRECTORIES = {"SHA256": "sha256", "SHA512": "sha512"}  # by-hash dir -> hashlib name

DEB_CONTENT_TYPE = "application/vnd.debian.binary-package"
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_LIVED = "public, max-age=60, must-revalidate"


def pool_path(component: str, package_name: str, filename: str) -> str:
    """`pool/<component>/<first letter>/<package>/<filename>`; refuses unsafe parts."""
    for problem in (package_name_problem(package_name), pool_filename_problem(filename)):
        if problem:
            raise ValueError(problem)
    return f"{pool_folder(component, package_name)}/{filename}"


def pool_folder(component: str, package_name: str) -> str:
    """The folder of a package's files in the pool (Property 7), for a name already
    checked: the one layout rule, which the inner loop of rendering uses as is."""
    return f"pool/{component}/{package_name[0]}/{package_name}"


def dist_dir(suite: str) -> str:
    return f"dists/{suite}"


def binary_dir(suite: str, component: str, architecture: str) -> str:
    return f"dists/{suite}/{component}/binary-{architecture}"


def by_hash_path(directory: str, hash_name: str, hexdigest: str) -> str:
    return f"{directory}/by-hash/{hash_name}/{hexdigest}"


def staging_key(prefix: str, filename: str) -> str:
    if pool_filename_problem(filename):
        raise ValueError(pool_filename_problem(filename))
    return f"{prefix.rstrip('/')}/{filename}"


def default_staging_prefix(package_name: str) -> str:
    return f"staging/{package_name}/"


class PublicKey(NamedTuple):
    """The keyring published at the repository root: the signing key's public part,
    then that of any key announced to take over from it (`debrepo key announce`)."""

    binary: bytes
    armored: bytes
    fingerprint: str  # the signing key's
    announced: tuple[str, ...] = ()  # fingerprints of the keys announced


class Delivery(NamedTuple):
    """HTTP headers a published object is served with, and metadata stored with it."""

    content_type: str
    cache_control: str
    metadata: tuple[tuple[str, str], ...] = ()


def delivery_for(key: str) -> Delivery:
    """Content-Type (seed Property 16) and Cache-Control for a repository key.

    Pool files and by-hash indices never change under their name, so caches may keep
    them forever; everything a client polls (Release files, plain indices, the
    convenience copy, the page) must be revalidated quickly.
    """
    name = key.rsplit("/", 1)[-1]
    immutable = key.startswith("pool/") or "/by-hash/" in key
    cache = IMMUTABLE if immutable else SHORT_LIVED
    if name.endswith(".deb"):
        return Delivery(DEB_CONTENT_TYPE, cache)
    if name.endswith(".gz"):
        return Delivery("application/gzip", cache)
    if name.endswith(".xz"):
        return Delivery("application/x-xz", cache)
    if name.endswith(".html"):
        return Delivery("text/html; charset=utf-8", cache)
    if name.endswith(".asc"):
        return Delivery("application/pgp-keys", cache)
    if name.endswith(".gpg") and name != "Release.gpg":
        return Delivery("application/pgp-keys", cache)
    if "/by-hash/" in key:
        return Delivery("application/octet-stream", cache)
    return Delivery("text/plain; charset=utf-8", cache)
