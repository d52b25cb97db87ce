"""PNG app icons drawn by code: a white ball on the shop's green, in any size, byte-for-byte
the same on every machine (no image library, no timestamps)."""

from __future__ import annotations

import struct
import zlib

GREEN = (0x0B, 0x6E, 0x3D)
WHITE = (0xFF, 0xFF, 0xFF)
INK = (0x1B, 0x1F, 0x23)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _pixel(x: float, y: float) -> tuple[int, int, int]:
    """Colour at (x, y) in a unit square: a ball (radius 0.3) with a dark diamond patch."""
    dx, dy = x - 0.5, y - 0.5
    r2 = dx * dx + dy * dy
    if r2 > 0.3 * 0.3:
        return GREEN
    if abs(dx) * 0.95 + abs(dy + 0.01) * 0.85 < 0.09:
        return INK
    return WHITE


def png_icon(size: int) -> bytes:
    """A ``size`` x ``size`` RGB PNG (full bleed, so it also works as a maskable icon)."""
    if not 16 <= size <= 1024:
        raise ValueError("icon size must be between 16 and 1024")
    rows = bytearray()
    for j in range(size):
        rows.append(0)  # filter type: none
        y = (j + 0.5) / size
        for i in range(size):
            rows.extend(_pixel((i + 0.5) / size, y))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _chunk(b"IEND", b"")
    )
