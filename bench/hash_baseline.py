"""Baseline for scenario (d): MD5, SHA1, SHA256 and SHA512 of one file, in one pass.

Reads the file in 1 MiB chunks and feeds each chunk to the four hashes one after the
other, on one thread. This is the least work any tool that records those four
checksums of a .deb must do; `bench/run.py` times it next to `debrepo add`.

    python bench/hash_baseline.py FILE
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

CHUNK = 1 << 20


def hash_file(path: Path) -> dict[str, str]:
    hashes = (
        hashlib.md5(usedforsecurity=False),
        hashlib.sha1(usedforsecurity=False),
        hashlib.sha256(),
        hashlib.sha512(),
    )
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            for digest in hashes:
                digest.update(chunk)
    return {digest.name: digest.hexdigest() for digest in hashes}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: hash_baseline.py FILE", file=sys.stderr)
        return 2
    for name, value in hash_file(Path(argv[0])).items():
        print(f"{name} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
