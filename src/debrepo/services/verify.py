"""Verification: does the published repository say exactly what the store says?

Checks the signatures (InRelease, Release.gpg) against the published key, the key
against the signing key, Valid-Until, every file the Release lists (size and all four
checksums, plain and by-hash), that each Packages file is exactly what the store
renders to, every pool file, and the convenience copy.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from debian import deb822

from debrepo.core.control import quoted_excerpt, without_epoch
from debrepo.core.indexes import (
    pool_entries,
    records_for_architecture,
    render_packages,
    sort_records,
    unpublished_by_architecture,
)
from debrepo.core.layout import CONVENIENCE_COPY, HASH_DIRECTORIES, binary_dir
from debrepo.core.plan import newest_convenience_package, pool_files_for
from debrepo.core.release import release_checksums
from debrepo.core.validity import ReleaseAge
from debrepo.errors import (
    DebrepoError,
    ObjectStoreError,
    RecordValidationError,
    StoreError,
    VerificationError,
)
from debrepo.model import PackageRecord
from debrepo.ports import MetadataStore, ObjectStore, Signer
from debrepo.services.publish import STATE_PREFIX, AnnouncedKey, published_keyring
from debrepo.services.repo_package import installed_keyring
from debrepo.settings import Settings
from debrepo.signing.openpgp import (
    armor_keyring,
    fingerprints_in,
    keyring_certificates,
    verify_clearsigned,
    verify_detached,
)

CHUNK = 1 << 20
STAGING_FOLDER = "staging/"  # searched for stray staged files (not a definition's own folder)


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files_checked: int = 0
    packages_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _hash_object(repo: ObjectStore, key: str) -> tuple[int, dict[str, str]]:
    hashers = {name: hashlib.new(name) for name in ("md5", "sha1", "sha256", "sha512")}
    size = 0
    with repo.open(key) as reader:
        while chunk := reader.read(CHUNK):
            size += len(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
    return size, {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _describe_difference(published: bytes, expected: bytes, where: str) -> str:
    twice: list[str] = []
    nameless: list[str] = []  # entries without Package or Version: their first lines

    def stanzas(data: bytes) -> dict[str, dict[str, str]]:
        found = {}
        for paragraph in deb822.Packages.iter_paragraphs(
            data.decode("utf-8", "replace"), use_apt_pkg=False
        ):
            if not (paragraph.get("Package") and paragraph.get("Version")):
                nameless.append(next(iter(paragraph.dump().splitlines()), ""))
                continue
            package_id = f"{paragraph['Package']}#{paragraph['Version']}"
            if package_id in found:
                twice.append(package_id)
            found[package_id] = dict(paragraph)
        return found

    have, want = stanzas(published), stanzas(expected)
    if nameless:  # only the published file can: every record has both
        return (
            f"{where} holds {len(nameless)} entr{'y' if len(nameless) == 1 else 'ies'} "
            f"with no Package or Version: {_first_few(map(quoted_excerpt, nameless), 3)}"
        )
    if twice:  # only the published file can: the store holds each version once
        return f"{where} lists {', '.join(sorted(set(twice))[:5])} more than once"

    def listed(ids: list[str]) -> str:
        return ", ".join(ids[:5]) + (f" (and {len(ids) - 5} more)" if len(ids) > 5 else "")

    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    differences = []
    if missing:  # what `add --no-publish` leaves until a publish
        differences.append(
            f"{where} lacks {listed(missing)} (added without publishing? `debrepo rebuild` "
            "publishes them)"
        )
    if extra:  # what `remove --no-publish` leaves; or records lost from the store
        differences.append(
            f"{where} lists {listed(extra)}, which the store does not hold (removed without "
            "publishing? `debrepo rebuild` drops them; lost from the store or the wrong "
            "--home? `rebuild` refuses that, see Troubleshooting)"
        )
    if differences:
        return "; ".join(differences)
    rerender = "; `debrepo rebuild --full` renders it again from the store"
    for package_id in sorted(want):
        if have[package_id] != want[package_id]:
            fields = sorted(
                k
                for k in set(want[package_id]) | set(have[package_id])
                if want[package_id].get(k) != have[package_id].get(k)
            )
            return (
                f"{where}: the entry of {package_id} differs from the store in "
                f"{', '.join(fields)}{rerender}"
            )
    return f"{where} differs from what the store renders to (ordering or formatting){rerender}"


def verify_repository(
    *,
    store: MetadataStore,
    repo: ObjectStore,
    settings: Settings,
    signer: Signer | None,
    now: datetime,
    announced: Mapping[str, AnnouncedKey] | None = None,
    accounted_pool_files: Collection[str] | None = None,
    staging: ObjectStore | None = None,
    check_pool_hashes: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> VerifyReport:
    """Compare the published tree with the store; problems are listed, not raised.
    `announced`: the keys announced to take over signing (the publisher state's; None
    if it is unknown: then the keyring must begin with the signing key).
    `accounted_pool_files`: the pool files the publisher knows of, published or kept
    for an older index (its pool map); any other file in the pool is a warning.
    `staging`: the staging area, where a .deb no stored version has is a warning."""
    report = VerifyReport()
    problems = report.problems
    dists = f"dists/{settings.suite}"
    damage = store.damage()
    if damage:  # rows it reads may be whole while others, or its indexes, are lost
        problems.append(
            f"{store.description}: the metadata store is damaged ({'; '.join(damage)}): "
            "restore it from a backup (see Troubleshooting)"
        )
    try:
        snapshot = store.snapshot()
    except StoreError as exc:
        if not damage:
            raise
        problems.append(str(exc))  # nothing to compare the repository with
        return report
    records = snapshot.records
    left_out = unpublished_by_architecture(records, settings.architectures)
    if left_out:
        problems.append(f"{left_out}: a publish with these settings would drop them")
    for skipped in snapshot.skipped:
        report.warnings.append(
            f"store item {skipped.package_id} is incomplete and not published: "
            + "; ".join(skipped.problems)
        )

    keyring = f"{settings.keyring_name}.gpg"
    public_key = repo.get(keyring)
    release = repo.get(f"{dists}/Release")
    inrelease = repo.get(f"{dists}/InRelease")
    release_sig = repo.get(f"{dists}/Release.gpg")
    for key, value in (
        (keyring, public_key),
        (f"{dists}/Release", release),
        (f"{dists}/InRelease", inrelease),
        (f"{dists}/Release.gpg", release_sig),
    ):
        if value is None:
            problems.append(f"{key} is missing from {repo.description}")
    if public_key is None or release is None:
        return report

    if signer is not None and announced is None:
        _verify_keyring_start(public_key, keyring, signer, report)
    keyring_expected = (
        published_keyring(signer, announced) if signer and announced is not None else None
    )
    if keyring_expected is not None and public_key != keyring_expected.binary:
        held = fingerprints_in(public_key)
        expected_held = fingerprints_in(keyring_expected.binary)
        extra = [fpr.upper() for fpr in held if fpr not in expected_held]
        if held[: len(expected_held)] == expected_held and extra:
            problems.append(
                f"{keyring} also holds {', '.join(extra)}, which neither signs nor is announced"
            )
        else:
            also = "".join(
                f" and of the announced key {fpr.upper()}" for fpr in keyring_expected.announced
            )
            problems.append(
                f"{keyring} is not the public part of the signing key "
                f"{keyring_expected.fingerprint.upper()}{also}"
            )
    # The armoured copy is what the install page and most guides tell users to fetch.
    armored_name = f"{settings.keyring_name}.asc"
    armored = repo.get(armored_name)
    if armored is None:
        problems.append(f"{armored_name} is missing from {repo.description}")
    else:
        try:
            # Against the published binary keyring (checked against the signing key
            # above): after a key change not yet published, both still hold the old key.
            if armored.strip() != armor_keyring(public_key).strip():
                problems.append(
                    f"{armored_name} is not the same key as {keyring}; `debrepo rebuild` "
                    "publishes both again"
                )
        except VerificationError as exc:
            problems.extend(exc.problems)
    if inrelease is not None:
        try:
            signed = verify_clearsigned(inrelease, public_key)
            if signed.rstrip(b"\n") != release.rstrip(b"\n"):
                problems.append(f"{dists}/InRelease and {dists}/Release say different things")
        except VerificationError as exc:
            problems.extend(f"{dists}/{p}" for p in exc.problems)
    if release_sig is not None:
        try:
            verify_detached(release, release_sig, public_key)
        except VerificationError as exc:
            problems.extend(f"{dists}/{p}" for p in exc.problems)

    fields = deb822.Release(release)  # field names in any case, as apt reads them
    valid_until = fields.get("Valid-Until")
    if not valid_until:
        problems.append(f"{dists}/Release has no Valid-Until")
    else:
        try:
            expires = parsedate_to_datetime(valid_until)
            if expires <= now.astimezone(UTC):
                problems.append(f"{dists}/Release expired at {valid_until}; run `debrepo rebuild`")
            elif ReleaseAge.parse(release).stale(now):
                # `sync` re-signs from here on: a monitor running verify learns, before
                # apt refuses the Release, that the scheduled run has stopped.
                report.warnings.append(
                    f"{dists}/Release is past half its validity and expires at {valid_until}: "
                    "the scheduled `debrepo sync` would have re-signed it (is it still "
                    "running?); `debrepo rebuild` re-signs it now"
                )
        except (TypeError, ValueError):
            problems.append(f"{dists}/Release has an unreadable Valid-Until {valid_until!r}")

    listed = release_checksums(release)
    checked: set[str] = set()
    for path, expected in sorted(listed.items()):
        key = f"{dists}/{path}"
        directory = key.rsplit("/", 1)[0]
        # apt fetches the by-hash copy named by the strongest hash Release lists, so
        # each copy is checked as thoroughly as the plain path.
        copies = [key]
        for hash_dir, hash_name in HASH_DIRECTORIES.items():
            if hash_name in expected:
                copies.append(f"{directory}/by-hash/{hash_dir}/{expected[hash_name]}")
            else:
                problems.append(f"{dists}/Release lists {path} without a {hash_dir} checksum")
        for copy in copies:
            checked.add(copy)
            try:
                if repo.stat(copy) is None:
                    where = "listed in Release" if copy == key else f"by-hash copy of {key}"
                    problems.append(f"{copy} ({where}) is missing")
                    continue
                size, digests = _hash_object(repo, copy)
            except ObjectStoreError as exc:  # e.g. a path in Release that leaves the tree
                problems.append(f"{dists}/Release lists {path!r}, which cannot be checked: {exc}")
                break
            report.files_checked += 1
            size_matches = expected["size"].isdigit() and size == int(expected["size"])
            if not size_matches or any(digests[h] != expected.get(h) for h in digests):
                copy_of = "" if copy == key else f" (by-hash copy of {path})"
                problems.append(f"{copy} does not match its size and checksums in Release{copy_of}")

    ordered = sort_records(records)
    indexed: set[str] = set()  # pool files the published indices name
    for component in settings.components:
        for architecture in settings.architectures:
            base = f"{component}/binary-{architecture}/Packages"
            published = repo.get(f"{dists}/{base}")
            if published is None:
                problems.append(f"{dists}/{base} is missing")
                continue
            chosen = (
                records_for_architecture(ordered, architecture)
                if component == settings.component
                else []
            )
            indexed.update(pool_entries(published))
            rendered = render_packages(chosen, component)
            # Before RENDER_VERSION 3 the last stanza had no blank line after it: such a
            # file lists the same, and the next publish renders it again.
            if published != rendered and published + b"\n" != rendered:
                problems.append(_describe_difference(published, rendered, f"{dists}/{base}"))
            for suffix, decompress in ((".gz", gzip.decompress), (".xz", lzma.decompress)):
                compressed = repo.get(f"{dists}/{base}{suffix}")
                if compressed is None:
                    problems.append(f"{dists}/{base}{suffix} is missing")
                    continue
                try:
                    # Holding either what the store renders or what the plain file holds
                    # (whose difference from the store is reported above) is consistent:
                    # a damaged Packages must not make its intact compressed forms look
                    # wrong, nor a stale set of three be reported three times.
                    if decompress(compressed) not in (rendered, published):
                        problems.append(
                            f"{dists}/{base}{suffix} holds neither the index the store "
                            f"renders nor {base}"
                        )
                except (OSError, EOFError, lzma.LZMAError, zlib.error):
                    problems.append(f"{dists}/{base}{suffix} cannot be decompressed")

    kept_pool: dict[str, tuple[int | None, str | None]] = {}
    if check_pool_hashes:  # --quick: what clients of the current Release fetch, only
        kept_pool = _verify_kept_by_hash(repo, settings, report, checked)
    _verify_pool(records, repo, settings, report, check_pool_hashes, progress)
    _verify_kept_pool_files(kept_pool, records, repo, settings, report)
    if accounted_pool_files is not None:
        _report_strays(records, repo, settings, report, indexed.union(accounted_pool_files))
    if staging is not None:
        _report_staged_strays(records, snapshot.skipped, staging, report)
    _verify_convenience(records, repo, settings, report, public_key)
    return report


def _verify_pool(
    records: list[PackageRecord],
    repo: ObjectStore,
    settings: Settings,
    report: VerifyReport,
    check_hashes: bool,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    try:
        pool_files = pool_files_for(records, settings.component)
    except DebrepoError as exc:
        report.problems.append(str(exc))
        return
    for done, pool_file in enumerate(pool_files, start=1):
        record = pool_file.record
        report.packages_checked += 1
        info = repo.stat(pool_file.key)
        if info is None:
            report.problems.append(f"{pool_file.key} ({record.package_id}) is missing")
        elif info.size != record.file_size:
            report.problems.append(
                f"{pool_file.key} is {info.size} bytes, the store says {record.file_size}"
            )
        elif check_hashes:
            _, digests = _hash_object(repo, pool_file.key)
            wanted = {
                "md5": record.md5_hash,
                "sha1": record.sha1_hash,
                "sha256": record.sha256_hash,
                "sha512": record.sha512_hash,
            }
            wrong = [name for name, value in wanted.items() if value and digests[name] != value]
            if wrong:
                report.problems.append(
                    f"{pool_file.key} does not match the stored "
                    + ", ".join(n.upper() for n in wrong)
                )
        if progress:
            progress("pool", done, len(pool_files))


def _verify_keyring_start(
    public_key: bytes, keyring: str, signer: Signer, report: VerifyReport
) -> None:
    """With no account of announced keys: the keyring must begin with the signing key;
    the keys after it are a warning."""
    try:
        certificates = keyring_certificates(public_key)
    except VerificationError as exc:
        report.problems.extend(exc.problems)
        return
    if bytes(certificates[0]) != signer.public_key_binary():
        report.problems.append(
            f"{keyring} is not the public part of the signing key {signer.fingerprint.upper()}"
        )
    elif len(certificates) > 1:
        others = ", ".join(str(c.fingerprint).upper() for c in certificates[1:])
        report.warnings.append(
            f"{keyring} also holds {others}, which the publisher state (not found or "
            "unreadable) does not confirm as announced"
        )


STRAYS_NAMED = 5


def _verify_kept_by_hash(
    repo: ObjectStore, settings: Settings, report: VerifyReport, checked: Collection[str]
) -> dict[str, tuple[int | None, str | None]]:
    """Each by-hash copy kept for clients still holding an older Release (the current
    ones are checked against Release) must hash to its own name: a damaged one fails
    those clients with a Hash Sum mismatch, and no publish rewrites it. Returns the pool
    files those older indices name (see `pool_entries`)."""
    named: dict[str, tuple[int | None, str | None]] = {}
    for component in settings.components:
        for architecture in settings.architectures:
            folder = f"{binary_dir(settings.suite, component, architecture)}/by-hash/"
            try:
                kept = [info.key for info in repo.list(folder) if info.key not in checked]
            except ObjectStoreError as exc:  # a monitoring role may read objects, not list
                report.warnings.append(f"the older by-hash copies were not checked: {exc}")
                return named
            for key in sorted(kept):
                hash_dir, _, name = key.removeprefix(folder).partition("/")
                algorithm = HASH_DIRECTORIES.get(hash_dir)
                if algorithm is None or "/" in name:
                    continue  # not a by-hash copy apt would ask for
                try:
                    data = repo.get(key)  # an index: a few MiB at most
                except ObjectStoreError as exc:
                    report.problems.append(f"{key} cannot be checked: {exc}")
                    continue
                if data is None:
                    continue  # deleted by a publish since it was listed
                report.files_checked += 1
                if hashlib.new(algorithm, data).hexdigest() != name:
                    report.problems.append(
                        f"{key} (kept for clients holding an older Release) does not hash to "
                        "its name; delete it (clients holding that Release recover with "
                        "their next `apt update`)"
                    )
                elif data.startswith(b"Package:"):  # the uncompressed form
                    named.update(pool_entries(data))
    return named


def _verify_kept_pool_files(
    kept: Mapping[str, tuple[int | None, str | None]],
    records: list[PackageRecord],
    repo: ObjectStore,
    settings: Settings,
    report: VerifyReport,
) -> None:
    """The pool files only older indices name (versions removed since): a publish keeps
    each while its generation is kept, for clients still holding that Release."""
    try:
        current = {f.key for f in pool_files_for(records, settings.component)}
    except DebrepoError:
        return  # two records claiming one pool file: already reported by _verify_pool
    for key, (size, sha256) in sorted(kept.items()):
        if key in current:
            continue  # checked against its record
        held_for = "an older Release kept for its clients names it"
        try:
            found = repo.stat(key)
            digests = _hash_object(repo, key)[1] if found is not None else {}
        except ObjectStoreError as exc:
            report.problems.append(f"{key} cannot be checked: {exc}")
            continue
        report.files_checked += 1
        if found is None:
            report.problems.append(
                f"{key} is missing, though {held_for}: clients holding that Release fail "
                "to download it until their next `apt update`"
            )
        elif found.size != size or digests["sha256"] != sha256:
            report.problems.append(
                f"{key} does not match the size and SHA256 with which {held_for}: clients "
                "holding that Release fail to download it until their next `apt update`"
            )


def _first_few(items: Iterable[str], count: int) -> str:
    """The first `count` of `items`, and how many more there are."""
    listed = list(items)
    more = f" and {len(listed) - count} more" if len(listed) > count else ""
    return ", ".join(listed[:count]) + more


def _report_strays(
    records: list[PackageRecord],
    repo: ObjectStore,
    settings: Settings,
    report: VerifyReport,
    accounted: Collection[str],
) -> None:
    """Warn of files in the pool that neither the store, the published indices nor the
    publisher (`accounted`) account for: copied there by hand, or left by an `add` killed
    between placing its files and storing its records. No publish deletes them."""
    try:
        named = {f.key for f in pool_files_for(records, settings.component)}
    except DebrepoError:
        return  # two records claiming one pool file: already reported by _verify_pool
    known = named.union(accounted)
    try:
        strays = sorted(found.key for found in repo.list("pool/") if found.key not in known)
    except ObjectStoreError as exc:  # a monitoring role may read objects, not list them
        report.warnings.append(f"the pool was not checked for stray files: {exc}")
        return
    if strays:
        report.warnings.append(
            f"{len(strays)} file(s) in pool/ that no stored version names and no "
            f"publish placed: {_first_few(strays, STRAYS_NAMED)} (copied by hand, or left "
            "by an interrupted or refused `add`; an `add`, `sync` or publish running now "
            "also explains them). "
            "`debrepo add` of the .deb adopts one; otherwise, once nothing runs, delete them"
        )


def _report_staged_strays(
    records: list[PackageRecord],
    skipped: Collection[RecordValidationError],
    staging: ObjectStore,
    report: VerifyReport,
) -> None:
    """Warn of .deb files in the staging area that no stored version has: left by a
    `remove` killed between its publish and deleting the staged copy, or put there by
    hand. No publish reads or deletes them, and on S3 they are paid for.

    A staged file is known by its name alone, whatever folder a package definition puts
    it in: verify may run without the definitions, or after one's folder changed."""
    known = {record.actual_filename for record in records}
    # An incomplete item is not published, but it is stored: its file is not a stray.
    incomplete = tuple(
        f"{name}_{without_epoch(version)}_"
        for name, _, version in (e.package_id.partition("#") for e in skipped)
    )
    try:
        found = [info.key for info in staging.list(STAGING_FOLDER)]
    except ObjectStoreError as exc:
        report.warnings.append(f"the staging area was not checked for stray files: {exc}")
        return
    strays = []
    for key in found:
        name = key.rpartition("/")[2]
        if not name.endswith(".deb") or key.startswith(STATE_PREFIX) or name in known:
            continue
        if incomplete and name.startswith(incomplete):
            continue
        strays.append(key)
    if strays:
        report.warnings.append(
            f"{len(strays)} staged file(s) in {staging.description} that no stored version "
            f"has: {_first_few(sorted(strays), STRAYS_NAMED)} (left by a `remove` stopped "
            "before its last step, or copied by hand; a `sync`, `add` or `build-repo-package` "
            "running now also explains them). No publish uses them: once nothing runs, "
            "delete them"
        )


