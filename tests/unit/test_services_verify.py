"""services/verify.py: every way the published repository can disagree with the store."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import sqlite3
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest

from debrepo import app
from debrepo.services.verify import verify_repository
from debrepo.signing.openpgp import OpenPGPSigner, generate_secret_key
from tests.conftest import FIXED_NOW

DISTS = "dists/stable"
BINARY = f"{DISTS}/main/binary-amd64"
ALPHA_POOL = "pool/main/a/alpha/alpha_1.0_amd64.deb"


@pytest.fixture
def published(workspace, make_deb):
    debs = [make_deb("alpha", "1.0"), make_deb("beta", "2.0-1", "all")]
    app.add_packages(workspace, debs, now=FIXED_NOW)
    report = app.verify(workspace, now=FIXED_NOW)
    assert report.ok, report.problems
    return workspace


def problems(ws, **kwargs) -> list[str]:
    report = app.verify(ws, now=kwargs.pop("now", FIXED_NOW), **kwargs)
    assert not report.ok
    return report.problems


def has_problem(found: list[str], *fragments: str) -> bool:
    """Whether one problem names all of `fragments` (wording may vary, the facts may not)."""
    return any(all(fragment in problem for fragment in fragments) for problem in found)


def replace_object(ws, key: str, data: bytes) -> None:
    ws.repo.put(key, data, None)


def sql(ws, statement: str, *args: object) -> None:
    connection = sqlite3.connect(ws.store.path)
    with connection:
        connection.execute(statement, args)
    connection.close()


def test_clean_repository_counts_what_it_checked(published):
    report = app.verify(published, now=FIXED_NOW)
    assert report.ok
    assert report.packages_checked == 2
    assert report.files_checked >= 3  # Packages, Packages.gz, Packages.xz at least
    assert report.warnings == []


def test_listed_file_missing(published):
    published.repo.delete(f"{BINARY}/Packages.gz")
    found = problems(published)
    assert has_problem(found, f"{BINARY}/Packages.gz ", "listed in Release", "missing")
    assert f"{BINARY}/Packages.gz is missing" in found


def test_listed_file_with_the_wrong_size(published):
    data = published.repo.get(f"{BINARY}/Packages.xz")
    replace_object(published, f"{BINARY}/Packages.xz", data + b"\0")
    found = problems(published)
    assert has_problem(found, f"{BINARY}/Packages.xz ", "size and checksums", "Release")


def test_by_hash_copy_missing(published):
    by_hash = sorted(k.key for k in published.repo.list(f"{BINARY}/by-hash/SHA512/"))
    published.repo.delete(by_hash[0])
    (found,) = problems(published)
    assert found.startswith(f"{by_hash[0]} ")
    assert f"by-hash copy of {BINARY}/Packages" in found
    assert found.endswith("is missing")


def test_by_hash_copy_with_other_bytes(published):
    packages = published.repo.get(f"{BINARY}/Packages")
    (key,) = [
        info.key
        for info in published.repo.list(f"{BINARY}/by-hash/SHA256/")
        if published.repo.get(info.key) == packages
    ]
    replace_object(published, key, packages.replace(b"alpha", b"omega"))
    (found,) = problems(published)
    assert found.startswith(f"{key} ")
    assert "size and checksums" in found


def test_a_damaged_by_hash_copy_kept_for_an_older_release_is_named(published, make_deb):
    older = {info.key for info in published.repo.list(f"{BINARY}/by-hash/")}
    app.add_packages(published, [make_deb("gamma", "3.0")], now=FIXED_NOW)
    kept = sorted(k for k in older if published.repo.stat(k) is not None)
    assert kept  # the generation before is kept for clients holding its Release
    clean = app.verify(published, now=FIXED_NOW)
    assert clean.ok, clean.problems
    damaged = next(k for k in kept if "/SHA512/" in k)
    replace_object(published, damaged, published.repo.get(damaged) + b"junk\n")
    (found,) = problems(published)
    assert found.startswith(f"{damaged} (kept for clients holding an older Release)")
    assert "does not hash to its name" in found


@pytest.mark.parametrize("damage", ["deleted", "written over"])
def test_the_pool_file_of_a_removed_version_kept_for_an_older_release_is_checked(
    published, make_deb, damage
):
    beta = "pool/main/b/beta/beta_2.0-1_all.deb"
    app.remove_package(published, "beta", "2.0-1", now=FIXED_NOW)
    assert published.repo.stat(beta) is not None  # the generation before names it
    assert app.verify(published, now=FIXED_NOW).ok
    assert app.verify(published, now=FIXED_NOW, quick=True).ok
    if damage == "deleted":
        published.repo.delete(beta)
    else:
        replace_object(published, beta, published.repo.get(beta)[:-1] + b"X")
    (found,) = problems(published)
    what = "is missing, though" if damage == "deleted" else "does not match the size and SHA256"
    assert found.startswith(f"{beta} {what}")
    assert "an older Release kept for its clients names it" in found
    assert app.verify(published, now=FIXED_NOW, quick=True).ok  # the current Release only
    for name in ("gamma", "delta", "epsilon"):  # until that generation goes, with the file
        app.add_packages(published, [make_deb(name, "1.0")], now=FIXED_NOW)
    assert app.verify(published, now=FIXED_NOW).ok


def test_store_changed_behind_the_published_index_names_package_and_field(published):
    sql(
        published,
        "UPDATE packages SET maintainer = ? WHERE package_id = ?",
        "Someone Else <else@example.com>",
        "alpha#1.0",
    )
    (found,) = problems(published)
    assert found == (
        f"{BINARY}/Packages: the entry of alpha#1.0 differs from the store in Maintainer; "
        "`debrepo rebuild --full` renders it again from the store"
    )


def test_edited_packages_file_names_package_and_field(published):
    packages = published.repo.get(f"{BINARY}/Packages")
    edited = packages.replace(b"Version: 2.0-1\n", b"Version: 2.0-1\nX-Injected: yes\n")
    replace_object(published, f"{BINARY}/Packages", edited)
    found = problems(published)
    assert has_problem(found, f"{BINARY}/Packages ", "size and checksums", "Release")
    assert has_problem(
        found, f"{BINARY}/Packages: the entry of beta#2.0-1 differs from the store in X-Injected"
    )
    # The compressed forms were not touched, and are not blamed.
    assert not has_problem(found, "Packages.gz"), found
    assert not has_problem(found, "Packages.xz"), found


def test_version_in_store_but_not_published(published, make_deb):
    app.add_packages(published, [make_deb("gamma", "3.0")], publish=False, now=FIXED_NOW)
    found = problems(published)
    assert (
        f"{BINARY}/Packages lacks gamma#3.0 (added without publishing? `debrepo rebuild` "
        "publishes them)" in found
    )


def test_version_published_but_not_in_store(published):
    app.remove_package(published, "alpha", "1.0", publish_after=False)
    found = problems(published)
    assert has_problem(found, f"{BINARY}/Packages lists alpha#1.0, which the store does not hold")


def test_versions_missing_and_extra_are_both_named(published, make_deb):
    app.remove_package(published, "alpha", "1.0", publish_after=False)
    app.add_packages(published, [make_deb("gamma", "3.0")], publish=False, now=FIXED_NOW)
    found = problems(published)
    assert has_problem(found, f"{BINARY}/Packages lacks gamma#3.0", "lists alpha#1.0")


def test_reordered_packages_file(published):
    packages = published.repo.get(f"{BINARY}/Packages")
    first, second, end = packages.split(b"\n\n")
    assert end == b""
    replace_object(published, f"{BINARY}/Packages", second + b"\n\n" + first + b"\n\n")
    found = problems(published)
    assert any(
        "differs from what the store renders to (ordering or formatting)" in p for p in found
    )


def test_a_packages_file_listing_a_version_twice_says_which(published):
    packages = published.repo.get(f"{BINARY}/Packages")
    first = packages.split(b"\n\n")[0]
    twice = packages.rstrip(b"\n") + b"\n\n" + first.rstrip(b"\n") + b"\n"
    replace_object(published, f"{BINARY}/Packages", twice)
    found = problems(published)
    assert has_problem(found, f"{BINARY}/Packages lists alpha#1.0 more than once")


def test_a_packages_entry_that_is_no_package_is_quoted_not_named_none(published):
    packages = published.repo.get(f"{BINARY}/Packages")
    replace_object(published, f"{BINARY}/Packages", packages + b"X-Injected: yes\n\n")
    found = problems(published)
    assert has_problem(
        found, f"{BINARY}/Packages holds 1 entry with no Package or Version: 'X-Injected: yes'"
    )
    assert not any("None" in p for p in found), found


def test_compressed_index_with_other_content(published):
    replace_object(published, f"{BINARY}/Packages.gz", gzip.compress(b"Package: other\n"))
    found = problems(published)
    assert has_problem(
        found, f"{BINARY}/Packages.gz holds neither", "nor main/binary-amd64/Packages"
    )


@pytest.mark.parametrize("suffix", [".gz", ".xz"])
def test_compressed_index_that_cannot_be_decompressed(published, suffix):
    replace_object(published, f"{BINARY}/Packages{suffix}", b"not compressed at all")
    found = problems(published)
    assert f"{BINARY}/Packages{suffix} cannot be decompressed" in found


def test_xz_index_with_other_content(published):
    replace_object(published, f"{BINARY}/Packages.xz", lzma.compress(b""))
    found = problems(published)
    assert has_problem(
        found, f"{BINARY}/Packages.xz holds neither", "nor main/binary-amd64/Packages"
    )


def test_expired_valid_until(published):
    assert app.verify(published, now=FIXED_NOW + timedelta(days=6)).ok
    (found,) = problems(published, now=FIXED_NOW + timedelta(days=7, seconds=1))
    assert found.startswith(f"{DISTS}/Release expired at ")
    assert "debrepo rebuild" in found


def test_a_release_past_half_its_validity_is_a_warning(published):
    """sync re-signs from half-way on: verify tells a monitor it has not, before apt fails."""
    before = app.verify(published, now=FIXED_NOW + timedelta(days=3, hours=11))
    assert before.ok and before.warnings == []
    after = app.verify(published, now=FIXED_NOW + timedelta(days=3, hours=12))
    assert after.ok
    (warning,) = after.warnings
    assert warning.startswith(f"{DISTS}/Release is past half its validity and expires at ")
    assert "is it still running?" in warning


def test_a_release_is_expired_from_the_instant_of_its_valid_until(published):
    """A Release has no time left at its Valid-Until: verify calls it expired from that
    very second (never later than apt, which refuses it once now is past Valid-Until),
    and not one second earlier."""
    release = published.repo.get(f"{DISTS}/Release")
    assert release is not None
    (line,) = [line for line in release.split(b"\n") if line.startswith(b"Valid-Until: ")]
    valid_until = parsedate_to_datetime(line.removeprefix(b"Valid-Until: ").decode())
    assert valid_until > FIXED_NOW
    assert app.verify(published, now=valid_until - timedelta(seconds=1)).ok
    (found,) = problems(published, now=valid_until)
    assert found.startswith(f"{DISTS}/Release expired at ")


def test_release_without_valid_until(published):
    release = published.repo.get(f"{DISTS}/Release")
    lines = [line for line in release.split(b"\n") if not line.startswith(b"Valid-Until:")]
    replace_object(published, f"{DISTS}/Release", b"\n".join(lines))
    found = problems(published)
    assert f"{DISTS}/Release has no Valid-Until" in found
    assert any(p.startswith(f"{DISTS}/Release.gpg") for p in found)
    assert f"{DISTS}/InRelease and {DISTS}/Release say different things" in found


def test_release_with_unreadable_valid_until(published):
    release = published.repo.get(f"{DISTS}/Release")
    start = release.index(b"Valid-Until: ") + len(b"Valid-Until: ")
    end = release.index(b"\n", start)
    replace_object(published, f"{DISTS}/Release", release[:start] + b"someday" + release[end:])
    found = problems(published)
    assert f"{DISTS}/Release has an unreadable Valid-Until 'someday'" in found


def test_release_listing_a_size_that_is_not_a_number(published):
    release = published.repo.get(f"{DISTS}/Release")
    assert release is not None
    lines = [
        b" ".join([*line.split()[:1], b"lots", *line.split()[2:]]).rjust(len(line))
        if line.endswith(b" main/binary-amd64/Packages")
        else line
        for line in release.split(b"\n")
    ]
    replace_object(published, f"{DISTS}/Release", b"\n".join(lines))
    found = problems(published)
    assert has_problem(found, f"{BINARY}/Packages does not match its size and checksums")


def replace_release_digest(ws, section: bytes, path: bytes, digest: str) -> str:
    """Give `path` another digest in one `section` of Release (the other lists and the
    size untouched), re-signed with the repository's key so only that digest is wrong.
    Returns the digest it replaced."""
    release = ws.repo.get(f"{DISTS}/Release")
    assert release is not None
    lines = release.split(b"\n")
    start = lines.index(section + b":")
    for number in range(start + 1, len(lines)):
        parts = lines[number].split()
        if not lines[number].startswith(b" "):
            break
        if parts[2] == path:
            old = parts[0].decode()
            lines[number] = lines[number].replace(parts[0], digest.encode(), 1)
            break
    else:
        raise AssertionError(f"{path!r} is not listed under {section!r}")
    assert len(digest) == len(old) and digest != old
    edited = b"\n".join(lines)
    replace_object(ws, f"{DISTS}/Release", edited)
    replace_object(ws, f"{DISTS}/Release.gpg", ws.signer.detached_signature(edited))
    replace_object(ws, f"{DISTS}/InRelease", ws.signer.clearsign(edited))
    return old


@pytest.mark.parametrize(("section", "hash_name"), [(b"SHA512", "sha512"), (b"MD5Sum", "md5")])
def test_an_index_whose_only_wrong_checksum_in_release_is_one_list(published, section, hash_name):
    """Release lists every index under MD5Sum, SHA1, SHA256 and SHA512; each must hold
    for the file, not only the one most often checked."""
    packages = published.repo.get(f"{BINARY}/Packages")
    assert packages is not None
    wrong = hashlib.new(hash_name, packages + b"other bytes").hexdigest()
    old = replace_release_digest(published, section, b"main/binary-amd64/Packages", wrong)
    assert old == hashlib.new(hash_name, packages).hexdigest()
    if section == b"SHA512":
        # The by-hash copy is looked up by the listed SHA512: give it one, holding the
        # bytes of Packages, so the only thing wrong is the digest itself.
        replace_object(published, f"{BINARY}/by-hash/SHA512/{wrong}", packages)
    sha256 = hashlib.sha256(packages).hexdigest()
    sha512 = wrong if section == b"SHA512" else hashlib.sha512(packages).hexdigest()
    copies = [f"{BINARY}/by-hash/SHA256/{sha256}", f"{BINARY}/by-hash/SHA512/{sha512}"]
    mismatch = "does not match its size and checksums in Release"
    assert sorted(problems(published)) == sorted(
        [
            f"{BINARY}/Packages {mismatch}",
            *(f"{copy} {mismatch} (by-hash copy of main/binary-amd64/Packages)" for copy in copies),
        ]
    )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        # Listed under MD5Sum only: there is no SHA256 name to look its by-hash copy up by.
        (b" d41d8cd98f00b204e9800998ecf8427e 0 main/binary-amd64/Extra", "without a SHA256"),
        # A path that would leave the published tree.
        (b" d41d8cd98f00b204e9800998ecf8427e 0 ../../outside", "'../../outside'"),
    ],
)
def test_release_entries_that_cannot_be_checked_are_problems_not_a_crash(
    published, entry, expected
):
    release = published.repo.get(f"{DISTS}/Release")
    assert release is not None
    edited = release.replace(b"MD5Sum:\n", b"MD5Sum:\n" + entry + b"\n", 1)
    assert edited != release
    replace_object(published, f"{DISTS}/Release", edited)
    found = problems(published)
    assert has_problem(found, f"{DISTS}/Release lists", expected)
    # The rest of the check still ran: the signatures no longer match the edited Release.
    assert has_problem(found, "InRelease and", "Release say different things")


def test_convenience_copy_is_not_the_newest_kiro_repo(published):
    app.build_kiro_repo(published, version="1.0", now=FIXED_NOW)
    app.build_kiro_repo(published, version="1.1", now=FIXED_NOW)
    assert app.verify(published, now=FIXED_NOW).ok
    older = published.repo.get("pool/main/k/kiro-repo/kiro-repo_1.0_all.deb")
    replace_object(published, "kiro-repo.deb", older)
    (found,) = problems(published)
    assert (
        found
        == "kiro-repo.deb is not kiro-repo 1.1 (pool/main/k/kiro-repo/kiro-repo_1.1_all.deb); "
        "`debrepo rebuild` puts it back"
    )
    app.rebuild(published, now=FIXED_NOW)
    assert app.verify(published, now=FIXED_NOW).ok


def test_convenience_copy_missing(published):
    app.build_kiro_repo(published, version="1.0", now=FIXED_NOW)
    published.repo.delete("kiro-repo.deb")
    (found,) = problems(published)
    assert (
        found
        == "kiro-repo.deb is missing (newest kiro-repo is 1.0); `debrepo rebuild` puts it back"
    )
    app.rebuild(published, now=FIXED_NOW)
    assert app.verify(published, now=FIXED_NOW).ok


def test_convenience_copy_without_kiro_repo_in_the_store(published):
    replace_object(published, "kiro-repo.deb", b"stray")
    (found,) = problems(published)
    assert found == "kiro-repo.deb exists but the store holds no kiro-repo"


def test_pool_file_corrupted_in_place(published):
    data = bytearray(published.repo.get(ALPHA_POOL))
    data[len(data) // 2] ^= 0x01
    replace_object(published, ALPHA_POOL, bytes(data))
    (found,) = problems(published)
    assert found == f"{ALPHA_POOL} does not match the stored MD5, SHA1, SHA256, SHA512"
    assert app.verify(published, quick=True, now=FIXED_NOW).ok


def test_pool_file_of_the_wrong_size(published):
    data = published.repo.get(ALPHA_POOL)
    replace_object(published, ALPHA_POOL, data[:-10])
    (found,) = problems(published, quick=True)
    assert found == f"{ALPHA_POOL} is {len(data) - 10} bytes, the store says {len(data)}"


def test_pool_file_missing(published):
    published.repo.delete(ALPHA_POOL)
    (found,) = problems(published)
    assert found == f"{ALPHA_POOL} (alpha#1.0) is missing"


def test_tampered_inrelease(published):
    inrelease = published.repo.get(f"{DISTS}/InRelease")
    replace_object(
        published, f"{DISTS}/InRelease", inrelease.replace(b"Label: Kiro", b"Label: Evil")
    )
    found = problems(published)
    assert any(p.startswith(f"{DISTS}/InRelease") for p in found)


def test_garbage_release_signature(published):
    replace_object(published, f"{DISTS}/Release.gpg", b"not a signature")
    (found,) = problems(published)
    assert found.startswith(f"{DISTS}/Release.gpg does not verify Release")


@pytest.mark.parametrize("name", ["InRelease", "Release.gpg"])
def test_missing_signature_file(published, name):
    published.repo.delete(f"{DISTS}/{name}")
    found = problems(published)
    assert f"{DISTS}/{name} is missing from {published.repo.description}" in found


def test_missing_release_stops_early(published):
    published.repo.delete(f"{DISTS}/Release")
    assert problems(published) == [f"{DISTS}/Release is missing from {published.repo.description}"]


def test_published_key_is_not_the_signing_key(published):
    other = OpenPGPSigner(generate_secret_key("Other <other@example.com>"), source="other")
    replace_object(published, "kiro-archive-keyring.gpg", other.public_key_binary())
    found = problems(published)
    assert any(
        p.startswith("kiro-archive-keyring.gpg is not the public part of the signing key")
        for p in found
    )
    assert any(p.startswith(f"{DISTS}/InRelease") for p in found)


def test_no_signing_key_file_skips_the_key_comparison(published):
    published.settings.key_file.unlink()
    assert app.verify(published, now=FIXED_NOW).ok


def test_an_unreadable_signing_key_file_is_a_problem(published):
    key_file = published.settings.key_file
    key_file.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\ngarbage\n", encoding="ascii")
    report = app.verify(app.Workspace(published.settings), now=FIXED_NOW)
    assert not report.ok
    assert report.problems[0].startswith("the signing key cannot be loaded: ")
    assert str(key_file) in report.problems[0]
    assert report.problems[1:] == []  # the published tree itself is intact


def test_incomplete_store_items_are_warnings(published):
    sql(
        published,
        "INSERT INTO packages (package_id, package_name, version) VALUES (?, ?, ?)",
        "legacy#0.9",
        "legacy",
        "0.9",
    )
    report = app.verify(published, now=FIXED_NOW)
    assert report.ok
    (warning,) = report.warnings
    assert warning.startswith("store item legacy#0.9 is incomplete and not published: missing")


def test_nothing_published_yet(workspace):
    report = verify_repository(
        store=workspace.store,
        repo=workspace.repo,
        settings=workspace.settings,
        signer=None,
        now=FIXED_NOW,
    )
    assert not report.ok
    assert len(report.problems) == 4


def test_progress_reports_each_pool_file(published):
    calls = []
    verify_repository(
        store=published.store,
        repo=published.repo,
        settings=published.settings,
        signer=published.signer,
        now=FIXED_NOW,
        progress=lambda phase, done, total: calls.append((phase, done, total)),
    )
    assert calls == [("pool", 1, 2), ("pool", 2, 2)]


def test_two_versions_claiming_one_pool_file_are_a_listed_problem(published):
    # 1.0 and 1:1.0 share the Debian file name alpha_1.0_amd64.deb.
    alpha = published.store.get("alpha#1.0")
    published.store.put(alpha.with_changes(version="1:1.0"))
    report = app.verify(published, now=FIXED_NOW)
    assert not report.ok
    assert has_problem(report.problems, "alpha#1:1.0", "alpha#1.0", ALPHA_POOL)


@pytest.mark.parametrize("with_signing_key", [True, False])
def test_armoured_key_replaced_or_missing(published, with_signing_key):
    if not with_signing_key:
        published.settings.key_file.unlink()  # compared with the binary keyring instead
    other = OpenPGPSigner(generate_secret_key("Other <other@example.com>"), source="other")
    replace_object(published, "kiro-archive-keyring.asc", other.public_key_armored())
    assert problems(published) == [
        "kiro-archive-keyring.asc is not the same key as kiro-archive-keyring.gpg; "
        "`debrepo rebuild` publishes both again"
    ]
    published.repo.delete("kiro-archive-keyring.asc")
    assert any(p.startswith("kiro-archive-keyring.asc is missing") for p in problems(published))
    if with_signing_key:
        app.rebuild(published, now=FIXED_NOW)
        assert app.verify(published, now=FIXED_NOW).ok


def test_a_new_key_not_yet_published_is_named_once_not_blamed_on_the_armoured_copy(published):
    app.generate_key(published, force=True)
    found = problems(app.Workspace(published.settings))
    assert found == [
        "kiro-archive-keyring.gpg is not the public part of the signing key "
        f"{app.Workspace(published.settings).signer.fingerprint.upper()}"
    ]


def test_a_missing_signing_key_is_a_warning_that_says_what_was_not_checked(published):
    published.settings.key_file.unlink()
    report = app.verify(app.Workspace(published.settings), now=FIXED_NOW)
    assert report.ok
    assert report.warnings == [
        "the published key was not compared with the signing key: there is none at "
        f"{published.settings.key_file} (check --key-file, or restore it before the next publish)"
    ]


def test_kiro_repo_installing_a_key_that_is_no_longer_published(published):
    """After the key is replaced, the kiro-repo new users install first still carries
    the old one until a new version is built: verify says so, and what to do."""
    app.build_kiro_repo(published, version="1.0", now=FIXED_NOW)
    app.generate_key(published, force=True)
    rotated = app.Workspace(published.settings)
    app.rebuild(rotated, now=FIXED_NOW, replace=True)

    (found,) = problems(rotated)
    assert has_problem(
        [found],
        "kiro-repo 1.0 (pool/main/k/kiro-repo/kiro-repo_1.0_all.deb)",
        "/usr/share/keyrings/kiro-archive-keyring.gpg other than the published key",
        "build-repo-package",
    )

    app.build_kiro_repo(rotated, version="1.1", now=FIXED_NOW)
    assert app.verify(rotated, now=FIXED_NOW).ok


def test_kiro_repo_without_the_keyring(published, make_deb):
    bare = make_deb("kiro-repo", "0.9", "all")  # a package of that name that installs no key
    app.add_packages(published, [bare], now=FIXED_NOW)
    (found,) = problems(published)
    assert found == (
        "kiro-repo 0.9 (pool/main/k/kiro-repo/kiro-repo_0.9_all.deb) installs no "
        "/usr/share/keyrings/kiro-archive-keyring.gpg"
    )


@pytest.mark.parametrize("suffix", [".gz", ".xz"])
def test_compressed_index_damaged_inside_is_a_problem_not_a_crash(published, suffix):
    packed = bytearray(published.repo.get(f"{BINARY}/Packages{suffix}"))
    # The headers still read; the first compressed byte does not (for gzip a deflate
    # block of the reserved type: zlib.error, not OSError).
    first = 10 if suffix == ".gz" else 24
    packed[first] = 0xFF
    replace_object(published, f"{BINARY}/Packages{suffix}", bytes(packed))
    found = problems(published)
    assert f"{BINARY}/Packages{suffix} cannot be decompressed" in found


def test_a_publish_running_during_the_check_is_said(published):
    """Between a publish's waves the files and the Release disagree, by design: a monitor
    running verify then learns why, instead of only that something differs."""
    from debrepo.locking import local_lock

    assert app.verify(published, now=FIXED_NOW).warnings == []
    with local_lock(published.settings.home / "publish.lock"):
        report = app.verify(published, now=FIXED_NOW)
    (warning,) = report.warnings
    assert warning.startswith("a publish ran during this check (pid ")
    assert "run `debrepo verify` again once it has finished" in warning
    assert app.verify(published, now=FIXED_NOW).warnings == []  # and the lock is free again


def test_a_packages_file_rendered_before_its_closing_blank_line_passes_until_republished(
    workspace, make_deb, monkeypatch
):
    """debrepo before RENDER_VERSION 3 ended a Packages file right after its last stanza."""
    import debrepo.core.indexes as indexes
    import debrepo.services.publish as publish

    current = indexes.render_pieces

    def as_before(records, component):
        pieces = current(records, component)
        return [*pieces[:-1], pieces[-1][:-1]] if pieces else pieces

    with monkeypatch.context() as patched:
        patched.setattr(indexes, "render_pieces", as_before)
        patched.setattr(publish, "RENDER_VERSION", "2")
        app.add_packages(workspace, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    before = workspace.repo.get(f"{BINARY}/Packages")
    assert before.endswith(b"\n") and not before.endswith(b"\n\n")
    assert app.verify(workspace, now=FIXED_NOW).ok

    # Nothing changed in the store, but the rendering did: not a re-sign only.
    report = app.rebuild(workspace, now=FIXED_NOW + timedelta(minutes=1))
    assert not report.resigned_only
    assert workspace.repo.get(f"{BINARY}/Packages") == before + b"\n"
    assert gzip.decompress(workspace.repo.get(f"{BINARY}/Packages.gz")) == before + b"\n"
    assert lzma.decompress(workspace.repo.get(f"{BINARY}/Packages.xz")) == before + b"\n"
    assert app.verify(workspace, now=FIXED_NOW + timedelta(minutes=1)).ok
