"""Fixtures of the property tests: one signing key per test module (key generation is
the slow part of a publish, and every example of a module may share the key)."""

from __future__ import annotations

import pytest

from debrepo.signing.openpgp import OpenPGPSigner, generate_secret_key


@pytest.fixture(scope="module")
def signer() -> OpenPGPSigner:
    secret = generate_secret_key("Property Test Signing Key <property-tests@example.com>")
    return OpenPGPSigner(secret, source="property test key")
