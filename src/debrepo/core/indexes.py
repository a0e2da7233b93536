"""Packages rendering and compression: same records in, same bytes out.

Stanzas are written in apt's field order with deb822's formatting rules; the property
tests check the output against `debian.deb822` byte for byte and against
`apt-ftparchive` / `dpkg-scanpackages` field for field. Formatting is done here rather
than through `Deb822.dump()` because the latter costs ~45 µs per stanza, which is most
of a rebuild of a 10,000-package repository; parsing (control files, published
indices) does go through deb822.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor

from debrepo.core.compression import Reusable, start_compression
from debrepo.core.control import field_rank
from debrepo.core.layout import pool_folder, pool_path
from debrepo.core.release import Digest, IndexFile, ReleaseInfo, digest_of, format_paragraph
from debrepo.model import PackageRecord
from debrepo.versions import version_key

# A Packages file is cut into pieces that are compressed separately (core.compression)
# before each stanza whose package's SHA256 starts with this: about one stanza in 256,
# pieces of ~200 KB at 800 bytes a stanza. The cut depends on the stanza alone, so
# adding or removing a package changes one piece.
PIECE_START = "00"


def stanza_fields(record: PackageRecord, component: str) -> list[tuple[str, str]]:
    """The fields of a record's Packages stanza, in apt's order."""
    fields: list[tuple[str, str]] = [
        ("Package", record.package_name),
        ("Version", record.version),
        ("Architecture", record.architecture),
        ("Maintainer", record.maintainer),
        ("Filename", pool_path(component, record.package_name, record.actual_filename)),
        ("Size", str(record.file_size)),
        ("MD5sum", record.md5_hash),
        ("SHA1", record.sha1_hash),
        ("SHA256", record.sha256_hash),
        ("Description", record.description),
    ]
    if record.priority:
        fields.append(("Priority", record.priority))
    if record.section:
        fields.append(("Section", record.section))
    if record.installed_size is not None:
        fields.append(("Installed-Size", str(record.installed_size)))
    if record.depends:
        fields.append(("Depends", record.depends))
    if record.sha512_hash:
        fields.append(("SHA512", record.sha512_hash))
    if record.homepage:
        fields.append(("Homepage", record.homepage))
    fields.extend(record.control_fields)
    fields.sort(key=lambda item: field_rank(item[0]))
    return fields


def render_stanza(record: PackageRecord, component: str) -> str:
    """A record's Packages stanza (no trailing blank line)."""
    if record.control_fields:
        return format_paragraph(stanza_fields(record, component))
    return _render_plain_stanza(record, component)


def _render_plain_stanza(r: PackageRecord, component: str) -> str:
    """`format_paragraph(stanza_fields(r))` for a record without extra control fields.

    Written out in apt's order because it is the inner loop of every rebuild; the
    unit tests hold it equal to the general path.
    """
    name = r.package_name
    parts = [f"Package: {name}\nArchitecture: {r.architecture}\nVersion: {r.version}\n"]
    if r.priority:
        parts.append(f"Priority: {r.priority}\n")
    if r.section:
        parts.append(f"Section: {r.section}\n")
    parts.append(f"Maintainer: {r.maintainer}\n")
    if r.installed_size is not None:
        parts.append(f"Installed-Size: {r.installed_size}\n")
    if r.depends:
        parts.append(f"Depends: {r.depends}\n")
    parts.append(
        f"Filename: {pool_folder(component, name)}/{r.actual_filename}\nSize: {r.file_size}\n"
        f"MD5sum: {r.md5_hash}\nSHA1: {r.sha1_hash}\nSHA256: {r.sha256_hash}\n"
    )
    if r.sha512_hash:
        parts.append(f"SHA512: {r.sha512_hash}\n")
    if r.homepage:
        parts.append(f"Homepage: {r.homepage}\n")
    description = r.description
    parts.append(
        f"Description:{description}\n"
        if description[:1] == "\n"
        else f"Description: {description}\n"
    )
    return "".join(parts)


def sort_records(records: Iterable[PackageRecord]) -> list[PackageRecord]:
    """Deterministic order: package name, then Debian version order, then architecture."""
    by_name: dict[str, list[PackageRecord]] = defaultdict(list)
    for record in records:
        by_name[record.package_name].append(record)
    ordered: list[PackageRecord] = []
    for name in sorted(by_name):
        group = by_name[name]
        if len(group) > 1:
            group.sort(key=lambda r: (version_key(r.version), r.architecture, r.version))
        ordered.extend(group)
    return ordered


def records_for_architecture(
    records: Iterable[PackageRecord], architecture: str
) -> list[PackageRecord]:
    """Records apt on `architecture` may install: its own and `Architecture: all`."""
    return [r for r in records if r.architecture in (architecture, "all")]


def unpublished_by_architecture(
    records: Iterable[PackageRecord], architectures: Sequence[str]
) -> str | None:
    """What stored versions no index would list (built for an architecture the
    repository does not publish), said in one phrase; None if there are none."""
    left_out: dict[str, list[str]] = {}
    for record in records:
        if record.architecture != "all" and record.architecture not in architectures:
            left_out.setdefault(record.architecture, []).append(
                f"{record.package_name} {record.version}"
            )
    if not left_out:
        return None
    parts = []
    for architecture, versions in sorted(left_out.items()):
        more = f" and {len(versions) - 3} more" if len(versions) > 3 else ""
        parts.append(f"{architecture} ({', '.join(sorted(versions)[:3])}{more})")
    return (
        f"the store holds versions built for {'; '.join(parts)}, which the architectures "
        f"setting ({', '.join(architectures)}) leaves out"
    )


