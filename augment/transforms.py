"""``GANTranslate``: a trained generator as an albumentations 2.x image-only transform.

Masks, bounding boxes and keypoints pass through untouched (it is an ``ImageOnlyTransform``), and
the image keeps its size, shape and dtype:

* ``uint8`` (0..255) and ``uint16`` (0..65535) images come back in the same dtype, rounded;
* ``float32`` images must lie in [0, 1] (albumentations' convention) and come back in [0, 1];
  values outside it, NaN, and other dtypes are errors, not silently clipped;
* grayscale and RGBA follow the channel rule in ``augment.generator``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Annotated, Any

import albumentations as A
import numpy as np
import torch
from albumentations.core.transforms_interface import BaseTransformInitSchema
from pydantic import AfterValidator, BeforeValidator, Field
from torch.utils.data import get_worker_info

from translate.errors import DataError
from translate.infer.backend import BACKEND_NAMES, PRECISION_NAMES

from ._runtime import AMP_NAMES, DEVICE_PATTERN, resolve_amp, resolve_device
from .generator import (
    MIN_TILE,
    ChannelPlan,
    LazyGenerator,
    check_amp_with_backend,
    check_image_size,
    run_generator,
)

#: full-scale value of each supported integer dtype (float32 images are in [0, 1])
INTEGER_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def blend_range(value: float | tuple[float, float]) -> tuple[float, float]:
    """A single number is a fixed mix; a pair is the range a mix is drawn from."""
    low, high = (value, value) if isinstance(value, (int, float)) else value
    if not (0.0 <= low <= high <= 1.0):
        raise ValueError(f"blend must satisfy 0 <= low <= high <= 1, got {value}")
    return float(low), float(high)


def _path_text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _one_of(names: tuple[str, ...]):
    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"must be one of {', '.join(names)}, got '{value}'")
        return value

    return check


class GANTranslate(A.ImageOnlyTransform):
    """Replace the image by its translation through an exported i2i generator.

    Args:
        checkpoint: path to an exported generator (``.safetensors`` written by ``i2i export``).
        blend: weight of the translation in the output, ``out = b * translated + (1 - b) * image``;
            a number is fixed, a ``(low, high)`` pair is drawn uniformly per call from the
            transform's own random generator (seeded by ``A.Compose(seed=...)``). Default 1.
        device: where the generator runs: ``"cpu"`` (default, works in any DataLoader worker),
            ``"cuda"``, ``"cuda:N"`` or ``"auto"``. A GPU works in the main process and in spawned
            workers, not in workers forked after the parent initialised CUDA: there the first call
            raises a ``ConfigError`` naming the fixes (``multiprocessing_context="spawn"``, or
            ``TranslateBatch`` on the batch in the main process).
        tile: images with a side above it are translated tile by tile (bounded memory); a stack of
            ``images`` no larger than it is translated in one batched call.
        amp: ``"off"`` (default), ``"bf16"``, ``"fp16"`` or ``"auto"`` (bf16 where the device computes it natively:
            a GPU with bf16 or a bf16-native CPU; fp16 on other GPUs; full precision on other CPUs).
        backend: the inference engine, ``"torch"`` (default), ``"onnxruntime"``, ``"openvino"`` or
            ``"auto"`` (the fastest measured on first use, logged once); ``checkpoint`` may then be
            an ``.onnx`` (or OpenVINO ``.xml``) file. Graph engines run on the CPU.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"auto"`` (bf16 only where native); with a
            backend other than torch at fp32, ``amp`` must be ``"off"``.
        p: probability of applying the transform.

    The generator is loaded on the first call in each process and is never pickled, so forked and
    spawned DataLoader workers each load their own (on a GPU, see ``device``); ``loads_in_process``
    and ``loaded_pid`` tell how often and by which process it was loaded.

    Random draws (whether to apply, the blend) come from the transform's own generators. In a
    DataLoader worker they are reseeded on the first call from the worker's seed (and the Compose
    seed, if any), so workers draw different streams, a new one each epoch, and the same ones again
    under the same ``torch.manual_seed``, with no ``worker_init_fn``. A seed set in the worker
    itself (``set_random_seed`` in a ``worker_init_fn``) is kept.
    """

    class InitSchema(BaseTransformInitSchema):
        checkpoint: Annotated[str, BeforeValidator(_path_text)]
        blend: Annotated[float | tuple[float, float], AfterValidator(blend_range)]
        device: Annotated[str, Field(pattern=DEVICE_PATTERN)]
        tile: Annotated[int, Field(ge=MIN_TILE)]
        amp: Annotated[str, AfterValidator(_one_of(AMP_NAMES))]
        backend: Annotated[str, AfterValidator(_one_of(BACKEND_NAMES))]
        precision: Annotated[str, AfterValidator(_one_of(PRECISION_NAMES))]

    def __init__(
        self,
        checkpoint: str | Path,
        blend: float | tuple[float, float] = 1.0,
        device: str = "cpu",
        tile: int = 512,
        amp: str = "off",
        p: float = 0.5,
        backend: str = "torch",
        precision: str = "fp32",
    ):
        super().__init__(p=p)
        self.checkpoint = str(checkpoint)
        self.blend = blend
        self.device = device
        self.tile = tile
        self.amp = amp
        self.backend = backend
        self.precision = precision
        # Reads the metadata only: a missing or non-generator file fails here, weights load lazily.
        self._generator = LazyGenerator(self.checkpoint, resolve_device(device), backend, precision)
        # amp "auto" leaves the choice to the toolkit; another backend or precision takes it from ``precision``
        check_amp_with_backend("off" if amp == "auto" else amp, backend, precision)
        plain_torch = backend == "torch" and precision == "fp32"
        self._amp = resolve_amp(amp, self._generator.device) if plain_torch else "off"

    def set_random_seed(self, seed: int | None) -> None:
        super().set_random_seed(seed)
        self._stream_pid = os.getpid()  # seeded here: a worker that set it keeps it

    def set_random_state(self, random_generator: np.random.Generator, py_random: random.Random) -> None:
        super().set_random_state(random_generator, py_random)
        self._stream_pid = os.getpid()

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        self._own_stream_in_worker()
        return super().__call__(*args, force_apply=force_apply, **kwargs)

    def _own_stream_in_worker(self) -> None:
        """On the first call in a DataLoader worker whose stream was seeded in another process,
        reseed it from the worker's seed: a forked worker would otherwise repeat its siblings'."""
        if self._stream_pid == os.getpid():
            return
        self._stream_pid = os.getpid()
        worker = get_worker_info()
        if worker is None:
            return
        # torch gives each worker base_seed + id, base_seed drawn from the parent's torch generator
        entropy = [worker.seed] if self.seed is None else [worker.seed, self.seed]
        seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        self.set_random_state(np.random.default_rng(seed), random.Random(seed))

    @property
    def loads_in_process(self) -> int:
        """How many times this process loaded the generator (0 before the first call, then 1)."""
        return self._generator.loads_in_process

    @property
    def loaded_pid(self) -> int | None:
        """The process that loaded the generator held now (never another one's, after a fork)."""
        return self._generator.loaded_pid

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("checkpoint", "blend", "device", "tile", "amp", "backend", "precision")

    def get_params(self) -> dict[str, Any]:
        low, high = self.blend
        return {"blend": self.py_random.uniform(low, high) if high > low else low}

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        # Check the input before any work, so a bad image fails with its own message.
        pixels = data["image"] if "image" in data else data["images"]
        _check_pixels(pixels)
        ChannelPlan(_channels(pixels if "image" in data else pixels[0]), self._generator.facts.in_channels)
        return {}

    def apply(self, img: np.ndarray, blend: float, **params: Any) -> np.ndarray:
        return self.apply_to_images(img[None], blend=blend)[0]

    def apply_to_images(self, images: np.ndarray, blend: float, **params: Any) -> np.ndarray:
        """Translate a stack (N×H×W[×C]) in one batched call."""
        if blend <= 0.0:
            return images.copy()
        net, min_side = self._generator.get()
        check_image_size(images.shape[1], images.shape[2], min_side)
        stack = images if images.ndim == 4 else images[..., None]
        plan = ChannelPlan(stack.shape[-1], self._generator.facts.in_channels)
        scale = INTEGER_SCALE.get(stack.dtype, 1.0)
        x = torch.from_numpy(np.ascontiguousarray(stack)).permute(0, 3, 1, 2).float().mul_(2.0 / scale).sub_(1.0)
        colour = plan.colour(x)
        translated = run_generator(net, colour, self._generator.device, self._amp, self.tile)
        mixed = translated if blend >= 1.0 else blend * translated + (1.0 - blend) * colour
        out = plan.restore(mixed, x).clamp_(-1.0, 1.0).add_(1.0).mul_(scale / 2.0)
        out = out.permute(0, 2, 3, 1).numpy()
        result = out.astype(np.float32) if stack.dtype == np.float32 else np.rint(out).astype(stack.dtype)
        if plan.keeps_alpha:
            result[..., 3] = stack[..., 3]  # exact, whatever the float round trip did
        return result.reshape(images.shape)


def _channels(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[-1]


def _check_pixels(images: np.ndarray) -> None:
    if images.dtype in INTEGER_SCALE:
        return
    if images.dtype != np.float32:
        raise DataError(f"GANTranslate takes uint8, uint16 or float32 images, got {images.dtype}")
    low, high = float(np.min(images)), float(np.max(images))
    if not (0.0 <= low and high <= 1.0):  # NaN fails both comparisons
        raise DataError(f"float32 images must lie in [0, 1]; got values in [{low:.4g}, {high:.4g}]")
