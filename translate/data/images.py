"""Reading and writing images, and converting them to and from network tensors.

Every image enters the toolkit through ``read_image``: 8- and 16-bit PNG/JPEG/TIFF/BMP, grayscale
and RGBA are all converted explicitly to 8-bit RGB, turned upright by their EXIF orientation as an
image viewer would show them, and any failure names the file.
Network tensors are float C×H×W in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: default limit on the pixels of one image (about 16k × 16k); guards against decompression bombs
DEFAULT_MAX_PIXELS = 268_435_456


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
    header where possible, without decoding the pixels."""
    try:
        h, w, orientation = _header(Path(path))
        return (w, h) if orientation in _SWAPS_AXES else (h, w)
    except Exception:
        img = read_image(path, max_pixels=max_pixels)
        return img.shape[0], img.shape[1]


def read_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to an RGB uint8 array (H×W×3).

    16-bit images are scaled to 8 bits (not truncated); grayscale is replicated to three channels;
    an alpha channel is dropped; an EXIF orientation (a phone photo stored sideways) is applied.
    Raises ``DataError`` naming the file if it is missing, unreadable, or has more than
    ``max_pixels`` pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    try:
        h, w, orientation = _header(path)
    except Exception:  # a format Pillow does not know: OpenCV may still decode it
        h = w = None
        orientation = 1
    if max_pixels is not None and h is not None and h * w > max_pixels:
        raise DataError(f"{path}: {w}×{h} = {h * w} pixels exceeds the limit of {max_pixels} (raise max_pixels to allow it)")
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise DataError(f"cannot decode image {path} (corrupt or unsupported format)")
    if max_pixels is not None and img.shape[0] * img.shape[1] > max_pixels:
        raise DataError(f"{path}: {img.shape[1]}×{img.shape[0]} pixels exceeds the limit of {max_pixels}")
    # OpenCV ignores EXIF orientation when reading unchanged (needed for 16 bits and alpha)
    return apply_orientation(_to_rgb8(img, path), orientation)


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


def _header(path: Path) -> tuple[int, int, int]:
    """(height, width as stored, EXIF orientation) from the header alone, without decoding.
    Pillow's own bomb check is lifted for this one read (and restored), because callers apply
    the configurable ``max_pixels`` themselves."""
    import warnings

    from PIL import Image

    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                orientation = exif_orientation(im)
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    return h, w, orientation


def _to_rgb8(img: np.ndarray, path: Path) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{path}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    channels = img.shape[2]
    if channels == 1:
        return np.repeat(img, 3, axis=2)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise DataError(f"{path}: unsupported number of channels {channels}")


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