def render_pieces(sorted_records: Sequence[PackageRecord], component: str) -> list[bytes]:
    """A Packages file (each stanza followed by a blank line, in the given order) in the
    pieces it is compressed in; joined, they are the file.

    The blank line after the last stanza too, as dpkg-scanpackages, apt-ftparchive,
    reprepro and aptly write it: files concatenated by other tools stay separate."""
    pieces: list[bytes] = []
    stanzas: list[str] = []
    for record in sorted_records:
        if stanzas and record.sha256_hash.startswith(PIECE_START):
            stanzas.append("")  # the blank line after the piece's last stanza
            pieces.append("\n".join(stanzas).encode("utf-8"))
            stanzas = []
        stanzas.append(render_stanza(record, component))
    if stanzas:
        stanzas.append("")
        pieces.append("\n".join(stanzas).encode("utf-8"))
    return pieces


def render_packages(sorted_records: Sequence[PackageRecord], component: str) -> bytes:
    """A Packages file: each stanza followed by a blank line, in the given order."""
    return b"".join(render_pieces(sorted_records, component))


def build_indices(
    records: Iterable[PackageRecord],
    info: ReleaseInfo,
    previous: Mapping[str, Digest] | None = None,
    reusable: Mapping[str, Reusable] | None = None,
) -> list[IndexFile]:
    """Every Packages, Packages.gz and Packages.xz of the repository (see start_indices)."""
    from concurrent.futures import ThreadPoolExecutor  # not needed to re-sign only

    with ThreadPoolExecutor(max_workers=4) as pool:
        return start_indices(records, info, previous, pool, reusable)()


def start_indices(
    records: Iterable[PackageRecord],
    info: ReleaseInfo,
    previous: Mapping[str, Digest] | None,
    pool: Executor,
    reusable: Mapping[str, Reusable] | None = None,
) -> Callable[[], list[IndexFile]]:
    """Render every Packages and hand hashing and compression to `pool`'s threads; the
    function returned waits for them and gives the indices. Compression runs in C
    without the GIL, so the caller's Python work in between overlaps it.

    `previous` maps index paths to the digests of the published Release. Where a
    Packages file's bytes are unchanged, its compressed forms are reused from there
    rather than compressed again (compression output is deterministic, so the bytes
    would be the same). `reusable` maps compressed index paths to the pieces of what
    was published there before: only the pieces that changed are compressed again.
    """
    previous = previous or {}
    reusable = reusable or {}
    ordered = sort_records(records)
    plain: list[tuple[str, list[bytes]]] = []
    for component in info.components:
        for architecture in info.architectures:
            chosen = (
                records_for_architecture(ordered, architecture)
                if component == info.components[0]
                else []
            )
            directory = f"{component}/binary-{architecture}"
            plain.append((f"{directory}/Packages", render_pieces(chosen, component)))

    jobs = []
    for path, pieces in plain:
        data = b"".join(pieces)
        digest = pool.submit(digest_of, data)
        # Reuse needs the digest first; with nothing to reuse, or a size that already
        # tells the bytes changed (a package added or removed), compression starts at
        # once and the digest is waited for only at the end.
        before = previous.get(path)
        whole = previous.get(path + ".gz") is not None and previous.get(path + ".xz") is not None
        reused = (
            whole and before is not None and before.size == len(data) and before == digest.result()
        )
        compressed = (
            {}
            if reused
            else {
                suffix: start_compression(
                    pieces, data, suffix, reusable.get(path + suffix, {}), pool
                )
                for suffix in (".gz", ".xz")
            }
        )
        jobs.append((path, data, digest, compressed))

    def finish() -> list[IndexFile]:
        indices: list[IndexFile] = []
        for path, data, digest, compressed in jobs:
            indices.append(IndexFile(path, digest.result(), data))
            for suffix in (".gz", ".xz"):
                if suffix in compressed:
                    packed, pieces = compressed[suffix]()
                    indices.append(IndexFile(path + suffix, digest_of(packed), packed, pieces))
                else:
                    indices.append(IndexFile(path + suffix, previous[path + suffix], None))
        return indices

    return finish


def pool_entries(packages: bytes) -> dict[str, tuple[int | None, str | None]]:
    """Filename -> (Size, SHA256) of every stanza of a Packages index as debrepo renders
    it (None for a field missing or unreadable): what a client holding it downloads.
    Read by hand, as debrepo writes it: deb822 takes ~9x as long (0.5 s for 10,000
    stanzas), and `verify` reads every index it keeps."""
    entries: dict[str, tuple[int | None, str | None]] = {}
    filename: str | None = None
    size: int | None = None
    sha256: str | None = None
    for line in [*packages.split(b"\n"), b""]:
        if not line.strip():
            if filename is not None:
                entries[filename] = (size, sha256)
            filename, size, sha256 = None, None, None
        elif line.startswith(b"Filename:"):
            filename = line[9:].strip().decode("utf-8", "replace")
        elif line.startswith(b"Size:"):
            digits = line[5:].strip()
            size = int(digits) if digits.isdigit() and len(digits) < 30 else None
        elif line.startswith(b"SHA256:"):
            sha256 = line[7:].strip().decode("ascii", "replace").lower()
    return entries
