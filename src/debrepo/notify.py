"""Notifications: one per newly published package version, one per failed run.

SNS in AWS (the topic from settings), log lines otherwise. A notification that cannot
be delivered is logged and never turns a successful publish into a failure.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from debrepo.model import PackageRecord

log = logging.getLogger("debrepo.notify")

SUBJECT_LIMIT = 100  # SNS refuses longer subjects


class Notifier(Protocol):
    def package_published(self, record: PackageRecord) -> None: ...

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


MESSAGE_LIMIT = 262_144  # bytes of UTF-8: SNS refuses a longer message outright
TRUNCATED = " [...]"


def fit_message(message: dict[str, Any], limit: int = MESSAGE_LIMIT) -> str:
    """`message` as JSON of at most `limit` bytes: the longest text values (long release
    notes, an error) are shortened rather than the notification lost."""
    fitted = dict(message)
    while True:
        text = json.dumps(fitted, sort_keys=True, ensure_ascii=False)
        excess = len(text.encode("utf-8")) - limit
        if excess <= 0:
            return text
        texts = [k for k, v in fitted.items() if isinstance(v, str)]
        name = max(texts, key=lambda k: len(fitted[k].encode("utf-8")), default="")
        value = fitted.get(name, "")
        if len(value) <= len(TRUNCATED):
            return text  # nothing left to shorten; SNS will say what is wrong
        # Cut as many bytes as are over, and room for the marker (escapes: the next round).
        raw = value.encode("utf-8")
        keep = max(0, len(raw) - excess - len(TRUNCATED))
        fitted[name] = raw[:keep].decode("utf-8", "ignore") + TRUNCATED


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
            log.error("cannot notify %s: %s (%s)", self.topic_arn, exc, subject)

    def package_published(self, record: PackageRecord) -> None:
        self._publish(
            f"New package: {record.package_name} {record.version}", package_message(record)
        )

    def run_failed(self, operation: str, message: str) -> None:
        self._publish(
            f"debrepo {operation} failed",
            {"event": "run_failed", "operation": operation, "error": message},
        )


def notifier_for(topic_arn: str) -> Notifier:
    return SnsNotifier(topic_arn) if topic_arn else LogNotifier()
