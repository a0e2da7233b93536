"""The file-system floor of scenario (a): only what any tool must do per package.

For every generated .deb of a folder (default: the 10,000 of `bench/run.py`): read it,
create its pool folder, write a temporary copy there and rename it into place, on as
many processes as there are cores. No parsing, hashing, store or index. Whatever a
tool adds to this, it cannot publish N packages into a pool laid out this way faster.

    python bench/fs_floor.py [--debs bench/work/debs/n10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def place(job: tuple[Path, Path, list[str]]) -> None:
    source, pool, names = job
    for name in names:
        package = name.split("_", 1)[0]
        data = (source / name).read_bytes()
        folder = pool / package[0] / package
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{name}.tmp"
        with temp.open("xb") as handle:
            handle.write(data)
        temp.rename(folder / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debs", type=Path, default=ROOT / "work" / "debs" / "n10000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    names = sorted(p.name for p in args.debs.iterdir() if p.name.endswith(".deb"))
    if not names:
        print(f"{args.debs}: no .deb files (run `python bench/run.py` first)", file=sys.stderr)
        return 1
    workers = os.cpu_count() or 1
    for run in range(1, args.runs + 1):
        target = Path(tempfile.mkdtemp(prefix="fs-floor-", dir=ROOT / "work"))
        pool = target / "pool" / "main"
        os.sync()  # start from clean page cache writeback, as a measured command does
        jobs = [(args.debs, pool, names[k::workers]) for k in range(workers)]
        started = time.perf_counter()
        with Pool(workers) as processes:
            processes.map(place, jobs)
        elapsed = time.perf_counter() - started
        print(f"run {run}: {len(names)} packages placed in {elapsed:.2f} s on {workers} processes")
        shutil.rmtree(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
