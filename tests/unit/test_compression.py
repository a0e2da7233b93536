"""Compressed indices made of separately compressed pieces (core/compression.py).

The output is checked by the reference decoders (Python's gzip and lzma modules and
the `gzip` and `xz` programs), not by reading it back with the code that wrote it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import random
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from debrepo.core.compression import (
    Compressed,
    reusable_pieces,
    start_compression,
)
from tests.tools import require_tool

SUFFIXES = (".gz", ".xz")


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def _stanzas(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    return [
        (
            f"Package: pkg{i:05d}\nVersion: 1.{rng.randrange(100)}\n"
            f"SHA256: {rng.randbytes(32).hex()}\nDescription: package {i}\n"
        ).encode()
        for i in range(count)
    ]


def _pieces(stanzas: Sequence[bytes], size: int) -> list[bytes]:
    """Stanzas in groups of `size`, separated by blank lines, as indexes.py cuts them."""
    groups = [stanzas[i : i + size] for i in range(0, len(stanzas), size)]
    return [
        b"\n".join(group) + (b"\n" if n < len(groups) - 1 else b"")
        for n, group in enumerate(groups)
    ]


def _compress(
    pieces: Sequence[bytes], suffix: str, pool: ThreadPoolExecutor, reusable: dict | None = None
) -> Compressed:
    return start_compression(pieces, b"".join(pieces), suffix, reusable or {}, pool)()


def _decompress(suffix: str, data: bytes) -> bytes:
    return gzip.decompress(data) if suffix == ".gz" else lzma.decompress(data)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("count, size", [(0, 1), (1, 1), (7, 3), (600, 50)])
def test_pieces_decompress_to_the_whole_file(
    suffix: str, count: int, size: int, pool: ThreadPoolExecutor
) -> None:
    pieces = _pieces(_stanzas(count, seed=count), size)
    packed = _compress(pieces, suffix, pool)
    assert _decompress(suffix, packed.data) == b"".join(pieces)
    assert [p.key for p in packed.pieces] == [hashlib.sha256(p).hexdigest() for p in pieces]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_reference_tools_accept_the_files(
    suffix: str, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    pieces = _pieces(_stanzas(400, seed=1), 60)
    packed = _compress(pieces, suffix, pool)
    path = tmp_path / f"Packages{suffix}"
    path.write_bytes(packed.data)
    tool = require_tool("gzip" if suffix == ".gz" else "xz")
    tested = subprocess.run([tool, "-t", str(path)], capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stderr
    out = subprocess.run([tool, "-dc", str(path)], capture_output=True, check=True).stdout
    assert out == b"".join(pieces)
    if suffix == ".xz":
        listed = subprocess.run(
            [tool, "--robot", "--list", str(path)], capture_output=True, text=True, check=True
        ).stdout
        totals = next(line.split("\t") for line in listed.splitlines() if line.startswith("totals"))
        streams, blocks = int(totals[1]), int(totals[2])
        # One stream of one block per piece: what any xz decoder reads, no concatenation.
        assert (streams, blocks) == (1, len(pieces))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_unchanged_pieces_are_taken_as_they_were(suffix: str, pool: ThreadPoolExecutor) -> None:
    stanzas = _stanzas(300, seed=2)
    before = _compress(_pieces(stanzas, 50), suffix, pool)
    reusable = reusable_pieces(before.data, before.pieces, suffix)
    assert len(reusable) == 6

    # One stanza changes in the fourth piece: that piece alone is compressed again.
    stanzas[170] = stanzas[170].replace(b"Description: package", b"Description: changed")
    after_pieces = _pieces(stanzas, 50)
    marked = {key: (b"REUSED" + key.encode(), len(key) + 6) for key in reusable}
    spliced = _compress(after_pieces, suffix, pool, marked)
    fresh = [p for p in spliced.pieces if not spliced.data[p.offset :].startswith(b"REUSED")]
    assert [spliced.pieces.index(p) for p in fresh] == [3]

    # And the result is byte for byte what compressing from nothing gives.
    incremental = _compress(after_pieces, suffix, pool, reusable)
    assert incremental == _compress(after_pieces, suffix, pool)
    assert _decompress(suffix, incremental.data) == b"".join(after_pieces)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_layout_that_does_not_fit_the_bytes_offers_nothing(
    suffix: str, pool: ThreadPoolExecutor
) -> None:
    packed = _compress(_pieces(_stanzas(20, seed=3), 5), suffix, pool)
    assert len(reusable_pieces(packed.data, packed.pieces, suffix)) == 4
    beyond = [p._replace(length=p.length + len(packed.data)) for p in packed.pieces]
    assert reusable_pieces(packed.data, beyond, suffix) == {}
    bad_padding = [p._replace(unpadded=p.length - 4) for p in packed.pieces]
    assert reusable_pieces(packed.data, bad_padding, suffix) == {}
    # A layout that does not tile this file: of another file, shifted, or short of one.
    other = _compress(_pieces(_stanzas(21, seed=3), 5), suffix, pool)
    assert reusable_pieces(packed.data, other.pieces, suffix) == {}
    shifted = [p._replace(offset=p.offset + 1) for p in packed.pieces]
    assert reusable_pieces(packed.data, shifted, suffix) == {}
    assert reusable_pieces(packed.data, packed.pieces[:-1], suffix) == {}


def test_layout_survives_json(pool: ThreadPoolExecutor) -> None:
    """The publisher keeps layouts in its JSON state; read back, they still fit."""
    packed = _compress(_pieces(_stanzas(30, seed=4), 7), ".xz", pool)
    from debrepo.core.compression import Piece

    restored = [Piece(*p) for p in json.loads(json.dumps(packed.pieces))]
    assert reusable_pieces(packed.data, restored, ".xz") == reusable_pieces(
        packed.data, packed.pieces, ".xz"
    )
