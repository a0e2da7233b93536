"""core/indexes.py: compressed indices reused from the published Release, or made again."""

from __future__ import annotations

from datetime import timedelta

from debrepo.core.indexes import build_indices
from debrepo.core.release import Digest, ReleaseInfo
from tests.unit.helpers import make_record

INFO = ReleaseInfo(
    origin="Kiro",
    label="Kiro",
    suite="stable",
    codename="stable",
    version="1.0",
    architectures=("amd64",),
    components=("main",),
    description="test",
    valid_for=timedelta(days=7),
)
PACKAGES = "main/binary-amd64/Packages"


def published(records):
    return {index.path: index.digest for index in build_indices(records, INFO)}


def test_compressed_indices_are_reused_when_packages_hashes_as_published():
    records = [make_record("alpha"), make_record("beta")]
    before = published(records)
    indices = {i.path: i for i in build_indices(records, INFO, before)}
    for suffix in (".gz", ".xz"):
        assert indices[PACKAGES + suffix].data is None  # taken as published
        assert indices[PACKAGES + suffix].digest == before[PACKAGES + suffix]


def test_compressed_indices_are_made_again_when_packages_changed():
    records = [make_record("alpha"), make_record("beta")]
    fresh = {i.path: i for i in build_indices(records, INFO)}
    before = published([make_record("alpha")])  # one package fewer: another size
    # The same size with other bytes: only the checksums tell.
    same_size = dict(before)
    digest = fresh[PACKAGES].digest
    same_size[PACKAGES] = Digest(digest.size, digest.md5, digest.sha1, "0" * 64, digest.sha512)
    for previous in (before, same_size):
        indices = {i.path: i for i in build_indices(records, INFO, previous)}
        for suffix in ("", ".gz", ".xz"):
            assert indices[PACKAGES + suffix].data == fresh[PACKAGES + suffix].data
            assert indices[PACKAGES + suffix].digest == fresh[PACKAGES + suffix].digest
