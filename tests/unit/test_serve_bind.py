"""`debrepo serve` started from the command line on the IPv6 loopback."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import CONFIG_DIR, deb_bytes

_SERVING = re.compile(r"serving (?P<root>.+) at (?P<url>http://\S+/) ")


def debrepo(home: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "debrepo",
        "--home",
        str(home),
        "--config-dir",
        str(CONFIG_DIR),
        *args,
    ]


def test_serves_on_the_ipv6_loopback(tmp_path):
    home = tmp_path / "home"
    deb = tmp_path / "alpha_1.0_amd64.deb"
    deb.write_bytes(deb_bytes("alpha", "1.0"))
    subprocess.run(debrepo(home, "add", str(deb)), check=True, capture_output=True)
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            debrepo(home, "serve", "--bind", "::1", "--port", "0"),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := _SERVING.search(log.read_text(errors="replace"))):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert found["url"].startswith("http://[::1]:")
        with urllib.request.urlopen(found["url"] + "dists/stable/InRelease", timeout=10) as got:
            served = got.read()
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert served == (home / "repo/dists/stable/InRelease").read_bytes()
