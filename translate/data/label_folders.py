"""(image, label map) pairs from a folder holding ``images/*.png`` and ``labels/*.png`` of the same
names (e.g. what ``i2i data synth`` writes): the training data of label map -> image samplers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from .base import DATASETS


@DATASETS.register("label_folders")
class LabelFolders(Dataset):
    """Items: {"image": 3×H×W float in [-1, 1], "label": H×W int64 class ids (255 = unlabelled)}.
    ``limit`` keeps the first files by name (0: all); ``skip`` drops that many first (held-out splits)."""

    def __init__(self, root: str, limit: int = 0, skip: int = 0) -> None:
        root_path = Path(root)
        labels = sorted((root_path / "labels").glob("*.png"))
        if not labels:
            raise DataError(f"no label maps under {root_path / 'labels'}")
        missing = [p.name for p in labels if not (root_path / "images" / p.name).is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} label map(s) without an image under {root_path / 'images'}, e.g. {missing[0]}"
            )
        labels = labels[skip:]
        self.labels = labels[:limit] if limit else labels
        self.images = [root_path / "images" / p.name for p in self.labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        i = int(key if isinstance(key, (int, np.integer)) else key[0])
        image = np.asarray(Image.open(self.images[i]).convert("RGB"), np.float32) / 127.5 - 1.0
        label = np.asarray(Image.open(self.labels[i]), np.int64)
        return {"image": torch.from_numpy(image).permute(2, 0, 1).contiguous(), "label": torch.from_numpy(label)}
