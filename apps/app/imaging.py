"""Uploads in, results out: decode any common image safely into RGB, and write the result.

Every check that can be made from the file header (byte size, pixel count, is it an image at
all) is made before any pixel is decoded, so an oversized or hostile upload costs nothing and
gets a one-line ``DataError`` the UI shows as a message.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from translate.errors import ConfigError, DataError

#: what a transparent pixel is shown on: the page background most viewers use
TRANSPARENT_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Limits:
    """How large an upload may be; both are checked before decoding."""

    max_upload_mb: float = 50.0
    max_megapixels: float = 40.0

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0 or not self.max_megapixels > 0:
            raise ConfigError(
                f"upload limits must be positive, got {self.max_upload_mb} MB and {self.max_megapixels} MP"
            )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)


def load_upload(path: str | Path, limits: Limits) -> np.ndarray:
    """An uploaded file as an H×W×3 uint8 RGB array, turned the way it is displayed (EXIF)."""
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_upload_bytes:
        raise DataError(
            f"the file is {size / 2**20:.1f} MB; this app accepts images up to {limits.max_upload_mb:g} MB"
        )
    try:
        image = Image.open(path)
    except Image.DecompressionBombError:
        raise DataError(f"the image has far too many pixels; this app accepts up to {limits.max_megapixels:g} MP") from None
    except (UnidentifiedImageError, OSError):
        raise DataError("the file is not an image this app can read (PNG, JPEG, WebP, TIFF, BMP or GIF)") from None
    with image:
        width, height = image.size
        if width * height > limits.max_pixels:
            raise DataError(
                f"the image is {width}×{height} ({width * height / 1e6:.1f} MP); "
                f"this app accepts up to {limits.max_megapixels:g} MP — downscale it first"
            )
        try:
            image.load()
            # a phone photo stores its rotation as a tag; apply it so the result looks like the upload
            upright = ImageOps.exif_transpose(image)
            return to_rgb8(upright)
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"the image could not be decoded: {exc}") from None


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow image as H×W×3 uint8: grey is repeated, 16-bit is scaled (not clipped), and
    transparency is flattened onto white."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        # 16-bit and 32-bit integer images use 0..65535; float images are taken as 0..1
        full_scale = 1.0 if mode == "F" else (65535.0 if mode != "I" or values.max(initial=0) > 255 else 255.0)
        gray = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, TRANSPARENT_BACKGROUND + (255,))
        return np.array(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.array(image.convert("RGB"))


def blend(before: np.ndarray, after: np.ndarray, strength: float) -> np.ndarray:
    """``strength`` 0 gives the input back, 1 the full translation; in between, a linear mix."""
    if not 0.0 <= strength <= 1.0:
        raise DataError(f"strength must be between 0 and 1, got {strength}")
    if strength == 1.0:
        return after
    mixed = before.astype(np.float32) * (1.0 - strength) + after.astype(np.float32) * strength
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def preview(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """A copy no larger than ``max_side`` on its long side, for the on-page comparison (the
    download keeps full resolution)."""
    height, width = rgb.shape[:2]
    if max(height, width) <= max_side:
        return rgb
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


class ResultFolder:
    """Where finished PNGs wait to be downloaded; files older than ``keep_s`` are removed as
    new ones arrive, so a long-running server does not fill its disk."""

    def __init__(self, folder: Path, keep_s: float = 3600.0) -> None:
        self.folder = folder
        self.keep_s = keep_s
        folder.mkdir(parents=True, exist_ok=True)

    def write_png(self, rgb: np.ndarray, stem: str) -> Path:
        """Write ``rgb`` as ``STEM-TOKEN.png`` in a folder of its own.

        The random token matters: Gradio caches a returned file under a hash of its content plus
        its name, so two identical results with the same name would share one cache path, and one
        request could rewrite the file while another is still sending it.
        """
        self._prune()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:80] or "image"
        target = self.folder / str(time.time_ns()) / f"{safe}-{secrets.token_hex(4)}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(target, format="PNG", compress_level=3)
        return target

    def _prune(self) -> None:
        cutoff = time.time() - self.keep_s
        for old in self.folder.glob("*/*.png"):
            try:
                if old.stat().st_mtime < cutoff:
                    os.remove(old)
                    os.rmdir(old.parent)
            except OSError:  # another request is removing it, or the folder is not empty
                pass
