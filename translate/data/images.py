"""Reading and writing images, and converting them to and from network tensors.

Every image enters the toolkit through ``read_image`` (the CLI, the datasets, augment and the app
alike), so an image looks the same everywhere:

- only the formats in ``ACCEPTED_FORMATS`` are decoded: the format is recognised from the bytes,
  not the name, and anything else (EPS, which Pillow hands to Ghostscript, PSD, ...) is refused
  before any decoder runs;
- the byte and pixel limits are checked from the file header, before any pixel is decoded;
- 16-bit images are scaled to 8 bits, grey is replicated to three channels, transparency is
  composited onto white (what a viewer shows; a transparent pixel's hidden colour is not kept);
- an embedded colour profile (a phone photo in Display P3, a CMYK print file) is converted to sRGB;
- the EXIF orientation is applied, so the array is upright as an image viewer shows it;
- any failure is a ``DataError`` naming the file.

Network tensors are float C×H×W in [-1, 1].
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import torch
from PIL import Image, ImageCms

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: default limit on the pixels of one image (about 16k × 16k); guards against decompression bombs
DEFAULT_MAX_PIXELS = 268_435_456
#: the only formats any image is decoded from (Pillow's names; a phone's multi-picture JPEG opens as JPEG)
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
#: what decoders raise on damaged data (Pillow's bomb check also runs inside some decoders, e.g. TIFF tiles)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, cv2.error, Image.DecompressionBombError)
#: what a transparent pixel is shown on: the page background most viewers use
TRANSPARENT_BACKGROUND = 255


@dataclass(frozen=True)
class ImageHeader:
    """What the header of an image file says, read without decoding any pixel."""

    width: int  # as stored
    height: int
    orientation: int  # EXIF orientation, 1 (upright) when absent
    format: str  # Pillow's name: one of ACCEPTED_FORMATS, or MPO for a multi-picture JPEG

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def upright_size(self) -> tuple[int, int]:
        """(height, width) as shown, after the EXIF orientation."""
        return (self.width, self.height) if self.orientation in _SWAPS_AXES else (self.height, self.width)


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder``, sorted; an error if the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"folder not found: {folder}")
    if not folder.is_dir():
        raise DataError(f"not a folder: {folder}")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def image_size(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(height, width) as ``read_image`` returns it (EXIF orientation applied), from the file
    header alone, without decoding the pixels. ``max_pixels`` is not checked here (``read_image``
    checks it); it stays for callers that pass it."""
    return read_header(path).upright_size


def read_header(
    source: str | Path | bytes, name: str | None = None, formats: Sequence[str] = ACCEPTED_FORMATS
) -> ImageHeader:
    """The header of an image file (or of its bytes), without decoding pixels; a ``DataError``
    naming ``name`` (default: the path) if it is missing or not an image in one of ``formats``."""
    name = name or _default_name(source)
    with _source_stream(source, name) as stream, _open_lazily(stream, name, formats) as im:
        return _header_of(im)


def read_image(
    source: str | Path | bytes,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    name: str | None = None,
    max_bytes: int | None = None,
    formats: Sequence[str] = ACCEPTED_FORMATS,
) -> np.ndarray:
    """Decode an image file (or its bytes) to an upright sRGB uint8 array (H×W×3).

    16-bit images are scaled to 8 bits; grayscale is replicated to three channels; transparency
    is composited onto white; an embedded colour profile is converted to sRGB; an EXIF
    orientation (a phone photo stored sideways) is applied. Raises ``DataError`` naming ``name``
    (default: the path) if the file is missing, larger than ``max_bytes``, not an image in one
    of ``formats``, has more than ``max_pixels`` pixels (both checked before decoding), or is
    unreadable.
    """
    name = name or _default_name(source)
    _check_bytes(source, name, max_bytes)
    with _source_stream(source, name) as stream, _open_lazily(stream, name, formats) as im:
        header = _header_of(im)
        if max_pixels is not None and header.pixels > max_pixels:
            raise DataError(
                f"{name}: {header.width}×{header.height} = {header.pixels} pixels exceeds the limit of "
                f"{max_pixels} (raise max_pixels to allow it)"
            )
        try:
            rgb = _finish(*_decode_pixels(im, stream), im.info.get("icc_profile"))
        except _DECODE_ERRORS as exc:
            raise DataError(f"cannot decode image {name} (corrupt or truncated): {exc}") from None
    return apply_orientation(rgb, header.orientation)


