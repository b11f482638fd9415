"""Data layer: walking a JPEG's marker segments, for the readers that look at its header only
(provenance metadata, quantisation tables) without decoding it."""

from __future__ import annotations

from typing import Iterator

#: markers that stand alone, without a length: TEM, SOI and the restart markers
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_SOS, _EOI = 0xDA, 0xD9


def segments(data: bytes, limit: int = 4096) -> Iterator[tuple[int, int, int]]:
    """``(marker, start, end)`` for each marker segment before the image data, its payload being
    ``data[start:end]``. Stops at the start of scan or the end of the image, at bytes that are
    not a marker, and after ``limit`` segments. A segment that declares a length below 2 or
    beyond the data is yielded once, with ``end`` past ``len(data)`` or before ``start``, and
    ends the walk: the caller says what could not be read."""
    n, pos = len(data), 2 if data[:2] == b"\xff\xd8" else 0
    for _ in range(limit):
        if pos + 4 > n or data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (_SOS, _EOI):
            return
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        start, end = pos + 4, pos + 2 + length
        yield marker, start, end
        if length < 2 or end > n:
            return
        pos = end
