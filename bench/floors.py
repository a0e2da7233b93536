"""What the floor scripts (add_one_floor.py, ingest_floor.py) share: the last step of
any publish, and the names it uses. Imports only what that step needs, since the
floors time their child interpreter from its start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ALGORITHMS = ("md5", "sha1", "sha256", "sha512")
BINARY = "dists/stable/main/binary-amd64"


def sync_and_sign(
    repo: Path, indices: Mapping[str, bytes], sums: Mapping[tuple[str, str], str], key: Path
) -> None:
    """`syncfs` once, as debrepo does before its Release, then write `Release` listing
    `indices` (with their checksums `sums[index, algorithm]`) and sign it twice with
    `key`, Release.gpg first and InRelease last."""
    import ctypes

    import pysequoia as sq

    fd = os.open(repo, os.O_RDONLY)
    ctypes.CDLL(None, use_errno=True).syncfs(fd)
    os.close(fd)

    lines = ["Origin: Bench", "Suite: stable", "Codename: stable", "Components: main"]
    for field, algorithm in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        lines.append(f"{field}:")
        for index, content in indices.items():
            lines.append(f" {sums[index, algorithm]} {len(content)} main/binary-amd64/{index}")
    lines.append("SHA512:")
    for index, content in indices.items():
        lines.append(f" {sums[index, 'sha512']} {len(content)} main/binary-amd64/{index}")
    release = ("\n".join(lines) + "\n").encode()
    signer = sq.Tsk.from_bytes(key.read_bytes()).signer()
    dists = repo / "dists" / "stable"
    for file_name, content in (
        ("Release.gpg", bytes(sq.sign(signer, release, mode=sq.SignatureMode.DETACHED))),
        ("Release", release),
        ("InRelease", bytes(sq.sign(signer, release, mode=sq.SignatureMode.CLEAR))),
    ):
        temp = dists / f".{file_name}.tmp"
        temp.write_bytes(content)
        temp.rename(dists / file_name)
