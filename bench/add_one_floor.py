"""The floor of scenario (c): the least work any tool publishing debrepo's output must
do to add one package to a repository of N, however incremental it is.

A child interpreter, timed from its start to its exit, does only this, with the tools
debrepo itself uses (hashlib, sqlite3, zlib, lzma, pysequoia):

- read the new .deb and compute its MD5, SHA1, SHA256 and SHA512;
- insert one row into a copy of the home's SQLite store (WAL, synchronous=NORMAL, as
  debrepo opens it) and commit;
- copy the .deb into its pool folder (temporary file, rename);
- read the published `Packages` and insert the new stanza mid-file (finding the place
  is not counted); CRC32 of the new `Packages` (the gzip trailer) and its four
  checksums, while a second thread compresses one ~200 KB piece around the new stanza
  with debrepo's gzip level and xz options, splices it into the previous `Packages.gz`
  and `.xz` (the spliced bytes are not valid: only their cost counts) and computes
  their four checksums;
- write the three indices (temporary file, rename) and their by-hash links (SHA256,
  SHA512), then `syncfs` once, as debrepo does before its Release;
- write `Release` and sign `InRelease` and `Release.gpg` with the home's key.

Nothing else: no validation, no rendering of other stanzas, no publisher state, no
index.html. The home (default: the 10,000-package debrepo home `bench/run.py` leaves)
is copied before each run, outside the timing.

    python bench/add_one_floor.py [--home bench/work/runs/debrepo] [--runs 15]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from floors import ALGORITHMS, BINARY, sync_and_sign

# The child imports only what its work needs: argparse and the rest are main()'s.

ROOT = Path(__file__).resolve().parent


def child(scratch: Path, deb: Path) -> None:
    """The measured work (see the module's docstring)."""
    import hashlib
    import lzma
    import sqlite3
    import threading
    import zlib

    data = deb.read_bytes()
    digests = {name: hashlib.new(name, data).hexdigest() for name in ALGORITHMS}
    name, version = deb.name.split("_")[:2]
    stanza = (
        f"Package: {name}\nArchitecture: amd64\nVersion: {version}\nPriority: optional\n"
        f"Section: misc\nMaintainer: Bench <bench@example.org>\nInstalled-Size: 12\n"
        f"Filename: pool/main/{name[0]}/{name}/{deb.name}\nSize: {len(data)}\n"
        f"MD5sum: {digests['md5']}\nSHA1: {digests['sha1']}\nSHA256: {digests['sha256']}\n"
        f"SHA512: {digests['sha512']}\nDescription: one more\n\n"
    ).encode()

    db = sqlite3.connect(scratch / "metadata.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    with db:
        db.execute("INSERT INTO floor (id, data) VALUES (?, ?)", (f"{name}#{version}", stanza))
    db.close()

    folder = scratch / "repo" / "pool" / "main" / name[0] / name
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{deb.name}.tmp"
    temp.write_bytes(data)
    temp.rename(folder / deb.name)

    binary = scratch / "repo" / BINARY
    packages = (binary / "Packages").read_bytes()
    middle = packages.find(b"\n\nPackage: ", len(packages) // 2) + 2
    packages = packages[:middle] + stanza + packages[middle:]
    indices = {"Packages": packages}
    sums: dict[tuple[str, str], str] = {}

    def hash_all(index: str) -> None:
        for algorithm in ALGORITHMS:
            sums[index, algorithm] = hashlib.new(algorithm, indices[index]).hexdigest()

    def compress_and_hash() -> None:
        """The other core's share: the changed piece compressed, spliced and hashed."""
        piece = packages[max(0, middle - 100_000) : middle + 100_000]
        deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        gz_piece = deflate.compress(piece) + deflate.flush(zlib.Z_SYNC_FLUSH)
        xz_options = {"preset": 0, "nice_len": 16, "depth": 1, "dict_size": 1 << 20}
        xz_piece = lzma.compress(
            piece, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, **xz_options}]
        )
        for suffix, new_piece in ((".gz", gz_piece), (".xz", xz_piece)):
            before = (binary / f"Packages{suffix}").read_bytes()
            cut = len(before) // 2
            indices[f"Packages{suffix}"] = before[:cut] + new_piece + before[cut + len(new_piece) :]
            hash_all(f"Packages{suffix}")

    helper = threading.Thread(target=compress_and_hash)
    helper.start()
    zlib.crc32(packages)  # the gzip trailer's
    hash_all("Packages")
    helper.join()

    for index, content in indices.items():
        temp = binary / f".{index}.tmp"
        temp.write_bytes(content)
        temp.rename(binary / index)
        for algorithm, folder_name in (("sha256", "SHA256"), ("sha512", "SHA512")):
            by_hash = binary / "by-hash" / folder_name
            by_hash.mkdir(parents=True, exist_ok=True)
            os.link(binary / index, by_hash / f".{sums[index, algorithm]}.tmp")
            os.replace(by_hash / f".{sums[index, algorithm]}.tmp", by_hash / sums[index, algorithm])
    sync_and_sign(scratch / "repo", indices, sums, scratch / "keys" / "signing-key.asc")


def prepare(home: Path, into: Path) -> Path:
    """A copy of what the child reads and writes, with a table for its one row."""
    import shutil
    import sqlite3

    scratch = into / "home"
    (scratch / "repo").mkdir(parents=True)
    shutil.copytree(home / "repo" / "dists", scratch / "repo" / "dists")
    shutil.copytree(home / "keys", scratch / "keys")
    shutil.copy2(home / "metadata.db", scratch / "metadata.db")
    db = sqlite3.connect(scratch / "metadata.db")
    db.execute("PRAGMA journal_mode=WAL")
    with db:
        db.execute("CREATE TABLE floor (id TEXT PRIMARY KEY, data BLOB)")
        rows = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    db.close()
    assert rows
    return scratch


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    import argparse
    import statistics
    import subprocess
    import tempfile
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=ROOT / "work" / "runs" / "debrepo")
    parser.add_argument("--deb", type=Path, help="the package to add [first of debs/extra]")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if not (args.home / "repo" / BINARY / "Packages").is_file():
        print(f"{args.home}: no published home (run `python bench/run.py` first)", file=sys.stderr)
        return 1
    deb = args.deb or min((ROOT / "work" / "debs" / "extra").glob("*.deb"))
    bare: list[float] = []
    floor: list[float] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="add-one-floor-", dir=ROOT / "work") as temp:
            scratch = prepare(args.home, Path(temp))
            os.sync()
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            command = [sys.executable, __file__, "--child", str(scratch), str(deb)]
            subprocess.run(command, check=True)
            floor.append(time.perf_counter() - started)
    packages = (args.home / "repo" / BINARY / "Packages").read_bytes().count(b"\nPackage: ") + 1
    print(
        f"{packages} packages, {args.runs} runs: add-one floor median "
        f"{statistics.median(floor) * 1000:.0f} ms (min {min(floor) * 1000:.0f}); "
        f"the bare interpreter ({sys.executable} -c pass) median "
        f"{statistics.median(bare) * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
