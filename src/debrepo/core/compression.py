"""Compressed indices built from independently compressed pieces.

A `Packages` file is cut into pieces at stanza boundaries chosen by content (see
`core.indexes`), and each piece is compressed on its own: into a run of deflate blocks
ending on a byte boundary (gzip), or into one xz block. The pieces are then laid end to
end inside a single ordinary gzip member or a single xz stream, which every decoder
reads (pigz and multi-threaded xz write the same shapes).

Adding one package changes one piece. The publisher hands back the compressed pieces of
the index it published last, keyed by the SHA256 of their uncompressed bytes, and only
the changed piece is compressed again: the cost of republishing grows with the change,
not with the repository. The same pieces always compress to the same bytes, so a
rebuild from nothing gives exactly what the incremental path gives.

Python's `lzma` writes one block per stream, so the xz stream around the blocks
(header, index, footer: xz file format 1.0.4, sections 2.1 and 4) is written here; each
block, with its header and check, comes from liblzma unchanged.
"""

from __future__ import annotations

import hashlib
import lzma
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from typing import NamedTuple

GZIP_LEVEL = 6
# xz: LZMA2 in fast mode. On a 10,000-package index (mostly hex digests, which do not
# compress) preset 6 takes ~2.6 s and saves ~20 %; this takes ~0.3 s.
XZ_LZMA2_OPTIONS = {"preset": 0, "nice_len": 16, "depth": 1, "dict_size": 1 << 20}
XZ_CHECK = lzma.CHECK_CRC64

# RFC 1952 member header: deflate, no flags, mtime 0 (reproducible), XFL 0, OS Unix.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
# The empty final deflate block that ends the stream after the last piece.
_GZIP_FINAL = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS).flush()
_XZ_MAGIC = b"\xfd7zXZ\x00"
_XZ_FOOTER_MAGIC = b"YZ"
_XZ_FLAGS = bytes((0, XZ_CHECK))
_XZ_HEADER_SIZE = len(_XZ_MAGIC) + len(_XZ_FLAGS) + 4  # magic, stream flags, their CRC32


class Piece(NamedTuple):
    """Where one compressed piece lies in a compressed index."""

    key: str  # SHA256 of the piece's uncompressed bytes
    offset: int
    length: int
    unpadded: int  # xz: the block's size without padding, as the index lists it


class Compressed(NamedTuple):
    data: bytes
    pieces: tuple[Piece, ...]


# Compressed pieces of an earlier index (bytes, unpadded size), by the SHA256 of their
# uncompressed bytes.
Reusable = Mapping[str, tuple[bytes, int]]


def piece_key(piece: bytes) -> str:
    return hashlib.sha256(piece).hexdigest()


def deflate_piece(piece: bytes) -> bytes:
    """Raw deflate of `piece`, ending on a byte boundary and not final, so pieces laid
    end to end form one deflate stream (no piece refers back into another)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)


def xz_block(piece: bytes) -> tuple[bytes, int]:
    """One xz block (header, LZMA2 data, padding, check) holding `piece`, and its
    unpadded size (without the padding), which the stream's index lists. Both are
    taken from the one-block stream liblzma writes: its header does not always give
    the compressed size, so the padding could not be told from the data."""
    lzma2 = {"id": lzma.FILTER_LZMA2, "mode": lzma.MODE_FAST, "mf": lzma.MF_HC3}
    stream = lzma.compress(
        piece, format=lzma.FORMAT_XZ, check=XZ_CHECK, filters=[{**lzma2, **XZ_LZMA2_OPTIONS}]
    )
    index_start = _xz_index_start(stream)
    records, offset = _read_varint(stream, index_start + 1)
    unpadded, offset = _read_varint(stream, offset)
    uncompressed, _ = _read_varint(stream, offset)
    block = stream[_XZ_HEADER_SIZE:index_start]
    if records != 1 or uncompressed != len(piece) or len(block) != unpadded + (-unpadded % 4):
        raise ValueError("liblzma wrote an xz stream of an unexpected shape")
    return block, unpadded


def _xz_index_start(stream: bytes) -> int:
    """Where an xz stream's index begins, from the backward size in its footer."""
    backward_size: int = struct.unpack_from("<I", stream, len(stream) - 8)[0]
    return len(stream) - 12 - (backward_size + 1) * 4


