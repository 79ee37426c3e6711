"""Hooks that put a trained generator into other training pipelines.

* ``GANTranslate``: an albumentations transform (per sample, on CPU, in DataLoader workers);
* ``TranslateBatch``: a ``torch.nn.Module`` that translates part of a batch on its device;
* ``translate_dataset``: offline translation of a whole tree (``i2i augment translate-dataset``);
* ``SyntheticMix``: a dataset wrapper mixing real samples with a trained sampler's.
"""

from .batch import TranslateBatch
from .mixing import SyntheticMix
from .offline import DatasetReport, translate_dataset
from .transforms import GANTranslate

__all__ = ["DatasetReport", "GANTranslate", "SyntheticMix", "TranslateBatch", "translate_dataset"]
