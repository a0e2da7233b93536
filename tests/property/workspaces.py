"""Per-example workspaces on the embedded default (SQLite store, local folders).

Hypothesis runs many examples inside one test function, so function-scoped fixtures
would be shared between them; each example builds its own workspace here instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from debrepo.app import Workspace
from debrepo.signing.openpgp import OpenPGPSigner
from tests.conftest import CONFIG_DIR, settings_for


@contextmanager
def workspace_in(
    directory: Path,
    signer: OpenPGPSigner | None = None,
    *,
    with_package_configs: bool = False,
    config_dir: Path | None = None,
    **settings: Any,
) -> Iterator[Workspace]:
    """A workspace under `directory` that signs with `signer` (if it needs to sign).

    Without `with_package_configs` no package is defined in config/packages/, so every
    package is treated alike, whatever its name; with it, the project's definitions are
    read, or those in `config_dir` if given.
    """
    config_dir = config_dir or CONFIG_DIR
    if not with_package_configs:
        config_dir = directory / "no-package-configs"
        config_dir.mkdir(exist_ok=True)
    ws = Workspace(settings_for(directory / "home", config_dir=str(config_dir), **settings))
    if signer is not None:
        ws.signer = signer
    try:
        yield ws
    finally:
        store = ws.__dict__.get("store")
        if store is not None and hasattr(store, "close"):
            store.close()
