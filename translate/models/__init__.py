"""Translation models, built by name: ``MODELS.get("cyclegan")(config)``."""

from . import cyclegan, pix2pix  # noqa: F401  (fills the registry)
from .base import MODELS, StepContext, TranslationModel

__all__ = ["MODELS", "StepContext", "TranslationModel", "build_model"]


def build_model(model_cfg: dict) -> TranslationModel:
    """Build the model named in ``model_cfg`` from its (already checked) options."""
    from ..config import model_config

    typed = model_config(model_cfg)
    return MODELS.get(typed.name)(typed)
