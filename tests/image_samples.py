"""Image files that are awkward to come by: huge-but-tiny PNGs, colour profiles, foreign formats.

Built in code, byte by byte where Pillow cannot write them, so the tests need no downloads; and
two context managers that show what Pillow parsed and decoded meanwhile.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageFile

#: Display P3 primaries as a profile stores them (adapted to the D50 connection space)
P3_COLORANTS = ((0.515121, 0.241196, -0.001053), (0.291977, 0.692245, 0.041885), (0.157104, 0.066574, 0.784073))
D50 = (0.9642, 1.0, 0.8249)


def flat_png(width: int, height: int) -> bytes:
    """A valid, all-black 1-bit greyscale PNG of ``width`` × ``height``: a few kilobytes on disk
    however many pixels it has (what a decompression bomb looks like)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_block = max(1, 4_000_000 // len(row))
    parts = []
    for start in range(0, height, rows_per_block):
        parts.append(compressor.compress(row * min(rows_per_block, height - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(values) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(v) for v in values)


def _curve(gamma: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def _description(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * (4 + 4 + 2 + 1 + 67)


def p3_profile(description: str = "Display P3 primaries, gamma 2.2") -> bytes:
    """A small matrix/curve RGB ICC profile (version 2) with Display P3's primaries: what a phone
    photo carries, built by hand because Pillow can only create sRGB, Lab and XYZ profiles."""
    tags = [
        (b"desc", _description(description)),
        (b"wtpt", _xyz(D50)),
        (b"rXYZ", _xyz(P3_COLORANTS[0])),
        (b"gXYZ", _xyz(P3_COLORANTS[1])),
        (b"bXYZ", _xyz(P3_COLORANTS[2])),
        (b"rTRC", _curve(2.2)),
        (b"gTRC", _curve(2.2)),
        (b"bTRC", _curve(2.2)),
        (b"cprt", b"text" + b"\0" * 4 + b"no copyright\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = [], b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table.append(signature + struct.pack(">II", offset + len(data), len(body)))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"mntr"
        + b"RGB "
        + b"XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data


def eps_bytes() -> bytes:
    """A tiny Encapsulated PostScript file: Pillow would render it with Ghostscript."""
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n"
        b"newpath 0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n"
    )


def psd_bytes(height: int = 4, width: int = 4) -> bytes:
    """A minimal uncompressed 8-bit RGB Photoshop file."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, image resources, layers: all empty
    return header + sections + struct.pack(">H", 0) + bytes(3 * height * width)


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def varied_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colours well inside every gamut, so a colour conversion moves them measurably."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([60 + 140 * xx / width, 60 + 140 * yy / height, np.full_like(xx, 90)], axis=2)
    return np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)


@contextlib.contextmanager
def pixel_decodes() -> Iterator[list[str]]:
    """Every pixel decode Pillow makes (``ImageFile.load``), by file name, inside the block."""
    seen: list[str] = []
    original = ImageFile.ImageFile.load

    def spy(self):
        seen.append(str(getattr(self, "filename", "") or self.format))
        return original(self)

    ImageFile.ImageFile.load = spy
    try:
        yield seen
    finally:
        ImageFile.ImageFile.load = original


@contextlib.contextmanager
def openers_called(formats=("EPS", "PSD")) -> Iterator[list[str]]:
    """Which of ``formats``' Pillow openers were asked to parse a file inside the block."""
    Image.init()
    tried: list[str] = []
    originals = {name: Image.OPEN[name] for name in formats}

    def spy_on(name: str):
        factory, accept = originals[name]

        def spy(fp, filename=None):
            tried.append(name)
            return factory(fp, filename)

        return spy, accept

    Image.OPEN.update({name: spy_on(name) for name in formats})
    try:
        yield tried
    finally:
        Image.OPEN.update(originals)
