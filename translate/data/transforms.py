"""Preprocessing that treats every image of a sample identically: resize, random crop, flip.

Random parameters are drawn first (``sample_params``) and applied second (``apply``), so the two
halves of a pair get exactly the same crop and flip, and any sample can be replayed from its
parameters in a test. All randomness comes from the ``numpy.random.Generator`` the caller passes,
which is what makes a dataset sample a pure function of its ``(index, seed)`` key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch

from ..errors import ConfigError, DataError
from .images import to_tensor

#: how images are brought to training size; the CycleGAN reference's names
PREPROCESS_MODES = ("resize_and_crop", "scale_shortside_and_crop", "crop", "none")
_RESIZE_MODES = ("resize_and_crop", "scale_shortside_and_crop")


@dataclass(frozen=True)
class TransformParams:
    """Everything random (or size dependent) about one sample's preprocessing.

    ``resize_to`` is the (height, width) to resize to first, or None for no resize; the crop is
    ``size``×``size`` at (``top``, ``left``) of the resized image, or no crop when ``size`` is None.
    """

    resize_to: tuple[int, int] | None
    top: int
    left: int
    size: int | None
    flip: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PairTransform:
    """Resize / random crop / horizontal flip, with one parameter draw shared by all inputs.

    Modes:

    - ``resize_and_crop``: resize to ``load_size``×``load_size`` (aspect not kept), random crop
      ``crop_size`` square (the CycleGAN reference default, 286 → 256).
    - ``scale_shortside_and_crop``: resize so the shorter side is ``load_size`` keeping the aspect
      ratio, then random crop ``crop_size`` square.
    - ``crop``: random crop ``crop_size`` square at the original resolution. An image smaller than
      ``crop_size`` is an error naming its size rather than silently padded, because padding would
      feed the networks borders that never occur in the data.
    - ``none``: no resize and no crop (only the flip); images keep their size, so batching more than
      one image needs images of equal size.

    Constructor arguments are stored under their own names and are plain data, so ``to_dict``
    round-trips: ``PairTransform(**t.to_dict())``.
    """

    def __init__(self, preprocess: str, load_size: int, crop_size: int, flip: bool) -> None:
        self.preprocess = preprocess
        self.load_size = load_size
        self.crop_size = crop_size
        self.flip = flip
        self._validate()

    def _validate(self) -> None:
        if self.preprocess not in PREPROCESS_MODES:
            raise ConfigError(f"unknown preprocess '{self.preprocess}'; choices: {', '.join(PREPROCESS_MODES)}")
        for name in ("load_size", "crop_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.flip, (bool, np.bool_)):
            raise ConfigError(f"flip must be true or false, got {self.flip!r}")
        if self.preprocess in _RESIZE_MODES and self.crop_size > self.load_size:
            raise ConfigError(
                f"crop_size {self.crop_size} is larger than load_size {self.load_size} "
                f"(preprocess '{self.preprocess}' resizes to load_size before cropping); "
                f"use crop_size <= load_size"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "preprocess": self.preprocess,
            "load_size": self.load_size,
            "crop_size": self.crop_size,
            "flip": self.flip,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"{type(self).__name__}({args})"

    # ---------------------------------------------------------------- sample, then apply
    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the result for an input of this size."""
        if self.preprocess == "none":
            return height, width
        return self.crop_size, self.crop_size

    def sample_params(self, rng: np.random.Generator, height: int, width: int) -> TransformParams:
        """Draw the crop offset and flip for an input of ``height``×``width``.

        The draws always happen in the same order (crop top, crop left, flip coin), whatever the
        mode, so that turning flipping off does not change which crops a seed gives.
        """
        resize_to = self._resize_target(height, width)
        rh, rw = resize_to if resize_to is not None else (height, width)
        size: int | None = None if self.preprocess == "none" else self.crop_size
        if size is not None and (rh < size or rw < size):
            raise DataError(
                f"image of {width}×{height} pixels is smaller than crop_size {size} "
                f"(preprocess '{self.preprocess}'); use larger images or a smaller crop_size"
            )
        top = int(rng.integers(rh - size + 1)) if size is not None else 0
        left = int(rng.integers(rw - size + 1)) if size is not None else 0
        coin = bool(rng.random() < 0.5)
        return TransformParams(resize_to=resize_to, top=top, left=left, size=size, flip=bool(self.flip) and coin)

    def _resize_target(self, height: int, width: int) -> tuple[int, int] | None:
        if self.preprocess == "resize_and_crop":
            return self.load_size, self.load_size
        if self.preprocess == "scale_shortside_and_crop":
            short = min(height, width)
            scale = self.load_size / short
            # the short side is exactly load_size; the long side rounds but never drops below it
            th = self.load_size if height == short else max(self.load_size, round(height * scale))
            tw = self.load_size if width == short else max(self.load_size, round(width * scale))
            return th, tw
        return None

    @staticmethod
    def apply(image: np.ndarray, params: TransformParams) -> np.ndarray:
        """Apply ``params`` to one H×W×3 uint8 image; returns the processed uint8 image."""
        if params.resize_to is not None:
            image = _resize(image, *params.resize_to)
        if params.size is not None:
            image = image[params.top : params.top + params.size, params.left : params.left + params.size]
        if params.flip:
            image = image[:, ::-1]
        return np.ascontiguousarray(image)

    def __call__(self, images: Sequence[np.ndarray], rng: np.random.Generator) -> list[torch.Tensor]:
        """Transform every image with one shared draw; returns 3×H×W float tensors in [-1, 1]."""
        if not images:
            raise ValueError("PairTransform needs at least one image")
        for img in images:
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"PairTransform expects H×W×3 uint8 images, got {img.dtype} {img.shape}")
        sizes = [img.shape[:2] for img in images]
        if any(s != sizes[0] for s in sizes):
            listed = ", ".join(f"{w}×{h}" for h, w in sizes)
            raise DataError(f"images transformed together must have the same size, got {listed}")
        params = self.sample_params(rng, *sizes[0])
        return [to_tensor(self.apply(img, params)) for img in images]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), cubic when enlarging (no blockiness)."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    shrinking = height <= h and width <= w
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)