def data_url_bytes(url: str, max_bytes: int | None = None, name: str = "the pasted image") -> bytes:
    """The bytes of a ``data:[type];base64,...`` URL, refused from its length alone, before the
    base64 is decoded, when they would exceed ``max_bytes``."""
    meta, comma, payload = url.partition(",")
    if not meta.startswith("data:") or not comma or not meta.endswith(";base64"):
        raise DataError(f"{name}: expected a data:...;base64, URL, got one starting {url[:40]!r}")
    decoded_size = len(payload) * 3 // 4  # an upper bound: padding only makes it smaller
    if max_bytes is not None and decoded_size > max_bytes + 2:
        raise DataError(f"{name}: {_size_text(decoded_size)} exceeds the limit of {_size_text(max_bytes)}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"{name}: the data URL is not valid base64") from None


#: EXIF orientations (tag 0x0112) whose upright view swaps height and width
_SWAPS_AXES = (5, 6, 7, 8)
_ORIENTATION_TAG = 0x0112


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an H×W(×C) array as stored into the view an image viewer shows for EXIF ``orientation``.

    1 is upright; 2–4 mirror or turn by 180°; 5–8 also swap the axes (6: the stored frame is
    turned a quarter clockwise to be shown, as phones held upright store it).
    """
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = array.swapaxes(0, 1)
    elif orientation == 6:
        array = array[::-1].swapaxes(0, 1)
    elif orientation == 7:
        array = array[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        array = array[:, ::-1].swapaxes(0, 1)
    else:
        return array
    return np.ascontiguousarray(array)


def exif_orientation(im) -> int:
    """The EXIF orientation (1–8) of an opened Pillow image, 1 when absent or invalid, without
    decoding pixels (Pillow decodes a whole PNG to look for a late EXIF chunk, so PNGs only
    count one placed before the pixels, where writers put it)."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block must not make a readable image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def to_rgb8(im) -> np.ndarray:
    """A loaded Pillow image as H×W×3 sRGB uint8, as stored (no EXIF orientation): high bit
    depths scaled (not clipped), transparency composited onto white, colour profile applied."""
    return _finish(*_pillow_pixels(im), im.info.get("icc_profile"))


@functools.cache
def srgb_profile() -> bytes:
    """An sRGB ICC profile, to tag written images with the colour space their pixels are in."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


#: formats and Pillow modes whose pixels OpenCV decodes: faster than Pillow (JPEG about twice), and
#: 16-bit colour scaled exactly where Pillow keeps only each sample's high byte
_OPENCV_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "TIFF", "BMP")
_OPENCV_MODES = ("RGB", "RGBA", "L", "LA", "I;16", "I;16B", "I;16L")

Pixels = tuple[np.ndarray, str, "np.ndarray | None"]  # colour (H×W×C uint8), its mode (RGB, L, CMYK), alpha


def _decode_pixels(im, stream: BinaryIO) -> Pixels:
    """The pixels of ``im`` (opened lazily from ``stream``) as stored. Both decoders are only
    handed bytes the allow-list has already recognised; Pillow takes what OpenCV does not read
    the same way (palettes, CMYK, 1-bit, float, GIF)."""
    if im.format in _OPENCV_FORMATS and im.mode in _OPENCV_MODES:
        stream.seek(0)
        decoded = cv2.imdecode(np.frombuffer(stream.read(), np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded is not None and decoded.shape[:2] == (im.height, im.width):
            return _opencv_pixels(decoded)
    im.load()
    return _pillow_pixels(im)


def _opencv_pixels(decoded: np.ndarray) -> Pixels:
    if decoded.dtype == np.uint16:
        decoded = (decoded.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif decoded.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {decoded.dtype}")
    if decoded.ndim == 2 or decoded.shape[2] == 1:
        return decoded.reshape(decoded.shape[:2]), "L", None
    alpha = decoded[:, :, 3] if decoded.shape[2] == 4 else None
    return cv2.cvtColor(decoded[:, :, :3], cv2.COLOR_BGR2RGB), "RGB", alpha


def _pillow_pixels(im) -> Pixels:
    """A loaded Pillow image split into colour in a mode a profile can describe (RGB, L or CMYK)
    and alpha; 16/32-bit grey is scaled to 0..255."""
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        values = np.asarray(im, dtype=np.float64)
        # 16/32-bit integers use 0..65535 (a 32-bit one holding only 0..255 is 8-bit data); float is 0..1
        full_scale = 1.0 if mode == "F" else (65535.0 if mode != "I" or values.max(initial=0) > 255 else 255.0)
        return np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8), "L", None
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "RGBa", "La"):
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("RGB", "RGBA", "L", "LA", "CMYK"):
        im = im.convert("RGB")  # YCbCr, LAB, HSV: no profile of ours describes them
    if im.mode in ("RGBA", "LA"):
        colour_mode = "RGB" if im.mode == "RGBA" else "L"
        return np.asarray(im.convert(colour_mode)), colour_mode, np.asarray(im.getchannel("A"))
    return np.asarray(im), im.mode, None


def _finish(colour: np.ndarray, mode: str, alpha: np.ndarray | None, icc: bytes | None) -> np.ndarray:
    """Stored pixels to what a viewer shows: in sRGB, three channels, composited onto white."""
    if icc or mode == "CMYK":
        colour = np.asarray(_to_srgb(Image.fromarray(colour, mode), icc))
    if colour.ndim == 2:
        colour = np.repeat(colour[:, :, None], 3, axis=2)
    if alpha is not None:
        opacity = alpha.astype(np.float32)[:, :, None] / 255.0
        return np.rint(colour * opacity + TRANSPARENT_BACKGROUND * (1.0 - opacity)).astype(np.uint8)
    return colour if colour.flags.writeable else colour.copy()  # Pillow's buffers are read-only


def _to_srgb(im, icc: bytes | None):
    """``im`` (RGB, L or CMYK) in sRGB. Without a profile RGB is taken as sRGB, as viewers do; a
    damaged profile, or one for another colour space than the pixels', is ignored the same way."""
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if "srgb" not in ImageCms.getProfileDescription(source).lower():  # sRGB needs no conversion
                return ImageCms.profileToProfile(
                    im, source, ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile())), outputMode="RGB"
                )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
    return im if im.mode in ("RGB", "L") else im.convert("RGB")


