"""Mixing generated samples into a real training set.

``SyntheticMix(real, sampler, ratio=0.5)`` is a Dataset of the real items followed by generated
ones, so that generated items make up ``ratio`` of the mix. Generated items take the form of the
real ones — an ``(image, target)`` tuple or a dict with image and label entries — and their images
the real images' type, dtype, value range and layout (``like_real_images``), so the training loop
that used ``real`` needs no change. A generated item has an image and a label and nothing else: no
real item's mask, path or other entry is copied into it (``is_synthetic(index)`` tells which is
which).

Which classes are generated: by default in the real set's class proportions; with
``balance=True`` the rarest classes are topped up first, so that the mix is as even across classes
as the budget allows. An unconditional sampler mixes into a dataset of dict items: its items
hold the image entry only. Generated item ``j`` is a pure function of ``(seed, j)``: samples are drawn
in fixed chunks, each from its own seed, whatever order the loader asks for them in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from translate.errors import ConfigError, DataError

CHUNK = 256  # generated together, and cached, per chunk of this many items
#: chunks kept by default (1,024 generated items); older ones are drawn again when asked for
MAX_CACHED_CHUNKS = 4
#: real items read to tell the value range of their images
RANGE_PROBES = 8
#: full-scale value of the integer image dtypes a generated image can take (numpy's and torch's names)
INTEGER_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0}


class ClassSampler(Protocol):
    """What SyntheticMix needs from a sampler (``translate.sampling.Sampler`` is one)."""

    classes: int

    def sample(self, n: int, label: Any = None, code: Any = None, seed: int = 0) -> torch.Tensor: ...


def synthetic_count(real_size: int, ratio: float) -> int:
    """Generated items needed for them to make up ``ratio`` of the mix."""
    if not 0 <= ratio < 1:
        raise ValueError(f"ratio (the generated share of the mix) must be in [0, 1), got {ratio}")
    return int(round(real_size * ratio / (1 - ratio)))


def plan_labels(real_labels: Sequence[int], classes: int, count: int, balance: bool, seed: int) -> np.ndarray:
    """The class of each generated item. Proportional: drawn from the real class frequencies.
    Balanced: water-filling, each generated item going to the class that is rarest so far."""
    real_counts = np.bincount(np.asarray(real_labels, np.int64), minlength=classes)[:classes]
    rng = np.random.default_rng(seed)
    if not balance:
        shares = real_counts / real_counts.sum() if real_counts.sum() else np.full(classes, 1 / classes)
        return rng.choice(classes, size=count, p=shares)
    totals, plan = real_counts.astype(np.int64).copy(), np.empty(count, np.int64)
    for j in range(count):
        k = int(np.argmin(totals))  # ties go to the lowest class index, deterministically
        plan[j] = k
        totals[k] += 1
    return rng.permutation(plan)


def _dtype_name(image: np.ndarray | torch.Tensor) -> str:
    """The dtype's name ("uint8", "float32", "bfloat16"…), the same for a numpy array and a tensor."""
    return str(image.dtype).removeprefix("torch.")


def _is_float(image: np.ndarray | torch.Tensor) -> bool:
    return image.is_floating_point() if isinstance(image, torch.Tensor) else image.dtype.kind == "f"


def image_value_range(images: Sequence[np.ndarray | torch.Tensor]) -> tuple[float, float]:
    """The value range of real images: 0..255 (uint8), 0..65535 (uint16); for floats, the first of
    [0, 1], [-1, 1] and [0, 255] that holds every value."""
    dtype = _dtype_name(images[0])
    if dtype in INTEGER_FULL_SCALE:
        return 0.0, INTEGER_FULL_SCALE[dtype]
    if not _is_float(images[0]):
        raise DataError(f"SyntheticMix: real images are {dtype}; supported: uint8, uint16 and float images")
    low = min(float(image.min()) for image in images)
    high = max(float(image.max()) for image in images)
    for candidate in ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)):
        if candidate[0] <= low and high <= candidate[1]:  # NaN fails both comparisons
            return candidate
    raise DataError(
        f"SyntheticMix: real float images hold values in [{low:.4g}, {high:.4g}], none of [0, 1], [-1, 1] "
        "or [0, 255]; pass value_range=(low, high) (for normalised images: wrap the dataset before normalising)"
    )


