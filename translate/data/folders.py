"""Datasets read from image folders: unpaired (two domains) and paired (two folders or A|B images).

Every problem with the input (missing or empty folder, corrupt image, a file without its partner,
halves of different sizes, an image over the pixel limit) raises ``DataError`` naming the file,
as early as it can be found cheaply: folder listing and name matching at construction, header
sizes at construction for paired data, pixel decoding when a sample is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .base import DATASETS, TranslationDataset
from .cache import DecodedCache
from .images import DEFAULT_MAX_PIXELS, image_size, list_images, read_image
from .transforms import PairTransform

DIRECTIONS = ("AtoB", "BtoA")
#: how many unmatched names an error lists per side before summarising with a count
_MAX_LISTED = 5


def _check_max_pixels(max_pixels: int | None) -> None:
    if max_pixels is None:
        return
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive integer or null, got {max_pixels!r}")


def _transform_named(
    transform: PairTransform, images: Sequence[np.ndarray], paths: Sequence[Path], rng: np.random.Generator
) -> list[torch.Tensor]:
    """Run ``transform``, adding the file names to any data error (the transform only sees arrays)."""
    try:
        return transform(images, rng)
    except DataError as err:
        names = " and ".join(str(p) for p in dict.fromkeys(paths))
        raise DataError(f"{names}: {err}") from err


@DATASETS.register("unpaired_folders")
class UnpairedFolders(TranslationDataset):
    """Two folders of images from two domains, with no correspondence between them.

    Sample ``index`` takes the ``index``-th image of A and a random image of B (drawn from the
    sample's rng, as in the CycleGAN reference), so an epoch visits every A image and the length is
    the larger of the two folders. A and B get independent crops and flips. ``cache_mb``:
    megabytes of decoded images kept in memory (``translate.data.cache``; 0: read every time).
    """

    paired = False

    def __init__(
        self,
        root_a: str,
        root_b: str,
        transform: PairTransform,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        recursive: bool = True,
        cache_mb: float = 0.0,
    ) -> None:
        _check_max_pixels(max_pixels)
        self.root_a = root_a
        self.root_b = root_b
        self.transform = transform
        self.max_pixels = max_pixels
        self.recursive = recursive
        self.cache = DecodedCache(cache_mb)
        self.files_a = list_images(root_a, recursive=recursive)
        self.files_b = list_images(root_b, recursive=recursive)

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def load(self, index: int, rng: np.random.Generator) -> dict:
        path_a = self.files_a[index % len(self.files_a)]
        path_b = self.files_b[int(rng.integers(len(self.files_b)))]
        (a,) = _transform_named(self.transform, [self._read(path_a)], [path_a], rng)
        (b,) = _transform_named(self.transform, [self._read(path_b)], [path_b], rng)
        return {"A": a, "B": b, "A_path": str(path_a), "B_path": str(path_b)}

    def _read(self, path: Path) -> np.ndarray:
        return self.cache.get(path, lambda: read_image(path, self.max_pixels))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root_a={self.root_a!r} [{len(self.files_a)} images], "
            f"root_b={self.root_b!r} [{len(self.files_b)} images], transform={self.transform!r})"
        )


@DATASETS.register("paired_folders")
class PairedFolders(TranslationDataset):
    """Aligned image pairs, from two folders with matching file names or from side-by-side images.

    - ``root_a`` + ``root_b``: files are matched by their path relative to the root without the
      extension (``a/x/1.png`` pairs with ``b/x/1.jpg``); a file with no partner is an error.
    - ``root``: each image holds A on the left half and B on the right half (the pix2pix format).

    ``direction="BtoA"`` swaps the halves. Both halves get the same crop and flip. With
    ``check_sizes`` (default) every file's header is read at construction, so a pair of different
    sizes, an odd-width side-by-side image or an image over ``max_pixels`` is reported before
    training starts; turn it off for very large datasets, and the same checks happen as each
    sample is loaded. ``cache_mb``: megabytes of decoded pairs kept in memory
    (``translate.data.cache``; 0: read every time).
    """

    paired = True

    def __init__(
        self,
        transform: PairTransform,
        root_a: str | None = None,
        root_b: str | None = None,
        root: str | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        direction: str = "AtoB",
        recursive: bool = True,
        check_sizes: bool = True,
        cache_mb: float = 0.0,
    ) -> None:
        _check_max_pixels(max_pixels)
        if direction not in DIRECTIONS:
            raise ConfigError(f"unknown direction '{direction}'; choices: {', '.join(DIRECTIONS)}")
        self.cache = DecodedCache(cache_mb)
        self.transform = transform
        self.root_a = root_a
        self.root_b = root_b
        self.root = root
        self.max_pixels = max_pixels
        self.direction = direction
        self.recursive = recursive
        self.check_sizes = check_sizes
        self.pairs: list[tuple[Path, Path]] = self._find_pairs()
        if check_sizes:
            self._check_headers()

    # ---------------------------------------------------------------- construction
    def _find_pairs(self) -> list[tuple[Path, Path]]:
        """(A, B) paths; for side-by-side images both entries are the same file."""
        two_folders = self.root_a is not None or self.root_b is not None
        if two_folders and self.root is not None:
            raise ConfigError("paired_folders takes either root_a and root_b, or root (side-by-side A|B), not both")
        if two_folders:
            if self.root_a is None or self.root_b is None:
                raise ConfigError("paired_folders needs both root_a and root_b (or root for side-by-side A|B images)")
            return match_by_name(self.root_a, self.root_b, recursive=self.recursive)
        if self.root is None:
            raise ConfigError("paired_folders needs root_a and root_b, or root for side-by-side A|B images")
        return [(p, p) for p in list_images(self.root, recursive=self.recursive)]

    def _check_headers(self) -> None:
        """Header-only checks of every file (no decoding), so bad data fails before training."""
        for path_a, path_b in self.pairs:
            size_a = self._header_size(path_a)
            if path_a == path_b:
                _check_splittable(path_a, size_a[1])
                continue
            size_b = self._header_size(path_b)
            if size_a != size_b:
                raise _size_mismatch(path_a, size_a, path_b, size_b)

    def _header_size(self, path: Path) -> tuple[int, int]:
        h, w = image_size(path)
        if self.max_pixels is not None and h * w > self.max_pixels:
            raise DataError(
                f"{path}: {w}×{h} = {h * w} pixels exceeds the limit of {self.max_pixels} "
                f"(raise max_pixels to allow it)"
            )
        return h, w

    # ---------------------------------------------------------------- samples
    @property
    def side_by_side(self) -> bool:
        return self.root is not None

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int, rng: np.random.Generator) -> dict:
        path_a, path_b = self.pairs[index]
        a, b = self.cache.get(index, lambda: self._read_pair(path_a, path_b))
        ta, tb = _transform_named(self.transform, [a, b], [path_a, path_b], rng)
        if self.direction == "BtoA":
            ta, tb, path_a, path_b = tb, ta, path_b, path_a
        return {"A": ta, "B": tb, "A_path": str(path_a), "B_path": str(path_b)}

    def _read_pair(self, path_a: Path, path_b: Path) -> tuple[np.ndarray, np.ndarray]:
        if path_a == path_b:
            return _split(read_image(path_a, self.max_pixels), path_a)
        a = read_image(path_a, self.max_pixels)
        b = read_image(path_b, self.max_pixels)
        if a.shape != b.shape:
            raise _size_mismatch(path_a, a.shape[:2], path_b, b.shape[:2])
        return a, b

    def __repr__(self) -> str:
        source = f"root={self.root!r}" if self.side_by_side else f"root_a={self.root_a!r}, root_b={self.root_b!r}"
        return (
            f"{type(self).__name__}({source} [{len(self.pairs)} pairs], direction={self.direction!r}, "
            f"transform={self.transform!r})"
        )


def match_by_name(root_a: str | Path, root_b: str | Path, recursive: bool = True) -> list[tuple[Path, Path]]:
    """Pair the images of two folders by relative path without extension; every file needs a partner."""
    keyed_a = _keyed(root_a, recursive)
    keyed_b = _keyed(root_b, recursive)
    only_a = sorted(set(keyed_a) - set(keyed_b))
    only_b = sorted(set(keyed_b) - set(keyed_a))
    if only_a or only_b:
        raise DataError(
            f"paired folders {root_a} and {root_b} do not match by file name: "
            f"{_listing(only_a)} in A have no partner in B; {_listing(only_b)} in B have no partner in A"
        )
    return [(keyed_a[k], keyed_b[k]) for k in sorted(keyed_a)]


def _keyed(root: str | Path, recursive: bool) -> dict[str, Path]:
    """Images under ``root`` keyed by relative path without extension; two files with one key is an error."""
    root = Path(root)
    keyed: dict[str, Path] = {}
    for path in list_images(root, recursive=recursive):
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in keyed:
            raise DataError(f"{keyed[key]} and {path} have the same name; cannot tell which one is the pair's half")
        keyed[key] = path
    return keyed


def _listing(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"{len(names)} file(s) ({shown}{f', and {more} more' if more > 0 else ''})"


def _check_splittable(path: Path, width: int) -> None:
    if width % 2:
        raise DataError(
            f"{path}: side-by-side A|B image has odd width {width}; it cannot be split into two equal halves"
        )


def _split(image: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Left half is A, right half is B."""
    width = image.shape[1]
    _check_splittable(path, width)
    half = width // 2
    return image[:, :half], image[:, half:]


def _size_mismatch(path_a: Path, size_a: Sequence[int], path_b: Path, size_b: Sequence[int]) -> DataError:
    return DataError(
        f"pair halves differ in size: {path_a} is {size_a[1]}×{size_a[0]}, {path_b} is {size_b[1]}×{size_b[0]}"
    )
