"""Image/label pairs for semantic segmentation: one reader for synthetic, translated and real data.

Every segmentation source (the synthetic benchmark, GTA5, Cityscapes, a folder of translated
images) is a list of (image path, label path) pairs plus the label format — ``id`` (Cityscapes
label ids, as GTA5 and Cityscapes store them) or ``trainId`` (the 19 training classes, as the
synthetic benchmark stores them). Samples are ``(image, label)``: RGB uint8 H×W×3 and a trainId
map uint8 H×W (255 = ignore), so the study's training code never knows where data came from.

Image and label sizes are compared once, from the file headers, when a dataset is built; what
happens to a pair whose sizes differ is the dataset's ``mismatched`` policy, so a bad frame is
found before training rather than in the middle of an epoch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from ..data.base import DATASETS, split_key
from ..data.cache import DecodedCache
from ..data.images import apply_orientation, exif_orientation, image_size, list_images, read_image
from ..errors import DataError
from .classes import ID_TO_TRAINID, IGNORE, NUM_CLASSES

LABEL_FORMATS = ("id", "trainId")
#: what to do with a pair whose label has another size than its image
MISMATCH_POLICIES = ("error", "skip", "resize_label")
Transform = Callable[..., dict]  # albumentations-style: transform(image=..., mask=...) -> {"image", "mask"}
Pair = tuple[Path, Path]

log = logging.getLogger(__name__)


def read_label(path: str | Path, label_format: str = "id") -> np.ndarray:
    """Read a label PNG as a trainId map (H×W uint8).

    Label maps are single-channel: 8-bit grey (Cityscapes ``*_labelIds.png``) or palette images
    whose indices are the ids (GTA5). A colour (RGB) label — a visualisation, not an id map —
    is refused with an error naming the file. PIL is used because OpenCV expands palette PNGs
    to colour, losing the ids. An EXIF orientation is applied, as ``read_image`` does for images.
    """
    from PIL import Image

    path = Path(path)
    if label_format not in LABEL_FORMATS:
        raise DataError(f"unknown label format '{label_format}'; known: {', '.join(LABEL_FORMATS)}")
    if not path.is_file():
        raise DataError(f"label file not found: {path}")
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV"):
                raise DataError(
                    f"{path}: label is a {mode} colour image; expected a single-channel id map "
                    f"(8-bit grey or palette PNG holding {'Cityscapes label ids' if label_format == 'id' else 'trainIds'})"
                )
            orientation = exif_orientation(im)
            arr = np.array(im)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read label {path}: {exc}") from None
    if arr.ndim != 2:
        raise DataError(f"{path}: label has shape {arr.shape}; expected a single-channel H×W id map")
    arr = apply_orientation(arr, orientation)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{path}: label values {arr.min()}..{arr.max()} do not fit label ids 0..255")
        arr = arr.astype(np.uint8)
    if label_format == "id":
        return ID_TO_TRAINID[arr]
    bad = (arr >= NUM_CLASSES) & (arr != IGNORE)
    if bad.any():
        raise DataError(
            f"{path}: trainId label holds values {sorted(set(np.unique(arr[bad]).tolist()))[:8]} (valid: 0..{NUM_CLASSES - 1}, 255)"
        )
    return arr


def _size_mismatch(image_path: Path, label_path: Path, image_hw: tuple[int, int], label_hw: tuple[int, int]) -> str:
    return (
        f"label {label_path} is {label_hw[1]}×{label_hw[0]} but its image {image_path} is {image_hw[1]}×{image_hw[0]}"
    )


def check_pair_sizes(pairs: Sequence[Pair], mismatched: str) -> tuple[list[Pair], list[Pair]]:
    """Compare every image's size with its label's (headers only) and apply the policy.

    Returns (pairs to keep, pairs whose sizes differ). ``error`` raises naming the pairs;
    ``skip`` keeps only the matching pairs; ``resize_label`` keeps all (labels are resized to
    their image when loaded).
    """
    if mismatched not in MISMATCH_POLICIES:
        raise DataError(f"unknown mismatched policy '{mismatched}'; known: {', '.join(MISMATCH_POLICIES)}")
    keep: list[Pair] = []
    bad: list[tuple[Pair, str]] = []
    for image_path, label_path in pairs:
        image_hw, label_hw = image_size(image_path), image_size(label_path)
        if image_hw == label_hw:
            keep.append((image_path, label_path))
        else:
            bad.append(((image_path, label_path), _size_mismatch(image_path, label_path, image_hw, label_hw)))
    if not bad:
        return keep, []
    listed = "; ".join(why for _, why in bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
    if mismatched == "error":
        raise DataError(
            f"{len(bad)} of {len(pairs)} labels have another size than their image: {listed} "
            f"(pass mismatched='skip' or 'resize_label' to train on the rest)"
        )
    action = "skipped" if mismatched == "skip" else "labels resized (nearest neighbour) for"
    log.warning("%s %d of %d pairs whose label size differs from the image: %s", action, len(bad), len(pairs), listed)
    mismatched_pairs = [pair for pair, _ in bad]
    if mismatched == "skip":
        if not keep:
            raise DataError(f"every one of {len(pairs)} labels has another size than its image: {listed}")
        return keep, mismatched_pairs
    return list(pairs), mismatched_pairs


class SegmentationDataset(Dataset):
    """(image, trainId label) pairs from explicit file pairs.

    Sizes are checked when the dataset is built (see ``check_pair_sizes``): ``skipped`` and
    ``resized`` list the pairs the ``mismatched`` policy dropped or whose labels it resizes.
    """

    def __init__(
        self, pairs: Sequence[Pair], label_format: str, transform: Transform | None = None, mismatched: str = "error"
    ) -> None:
        if label_format not in LABEL_FORMATS:
            raise DataError(f"unknown label format '{label_format}'; known: {', '.join(LABEL_FORMATS)}")
        pairs = [(Path(a), Path(b)) for a, b in pairs]
        self.mismatched = mismatched
        self.pairs, different = check_pair_sizes(pairs, mismatched)
        self.skipped: list[Pair] = different if mismatched == "skip" else []
        self.resized: list[Pair] = different if mismatched == "resize_label" else []
        self.label_format = label_format
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        label = read_label(label_path, self.label_format)
        if label.shape != image.shape[:2]:
            if self.mismatched != "resize_label":  # a file changed since the dataset was built
                raise DataError(_size_mismatch(image_path, label_path, image.shape[:2], label.shape))
            label = cv2.resize(label, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        if self.transform is not None:
            out = self.transform(image=image, mask=label)
            image, label = out["image"], out["mask"]
        return image, label

    def arrays(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` samples stacked (N×H×W×3, N×H×W); all must have one size."""
        n = len(self) if limit is None else min(limit, len(self))
        samples = [self[i] for i in range(n)]
        shapes = {s[0].shape for s in samples}
        if len(shapes) > 1:
            raise DataError(f"samples have different sizes {sorted(shapes)[:3]}; resize them with a transform first")
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def pair_with_labels(images: Iterable[Path], label_of: Callable[[Path], Path]) -> list[Pair]:
    """(image, label) for every image; ``label_of`` names the label an image needs.

    A missing label is an error naming the image and the file expected for it.
    """
    pairs = []
    for image in images:
        label = label_of(image)
        if not label.is_file():
            raise DataError(f"missing label file for {image}: expected {label}")
        pairs.append((image, label))
    return pairs


