"""Translators that are not trained: the baselines a user would try before a GAN.

Each kind is one of albumentations' domain-adaptation transforms, applied with a *reference*
image of the target training set:

* ``fda`` — Fourier Domain Adaptation (Yang & Soatto 2020): the source image keeps its phase and
  takes the low-frequency amplitude of the reference (``beta``: the share of the spectrum swapped);
* ``histogram`` — per-channel histogram matching to the reference (``blend``: how much of the
  matched image is kept);
* ``pixel_distribution`` — the source pixels' distribution fitted and mapped onto the reference's
  (``transform_type``: pca | standard | minmax; ``blend`` as above).

The reference of source image ``index`` is drawn from the target training images by a generator
seeded with (``reference_seed``, stream, ``index``): the same image always gets the same reference,
whatever order or process translates it, and the quality set draws from a stream of its own.
Parameters albumentations would draw per call (beta, blend ratio) are fixed ranges of one value,
so a translation is a pure function of (image, index, seed).

A kind reads only the keys its ``Baseline`` lists (plus ``kind`` and ``reference_seed``): those
are its stage's fingerprint, and the GAN keys of a translator section are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from translate.errors import ConfigError, DataError

from .config import TranslatorSection

#: the kind of a translator trained by the engine (the section's model, steps, ...)
GAN_KIND = "gan"
#: keys every training-free kind reads
COMMON_KEYS = ("kind", "reference_seed")
#: streams of reference draws: the translated training set and the translator-quality set
STREAMS = {"train": 0, "quality": 1}
#: albumentations' largest FDA beta
MAX_BETA = 0.5
PDA_TYPES = ("pca", "standard", "minmax")


@dataclass(frozen=True)
class Baseline:
    """One training-free kind: the section keys it reads and the transform they build."""

    keys: tuple[str, ...]
    build: Callable[[TranslatorSection], Any]  # -> an albumentations transform applied with p=1


def _fda(t: TranslatorSection):
    import albumentations as A

    return A.FDA(beta_limit=(t.beta, t.beta), p=1.0)


def _histogram(t: TranslatorSection):
    import albumentations as A

    return A.HistogramMatching(blend_ratio=(t.blend, t.blend), p=1.0)


def _pixel_distribution(t: TranslatorSection):
    import albumentations as A
    from albumentations.augmentations.mixing import domain_adaptation_functional as fda

    class PixelDistributionAdaptation(A.PixelDistributionAdaptation):
        """albumentations' transform with its uint8 output fixed: in 2.0.8 the fitted mapping
        returns pixels on the [0, 1] scale and the transform casts them to uint8 unscaled, so every
        uint8 image comes out black. Here the mapping's output is brought back to [0, 255] first."""

        def apply(self, img: np.ndarray, reference_image: np.ndarray, blend_ratio: float, **params: Any):
            if img.dtype != np.uint8:
                return super().apply(img, reference_image, blend_ratio, **params)
            scaler = {"pca": fda.PCA, "standard": fda.StandardScaler, "minmax": fda.MinMaxScaler}[self.transform_type]
            adapted = fda.DomainAdapter(transformer=scaler(), ref_img=reference_image)(img) * 255.0
            blended = img.astype(np.float32) * (1.0 - blend_ratio) + adapted * blend_ratio
            return np.clip(np.rint(blended), 0, 255).astype(np.uint8)

    return PixelDistributionAdaptation(blend_ratio=(t.blend, t.blend), transform_type=t.transform_type, p=1.0)


BASELINES: dict[str, Baseline] = {
    "fda": Baseline(("beta",), _fda),
    "histogram": Baseline(("blend",), _histogram),
    "pixel_distribution": Baseline(("blend", "transform_type"), _pixel_distribution),
}
#: every key only the training-free kinds read (left out of a GAN translator's fingerprint)
BASELINE_KEYS = tuple(dict.fromkeys(k for b in BASELINES.values() for k in (*COMMON_KEYS, *b.keys)))
KINDS = (GAN_KIND, *BASELINES)