def _verify_convenience(
    records: list[PackageRecord],
    repo: ObjectStore,
    settings: Settings,
    report: VerifyReport,
    public_key: bytes,
) -> None:
    try:
        newest = newest_convenience_package(pool_files_for(records, settings.component))
    except DebrepoError:
        return  # two records claiming one pool file: already reported by _verify_pool
    info = repo.stat(CONVENIENCE_COPY)
    if newest is None:
        if info is not None:
            report.problems.append(f"{CONVENIENCE_COPY} exists but the store holds no kiro-repo")
        return
    if info is None:
        report.problems.append(
            f"{CONVENIENCE_COPY} is missing (newest kiro-repo is {newest.record.version}); "
            "`debrepo rebuild` puts it back"
        )
        return
    _, digests = _hash_object(repo, CONVENIENCE_COPY)
    if digests["sha256"] != newest.record.sha256_hash:
        report.problems.append(
            f"{CONVENIENCE_COPY} is not kiro-repo {newest.record.version} ({newest.key}); "
            "`debrepo rebuild` puts it back"
        )
    report.files_checked += 1
    problem, warning = _installed_key_findings(repo.get(newest.key), settings, public_key)
    where = f"kiro-repo {newest.record.version} ({newest.key})"
    if problem:
        report.problems.append(f"{where} {problem}")
    if warning:
        report.warnings.append(f"{where} {warning}")


