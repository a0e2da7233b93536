"""`source.type: build_script`: packages debrepo builds itself (kiro-repo; seed "Kiro-Repo
Package Handler").

There is nothing upstream to ask. `debrepo build-repo-package` (and
scripts/build-kiro-repo.sh around it) builds the .deb, puts it in the staging area
(`staging/<package>/` of the local folder or the bucket), and records it in the store.
A publish then copies it from staging into the pool if the pool lacks it, refusing a
staged file whose size or SHA256 differs from the record (services/publish.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from debrepo.packages_config import PackageConfig
from debrepo.sources.base import Acquired, Release, SourceError, Validators
from debrepo.sources.http import HttpClient


class BuildScriptSource:
    """A source with nothing to fetch: versions arrive through the build script."""

    def __init__(
        self, config: PackageConfig, *, http: HttpClient, environ: Mapping[str, str]
    ) -> None:
        self.config = config

    def latest(self) -> Release | None:
        return None

    def acquire(
        self, release: Release, scratch_dir: Path, *, unchanged_since: Validators | None = None
    ) -> Acquired:
        raise SourceError(
            f"{self.config.package_name} is built by the build script, not downloaded; run "
            "`debrepo build-repo-package --version V`"
        )
