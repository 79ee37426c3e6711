"""Uploads in, results out: decode any accepted image safely into RGB, and write the result.

Uploads are decoded by the toolkit's one decoder (``translate.data.images.read_image``), so the
app shows exactly what ``i2i translate`` and the datasets see. Every check that can be made
before decoding (byte size, the format from the file's own bytes, pixel count from the header)
is made first, on every route a request can take (an uploaded file, a ``data:`` URL, an array
from Python), so an oversized or hostile upload costs nothing and gets a one-line ``DataError``
the UI shows as a message.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from translate.data.images import ACCEPTED_FORMATS, data_url_bytes, read_header, read_image, srgb_profile
from translate.errors import ConfigError, DataError

#: the formats an upload may be in, as the page lists them
ACCEPTED_NAMES = "PNG, JPEG, WebP, TIFF, BMP or GIF"


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


Upload = str | Path | np.ndarray


def is_data_url(upload: Upload) -> bool:
    return isinstance(upload, str) and upload.startswith("data:")


def load_upload(upload: Upload, limits: Limits) -> np.ndarray:
    """An upload as an H×W×3 uint8 sRGB array, turned the way it is displayed (EXIF).

    ``upload`` is a file path, a ``data:...;base64,`` URL, or an H×W×3 uint8 array; all get the
    same limits, checked before anything is decoded.
    """
    if isinstance(upload, np.ndarray):
        return _checked_array(upload, limits)
    if is_data_url(upload):
        name = "the pasted image"
        source: Path | bytes = data_url_bytes(upload, limits.max_upload_bytes, name)  # its length is checked first
    else:
        source = Path(upload)
        name = source.name
        _check_file_size(source, limits)
    header = read_header(source, name, ACCEPTED_FORMATS)
    _check_pixels(header.width, header.height, limits)
    return read_image(source, limits.max_pixels, name=name, max_bytes=limits.max_upload_bytes)


def _check_file_size(path: Path, limits: Limits) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        raise DataError(f"the upload {path.name} is not there any more; upload it again") from None
    if size > limits.max_upload_bytes:
        raise DataError(f"the file is {size / 2**20:.1f} MB; this app accepts images up to {limits.max_upload_mb:g} MB")


def _check_pixels(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise DataError(
            f"the image is {width}×{height} ({width * height / 1e6:.1f} MP); "
            f"this app accepts up to {limits.max_megapixels:g} MP — downscale it first"
        )


def _checked_array(rgb: np.ndarray, limits: Limits) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataError(f"an image array must be H×W×3 uint8 RGB, got {rgb.dtype} of shape {rgb.shape}")
    _check_pixels(rgb.shape[1], rgb.shape[0], limits)
    return rgb


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
    """Where finished PNGs wait to be downloaded.

    Results older than ``keep_s`` seconds, and all but the newest ``max_files``, are removed as
    new ones arrive, so a long-running server does not fill its disk. A folder made by
    ``temporary()`` is removed with everything in it by ``close()``, or when the process exits.
    """

    def __init__(self, folder: Path, keep_s: float = 3600.0, max_files: int = 500) -> None:
        if keep_s <= 0 or max_files < 1:
            raise ConfigError(f"results must be kept a positive time and number, got {keep_s} s and {max_files}")
        self.folder = folder
        self.keep_s = keep_s
        self.max_files = max_files
        self._remove_folder = None
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def temporary(cls, keep_s: float = 3600.0, max_files: int = 500) -> ResultFolder:
        """Results in a new temporary folder that is removed on ``close()`` or at exit."""
        results = cls(Path(tempfile.mkdtemp(prefix="i2i-app-results-")), keep_s, max_files)
        # a finalizer, unlike atexit, also runs when the object is collected, and at most once
        results._remove_folder = weakref.finalize(results, shutil.rmtree, str(results.folder), ignore_errors=True)
        return results

    def close(self) -> None:
        """Remove a temporary folder now (a folder given by the caller is left alone)."""
        if self._remove_folder is not None:
            self._remove_folder()

    def write_png(self, rgb: np.ndarray, stem: str) -> Path:
        """Write ``rgb`` as ``STEM-TOKEN.png`` in a folder of its own, tagged as sRGB (what the
        decoder converted the input to).

        The random token matters: Gradio caches a returned file under a hash of its content plus
        its name, so two identical results with the same name would share one cache path, and one
        request could rewrite the file while another is still sending it.
        """
        self._prune()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:80] or "image"
        target = self.folder / str(time.time_ns()) / f"{safe}-{secrets.token_hex(4)}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(target, format="PNG", compress_level=3, icc_profile=srgb_profile())
        return target

    def _prune(self) -> None:
        """Remove results past their time, then the oldest beyond ``max_files - 1`` (room for the
        one about to be written)."""
        cutoff = time.time() - self.keep_s
        newest_first = sorted(self._result_files(), key=lambda item: item[0], reverse=True)
        for index, (mtime, png) in enumerate(newest_first):
            if mtime < cutoff or index >= self.max_files - 1:
                self._remove(png)

    def _result_files(self) -> list[tuple[float, Path]]:
        found = []
        for png in self.folder.glob("*/*.png"):
            try:
                found.append((png.stat().st_mtime, png))
            except OSError:  # removed by another request meanwhile
                pass
        return found

    @staticmethod
    def _remove(png: Path) -> None:
        try:
            os.remove(png)
            os.rmdir(png.parent)
        except OSError:  # another request is removing it, or the folder is not empty
            pass
