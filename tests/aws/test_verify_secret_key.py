"""verify with the signing key in Secrets Manager, as the AWS deployment keeps it."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from debrepo import app
from debrepo.app import Workspace
from debrepo.core.layout import delivery_for
from debrepo.signing.openpgp import OpenPGPSigner, generate_secret_key
from tests.aws.aws_proxy import AwsProxy
from tests.aws.conftest import REGION
from tests.conftest import FIXED_NOW, settings_for

USER_ID = "Test Signing Key <test@example.com>"


@pytest.fixture
def ws(tmp_path: Path, unique_name: str, moto_endpoint: str) -> Workspace:
    secrets = boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)
    secret = secrets.create_secret(
        Name=f"{unique_name}/signing-key",
        SecretString=generate_secret_key(USER_ID).decode("ascii"),
    )["ARN"]
    return Workspace(settings_for(tmp_path / "home", key_secret_id=secret))


def test_a_secret_that_cannot_be_read_is_a_warning_and_the_rest_is_checked(ws, make_deb, tmp_path):
    app.add_packages(ws, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    missing = f"{ws.settings.key_secret_id}-gone"
    auditor = Workspace(settings_for(ws.settings.home, key_secret_id=missing))
    ws.repo.put("dists/stable/main/binary-amd64/Packages", b"tampered\n", delivery_for("Packages"))

    report = app.verify(auditor, now=FIXED_NOW)

    assert report.warnings[0].startswith(
        "the published key was not compared with the signing key: "
    ), report.warnings
    assert missing in report.warnings[0]
    assert any("binary-amd64/Packages" in p for p in report.problems), report.problems


def test_the_published_key_is_compared_with_the_key_in_secrets_manager(ws, make_deb):
    app.add_packages(ws, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    assert not ws.settings.key_file.exists()  # no key file to fall back on
    assert app.verify(ws, now=FIXED_NOW).ok

    other = OpenPGPSigner(generate_secret_key(USER_ID), source="another key")
    keyring = f"{ws.settings.keyring_name}.gpg"
    ws.repo.put(keyring, other.public_key_binary(), delivery_for(keyring))

    report = app.verify(ws, now=FIXED_NOW)
    assert not report.ok
    assert any(
        p.startswith(f"{keyring} is not the public part of the signing key")
        for p in report.problems
    ), report.problems


@pytest.mark.parametrize("damage", ["not a key", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"])
def test_a_secret_that_holds_no_usable_key_is_a_problem(ws, make_deb, moto_endpoint, damage):
    # Fetched, so not a matter of permission: the next publish would fail on it.
    app.add_packages(ws, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    secrets = boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)
    secrets.put_secret_value(SecretId=ws.settings.key_secret_id, SecretString=damage)

    report = app.verify(Workspace(ws.settings), now=FIXED_NOW)

    assert not report.ok
    assert report.problems[0].startswith("the signing key cannot be loaded: "), report.problems
    assert not any(w.startswith("the published key was not compared") for w in report.warnings)


@pytest.mark.parametrize(
    ("code", "is_problem"),
    [
        ("DecryptionFailure", False),  # this role lacks kms:Decrypt: the secret may be fine
        ("ExpiredTokenException", False),  # this caller's session
        ("UnrecognizedClientException", False),
        ("InvalidRequestException", True),  # e.g. marked for deletion: publishing fails too
    ],
)
def test_a_secret_refused_is_a_problem_only_when_the_secret_is_at_fault(
    ws, make_deb, moto_endpoint, monkeypatch, code, is_problem
):
    app.add_packages(ws, [make_deb("alpha", "1.0")], now=FIXED_NOW)
    proxy = AwsProxy(moto_endpoint)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.fail("secretsmanager", code, operation="GetSecretValue")

        report = app.verify(Workspace(ws.settings), now=FIXED_NOW)
    finally:
        proxy.close()

    assert report.ok is not is_problem, (report.problems, report.warnings)
    findings = report.problems if is_problem else report.warnings
    assert code in findings[0] and ws.settings.key_secret_id in findings[0], findings


def test_key_commands_name_the_secret_that_signs_not_a_key_file(ws, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from debrepo.cli import cli

    secret = ws.settings.key_secret_id
    assert secret is not None
    monkeypatch.setenv("DEBREPO_KEY_SECRET_ID", secret)
    home, other_file = ws.settings.home, tmp_path / "k2.asc"
    signing = ws.signer.fingerprint.upper()

    shown = CliRunner().invoke(cli, ["--home", str(home), "key", "show"])
    assert shown.exit_code == 0, shown.output
    assert shown.output == f"{signing}  secret {secret}\n"

    made = CliRunner().invoke(
        cli, ["--home", str(home), "--key-file", str(other_file), "key", "generate"]
    )
    assert made.exit_code == 0, made.output
    assert f"the repository signs with the key in secret {secret}, not this file" in made.output
    assert "put-secret-value" in made.output and "run `debrepo rebuild` to publish" not in (
        made.output
    )
    # Still the secret's key that signs and that `key show` names.
    again = CliRunner().invoke(
        cli, ["--home", str(home), "--key-file", str(other_file), "key", "show"]
    )
    assert again.output == f"{signing}  secret {secret}\n"
