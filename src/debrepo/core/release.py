"""The Release file: what it says about the repository, and its index checksums.

Apart from the Packages rendering (`core.indexes`) so that re-signing an unchanged
repository, which needs only this, starts without loading the rest. The value types
here and on that path are NamedTuples: defining a frozen dataclass costs about 1 ms
at import, several times a NamedTuple's, and a re-sign is mostly start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from debrepo.core.compression import Piece

# Bump whenever the bytes rendered for the same records change (field order, format,
# compression settings): published indices made by another version are then redone.
RENDER_VERSION = "3"
HASH_FIELDS = (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"), ("SHA512", "sha512"))
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Digest(NamedTuple):
    """Size and the four checksums a Release file lists for an index."""

    size: int
    md5: str
    sha1: str
    sha256: str
    sha512: str

    def get(self, hash_name: str) -> str:
        value: str = getattr(self, hash_name)
        return value


def digest_of(data: bytes) -> Digest:
    import hashlib  # not needed to re-sign only

    return Digest(
        size=len(data),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        sha512=hashlib.sha512(data).hexdigest(),
    )


class IndexFile(NamedTuple):
    """An index under `dists/<suite>/`; `data` is None when reused unchanged from before.
    `pieces`: where a compressed index's pieces lie (`core.compression`), if known."""

    path: str
    digest: Digest
    data: bytes | None
    pieces: tuple[Piece, ...] | None = None


class ReleaseInfo(NamedTuple):
    """What the Release file says about the repository besides its checksums."""

    origin: str
    label: str
    suite: str
    codename: str
    version: str
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    description: str
    valid_for: timedelta


def identity_changes(published: bytes, info: ReleaseInfo) -> list[str]:
    """How `info` differs from a published Release in what apt holds clients to: a
    changed Origin, Label or Codename makes `apt update` fail on every client (until
    `--allow-releaseinfo-change`), and a component no longer listed is dropped."""
    from debian import deb822

    try:
        fields = deb822.Release(published.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return []  # unreadable: nothing to hold the new one to
    held = (("Origin", info.origin), ("Label", info.label), ("Codename", info.codename))
    changes = [
        f"{name} {fields[name]!r} would become {new!r}"
        for name, new in held
        if name in fields and fields[name] != new
    ]
    dropped = [c for c in fields.get("Components", "").split() if c not in info.components]
    if dropped:
        changes.append(f"component(s) {', '.join(dropped)} would no longer be published")
    return changes


def format_paragraph(fields: Iterable[tuple[str, str]]) -> str:
    """One control paragraph, exactly as `Deb822.dump()` writes it (no blank line after)."""
    return "".join(
        f"{name}:{value}\n" if not value or value[0] == "\n" else f"{name}: {value}\n"
        for name, value in fields
    )


def index_paths(info: ReleaseInfo) -> list[str]:
    """Every index path the Release of `info` lists, relative to dists/<suite>/."""
    return [
        f"{component}/binary-{architecture}/Packages{suffix}"
        for component in info.components
        for architecture in info.architectures
        for suffix in ("", ".gz", ".xz")
    ]


def rfc1123(moment: datetime) -> str:
    """`Tue, 24 Nov 2026 10:00:00 +0000`, independent of the locale.

    The same text as `email.utils.format_datetime(moment.astimezone(UTC))`, without
    importing the email package (~5 ms) into the re-sign of an unchanged repository."""
    moment = moment.astimezone(UTC)
    return (
        f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
        f"{moment.year:04d} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} +0000"
    )


def render_release(info: ReleaseInfo, indices: Sequence[IndexFile], now: datetime) -> bytes:
    """The Release file (seed Properties 13, 14) with Acquire-By-Hash."""
    now = now.astimezone(UTC).replace(microsecond=0)
    fields = [
        ("Origin", info.origin),
        ("Label", info.label),
        ("Suite", info.suite),
        ("Version", info.version),
        ("Codename", info.codename),
        ("Date", rfc1123(now)),
        ("Valid-Until", rfc1123(now + info.valid_for)),
        ("Acquire-By-Hash", "yes"),
        ("Architectures", " ".join(info.architectures)),
        ("Components", " ".join(info.components)),
        ("Description", info.description),
    ]
    ordered = sorted(indices, key=lambda index: index.path)
    width = max((len(str(i.digest.size)) for i in ordered), default=1)
    for field_name, hash_name in HASH_FIELDS:
        lines = "".join(
            f"\n {index.digest.get(hash_name)} {index.digest.size:>{width}} {index.path}"
            for index in ordered
        )
        fields.append((field_name, lines))
    return format_paragraph(fields).encode("utf-8")


def release_checksums(release: bytes) -> dict[str, dict[str, str]]:
    """Index path -> {"size": as written, hash name: hex, ...}, from a Release file's
    MD5Sum/SHA1/SHA256/SHA512 lists, as far as it lists each path.

    Read by hand, not with deb822, because the re-sign of an unchanged repository reads
    its own Release here: importing deb822 alone takes ~18 ms, of a ~70 ms re-sign."""
    listed: dict[str, dict[str, str]] = {}
    names = dict(HASH_FIELDS)
    current: str | None = None
    for line in release.decode("utf-8", "replace").splitlines():
        if line and not line[0].isspace():
            name, _, rest = line.partition(":")
            current = names.get(name.strip()) if not rest.strip() else None
            continue
        parts = line.split()
        if current and len(parts) == 3:
            listed.setdefault(parts[2], {"size": parts[1]})[current] = parts[0]
    return listed


def parse_release_digests(release: bytes) -> dict[str, Digest]:
    """Index path -> Digest from a Release file (entries missing any hash, or with a size
    that is not a number, are left out)."""
    return {
        path: Digest(int(h["size"]), h["md5"], h["sha1"], h["sha256"], h["sha512"])
        for path, h in release_checksums(release).items()
        if h["size"].isdigit() and all(name in h for _, name in HASH_FIELDS)
    }
