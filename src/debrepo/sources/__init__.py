"""Package sources: where new versions of each configured package come from."""

from debrepo.sources.base import Acquired, PackageSource, Release, SourceError, source_for

__all__ = ["Acquired", "PackageSource", "Release", "SourceError", "source_for"]
