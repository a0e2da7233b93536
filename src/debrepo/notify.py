"""Notifications: one per newly published package version, one per failed run.

SNS in AWS (the topic from settings), log lines otherwise. A notification that cannot
be delivered never turns a successful publish into a failure: a package's is kept for
the next sync to send again, a failed run's is logged.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Protocol

from debrepo.errors import NotificationError
from debrepo.model import PackageRecord

log = logging.getLogger("debrepo.notify")

SUBJECT_LIMIT = 100  # SNS refuses longer subjects


class Notifier(Protocol):
    def package_published(self, record: PackageRecord) -> None:
        """Raises NotificationError when it cannot be delivered."""

    def run_failed(self, operation: str, message: str) -> None: ...


def package_message(record: PackageRecord) -> dict[str, Any]:
    return {
        "event": "package_published",
        "package_id": record.package_id,
        "package": record.package_name,
        "version": record.version,
        "architecture": record.architecture,
        "size": record.file_size,
        "sha256": record.sha256_hash,
        "source": record.deb_url,
        "package_type": record.package_type,
        "pub_date": record.pub_date,
        "notes": record.notes,
    }


class LogNotifier:
    """Notifications as log lines (the embedded default)."""

    def package_published(self, record: PackageRecord) -> None:
        log.info(
            "published %s %s (%s)",
            record.package_name,
            record.version,
            record.architecture,
            extra={"notification": package_message(record)},
        )

    def run_failed(self, operation: str, message: str) -> None:
        log.error("%s failed: %s", operation, message, extra={"operation": operation})


MESSAGE_LIMIT = 262_144  # bytes: SNS refuses a longer message outright
TRUNCATED = " [...]"


def fit_message(message: dict[str, Any], limit: int = MESSAGE_LIMIT) -> str:
    """`message` as JSON of at most `limit` bytes: the longest text values (long release
    notes, an error) are shortened rather than the notification lost."""
    fitted = dict(message)
    while True:
        # ASCII (every other character escaped, a lone surrogate too): length is size.
        text = json.dumps(fitted, sort_keys=True)
        excess = len(text) - limit
        if excess <= 0:
            return text
        sizes = {k: len(json.dumps(v)) for k, v in fitted.items() if isinstance(v, str)}
        name = max(sizes, key=sizes.__getitem__, default=None)
        if name is None or len(fitted[name]) <= len(TRUNCATED):
            return text  # nothing left to shorten; SNS will say what is wrong
        value = fitted[name]
        # Escaped, a character takes 1 to 12 bytes: cut by their average, then look again.
        per_character = sizes[name] / len(value)
        cut = math.ceil((excess + len(TRUNCATED)) / per_character)
        fitted[name] = value[: max(0, len(value) - cut)] + TRUNCATED


class SnsNotifier:
    """Notifications published to an SNS topic, as JSON with a short subject."""

    def __init__(self, topic_arn: str, region: str | None = None) -> None:
        from debrepo.aws import client

        self.topic_arn = topic_arn
        self._sns = client("sns", region)

    def _publish(self, subject: str, message: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._sns.publish(
                TopicArn=self.topic_arn,
                Subject=subject[:SUBJECT_LIMIT],
                Message=fit_message(message),
            )
        except (ClientError, BotoCoreError) as exc:
            raise NotificationError(f"cannot notify {self.topic_arn}: {exc} ({subject})") from None

    def package_published(self, record: PackageRecord) -> None:
        self._publish(
            f"New package: {record.package_name} {record.version}", package_message(record)
        )

    def run_failed(self, operation: str, message: str) -> None:
        try:
            self._publish(
                f"debrepo {operation} failed",
                {"event": "run_failed", "operation": operation, "error": message},
            )
        except NotificationError as exc:  # the failure itself is logged by the caller
            log.error("%s", exc)


def notifier_for(topic_arn: str) -> Notifier:
    return SnsNotifier(topic_arn) if topic_arn else LogNotifier()