def _installed_key_findings(
    deb: bytes | None, settings: Settings, public_key: bytes
) -> tuple[str | None, str | None]:
    """(problem, warning) about the keyring the newest kiro-repo installs.

    New users install that package first: without the signing key in it (say, built
    before the key was replaced) their first `apt update` fails with NO_PUBKEY, a
    problem. Without an announced key it is a warning: the switch to that key is
    refused until a kiro-repo that installs it is published.
    """
    if deb is None:
        return None, None  # reported with the pool files
    member = f"/usr/share/keyrings/{settings.keyring_name}.gpg"
    try:
        installed = installed_keyring(deb, settings.keyring_name)
    except ValueError as exc:  # any unreadable archive is a finding, not a crash
        return f"cannot be read: {exc}", None
    if installed is None:
        return f"installs no {member}", None
    if installed == public_key:
        return None, None
    published, held = fingerprints_in(public_key), set(fingerprints_in(installed))
    if not published or published[0] not in held:
        return (
            f"installs a {member} other than the published key: new users would fail "
            "with NO_PUBKEY; build a new version (`debrepo build-repo-package --version ...`)"
        ), None
    missing = [fpr.upper() for fpr in published[1:] if fpr not in held]
    if missing:
        return None, (
            f"installs a {member} without the announced key {', '.join(missing)}: build "
            "a new version (`debrepo build-repo-package --version ...`) before that key "
            "takes over"
        )
    extra = sorted(fpr.upper() for fpr in held.difference(published))
    if extra:
        return None, (
            f"installs a {member} that also holds {', '.join(extra)}, which neither signs "
            "nor is announced: its users keep trusting it; build a new version "
            "(`debrepo build-repo-package --version ...`) so they drop it"
        )
    return None, None