def is_baseline(section: TranslatorSection) -> bool:
    return section.kind in BASELINES


def section_inputs(section: TranslatorSection) -> dict[str, Any]:
    """The keys a training-free translator reads, with their values (its stage's config)."""
    return {key: getattr(section, key) for key in (*COMMON_KEYS, *BASELINES[section.kind].keys)}


def check_section(name: str, t: TranslatorSection) -> None:
    """A translator section's kind and the options of a training-free kind, checked before anything runs."""
    where = f"translators.{name}"
    if t.kind not in KINDS:
        raise ConfigError(f"{where}.kind must be one of {', '.join(KINDS)}, got '{t.kind}'")
    if t.kind == GAN_KIND:
        return
    if t.init_from or t.lambda_semantic > 0:
        raise ConfigError(f"{where}: kind '{t.kind}' is not trained, so it takes neither init_from nor lambda_semantic")
    if t.seed:
        raise ConfigError(
            f"{where}: kind '{t.kind}' is not trained, so it takes no seed (its references: reference_seed)"
        )
    if not 0.0 < t.beta <= MAX_BETA:
        raise ConfigError(f"{where}.beta must be in (0, {MAX_BETA}], got {t.beta}")
    if not 0.0 <= t.blend <= 1.0:
        raise ConfigError(f"{where}.blend must be in [0, 1], got {t.blend}")
    if t.transform_type not in PDA_TYPES:
        raise ConfigError(f"{where}.transform_type must be one of {', '.join(PDA_TYPES)}, got '{t.transform_type}'")


class ReferenceTranslator:
    """A training-free translator: ``translate(image, index)`` applies the kind's transform with
    the reference image drawn for ``index``."""

    def __init__(self, section: TranslatorSection, references: list[Path], stream: str = "train") -> None:
        if not references:
            raise DataError(f"translator kind '{section.kind}' needs target reference images; none were given")
        self.transform = BASELINES[section.kind].build(section)
        self.references = references
        self.seed = section.reference_seed
        self.stream = STREAMS[stream]

    def reference_index(self, index: int) -> int:
        return int(np.random.default_rng([self.seed, self.stream, index]).integers(len(self.references)))

    def reference(self, index: int) -> np.ndarray:
        from translate.data.images import read_image

        return read_image(self.references[self.reference_index(index)])

    def translate(self, image: np.ndarray, index: int) -> np.ndarray:
        metadata = {self.transform.metadata_key: [self.reference(index)]}
        return self.transform(image=image, **metadata)["image"]


def reference_images(data_dir: Path) -> list[Path]:
    """The target training images, the pool references are drawn from."""
    from translate.data.images import list_images

    return list_images(data_dir / "target_train" / "images")


def translate_folder(section: TranslatorSection, data_dir: Path, out_dir: Path, progress: bool = False) -> int:
    """Every source training image translated into ``out_dir/STEM.png`` (atomically; a rerun skips
    finished files). Returns the number of images."""
    from tqdm.auto import tqdm

    from translate.data.images import list_images, read_image
    from translate.infer.files import write_png

    translator = ReferenceTranslator(section, reference_images(data_dir))
    sources = list_images(data_dir / "source_train" / "images")
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, source in enumerate(tqdm(sources, desc=f"translation: {section.kind}", disable=not progress)):
        target = out_dir / f"{source.stem}.png"
        if not target.is_file():
            write_png(target, translator.translate(read_image(source), index))
    return len(sources)


def translate_arrays(section: TranslatorSection, data_dir: Path, images: np.ndarray) -> np.ndarray:
    """Images N×H×W×3 translated with references of the quality stream (for scoring: no files)."""
    translator = ReferenceTranslator(section, reference_images(data_dir), stream="quality")
    return np.stack([translator.translate(image, i) for i, image in enumerate(images)])