def _default_name(source: str | Path | bytes) -> str:
    return "image bytes" if isinstance(source, (bytes, bytearray)) else str(source)


def _check_bytes(source: str | Path | bytes, name: str, max_bytes: int | None) -> None:
    if max_bytes is None:
        return
    if isinstance(source, (bytes, bytearray)):
        size = len(source)
    else:
        try:
            size = Path(source).stat().st_size
        except OSError:
            return  # missing: _source_stream names it
    if size > max_bytes:
        raise DataError(f"{name}: {_size_text(size)} exceeds the limit of {_size_text(max_bytes)}")


def _size_text(size: int) -> str:
    """Megabytes as the limits are usually given; bytes where megabytes would read 0.0."""
    return f"{size / 2**20:.1f} MB" if size >= 2**20 / 10 else f"{size} bytes"


def _source_stream(source: str | Path | bytes, name: str) -> BinaryIO:
    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(source)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"image not found: {name}")
    return path.open("rb")


def _open_lazily(stream: BinaryIO, name: str, formats: Sequence[str]):
    """Pillow's image for ``stream``, header only, trying only ``formats``' openers.

    ``Image.open`` would also apply Pillow's own decompression-bomb limit, a process-wide global
    that callers of ``read_image`` replace with their ``max_pixels``; calling the format openers
    directly (as ``Image.open`` does, minus that check) leaves the global alone, so no thread can
    turn the guard off for another.
    """
    Image.init()
    prefix = stream.read(16)
    for format_name in formats:
        factory, accept = Image.OPEN[format_name.upper()]
        accepted = accept(prefix) if accept else True
        if not accepted or isinstance(accepted, str):  # a string is Pillow's "almost, but no" warning
            continue
        try:
            stream.seek(0)
            return factory(stream, name)
        except (SyntaxError, IndexError, TypeError, struct.error, OSError, EOFError):
            continue
    raise DataError(f"{name} is not an image in an accepted format ({', '.join(formats)}), or it is corrupt")


def _header_of(im) -> ImageHeader:
    width, height = im.size
    return ImageHeader(width, height, exif_orientation(im), im.format)


def write_image(path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95) -> Path:
    """Write an RGB uint8 array; the format follows the extension. Creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_image expects H×W×3 uint8, got {rgb.dtype} {rgb.shape}")
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError(f"cannot encode image for {path}")
    buf.tofile(path)
    return path


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 -> 3×H×W float in [-1, 1]; a batch N×H×W×3 -> N×3×H×W."""
    if rgb.ndim not in (3, 4):
        raise ValueError(f"to_tensor expects H×W×3 or N×H×W×3, got shape {rgb.shape}")
    channels_first = (2, 0, 1) if rgb.ndim == 3 else (0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(*channels_first).float().div_(127.5).sub_(1.0)


def to_images(batch: torch.Tensor) -> np.ndarray:
    """N×3×H×W float in [-1, 1] -> N×H×W×3 uint8, rounded (``to_tensor``'s inverse on a batch)."""
    if batch.ndim != 4:
        raise ValueError(f"to_images expects N×C×H×W, got shape {tuple(batch.shape)}")
    arr = batch.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).cpu().numpy()


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """3×H×W (or 1×3×H×W) float in [-1, 1] -> H×W×3 uint8, rounded."""
    if tensor.ndim == 4 and tensor.shape[0] != 1:
        raise ValueError("to_image takes one image")
    return to_images(tensor if tensor.ndim == 4 else tensor[None])[0]
