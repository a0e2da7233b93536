"""The whole pipeline on the embedded default, in-process: add, publish, verify."""

from __future__ import annotations

from debrepo import app
from tests.conftest import FIXED_NOW


def test_add_publish_verify_round_trip(workspace, make_deb):
    debs = [make_deb("alpha", "1.0"), make_deb("beta", "2.0-1", "all")]
    result = app.add_packages(workspace, debs, now=FIXED_NOW)

    assert sorted(r.package_id for r in result.records) == ["alpha#1.0", "beta#2.0-1"]
    assert result.report is not None and result.report.packages == 2
    report = app.verify(workspace, now=FIXED_NOW)
    assert report.ok, report.problems
    packages = workspace.repo.get("dists/stable/main/binary-amd64/Packages")
    assert packages is not None
    assert b"Package: alpha\n" in packages and b"Package: beta\n" in packages