def like_real_images(samples: torch.Tensor, real_image: Any, value_range: tuple[float, float]) -> Any:
    """Sampler output (N×C×H×W in [-1, 1]) as a stack of images like ``real_image``: a numpy array or
    a tensor, of its dtype, in ``value_range``, and in its layout (C×H×W, H×W×C, or H×W for one
    channel). Integer dtypes are rounded."""
    if not isinstance(real_image, (np.ndarray, torch.Tensor)):
        raise DataError(
            f"SyntheticMix takes real images that are numpy arrays or torch tensors, got {type(real_image).__name__}; "
            "convert them (e.g. with ToTensor) in the real dataset"
        )
    low, high = value_range
    scaled = samples.detach().float().clamp(-1.0, 1.0).add(1.0).mul((high - low) / 2.0).add(low)
    if not _is_float(real_image):
        scaled = scaled.round()
    stack = _in_layout(scaled, tuple(real_image.shape), channels_last=isinstance(real_image, np.ndarray))
    if isinstance(real_image, np.ndarray):
        return stack.numpy().astype(real_image.dtype)
    return stack.to(real_image.dtype)


def _in_layout(samples: torch.Tensor, real_shape: tuple[int, ...], channels_last: bool) -> torch.Tensor:
    """N×C×H×W samples laid out as real images of ``real_shape``; numpy images are tried as H×W×C
    first, tensors as C×H×W (the usual conventions), so a C = H = W image is not ambiguous."""
    c, h, w = samples.shape[1:]
    layouts = {(c, h, w): samples, (h, w, c): samples.permute(0, 2, 3, 1)}
    if c == 1:
        layouts[(h, w)] = samples[:, 0]
    order = [(h, w, c), (c, h, w), (h, w)] if channels_last else [(c, h, w), (h, w, c), (h, w)]
    for shape in order:
        if shape == real_shape and shape in layouts:
            return layouts[shape].contiguous()
    raise DataError(
        f"SyntheticMix: the sampler draws {c}×{h}×{w} (C×H×W) images, the real images are shaped {real_shape}; "
        "they cannot be batched together: use a sampler trained at the real images' size and channels"
    )


