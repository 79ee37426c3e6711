"""Hooks that put a trained generator into other training pipelines.

* ``GANTranslate``: an albumentations transform (per sample, on CPU, in DataLoader workers);
* ``TranslateBatch``: a ``torch.nn.Module`` that translates part of a batch on its device;
* ``translate_dataset``: offline translation of a whole tree (``i2i augment translate-dataset``);
* ``SyntheticMix``: a dataset wrapper mixing real samples with a trained sampler's.
"""

from i2i_cli import check_packages, warn_if_installed_over

#: marks this project's package, not another distribution's of the same name (see i2i_cli.py)
__i2i__ = True

# a foreign package named translate or augment: one clear error before our imports fail obscurely
check_packages()
warn_if_installed_over(__name__, __file__)

from .batch import TranslateBatch  # noqa: E402
from .mixing import SyntheticMix  # noqa: E402
from .offline import DatasetReport, translate_dataset  # noqa: E402
from .transforms import GANTranslate  # noqa: E402

__all__ = ["DatasetReport", "GANTranslate", "SyntheticMix", "TranslateBatch", "translate_dataset"]
