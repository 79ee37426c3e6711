"""The 19 Cityscapes training classes: names, colours, label id → trainId mapping, colouriser,
and class statistics of label maps.

GTA5 and Cityscapes store *label ids* (0–33, Cityscapes' full class list); segmentation is trained
and scored on the 19 *trainIds*, every other id mapping to ``IGNORE`` (255). The synthetic
benchmark writes trainIds directly. Everything here is plain data so that loaders, the synthetic
renderer and the study share one definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

IGNORE = 255


class TrainClass(NamedTuple):
    train_id: int
    name: str
    label_id: int  # Cityscapes label id stored in *_labelIds.png and GTA5 label PNGs
    colour: tuple[int, int, int]  # the official Cityscapes RGB colour


CLASSES: tuple[TrainClass, ...] = (
    TrainClass(0, "road", 7, (128, 64, 128)),
    TrainClass(1, "sidewalk", 8, (244, 35, 232)),
    TrainClass(2, "building", 11, (70, 70, 70)),
    TrainClass(3, "wall", 12, (102, 102, 156)),
    TrainClass(4, "fence", 13, (190, 153, 153)),
    TrainClass(5, "pole", 17, (153, 153, 153)),
    TrainClass(6, "traffic light", 19, (250, 170, 30)),
    TrainClass(7, "traffic sign", 20, (220, 220, 0)),
    TrainClass(8, "vegetation", 21, (107, 142, 35)),
    TrainClass(9, "terrain", 22, (152, 251, 152)),
    TrainClass(10, "sky", 23, (70, 130, 180)),
    TrainClass(11, "person", 24, (220, 20, 60)),
    TrainClass(12, "rider", 25, (255, 0, 0)),
    TrainClass(13, "car", 26, (0, 0, 142)),
    TrainClass(14, "truck", 27, (0, 0, 70)),
    TrainClass(15, "bus", 28, (0, 60, 100)),
    TrainClass(16, "train", 31, (0, 80, 100)),
    TrainClass(17, "motorcycle", 32, (0, 0, 230)),
    TrainClass(18, "bicycle", 33, (119, 11, 32)),
)
NUM_CLASSES = len(CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)

#: the trainIds the synthetic street scenes contain
SYNTHETIC_TRAIN_IDS: tuple[int, ...] = (0, 1, 2, 5, 7, 8, 10, 11, 13)


def _id_to_train_id_lut() -> np.ndarray:
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for c in CLASSES:
        lut[c.label_id] = c.train_id
    lut.setflags(write=False)
    return lut


#: 256-entry lookup table: ``ID_TO_TRAINID[label_id_map]`` gives the trainId map
ID_TO_TRAINID: np.ndarray = _id_to_train_id_lut()


def _palette() -> np.ndarray:
    pal = np.zeros((256, 3), dtype=np.uint8)  # ignore and unknown values are black
    for c in CLASSES:
        pal[c.train_id] = c.colour
    pal.setflags(write=False)
    return pal


#: 256×3 RGB colours indexed by trainId
PALETTE: np.ndarray = _palette()


def ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a Cityscapes label-id map (uint8) to trainIds; ids outside the 19 classes become 255."""
    if label_ids.dtype != np.uint8:
        raise ValueError(f"label ids must be uint8, got {label_ids.dtype}")
    return ID_TO_TRAINID[label_ids]


def colorize(label: np.ndarray) -> np.ndarray:
    """RGB image (H×W×3 uint8) of a trainId map in the Cityscapes colours; ignore is black."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"colorize expects an H×W label map, got shape {label.shape}")
    return PALETTE[label.astype(np.uint8, copy=False)]


def overlay(image: np.ndarray, label: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised ``label`` over ``image`` (both H×W), ignore pixels left untouched."""
    colours = colorize(label).astype(np.float32)
    out = image.astype(np.float32)
    keep = (label == IGNORE)[..., None]
    blended = (1 - alpha) * out + alpha * colours
    return np.where(keep, out, blended).round().astype(np.uint8)


class ClassTally:
    """Counts, over a stream of trainId maps, how many maps hold each class and how many pixels.

    One definition of the shares, used by ``i2i data stats`` and by scene-set manifests alike:

    * ``scene_share`` of a class: the fraction of label maps with at least one pixel of it;
    * ``pixel_share``: its pixels over all *labelled* pixels (every pixel that is not ``IGNORE``),
      whichever classes are reported. Shares of disjoint classes therefore add up to at most 1,
      and reporting fewer classes does not inflate the others.
    """

    def __init__(self) -> None:
        self.maps = 0
        self.maps_with = np.zeros(256, np.int64)
        self.pixels = np.zeros(256, np.int64)

    def add(self, label: np.ndarray) -> None:
        counts = np.bincount(np.asarray(label, dtype=np.uint8).ravel(), minlength=256)
        self.maps_with += counts > 0
        self.pixels += counts
        self.maps += 1

    @property
    def labelled_pixels(self) -> int:
        return int(self.pixels.sum() - self.pixels[IGNORE])

    def scene_share(self, train_id: int) -> float:
        return float(self.maps_with[train_id] / max(self.maps, 1))

    def pixel_share(self, train_id: int) -> float:
        return float(self.pixels[train_id] / max(self.labelled_pixels, 1))


def class_report(labels: Iterable[np.ndarray], class_ids: Sequence[int] | None = None) -> dict[str, dict[str, float]]:
    """``{class name: {"scene_share", "pixel_share"}}`` over ``labels`` (see ``ClassTally``).

    ``class_ids`` defaults to the classes the synthetic street scenes contain.
    """
    tally = ClassTally()
    for label in labels:
        tally.add(label)
    ids = SYNTHETIC_TRAIN_IDS if class_ids is None else class_ids
    return {CLASS_NAMES[c]: {"scene_share": tally.scene_share(c), "pixel_share": tally.pixel_share(c)} for c in ids}