class SyntheticMix(Dataset):
    """``real`` followed by ``synthetic_count(len(real), ratio)`` generated items.

    ``labels``: the real items' classes (read from ``real`` when not given). ``image_key`` and
    ``label_key`` name the entries of dict items; tuple items are ``(image, target)``.
    ``value_range``: the range of the real images (default: uint8 0..255, uint16 0..65535, floats
    [0, 1], [-1, 1] or [0, 255] as the first real images show). ``max_cached_chunks``: how many
    chunks of ``CHUNK`` generated items are kept in memory (an evicted chunk is drawn again, the
    same, when asked for).

    A generated dict item holds only ``image_key`` and ``label_key``, a generated tuple only
    ``(image, label)``: where real items carry more (a mask, a path), the default collation cannot
    batch the two together, and the loader needs a ``collate_fn`` that keeps what both have.
    """

    def __init__(
        self,
        real: Dataset,
        sampler: ClassSampler,
        ratio: float,
        balance: bool = False,
        seed: int = 0,
        labels: Sequence[int] | None = None,
        image_key: str = "image",
        label_key: str = "label",
        value_range: tuple[float, float] | None = None,
        max_cached_chunks: int = MAX_CACHED_CHUNKS,
    ) -> None:
        self.real, self.sampler, self.ratio, self.balance, self.seed = real, sampler, ratio, balance, seed
        self.image_key, self.label_key = image_key, label_key
        if max_cached_chunks < 1:
            raise ConfigError(f"max_cached_chunks must be at least 1, got {max_cached_chunks}")
        self.max_cached_chunks = max_cached_chunks
        self.template = real[0]
        if not isinstance(self.template, (tuple, list, dict)):
            kind = type(self.template).__name__
            raise TypeError(f"SyntheticMix needs items that are (image, target) tuples or dicts, got {kind}")
        classes = int(getattr(sampler, "classes", 0))
        self.unconditional = classes == 0 and isinstance(self.template, dict)
        if self.unconditional:
            self._plan_unconditional(synthetic_count(len(real), ratio), balance)
        else:
            if labels is None:
                labels = [int(self._label_of(real[i])) for i in range(len(real))]
            self.real_labels = np.asarray(labels, np.int64)
            if classes < 2:
                raise ValueError(
                    "SyntheticMix needs a class-conditional sampler (classes >= 2) for (image, target) items; "
                    "an unconditional sampler mixes into datasets of dict items"
                )
            if self.real_labels.size and self.real_labels.max() >= classes:
                raise ValueError(f"real labels go up to {self.real_labels.max()}, the sampler knows {classes} classes")
            self.synthetic_labels = plan_labels(
                self.real_labels, classes, synthetic_count(len(real), ratio), balance, seed
            )
        self.value_range = self._real_value_range() if value_range is None else self._checked_range(value_range)
        self._chunks: OrderedDict[int, Any] = OrderedDict()  # least recently used first

    def _plan_unconditional(self, count: int, balance: bool) -> None:
        """An unconditional sampler (ProGAN, LAPGAN, DCGAN): generated dict items hold an image only."""
        if balance:
            raise ValueError("balance needs a class-conditional sampler; this one draws without labels")
        self.real_labels = np.zeros(0, np.int64)
        self.synthetic_labels = np.full(count, -1, np.int64)  # no class: only the count matters

    def _real_value_range(self) -> tuple[float, float]:
        probes = np.linspace(0, len(self.real) - 1, min(RANGE_PROBES, len(self.real))).astype(int)
        images = [self._image_of(self.template)] + [self._image_of(self.real[int(i)]) for i in probes[1:]]
        if not all(isinstance(image, (np.ndarray, torch.Tensor)) for image in images):
            return 0.0, 1.0  # like_real_images names the unsupported type on first use
        return image_value_range(images)

    @staticmethod
    def _checked_range(value_range: tuple[float, float]) -> tuple[float, float]:
        low, high = (float(v) for v in value_range)
        if not low < high:
            raise ConfigError(f"value_range must be (low, high) with low < high, got {value_range}")
        return low, high

    def __len__(self) -> int:
        return len(self.real) + len(self.synthetic_labels)

    def is_synthetic(self, index: int) -> bool:
        return index >= len(self.real)

    def _label_of(self, item) -> Any:
        return item[self.label_key] if isinstance(item, dict) else item[1]

    def _image_of(self, item) -> Any:
        return item[self.image_key] if isinstance(item, dict) else item[0]

    def _chunk(self, c: int) -> Any:
        """Generated images ``c * CHUNK`` onwards, like the real ones; the least recently used chunk
        is dropped beyond ``max_cached_chunks`` (drawing it again gives the same images)."""
        if c in self._chunks:
            self._chunks.move_to_end(c)
            return self._chunks[c]
        labels = torch.from_numpy(self.synthetic_labels[c * CHUNK : (c + 1) * CHUNK])
        condition = None if self.unconditional else labels
        samples = self.sampler.sample(len(labels), condition, seed=self.seed * 1_000_003 + c)
        self._chunks[c] = like_real_images(samples, self._image_of(self.template), self.value_range)
        while len(self._chunks) > self.max_cached_chunks:
            self._chunks.popitem(last=False)
        return self._chunks[c]

    def __getitem__(self, key):
        index = int(key if isinstance(key, (int, np.integer)) else key[0])
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a mix of {len(self)} items")
        if not self.is_synthetic(index):
            return self.real[key]
        j = index - len(self.real)
        cached = self._chunk(j // CHUNK)[j % CHUNK]
        # a copy: an in-place transform downstream must not reach the cache
        image = cached.clone() if isinstance(cached, torch.Tensor) else cached.copy()
        if self.unconditional:
            return {self.image_key: image}
        label = int(self.synthetic_labels[j])
        like_label = self._label_of(self.template)
        if isinstance(like_label, torch.Tensor):
            label = torch.tensor(label, dtype=like_label.dtype)
        if isinstance(self.template, dict):
            return {self.image_key: image, self.label_key: label}
        return (image, label) if isinstance(self.template, tuple) else [image, label]
