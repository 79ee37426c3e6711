"""GAN models, built by name: ``build_model({"name": "cyclegan", ...})``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from ..errors import ConfigError
from ..strict import strict_merge
from . import (  # noqa: F401  (fills the registry)
    began,
    cut,
    cyclegan,
    distill,
    gan,
    infogan,
    lapgan,
    pix2pix,
    progan,
    segmentation,
    spade,
    text2image,
)
from .base import MODELS, GANModel, OptimGroup, StepContext, TranslationModel

__all__ = ["MODELS", "GANModel", "OptimGroup", "StepContext", "TranslationModel", "build_model", "model_config"]


def model_config(model: dict[str, Any]) -> Any:
    """The chosen model's typed config (its ``Config`` dataclass), from the ``model:`` mapping (strict)."""
    model = dict(model)
    name = model.get("name")
    if name is None:
        raise ConfigError("model: missing 'name'")
    cls = MODELS.get(name)
    return strict_merge(cls.Config, OmegaConf.create(model), where=f"model '{name}'")


def build_model(model_cfg: dict[str, Any], stored: Mapping[str, Any] | None = None) -> GANModel:
    """Build the model named in ``model_cfg`` from its options (checked strictly). ``stored``: the
    model state of the checkpoint it is rebuilt for (see ``GANModel.rebuild``)."""
    typed = model_config(model_cfg)
    cls = MODELS.get(typed.name)
    return cls(typed) if stored is None else cls.rebuild(typed, stored)
