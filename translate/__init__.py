"""GAN image-to-image translation: networks, objectives, models and the training engine."""

from i2i_cli import warn_if_installed_over

from .errors import CheckpointError, ConfigError, DataError, I2IError

__all__ = ["I2IError", "ConfigError", "DataError", "CheckpointError", "load_generator"]

#: marks this project's package, not another distribution's of the same name (see i2i_cli.py)
__i2i__ = True

warn_if_installed_over(__name__, __file__)


def load_generator(path, device="cpu", **kwargs):
    """Rebuild an exported generator from its ``.safetensors`` file (see :mod:`translate.io`)."""
    from .io import load_generator as _load

    return _load(path, device=device, **kwargs)
