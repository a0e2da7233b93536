"""Every failure debrepo reports derives from DebrepoError.

The message of each error is one line that names the file, field, package or URL at
fault and, where there is one, what to do about it. The CLI prints it as is and exits
non-zero. Only where units are independent by design is one caught to carry on with the
others, and reported: a package in `sync`, a notification.
"""

from __future__ import annotations

from collections.abc import Sequence

# Set on a log record of an error that a command also reports in its own output (a
# package's sync outcome): a terminal, which shows that output, leaves the log line out.
OUTCOME_REPORTED = "outcome_reported"


class DebrepoError(Exception):
    """Root of every error debrepo raises on purpose."""

    exit_code = 1


class ConfigError(DebrepoError):
    """A settings value or a package configuration file is missing or malformed."""

    exit_code = 2


class InvalidPackageError(DebrepoError):
    """A file offered as a .deb is not one, is truncated, or contradicts its metadata."""


class PackageContentError(InvalidPackageError):
    """Refused for what the file holds, whatever the store or the repository hold: not a
    .deb, truncated, or a control file contradicting its source or its definition. The
    same bytes offered the same way are refused again."""


class PackageReadError(InvalidPackageError):
    """A file offered as a .deb could not be read (an I/O error): nothing is known of
    what it holds, so another attempt may well succeed."""


class RecordValidationError(DebrepoError):
    """A package record lacks required fields or carries malformed ones."""

    def __init__(self, package_id: str, problems: Sequence[str]) -> None:
        self.package_id = package_id
        self.problems = tuple(problems)
        super().__init__(f"package record {package_id!r} is incomplete: {'; '.join(problems)}")


class DuplicatePackageError(DebrepoError):
    """A package version is already in the store; published versions are immutable."""

    def __init__(self, package_id: str, *, sha256s: tuple[str, str] | None = None) -> None:
        self.package_id = package_id
        name, _, version = package_id.partition("#")
        differ = ""
        if sha256s is not None:  # (stored, given): said when known
            stored, given = sha256s
            differ = f" with other bytes (sha256 {stored[:12]}... stored, {given[:12]}... here)"
        super().__init__(
            f"{name} {version} is already in the store{differ} (package_id {package_id!r}); "
            "published versions are immutable, build a new version instead"
        )


class PackageNotFoundError(DebrepoError):
    """A command names a package version that is not in the store."""


class StoreError(DebrepoError):
    """The metadata store could not be read or written."""


class ObjectStoreError(DebrepoError):
    """The published repository or the staging area could not be read or written."""


class SigningError(DebrepoError):
    """The signing key is missing, unreadable, too weak, or signing failed."""


class SecretUnavailableError(SigningError):
    """The key's secret could not be fetched (not found, not allowed, not reachable), as
    opposed to fetched and found damaged."""


class PublishError(DebrepoError):
    """A publish failed. Unlike PublishRefused, it may have written files already, in
    the order that keeps clients whole: fix the cause and publish again."""

    # Failed after the new Release files were written: clients see the new contents.
    release_written = False


class PublishRefused(PublishError):
    """A safety check refused the publish before it wrote anything: a command that
    changed the store for it can put the change back, and say so instead
    (`outcome`, "nothing was published" by default)."""

    # Whether storing without publishing (`add --no-publish`, then a `rebuild` once the
    # cause is settled) is a way on: not for a refusal that every publish would meet.
    settled_by_rebuild = True

    def __init__(self, reason: str, *, outcome: str = "nothing was published") -> None:
        super().__init__(f"{reason}; {outcome}")
        self.reason, self.outcome = reason, outcome


class LockError(DebrepoError):
    """Another publisher holds the repository lock."""


class NotificationError(DebrepoError):
    """A notification could not be delivered."""


class VerificationError(DebrepoError):
    """The published repository does not agree with the store."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"{len(self.problems)} problem(s) found: " + "; ".join(self.problems[:5]))