def folder_pairs(root: str | Path, what: str = "dataset") -> list[Pair]:
    """Pairs ``root/images/NAME.*`` with ``root/labels/NAME.png`` (the GTA5 layout).

    Every image needs its label; labels without an image are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what} root not found: {root}")
    images_dir, labels_dir = root / "images", root / "labels"
    for d in (images_dir, labels_dir):
        if not d.is_dir():
            raise DataError(
                f"{what} root {root} has no {d.name}/ folder (expected {root}/images/*.png and {root}/labels/*.png)"
            )
    images = list_images(images_dir, recursive=False)
    return pair_with_labels(images, lambda img: labels_dir / (img.stem + ".png"))


class SegmentationFolder(SegmentationDataset):
    """``root/images`` + ``root/labels`` with a given label format (e.g. translated synthetic data)."""

    def __init__(
        self,
        root: str | Path,
        label_format: str = "trainId",
        transform: Transform | None = None,
        mismatched: str = "error",
    ) -> None:
        super().__init__(folder_pairs(root, "segmentation folder"), label_format, transform, mismatched)
        self.root = Path(root)


class SyntheticSceneDataset(SegmentationDataset):
    """Scenes written by ``i2i data synth``: the GTA5 folder layout, labels already trainIds.

    ``root`` is the folder holding ``manifest.json``; a paired set holds one folder per domain,
    chosen with ``domain``.
    """

    def __init__(self, root: str | Path, domain: str | None = None, transform: Transform | None = None) -> None:
        root = Path(root)
        manifest_path = root / "manifest.json"
        if not manifest_path.is_file():
            raise DataError(f"{root} is not a synthetic scene set: no manifest.json (write one with `i2i data synth`)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{manifest_path} is not valid JSON: {exc}") from None
        if manifest.get("paired") and "domains" in manifest:
            if domain not in manifest["domains"]:
                raise DataError(
                    f"{root} holds paired domains {', '.join(manifest['domains'])}; pass domain= one of them"
                )
            root = root / domain
        elif domain is not None and manifest.get("domain") != domain:
            raise DataError(f"{root} holds the '{manifest.get('domain')}' domain, not '{domain}'")
        self.manifest = manifest
        self.root = root
        super().__init__(folder_pairs(root, "synthetic scene set"), manifest.get("label_format", "trainId"), transform)


def resized_size(height: int, width: int, size: tuple[int, int] | None, short_side: int | None) -> tuple[int, int]:
    """The (height, width) a ``height``×``width`` frame is brought to: ``size`` exactly, or its
    shorter side to ``short_side`` keeping the aspect (GTA5 1914×1052 → 1310×720), or unchanged."""
    if size is not None:
        return size
    if short_side is None:
        return height, width
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def random_crop(
    image: np.ndarray, label: np.ndarray, crop: tuple[int, int], rng: np.random.Generator, where: Path
) -> tuple[np.ndarray, np.ndarray]:
    """The same random ``crop`` (H, W) of image and label; offsets drawn from ``rng`` (top, then left)."""
    (h, w), (ch, cw) = image.shape[:2], crop
    if ch > h or cw > w:
        raise DataError(f"{where}: frame of {w}×{h} (after resizing) is smaller than the crop {cw}×{ch}")
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return image[top : top + ch, left : left + cw], label[top : top + ch, left : left + cw]


class SegmentationSet(SegmentationDataset):
    """(image, trainId label) pairs read lazily, one file at a time: the set holds its file list
    and, with ``cache_mb`` > 0, up to that many megabytes of resized samples (``DecodedCache``), so
    memory is bounded by the budget and what a batch holds, never by the size of the set.

    Every sample is resized (``size`` H×W exactly, or ``short_side`` keeping the aspect; area
    interpolation for images, nearest for labels). ``full_size_labels`` keeps labels at their file
    size (evaluation: predictions are upsampled to the label, as the literature scores Cityscapes).
    ``sample(index, rng)`` is a training draw: the resized sample with a random ``crop`` (H, W)
    whose offsets come from ``rng``; without ``crop`` it draws nothing, so it equals ``self[index]``.
    Instances are plain data (paths and sizes) and travel to DataLoader workers.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        label_format: str,
        size: tuple[int, int] | None = None,
        short_side: int | None = None,
        crop: tuple[int, int] | None = None,
        full_size_labels: bool = False,
        mismatched: str = "error",
        cache_mb: float = 0.0,
    ) -> None:
        if size is not None and short_side is not None:
            raise DataError("give a segmentation set either size or short_side, not both")
        super().__init__(pairs, label_format, None, mismatched)
        self.size = tuple(size) if size is not None else None
        self.short_side = short_side
        self.crop = tuple(crop) if crop is not None else None
        self.full_size_labels = full_size_labels
        self.cache = DecodedCache(cache_mb)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.cache.get(index, lambda: self._resized(index))

    def _resized(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = super().__getitem__(index)
        h, w = resized_size(*image.shape[:2], self.size, self.short_side)
        if (h, w) != image.shape[:2]:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            if not self.full_size_labels:
                label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
        return image, label

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image, label = self[index]
        if self.crop is None:
            return image, label
        return random_crop(image, label, self.crop, rng, self.pairs[index][0])

    def label(self, index: int) -> np.ndarray:
        """The label of sample ``index`` as stored (no image decoded), e.g. to list the classes of a set."""
        image_path, label_path = self.pairs[index]
        return read_label(label_path, self.label_format)

    def names(self) -> list[str]:
        return [image.name for image, _ in self.pairs]


class ArraySet:
    """In-memory (images N×H×W×3, labels N×H×W) with the interface of ``SegmentationSet`` (small
    sets built in code, tests); ``sample`` draws nothing."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if len(images) != len(labels):
            raise DataError(f"need equally many images and labels, got {len(images)} and {len(labels)}")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index]

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self[index]

    def label(self, index: int) -> np.ndarray:
        return self.labels[index]


def photometric_augmentation(strength: float = 1.0) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """Classic photometric augmentation (albumentations): colour jitter, Gaussian blur, Gaussian noise,
    as ``augment(image, rng)`` drawing its randomness from ``rng``.

    This is the baseline the study compares translation against: it changes global colour,
    sharpness and noise, but knows nothing about how each class looks in the target domain.
    """
    import albumentations as A

    s = strength
    transform = A.Compose(
        [
            A.ColorJitter(brightness=0.5 * s, contrast=0.5 * s, saturation=0.6 * s, hue=0.12 * s, p=0.9),
            A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.2), p=0.5),
            A.GaussNoise(std_range=(0.01, 0.08), p=0.5),
        ]
    )

    def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        transform.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        return transform(image=image)["image"]

    return augment


def stem_pairs(images: str | Path, labels: str | Path) -> list[Pair]:
    """(image, label) pairs of two folders matched by file stem (``images/000001.png`` with
    ``labels/000001.png``); a folder that does not exist or an image without its label is an error."""
    images, labels = Path(images), Path(labels)
    for folder, what in ((images, "images"), (labels, "labels")):
        if not folder.is_dir():
            raise DataError(f"segmentation {what} folder not found: {folder}")
    return pair_with_labels(list_images(images, recursive=False), lambda img: labels / (img.stem + ".png"))


@DATASETS.register("segmentation_pairs")
class SegmentationPairs(Dataset):
    """(image, label) training samples for the ``segmentation`` model, drawn by ``(index, seed)`` key.

    ``images`` and ``labels``: folders matched by file stem, read lazily as a ``SegmentationSet``
    (``size`` H×W or ``short_side`` resizing, then a random ``crop`` H×W; ``mismatched``: the policy
    for labels of another size). ``alternative_images``: a folder with another version of every
    image under the same name (e.g. the images translated to the target domain), drawn instead of
    the original with probability ``p_alternative`` (1: always) and resized and cropped as the
    original; ``photometric``: strength of ``photometric_augmentation`` (0: none); ``flip``:
    horizontal flips of image and label together; ``cache_mb``: megabytes of resized images and
    labels (originals and alternatives) kept in memory (``translate.data.cache``). Every random
    choice comes from the key's seed, so a sample is the same in any worker and a resumed run
    replays it. Samples: ``image`` 3×H×W float in [-1, 1] and ``label`` H×W int64 trainIds
    (255 = ignore).
    """

    def __init__(
        self,
        images: str,
        labels: str,
        label_format: str = "trainId",
        size: Sequence[int] | None = None,
        short_side: int | None = None,
        crop: Sequence[int] | None = None,
        mismatched: str = "error",
        alternative_images: str | None = None,
        p_alternative: float = 1.0,
        photometric: float = 0.0,
        flip: bool = True,
        cache_mb: float = 0.0,
    ) -> None:
        if not 0.0 <= p_alternative <= 1.0:
            raise DataError(f"p_alternative must be in [0, 1], got {p_alternative}")
        for key, value in (("size", size), ("crop", crop)):
            if value is not None and len(value) != 2:
                raise DataError(f"segmentation_pairs {key} must be [height, width], got {list(value)}")
        self.pairs = SegmentationSet(
            stem_pairs(images, labels),
            label_format,
            size=size,
            short_side=short_side,
            crop=crop,
            mismatched=mismatched,
            cache_mb=cache_mb,
        )
        self.alternatives = None
        if alternative_images is not None:
            alternative_images = Path(alternative_images)
            self.alternatives = [alternative_images / image.name for image, _ in self.pairs.pairs]
            missing = [p for p in self.alternatives if not p.is_file()]
            if missing:
                raise DataError(
                    f"{alternative_images} lacks {len(missing)} of {len(self.alternatives)} images "
                    f"(first {missing[0].name}); it needs one for every image of {images}"
                )
        self.p_alternative = p_alternative
        self.augment = photometric_augmentation(photometric) if photometric > 0 else None
        self.flip = flip

    def __len__(self) -> int:
        return len(self.pairs)

    def _alternative(self, index: int, size: tuple[int, int]) -> np.ndarray:
        """The alternative image of sample ``index`` at the (resized) size of the original."""

        def load() -> np.ndarray:
            image = read_image(self.alternatives[index])
            if image.shape[:2] != size:
                image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            return image

        return self.pairs.cache.get(("alternative", index), load)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        import torch

        from ..data.images import to_tensor

        index, seed = split_key(key)
        rng = np.random.default_rng(seed)
        image, label = self.pairs[index]
        if self.alternatives is not None and rng.random() < self.p_alternative:
            image = self._alternative(index, image.shape[:2])
        if self.pairs.crop is not None:  # the same crop whichever image was drawn
            image, label = random_crop(image, label, self.pairs.crop, rng, self.pairs.pairs[index][0])
        if self.augment is not None:
            image = self.augment(image, rng)
        if self.flip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        return {
            "image": to_tensor(np.ascontiguousarray(image)),
            "label": torch.from_numpy(np.ascontiguousarray(label)).long(),
        }


@DATASETS.register("segmentation_concat")
class SegmentationConcat(Dataset):
    """Several ``segmentation_pairs`` sets as one, concatenated: ``parts`` are their options (each
    with its own folders, label format, sizes and crop; a part with ``name: segmentation_classmix``
    is that dataset instead). Sample ``i`` of the whole is sample ``i``
    of the first part, then of the second, ..., drawn with the key's seed, so an epoch visits every
    sample of every part once (e.g. labelled source images and pseudo-labelled target images).
    ``cache_mb`` is each part's unless its options give their own."""

    def __init__(self, parts: Sequence[dict], cache_mb: float = 0.0) -> None:
        if not parts:
            raise DataError("segmentation_concat needs at least one part")
        shared = _SharedSets(cache_mb)
        self.parts = [_part(part, shared) for part in parts]
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = split_key(key)
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of a segmentation_concat of {len(self)}")
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.parts[part][(index - int(self.starts[part]), seed)]


class _SharedSets:
    """The ``segmentation_pairs`` sets of one combined set, each built once: a ClassMix part whose
    source is also a part of its own (the row's own set, pasted from and trained on) reads the
    same files through the same decoded-image cache instead of a second copy. Sharing is safe
    because a sample is a function of its key alone."""

    def __init__(self, cache_mb: float) -> None:
        self.cache_mb = cache_mb
        self.built: dict[str, SegmentationPairs] = {}

    def pairs(self, options: dict) -> SegmentationPairs:
        options = {"cache_mb": self.cache_mb, **options}
        key = json.dumps(options, sort_keys=True, default=str)
        if key not in self.built:
            self.built[key] = SegmentationPairs(**options)
        return self.built[key]


def _part(options: dict, shared: _SharedSets) -> Dataset:
    """A part of a combined set: ``segmentation_pairs`` options, or ``name: segmentation_classmix``
    with its ``target`` and ``source`` options; each set without its own ``cache_mb`` gets the
    whole set's, and sets of equal options are one (``_SharedSets``)."""
    options = dict(options)
    name = options.pop("name", "segmentation_pairs")
    if name == "segmentation_pairs":
        return shared.pairs(options)
    if name == "segmentation_classmix":
        unknown = set(options) - {"target", "source", "cache_mb"}
        if unknown or not {"target", "source"} <= set(options):
            raise DataError(
                f"segmentation_classmix takes target, source and cache_mb, got {', '.join(sorted(options))}"
            )
        own = {"cache_mb": options["cache_mb"]} if "cache_mb" in options else {}
        target, source = ({**own, **options[key]} for key in ("target", "source"))
        return SegmentationClassMix(shared.pairs(target), shared.pairs(source))
    raise DataError(f"a segmentation part must be segmentation_pairs or segmentation_classmix, got '{name}'")


def classmix_mask(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ClassMix's mask (Olsson et al. 2021): the pixels of a randomly chosen half of the classes
    present in ``label`` (H×W trainIds; the ignore index is never chosen)."""
    present = np.unique(label[label != IGNORE])
    if len(present) == 0:
        return np.zeros(label.shape, dtype=bool)
    chosen = rng.choice(present, size=(len(present) + 1) // 2, replace=False)
    return np.isin(label, chosen)


@DATASETS.register("segmentation_classmix")
class SegmentationClassMix(Dataset):
    """Cross-domain ClassMix as in DACS (Tranheden et al. 2021): each sample is a target image with
    the pixels of half the classes of a labelled source image pasted onto it; its label is the
    source's label where pasted and the target's (pseudo-)label elsewhere.

    Self-training on pseudo-labels alone drifts towards the classes it already predicts well (a
    minority class's unsure pixels become its neighbour's); pasted source objects keep correct
    labels for every class inside target-looking scenes. ``target`` and ``source``: the options of
    two ``segmentation_pairs`` sets whose samples have one size (e.g. pseudo-labelled target images
    and the translated source), or such sets already built (shared with a combined set's parts).
    Sample ``i`` is target sample ``i`` mixed with a source sample drawn from the key's seed, so a
    resumed run replays it and every epoch draws new partners. ``cache_mb`` is each set's unless
    its options give their own.
    """

    def __init__(
        self, target: dict | SegmentationPairs, source: dict | SegmentationPairs, cache_mb: float = 0.0
    ) -> None:
        def built(options: dict | SegmentationPairs) -> SegmentationPairs:  # a set may come shared
            return (
                options
                if isinstance(options, SegmentationPairs)
                else SegmentationPairs(**{"cache_mb": cache_mb, **options})
            )

        self.target, self.source = built(target), built(source)
        if len(self.source) == 0:
            raise DataError("segmentation_classmix needs at least one source sample")

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        import torch

        index, seed = split_key(key)
        rng = np.random.default_rng([seed, index, 0x6D6978])
        target = self.target[(index, seed)]
        partner = int(rng.integers(len(self.source)))
        source = self.source[(partner, int(rng.integers(2**31)))]
        if source["label"].shape != target["label"].shape:
            raise DataError(
                f"segmentation_classmix: source sample {partner} is {tuple(source['label'].shape)} and target "
                f"sample {index} {tuple(target['label'].shape)}; both sets need one sample size (size or crop)"
            )
        mask = torch.from_numpy(classmix_mask(source["label"].numpy(), rng))
        return {
            "image": torch.where(mask, source["image"], target["image"]),
            "label": torch.where(mask, source["label"], target["label"]),
        }
