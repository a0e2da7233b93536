"""Turning what a .deb says about itself into a PackageRecord (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from debrepo.core.control import (
    REPOSITORY_FIELDS,
    architecture_problem,
    canonical_field_name,
    canonical_filename,
    field_lookup,
    field_value_problem,
    package_name_problem,
    quoted_excerpt,
    version_problem,
    without_epoch,
)
from debrepo.core.layout import default_staging_prefix
from debrepo.errors import InvalidPackageError, RecordValidationError
from debrepo.model import MAX_INSTALLED_SIZE, PackageRecord
from debrepo.packages_config import PackageConfig

# Control fields the record keeps in named attributes (or replaces from config).
_NAMED_FIELDS = frozenset(
    f.lower()
    for f in (
        "Package",
        "Version",
        "Architecture",
        "Section",
        "Priority",
        "Maintainer",
        "Homepage",
        "Description",
        "Depends",
        "Installed-Size",
    )
)


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a .deb came from and what its source claimed about it."""

    deb_url: str
    package_type: str
    pub_date: str | None = None
    expected_name: str | None = None
    expected_version: str | None = None
    expected_architecture: str | None = None
    certificate_url: str | None = None
    signature_url: str | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class FileFacts:
    """Size and checksums of a .deb, computed while reading it."""

    size: int
    md5: str
    sha1: str
    sha256: str
    sha512: str


def iso_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_record(
    control: Sequence[tuple[str, str]],
    facts: FileFacts,
    provenance: Provenance,
    config: PackageConfig | None,
    *,
    processed_at: datetime,
    source: str,
) -> PackageRecord:
    """The record for a .deb; InvalidPackageError if the .deb contradicts its source.

    For packages defined in config/packages/, the config's section, priority,
    maintainer, homepage and description replace the control file's (the seed
    stores them from config); otherwise the control file is the truth. A config
    description of one line that is the control file's synopsis keeps the control
    file's extended description (kiro-repo's, built from its templates): `apt show`
    and `dpkg -s` then say the same.
    """
    name = field_lookup(control, "Package") or ""
    version = field_lookup(control, "Version") or ""
    architecture = field_lookup(control, "Architecture") or ""
    for problem in (
        package_name_problem(name),
        version_problem(version),
        architecture_problem(architecture),
    ):
        if problem:
            raise InvalidPackageError(f"{source}: control file: {problem}")
    claims = (
        ("Package", name, provenance.expected_name, "the source"),
        ("Version", version, provenance.expected_version, "the source"),
        ("Architecture", architecture, provenance.expected_architecture, "the source"),
        (
            "Architecture",
            architecture,
            config.architecture if config else None,
            config.origin if config else "",
        ),
    )
    for field, actual, claimed, who in claims:
        # A .deb's file name (where a source may read the version) never holds the
        # epoch: "1.2.0" names the file of 1:1.2.0.
        if (
            field == "Version"
            and claimed is not None
            and ":" not in claimed
            and without_epoch(actual) == claimed
        ):
            continue
        if claimed is not None and actual != claimed:
            raise InvalidPackageError(
                f"{source}: control file says {field} {actual!r}, but {who} says {claimed!r}"
            )

    if config is not None:
        section, priority = config.section, config.priority
        maintainer, homepage = config.maintainer, config.homepage
        description = config.stanza_description
        synopsis, _, extended = (field_lookup(control, "Description") or "").partition("\n")
        if extended.strip() and "\n" not in description and synopsis.strip() == description:
            description = f"{description}\n{extended}"
    else:
        section = field_lookup(control, "Section") or ""
        priority = field_lookup(control, "Priority") or ""
        maintainer = field_lookup(control, "Maintainer") or ""
        homepage = field_lookup(control, "Homepage") or ""
        description = field_lookup(control, "Description") or ""
        missing = [
            f for f, v in (("Maintainer", maintainer), ("Description", description)) if not v
        ]
        if missing:
            raise InvalidPackageError(
                f"{source}: control file lacks {', '.join(missing)}; add it to the package or "
                "define the package in config/packages/"
            )
    depends = field_lookup(control, "Depends") or (config.depends if config else None)
    installed_raw = field_lookup(control, "Installed-Size")
    installed_size = None
    if installed_raw is not None:
        # ASCII digits only (str.isdigit also takes '²'); a length check before int(),
        # which refuses more than 4,300 digits.
        digits = installed_raw.strip()
        if not (digits.isascii() and digits.isdigit()):
            raise InvalidPackageError(
                f"{source}: Installed-Size {quoted_excerpt(installed_raw)} is not a number"
            )
        significant = digits.lstrip("0") or "0"
        if len(significant) > len(str(MAX_INSTALLED_SIZE)) or int(significant) > MAX_INSTALLED_SIZE:
            raise InvalidPackageError(
                f"{source}: Installed-Size {quoted_excerpt(installed_raw)} is too large "
                f"(at most {MAX_INSTALLED_SIZE} KiB)"
            )
        installed_size = int(significant)
    extra = tuple(
        (canonical_field_name(key), value)
        for key, value in control
        if key.lower() not in _NAMED_FIELDS and key.lower() not in REPOSITORY_FIELDS
    )
    processed = iso_timestamp(processed_at)
    record = PackageRecord(
        package_name=name,
        version=version,
        architecture=architecture,
        section=section,
        priority=priority,
        maintainer=maintainer,
        homepage=homepage,
        description=description,
        deb_url=provenance.deb_url,
        actual_filename=canonical_filename(name, version, architecture),
        file_size=facts.size,
        md5_hash=facts.md5,
        sha1_hash=facts.sha1,
        sha256_hash=facts.sha256,
        pub_date=provenance.pub_date or processed,
        processed_timestamp=processed,
        package_type=provenance.package_type,
        depends=depends,
        certificate_url=provenance.certificate_url,
        signature_url=provenance.signature_url,
        notes=provenance.notes,
        installed_size=installed_size,
        sha512_hash=facts.sha512,
        control_fields=extra,
    )
    try:
        return record.validate()
    except RecordValidationError as exc:
        for key, value in control:  # name the control file's field, if it is one of them
            if problem := field_value_problem(key, value):
                raise InvalidPackageError(f"{source}: control file: {problem}") from None
        raise InvalidPackageError(f"{source}: {'; '.join(exc.problems)}") from None


def staging_prefix_for(package_name: str, config: PackageConfig | None) -> str:
    """Where a package's files wait before publication (never publicly readable)."""
    if config is not None and config.source.staging_prefix:
        return config.source.staging_prefix
    return default_staging_prefix(package_name)
