"""Hooks that put a trained generator into other training pipelines.

* ``GANTranslate``: an albumentations transform (per sample, on CPU, in DataLoader workers);
* ``TranslateBatch``: a ``torch.nn.Module`` that translates part of a batch on its device;
* ``translate_dataset``: offline translation of a whole tree (``i2i augment translate-dataset``).
"""

from .batch import TranslateBatch
from .offline import DatasetReport, translate_dataset
from .transforms import GANTranslate

__all__ = ["GANTranslate", "TranslateBatch", "translate_dataset", "DatasetReport"]
