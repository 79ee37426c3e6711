"""Semantic segmenters as a network family, so they export to and load from one self-describing
file like generators (``translate.io.export_network(..., family="segmenter")``).

A segmenter maps N×3×H×W images in [-1, 1] to N×classes×H×W logits. The study trains them; a
translator's semantic-consistency term (CyCADA) loads a frozen one. Built from plain-data specs
(``{"name": "smp_unet", "encoder": "resnet18", ...}``); encoders never download weights, since a
study must measure its data, not an ImageNet initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..registry import Registry
from .layers import NETWORK_DECLARATIONS, crop_to, pad_to_multiple

SEGMENTERS: Registry[type[nn.Module]] = Registry("segmenter", required=NETWORK_DECLARATIONS)


class Segmenter(nn.Module):
    """Common interface: ``input_multiple`` (inputs are padded to it and logits cropped back)."""

    input_multiple: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError


@SEGMENTERS.register("smp_unet")
class SmpUnet(Segmenter):
    """segmentation-models-pytorch's U-Net, cut at stride 2**encoder_depth (enough for small images)."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """False: smp's encoders and decoder use batch norm (see ``GANModel``)."""
        return False

    def __init__(
        self,
        num_classes: int = 19,
        encoder: str = "resnet18",
        encoder_depth: int = 3,
        decoder_channels: Sequence[int] = (64, 32, 16),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        if len(decoder_channels) != encoder_depth:
            raise ValueError(
                f"decoder_channels needs one entry per encoder stage ({encoder_depth}), got {list(decoder_channels)}"
            )
        self.net = smp.Unet(
            encoder_name=encoder,
            encoder_weights=None,
            encoder_depth=encoder_depth,
            decoder_channels=tuple(decoder_channels),
            in_channels=in_channels,
            classes=num_classes,
        )
        self.input_multiple = 2**encoder_depth
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, self.input_multiple)
        return crop_to(self.net(padded), size)
