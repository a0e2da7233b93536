"""scripts/common.sh reads the Terraform outputs into the settings the Lambda has."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

COMMON = PROJECT_ROOT / "scripts" / "common.sh"
OUTPUTS = {
    "table": "versions",
    "bucket": "bkt",
    "signing_key_secret_arn": "arn:secret",
    "topic_arn": "arn:topic",
    "region": "eu-west-1",
}


def _settings(tmp_path: Path, outputs: dict[str, str]) -> dict[str, str]:
    """The DEBREPO_* variables settings_from_terraform exports, with a terraform that
    knows only `outputs` (as a state applied by an earlier version would)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    cases = "".join(f"  {name}) printf %s '{value}' ;;\n" for name, value in outputs.items())
    (fake / "terraform").write_text(
        '#!/bin/sh\nfor last in "$@"; do :; done\ncase "$last" in\n'
        f"{cases}  *) echo 'Output not found' >&2; exit 1 ;;\nesac\n"
    )
    (fake / "terraform").chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DEBREPO_", "AWS_"))}
    environ["PATH"] = f"{fake}:{environ['PATH']}"
    shown = subprocess.run(
        [
            "bash",
            "-c",
            f'set -euo pipefail; script=test; . "{COMMON}"; settings_from_terraform state; '
            "env | grep -E '^(DEBREPO_|AWS_REGION=)' | sort",
        ],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("=", 1) for line in shown.stdout.splitlines())


@pytest.mark.parametrize(
    ("extra", "repo", "public_url"),
    [
        ({}, "s3://bkt", None),  # outputs of an earlier version: the defaults
        ({"s3_prefix": "", "public_url": ""}, "s3://bkt", None),
        (
            {"s3_prefix": "apt", "public_url": "https://apt.example.com"},
            "s3://bkt/apt",
            "https://apt.example.com",
        ),
    ],
)
def test_the_cli_publishes_where_and_as_the_lambda_does(tmp_path, extra, repo, public_url):
    settings = _settings(tmp_path, {**OUTPUTS, **extra})
    assert settings["DEBREPO_STORE"] == "dynamodb://versions"
    assert settings["DEBREPO_REPO"] == repo
    assert settings["DEBREPO_STAGING"] == "s3://bkt"  # staging/ stays at the root
    assert settings.get("DEBREPO_PUBLIC_URL") == public_url
    assert settings["AWS_REGION"] == "eu-west-1"
