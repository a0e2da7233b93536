"""scripts/common.sh reads the Terraform outputs into the settings the Lambda has.

Each test runs against a stand-in for `terraform output -raw NAME` that answers as
Terraform does, and against Terraform itself (on a local state file) where installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.tools import require_tool

SCRIPTS = PROJECT_ROOT / "scripts"
COMMON = SCRIPTS / "common.sh"
OUTPUTS = {
    "table": "versions",
    "bucket": "bkt",
    "signing_key_secret_arn": "arn:secret",
    "topic_arn": "arn:topic",
    "region": "eu-west-1",
}
# What `terraform output -raw NAME` prints on stdout, exiting 0, when the state has no
# outputs at all (nothing applied yet).
NO_OUTPUTS_WARNING = """
Warning: No outputs found

The state file either has no outputs defined, or all the defined outputs
are empty. Please define an output in your configuration with the `output`
keyword and run `terraform refresh` for it to become available. If you are
using interpolation, please verify the interpolated value is not empty. You
can use the `terraform console` command to assist.
"""

# Makes the Terraform state in a folder hold `outputs` (none: nothing applied there)
# and returns the environment the scripts run with.
Terraform = Callable[[Path, dict[str, str]], dict[str, str]]


def _environment(path: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DEBREPO_", "AWS_"))}
    return {**environ, "PATH": path, "CHECKPOINT_DISABLE": "1"}


@pytest.fixture(params=["stand-in", "terraform"])
def terraform(request: pytest.FixtureRequest, tmp_path: Path) -> Terraform:
    if request.param == "terraform":
        require_tool("terraform")  # a failure, not a skip, where it is missing

        def applied(state: Path, outputs: dict[str, str]) -> dict[str, str]:
            state.mkdir(exist_ok=True)
            if outputs:
                (state / "terraform.tfstate").write_text(
                    json.dumps(
                        {
                            "version": 4,
                            "terraform_version": "1.0.0",
                            "serial": 1,
                            "lineage": "test",
                            "outputs": {
                                name: {"value": value, "type": "string"}
                                for name, value in outputs.items()
                            },
                            "resources": [],
                        }
                    )
                )
            return _environment(os.environ["PATH"])

        return applied

    def faked(state: Path, outputs: dict[str, str]) -> dict[str, str]:
        state.mkdir(exist_ok=True)
        fake = tmp_path / "bin"
        fake.mkdir()
        if outputs:
            cases = "".join(
                f"  {name}) printf %s '{value}' ;;\n" for name, value in outputs.items()
            )
            missing = 'printf \'Error: Output "%s" not found\\n\' "$last" >&2; exit 1'
        else:
            cases, missing = "", f"cat <<'EOF'\n{NO_OUTPUTS_WARNING}EOF\n"
        (fake / "terraform").write_text(
            '#!/bin/sh\nfor last in "$@"; do :; done\n'
            f'case "$last" in\n{cases}  *) {missing} ;;\nesac\n'
        )
        (fake / "terraform").chmod(0o755)
        return _environment(f"{fake}:{os.environ['PATH']}")

    return faked


def _settings_from_terraform(
    tmp_path: Path, terraform: Terraform, outputs: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """settings_from_terraform on a state with `outputs`, printing what it exports."""
    return subprocess.run(
        [
            "bash",
            "-c",
            f'set -euo pipefail; script=test; . "{COMMON}"; settings_from_terraform state; '
            "env | grep -E '^(DEBREPO_|AWS_REGION=)' | sort",
        ],
        cwd=tmp_path,
        env=terraform(tmp_path / "state", outputs),
        capture_output=True,
        text=True,
        check=False,
    )


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
def test_the_cli_publishes_where_and_as_the_lambda_does(
    tmp_path, terraform, extra, repo, public_url
):
    shown = _settings_from_terraform(tmp_path, terraform, {**OUTPUTS, **extra})
    assert shown.returncode == 0, shown.stderr
    settings = dict(line.split("=", 1) for line in shown.stdout.splitlines())
    for default in (
        "DEBREPO_S3_ACL_MODE",
        "DEBREPO_KEY_NAME",
        "DEBREPO_CLOUDFRONT_DISTRIBUTION_ID",
    ):
        assert default not in settings  # outputs absent or empty: the settings' defaults
    assert settings["DEBREPO_STORE"] == "dynamodb://versions"
    assert settings["DEBREPO_REPO"] == repo
    assert settings["DEBREPO_STAGING"] == "s3://bkt"  # staging/ stays at the root
    assert settings.get("DEBREPO_PUBLIC_URL") == public_url
    assert settings["AWS_REGION"] == "eu-west-1"


def test_the_cli_writes_objects_names_the_keyring_and_invalidates_as_the_lambda_does(
    tmp_path, terraform
):
    outputs = {
        **OUTPUTS,
        "acl_mode": "public-read",
        "key_name": "acme",
        "cloudfront_distribution_id": "E2EXAMPLE",
    }
    shown = _settings_from_terraform(tmp_path, terraform, outputs)
    assert shown.returncode == 0, shown.stderr
    settings = dict(line.split("=", 1) for line in shown.stdout.splitlines())
    assert settings["DEBREPO_S3_ACL_MODE"] == "public-read"
    assert settings["DEBREPO_KEY_NAME"] == "acme"
    assert settings["DEBREPO_CLOUDFRONT_DISTRIBUTION_ID"] == "E2EXAMPLE"


# The Lambda's environment in main.tf -> the setting the scripts export for it.
LAMBDA_VARIABLE_SETTINGS = {
    "S3_BUCKET": "DEBREPO_STAGING",
    "S3_PREFIX": "DEBREPO_REPO",
    "DYNAMODB_TABLE": "DEBREPO_STORE",
    "SNS_TOPIC_ARN": "DEBREPO_SNS_TOPIC_ARN",
    "SIGNING_KEY_SECRET_ID": "DEBREPO_KEY_SECRET_ID",
    "S3_ACL_MODE": "DEBREPO_S3_ACL_MODE",
    "PUBLIC_URL": "DEBREPO_PUBLIC_URL",
    "CLOUDFRONT_DISTRIBUTION_ID": "DEBREPO_CLOUDFRONT_DISTRIBUTION_ID",
    "DEBREPO_KEY_NAME": "DEBREPO_KEY_NAME",
}


def test_every_setting_of_the_lambda_reaches_the_scripts():
    """A variable given to the function but not to the CLI makes the build script publish
    otherwise than the scheduled runs (private objects, another keyring name)."""
    import re

    main = (PROJECT_ROOT / "infra/terraform/main.tf").read_text(encoding="utf-8")
    block = re.search(r"environment \{\s*variables = \{(.*?)\n    \}", main, re.S)
    assert block is not None
    given = set(re.findall(r"^\s*([A-Z0-9_]+)\s*=", block.group(1), re.M))
    given = {name for name in given if not name.startswith("POWERTOOLS_")}
    assert given == set(LAMBDA_VARIABLE_SETTINGS)
    common = COMMON.read_text(encoding="utf-8")
    for setting in LAMBDA_VARIABLE_SETTINGS.values():
        assert f"export {setting}=" in common, setting


@pytest.mark.parametrize("outputs", [{}, {**OUTPUTS, "region": ""}])
def test_a_missing_output_is_named_with_what_to_do(tmp_path, terraform, outputs):
    shown = _settings_from_terraform(tmp_path, terraform, outputs)
    assert shown.returncode == 1
    name = "table" if not outputs else "region"
    assert shown.stderr.splitlines()[-1] == (
        f"test: no Terraform output \"{name}\" in state: run 'terraform -chdir=state apply' first"
    )
    assert shown.stdout == ""


@pytest.mark.parametrize(
    ("script", "arguments"),
    [
        ("build-kiro-repo", ["--version", "1.0.0"]),
        ("migrate-dynamodb-schema", ["--env", "dev", "--dry-run"]),
    ],
)
def test_the_scripts_stop_with_one_line_before_terraform_apply(
    tmp_path, terraform, script, arguments
):
    environ = terraform(tmp_path / "infra", {})
    ended = subprocess.run(
        [str(SCRIPTS / f"{script}.sh"), "--terraform-dir", "infra", *arguments],
        cwd=tmp_path,
        env={**environ, "DEBREPO": str(Path(sys.executable).with_name("debrepo"))},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ended.returncode == 1
    assert ended.stderr == (
        f'{script}: no Terraform output "table" in infra: '
        "run 'terraform -chdir=infra apply' first\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) in (["infra"], ["bin", "infra"])
