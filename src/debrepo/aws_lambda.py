"""AWS Lambda entry point (seed "Updated Main Handler"): `debrepo.aws_lambda.handler`.

A scheduled event runs the normal workflow (`sync`: new versions in, publish, keep the
Release fresh); `{"force_rebuild": true}` regenerates the repository from the store
alone, and `{"replace": true}` does so even where that drops published versions the
store lacks or changes the Release's identity (`debrepo rebuild --replace`);
`{"retry_refused": true}` runs a sync that downloads again a version refused for what
its file held (`debrepo sync --retry-refused`). Logs are
structured JSON for CloudWatch (request id, operation, durations, counts) through
Powertools' Logger, which debrepo's own loggers are routed into; metrics are
CloudWatch embedded metrics through Powertools' Metrics. No credential or key material
is ever logged.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from debrepo.errors import DebrepoError

if TYPE_CHECKING:
    from debrepo.services.publish import PublishReport
    from debrepo.sources.http import HttpSettings

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "debrepo")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "debrepo"))
copy_config_to_registered_loggers(source_logger=logger, include={"debrepo"})
# The runtime puts its own handler on the root logger: JSON lines only, no plain copies.
logging.getLogger(SERVICE).propagate = False


def _response(status: int, body: str) -> dict[str, Any]:
    return {"statusCode": status, "body": body}


def _flag(event: Any, name: str) -> bool:
    """The event's flag `name` (`force_rebuild`, `replace`, `retry_refused`); ValueError
    for a value that is neither yes nor no (`bool("false")` would read as yes and rebuild)."""
    value = event.get(name) if isinstance(event, dict) else None
    if isinstance(value, str):
        value = value.strip().lower()
    if value in (True, "true", "yes", "1"):  # True == 1: the number 1 too
        return True
    if value in (None, False, "false", "no", "0", ""):
        return False
    raise ValueError(f"event field {name} must be true or false, not {value!r}")


# What a run keeps for storing, publishing and notifying once upstream has answered:
# a slow or failing upstream must not keep a scheduled run from re-signing the Release.
PUBLISH_RESERVE_SECONDS = 180.0


def _http_within(context: Any) -> HttpSettings:
    """HTTP limits that end every transfer and wait while the function can still publish."""
    from debrepo.sources.http import HttpSettings

    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return HttpSettings()
    budget = max(30.0, remaining() / 1000 - PUBLISH_RESERVE_SECONDS)
    return HttpSettings(run_deadline=time.monotonic() + budget)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False)
def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run one sync, or a force rebuild; never raises (the result says what happened)."""
    try:
        replace = _flag(event, "replace")  # a force rebuild that may drop or change
        force_rebuild = replace or _flag(event, "force_rebuild")
        retry_refused = _flag(event, "retry_refused")
        if retry_refused and force_rebuild:  # a rebuild downloads nothing to retry
            raise ValueError("event field retry_refused is for a sync, not a force rebuild")
    except ValueError as exc:
        logger.error("bad event", extra={"error": str(exc)})
        metrics.add_metric(name="operations_failed", unit=MetricUnit.Count, value=1)
        return _response(400, f"Bad request: {exc}")
    operation = "replace" if replace else "force_rebuild" if force_rebuild else "sync"
    logger.append_keys(operation=operation)
    started = time.monotonic()
    from debrepo.notify import Notifier, notifier_for

    notifier: Notifier | None = None
    try:
        # The topic straight from the environment first, so that even a run whose
        # settings are unusable (a variable missing) can tell someone.
        notifier = notifier_for(os.environ.get("SNS_TOPIC_ARN", ""))
        from debrepo.app import Workspace, rebuild, sync
        from debrepo.aws import check_access, lambda_settings

        settings = lambda_settings(os.environ)
        if settings.sns_topic_arn != os.environ.get("SNS_TOPIC_ARN", ""):
            notifier = notifier_for(settings.sns_topic_arn)
        checked = check_access(settings)
        logger.info("access checked", extra={"checked": checked})
        workspace = Workspace(settings)

        published: PublishReport | None
        total: int | None
        if force_rebuild:
            report = rebuild(workspace, full=True, replace=replace)
            published, new_count, total = report, 0, report.packages
            body = f"Successfully rebuilt repository with {report.packages} packages"
        else:
            sync_report = sync(
                workspace,
                notifier=notifier,
                http_settings=_http_within(context),
                retry_refused=retry_refused,
            )
            published = sync_report.published
            new_count = len(sync_report.new_records)
            total = published.packages if published else None
            body = (
                f"Successfully processed {new_count} new packages"
                if new_count
                else "No new packages to process"
            )
            failed = sync_report.failures
            metrics.add_metric(name="packages_failed", unit=MetricUnit.Count, value=len(failed))
            for outcome in failed:
                notifier.run_failed(f"sync of {outcome.package_name}", outcome.message)

        if published is not None:
            logger.info(
                "published",
                extra={
                    "summary": published.summary(),
                    "files_written": len(published.written),
                    "s3_requests": published.requests,
                    "release_date": published.release_date,
                },
            )
        metrics.add_metric(name="packages_processed", unit=MetricUnit.Count, value=new_count)
        if total is not None:
            metrics.add_metric(name="total_packages", unit=MetricUnit.Count, value=total)
        metrics.add_metric(name="operations_completed", unit=MetricUnit.Count, value=1)
        logger.info(body, extra={"duration_ms": round((time.monotonic() - started) * 1000)})
        return _response(200, body)
    except Exception as exc:  # the handler reports every failure as a 500, never raises
        message = str(exc) if isinstance(exc, DebrepoError) else f"{type(exc).__name__}: {exc}"
        logger.error(
            "run failed",
            extra={"error": message, "duration_ms": round((time.monotonic() - started) * 1000)},
            exc_info=not isinstance(exc, DebrepoError),
        )
        metrics.add_metric(name="operations_failed", unit=MetricUnit.Count, value=1)
        if notifier is not None:
            notifier.run_failed(operation, message)
        return _response(500, f"Error processing repository: {message}")
