"""The floor of scenario (a) with the libraries debrepo is built on: the least work a
tool must do to publish N packages from nothing, reading each control file with
tarfile and python-debian, as debrepo does.

A child interpreter, timed from its start to its exit, does only this:

- on as many processes as there are cores, for each .deb: read it whole, compute its
  MD5, SHA1, SHA256 and SHA512, find the control member from the ar headers (no
  checks), decompress it, find `./control` with tarfile, parse it with
  `debian.deb822.Deb822`, create its pool folder, write a temporary copy there and
  rename it into place; hand the fields and checksums back to the parent;
- insert one row per package into a new SQLite store (WAL, synchronous=NORMAL, one
  transaction), as debrepo opens it;
- join the stanzas into `Packages` (fields as read, in file order: no sorting, no
  overrides), compress it with debrepo's gzip level and xz options on two threads and
  compute the four checksums of the three files;
- write them, `syncfs` once, write `Release` and sign `InRelease` and `Release.gpg`
  with pysequoia.

Nothing else: no validation of names, versions or fields, no duplicate checks, no
by-hash copies, no index.html, no convenience copy, no publisher state. Whatever
debrepo adds to this is its own overhead; whatever this takes, a tool reading control
files with these libraries cannot go under.

    python bench/ingest_floor.py [--debs bench/work/debs/n10000] [--runs 3] [--vs-debrepo]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from floors import ALGORITHMS, BINARY, sync_and_sign

ROOT = Path(__file__).resolve().parent

_pool: Path | None = None


def _start_reader(pool: Path) -> None:
    global _pool  # one per reader process
    _pool = pool


def read_one(path: str) -> tuple[str, list[tuple[str, str]], int, dict[str, str]]:
    """One package: checksums, control fields through tarfile and deb822, pool copy."""
    import hashlib
    import io
    import lzma
    import tarfile
    import zlib

    from debian import deb822

    assert _pool is not None
    data = Path(path).read_bytes()
    digests = {name: hashlib.new(name, data).hexdigest() for name in ALGORITHMS}
    offset = 8  # past "!<arch>\n"
    while True:
        member = data[offset : offset + 16].rstrip(b" /").decode()
        size = int(data[offset + 48 : offset + 58])
        if member.startswith("control.tar"):
            packed = data[offset + 60 : offset + 60 + size]
            break
        offset += 60 + size + (size & 1)
    if member.endswith(".gz"):
        unpacked = zlib.decompress(packed, 16 + zlib.MAX_WBITS)
    elif member.endswith(".xz"):
        unpacked = lzma.decompress(packed)
    else:
        unpacked = packed
    raw = b""
    with tarfile.open(fileobj=io.BytesIO(unpacked), mode="r:") as archive:
        for entry in archive:
            if entry.name.removeprefix("./") == "control":
                extracted = archive.extractfile(entry)
                raw = extracted.read() if extracted is not None else b""
    paragraph = deb822.Deb822(raw.decode().split("\n"))
    fields = list(paragraph.items())
    name = paragraph["Package"]
    folder = _pool / name[0] / name
    folder.mkdir(parents=True, exist_ok=True)
    file_name = Path(path).name
    temp = folder / f".{file_name}.tmp"
    with temp.open("xb") as handle:
        handle.write(data)
    temp.rename(folder / file_name)
    return f"pool/main/{name[0]}/{name}/{file_name}", fields, len(data), digests


def child(debs: Path, home: Path) -> None:
    """The measured work (see the module's docstring); prints when each step ended."""
    import hashlib
    import json
    import lzma
    import sqlite3
    import threading
    import time
    import zlib
    from multiprocessing import Pool

    steps = {"imports": time.perf_counter()}
    paths = sorted(str(p) for p in debs.iterdir() if p.name.endswith(".deb"))
    repo = home / "repo"
    pool = repo / "pool" / "main"
    workers = os.cpu_count() or 1
    with Pool(workers, initializer=_start_reader, initargs=(pool,)) as readers:
        packages = readers.map(read_one, paths, chunksize=32)
    steps["read, hash and copy"] = time.perf_counter()

    db = sqlite3.connect(home / "metadata.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE floor (id TEXT PRIMARY KEY, data TEXT)")
    with db:
        db.executemany(
            "INSERT INTO floor (id, data) VALUES (?, ?)",
            (
                (f"{dict(fields)['Package']}#{dict(fields)['Version']}", json.dumps(fields))
                for _, fields, _, _ in packages
            ),
        )
    db.close()
    steps["store"] = time.perf_counter()

    stanzas = []
    for filename, fields, size, digests in packages:
        lines = [f"{key}: {value}" for key, value in fields]
        lines += [f"Filename: {filename}", f"Size: {size}", f"MD5sum: {digests['md5']}"]
        lines += [f"SHA1: {digests['sha1']}", f"SHA256: {digests['sha256']}"]
        lines += [f"SHA512: {digests['sha512']}"]
        stanzas.append("\n".join(lines) + "\n\n")
    plain = "".join(stanzas).encode()
    indices = {"Packages": plain}
    sums: dict[tuple[str, str], str] = {}

    def hash_all(index: str) -> None:
        for algorithm in ALGORITHMS:
            sums[index, algorithm] = hashlib.new(algorithm, indices[index]).hexdigest()

    def xz() -> None:
        options = {"preset": 0, "nice_len": 16, "depth": 1, "dict_size": 1 << 20}
        indices["Packages.xz"] = lzma.compress(
            plain, format=lzma.FORMAT_XZ, filters=[{"id": lzma.FILTER_LZMA2, **options}]
        )
        hash_all("Packages.xz")

    helper = threading.Thread(target=xz)
    helper.start()
    deflate = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    indices["Packages.gz"] = deflate.compress(plain) + deflate.flush()
    hash_all("Packages")
    hash_all("Packages.gz")
    helper.join()
    steps["render, compress and hash"] = time.perf_counter()

    binary = repo / BINARY
    binary.mkdir(parents=True)
    for index, content in indices.items():
        temp = binary / f".{index}.tmp"
        temp.write_bytes(content)
        temp.rename(binary / index)
    sync_and_sign(repo, indices, sums, home / "signing-key.asc")
    steps["write, sync and sign"] = time.perf_counter()
    print(json.dumps(steps))


def time_debrepo(debs: Path, key: Path, home: Path) -> float:
    """`debrepo add DEBS` into a new home holding `key`, as bench/run.py times it."""
    import shutil
    import subprocess
    import time

    (home / "keys").mkdir(parents=True, mode=0o700)
    shutil.copyfile(key, home / "keys" / "signing-key.asc")
    (home / "keys" / "signing-key.asc").chmod(0o600)
    script = Path(sys.executable).with_name("debrepo")
    launcher = [str(script)] if script.is_file() else [sys.executable, "-m", "debrepo"]
    os.sync()
    started = time.perf_counter()
    subprocess.run(
        [*launcher, "--home", str(home), "add", str(debs)], check=True, capture_output=True
    )
    return time.perf_counter() - started


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    import argparse
    import itertools
    import json
    import shutil
    import statistics
    import subprocess
    import tempfile
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debs", type=Path, default=ROOT / "work" / "debs" / "n10000")
    parser.add_argument(
        "--key",
        type=Path,
        default=ROOT / "work" / "debrepo-key" / "keys" / "signing-key.asc",
        help="the signing key (default: the one bench/run.py generates)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--vs-debrepo",
        action="store_true",
        help="also time `debrepo add` of the same folder after each run, in the same conditions",
    )
    args = parser.parse_args()
    count = sum(1 for p in args.debs.glob("*.deb"))
    if not count or not args.key.is_file():
        print(
            f"{args.debs} or {args.key} missing (run `python bench/run.py` first)", file=sys.stderr
        )
        return 1
    from run import Runner  # bench/run.py: its wait for the work folder's disk to go idle

    disk = Runner(ROOT / "work", dict(os.environ), ROOT / "work" / "bench.log", quiet_wait=0)
    times: list[float] = []
    debrepo_times: list[float] = []
    phases: dict[str, list[float]] = {}
    # Finished trees are moved aside and deleted at the end: deleting 10,000 folders
    # slows the file system's next allocations for a while (ext4 with discard).
    trash = Path(tempfile.mkdtemp(prefix="ingest-floor-", dir=ROOT / "work"))
    try:
        for run in range(1, args.runs + 1):
            home = trash / f"home-{run}"
            home.mkdir()
            shutil.copyfile(args.key, home / "signing-key.asc")
            os.sync()
            disk.wait_for_disk()
            started = time.perf_counter()
            command = [sys.executable, __file__, "--child", str(args.debs), str(home)]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            ended = time.perf_counter()
            times.append(ended - started)
            # The child's clock is the same monotonic clock as this process's.
            marks = {"start-up": started, **json.loads(done.stdout), "exit": ended}
            names = list(marks)
            for before, after in itertools.pairwise(names):
                phases.setdefault(after, []).append(marks[after] - marks[before])
            published = (home / "repo" / BINARY / "Packages").read_bytes().count(b"\n\n")
            if published != count:
                print(f"run {run}: Packages lists {published} packages, not {count}")
                return 1
            print(f"run {run}: {count} packages published in {times[-1]:.2f} s")
            if args.vs_debrepo:
                debrepo_times.append(time_debrepo(args.debs, args.key, trash / f"debrepo-{run}"))
                print(f"run {run}: debrepo add took {debrepo_times[-1]:.2f} s")
    finally:
        shutil.rmtree(trash)
    print(
        f"{count} packages, {args.runs} runs: floor of (a) median "
        f"{statistics.median(times):.2f} s (min {min(times):.2f}) on {os.cpu_count()} cores"
    )
    for phase, spans in phases.items():
        shown = "start-up and imports" if phase == "imports" else phase
        print(f"  {shown}: median {statistics.median(spans):.2f} s")
    if debrepo_times:
        print(
            f"debrepo add: median {statistics.median(debrepo_times):.2f} s "
            f"(min {min(debrepo_times):.2f}), "
            f"{statistics.median(debrepo_times) / statistics.median(times):.2f}x the floor"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
