"""External Debian tools the tests drive. A missing tool fails the test, it never skips it:
`make test` (scripts/install-test-deps.sh) installs them."""

from __future__ import annotations

import shutil

import pytest


def require_tool(name: str) -> str:
    """The path of `name`, or a test failure that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed; run scripts/install-test-deps.sh (or `make test`), "
            "which installs apt, gnupg, dpkg-dev, apt-utils and lintian",
            pytrace=False,
        )
    return path
