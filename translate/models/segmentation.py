"""Semantic segmentation as a model of the registry, so segmenters train with the same engine as
translators: AMP, data-loader workers, multi-process (torchrun), exact resume, logs and exports.

One optimiser group (``S``, learning rate ``optim.lr_seg``), pixel-wise cross-entropy that ignores
label 255, and an export in the ``segmenter`` network family, which the study scores and CyCADA's
semantic term loads. A pretrained start is a local weights file (``weights``), read into the
encoder or the whole net when the model is built, i.e. before the first step; a missing or
mismatched file is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nets import build_network
from ..nets.segmenters import SEGMENTERS, WEIGHTS_TARGETS, load_segmenter_weights
from ..registry import resolved_spec
from ..segdata.classes import IGNORE, PALETTE
from .base import MODELS, GANModel, OptimGroup, StepContext


@dataclass
class SegmentationConfig:
    name: str = "segmentation"
    # a `segmenter` network spec: smp_unet (default: ResNet-18 cut at depth 3, decoder 64/32/16,
    # 19 classes) | smp_deeplabv3 | smp_deeplabv3plus, with their options
    segmenter: dict[str, Any] = field(default_factory=lambda: {"name": "smp_unet"})
    # a local .pth (read with weights_only=True) or .safetensors state dict to start from; nothing downloads
    weights: str | None = None
    weights_into: str = "encoder"  # encoder (e.g. ImageNet ResNet weights) | model (a whole segmenter)


@MODELS.register("segmentation")
class SegmentationModel(GANModel):
    Config = SegmentationConfig

    def __init__(self, cfg: SegmentationConfig, load_weights: bool = True) -> None:
        super().__init__()
        if cfg.weights_into not in WEIGHTS_TARGETS:
            raise ConfigError(
                f"model.weights_into must be one of {', '.join(WEIGHTS_TARGETS)}, got '{cfg.weights_into}'"
            )
        self.cfg = cfg
        self.spec = resolved_spec(SEGMENTERS, cfg.segmenter)
        self.S = build_network("segmenter", self.spec)
        if cfg.weights and load_weights:
            load_segmenter_weights(self.S, cfg.weights, cfg.weights_into)

    @classmethod
    def rebuild(cls, cfg: SegmentationConfig, stored: Mapping[str, Any]) -> SegmentationModel:
        """A resumed run takes every weight from its checkpoint: the start file is not read again."""
        return cls(cfg, load_weights=False)

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {"S": OptimGroup({"S": self.S}, lr="lr_seg")}

    def training_step(self, batch: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        with ctx.autocast():
            logits = self.S(batch["image"])
        loss = F.cross_entropy(logits.float(), batch["label"], ignore_index=IGNORE)
        ctx.optimize("S", loss)
        return {"loss": loss.detach()}

    def example_batch(self, shape: tuple[int, int, int, int]) -> dict[str, torch.Tensor]:
        n, _, h, w = shape
        return {"image": torch.rand(shape) * 2 - 1, "label": torch.randint(0, self.spec["num_classes"], (n, h, w))}

    @torch.no_grad()
    def visuals(self, batch: Mapping[str, torch.Tensor], nets: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
        prediction = self.S(batch["image"]).argmax(1)
        return {"image": batch["image"], "label": _as_image(batch["label"]), "prediction": _as_image(prediction)}

    def export_info(self) -> dict[str, dict[str, Any]]:
        return {"S": {"family": "segmenter", "spec": self.spec, "info": {"model": "segmentation"}}}


def _as_image(labels: torch.Tensor) -> torch.Tensor:
    """trainId maps (N×H×W) in the Cityscapes palette as N×3×H×W images in [-1, 1]."""
    rgb = torch.from_numpy(PALETTE[labels.to(torch.uint8).cpu().numpy()]).to(labels.device)
    return rgb.permute(0, 3, 1, 2).float() / 127.5 - 1.0