def assemble_gzip(pieces: Sequence[bytes], data: bytes) -> bytes:
    """One gzip member from the deflated pieces of `data`."""
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return b"".join((_GZIP_HEADER, *pieces, _GZIP_FINAL, trailer))


def assemble_xz(blocks: Sequence[bytes], unpadded: Sequence[int], sizes: Sequence[int]) -> bytes:
    """One xz stream from `blocks` (of the given unpadded sizes), holding `sizes[i]`
    uncompressed bytes each."""
    records = b"".join(
        _varint(block_size) + _varint(size)
        for block_size, size in zip(unpadded, sizes, strict=True)
    )
    index = b"\x00" + _varint(len(blocks)) + records
    index += b"\x00" * (-len(index) % 4)
    index += struct.pack("<I", zlib.crc32(index))
    backward = struct.pack("<I", len(index) // 4 - 1) + _XZ_FLAGS
    header = _XZ_MAGIC + _XZ_FLAGS + struct.pack("<I", zlib.crc32(_XZ_FLAGS))
    footer = struct.pack("<I", zlib.crc32(backward)) + backward + _XZ_FOOTER_MAGIC
    return b"".join((header, *blocks, index, footer))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def _deflated(piece: bytes) -> tuple[bytes, int]:
    packed = deflate_piece(piece)
    return packed, len(packed)


def _compress_piece(
    compress: Callable[[bytes], tuple[bytes, int]], piece: bytes, reusable: Reusable
) -> tuple[str, bytes, int]:
    key = piece_key(piece)
    found = reusable.get(key)
    packed, unpadded = found if found is not None else compress(piece)
    return key, packed, unpadded


def start_compression(
    pieces: Sequence[bytes],
    data: bytes,
    suffix: str,
    reusable: Reusable,
    pool: Executor,
) -> Callable[[], Compressed]:
    """Compress `data` (the concatenation of `pieces`) as `.gz` or `.xz` on `pool`'s
    threads, taking unchanged pieces from `reusable`; the function returned waits and
    gives the result."""
    compress = _deflated if suffix == ".gz" else xz_block
    jobs: list[Future[tuple[str, bytes, int]]] = [
        pool.submit(_compress_piece, compress, piece, reusable) for piece in pieces
    ]

    def finish() -> Compressed:
        done = [job.result() for job in jobs]
        parts = [packed for _, packed, _ in done]
        if suffix == ".gz":
            result = assemble_gzip(parts, data)
            offset = len(_GZIP_HEADER)
        else:
            sizes = [len(piece) for piece in pieces]
            result = assemble_xz(parts, [unpadded for _, _, unpadded in done], sizes)
            offset = _XZ_HEADER_SIZE
        placed = []
        for key, packed, unpadded in done:
            placed.append(Piece(key, offset, len(packed), unpadded))
            offset += len(packed)
        return Compressed(result, tuple(placed))

    return finish


def reusable_pieces(
    packed: bytes, pieces: Sequence[Piece], suffix: str
) -> dict[str, tuple[bytes, int]]:
    """The compressed pieces of an earlier index (`suffix` ".gz" or ".xz"), from its bytes
    and its recorded layout; nothing unless the layout tiles the file's pieces exactly,
    from the end of its header to the start of its trailer (gzip: the final block and
    CRC; xz: the stream index and footer), so a layout that is not this file's is not
    applied to it."""
    if suffix == ".gz":
        start, end = len(_GZIP_HEADER), len(packed) - len(_GZIP_FINAL) - 8
    else:
        start = _XZ_HEADER_SIZE
        if len(packed) < start + 12 or packed[-2:] != _XZ_FOOTER_MAGIC:
            return {}
        end = _xz_index_start(packed)
    found: dict[str, tuple[bytes, int]] = {}
    offset = start
    for piece in pieces:
        if piece.offset != offset or not 0 <= piece.length - piece.unpadded <= 3:
            return {}
        offset += piece.length
        found[piece.key] = (packed[piece.offset : offset], piece.unpadded)
    return found if offset == end else {}
