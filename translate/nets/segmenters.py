"""Semantic segmenters as a network family, so they export to and load from one self-describing
file like generators (``translate.io.export_network(..., family="segmenter")``).

A segmenter maps N×3×H×W images in [-1, 1] to N×classes×H×W logits. The study trains them; a
translator's semantic-consistency term (CyCADA) loads a frozen one. Built from plain-data specs
(``{"name": "smp_unet", "encoder": "resnet18", ...}``, ``smp_deeplabv3``, ``smp_deeplabv3plus``).
Nothing ever downloads weights: a pretrained start (ImageNet or any) is a local file read by
``load_segmenter_weights`` into the encoder or the whole net, checked key by key and shape by shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .layers import NETWORK_DECLARATIONS, crop_to, pad_to_multiple, skip_dropped_weights, without_dropped_weights

SEGMENTERS: Registry[type[nn.Module]] = Registry("segmenter", required=NETWORK_DECLARATIONS)


class Segmenter(nn.Module):
    """Common interface: ``input_multiple`` (inputs are padded to it and logits cropped back)."""

    input_multiple: int = 1
    #: encoder stages the segmenter never runs and does not hold (``drop_unused_stages``)
    unused_encoder_stages: tuple[str, ...] = ()

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """False: smp's encoders and decoders use batch norm (see ``GANModel``)."""
        return False

    def encoder(self) -> nn.Module:
        """The backbone, where ``load_segmenter_weights(..., into="encoder")`` puts pretrained weights."""
        return self.net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError


@SEGMENTERS.register("smp_unet")
class SmpUnet(Segmenter):
    """segmentation-models-pytorch's U-Net, cut at stride 2**encoder_depth (enough for small images)."""

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
        self.unused_encoder_stages = tuple(drop_unused_stages(self.net.encoder, encoder_depth))
        self._register_load_state_dict_pre_hook(skip_dropped_weights, with_module=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, self.input_multiple)
        return crop_to(self.net(padded), size)


def drop_unused_stages(encoder: nn.Module, depth: int) -> list[str]:
    """Replace the encoder stages deeper than ``depth`` with nothing and return their names.

    smp builds every stage of the backbone whatever ``encoder_depth`` says and never runs the deeper
    ones: a ResNet-18 U-Net of depth 3 carries 10.5 M weights in ``layer3``/``layer4`` beside its
    0.9 M used ones, and every checkpoint and export wrote all of them (44 MB instead of 3.5 MB).
    Only stages that are attributes of the encoder itself (``get_stages``: the ResNet family) are
    dropped; other encoders are left whole. The remaining weights are initialised exactly as before.
    The encoder lists the dropped stages' key prefixes in ``dropped_weights`` (``nets.layers``), so
    files written when it still held them load, into the encoder or the whole segmenter."""
    stages = getattr(encoder, "get_stages", None)
    if stages is None:
        return []
    names = {id(child): name for name, child in encoder.named_children()}
    dropped = []
    for stride, modules in stages().items():
        if stride <= 2**depth:
            continue
        for module in modules:
            name = names.get(id(module))
            if name is not None:
                setattr(encoder, name, nn.Identity())
                dropped.append(name)
    encoder.dropped_weights = tuple(f"{name}." for name in dropped)
    return dropped


class _SmpDeepLab(Segmenter):
    """segmentation-models-pytorch's DeepLabV3 / V3+ (ASPP head; logits upsampled to the input)."""

    smp_class = ""

    def __init__(
        self,
        num_classes: int = 19,
        encoder: str = "resnet101",
        output_stride: int = 8,
        decoder_channels: int = 256,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        self.net = getattr(smp, self.smp_class)(
            encoder_name=encoder,
            encoder_weights=None,
            encoder_output_stride=output_stride,
            decoder_channels=decoder_channels,
            in_channels=in_channels,
            classes=num_classes,
        )
        self.input_multiple = 32  # the encoder's five stride-2 stages (dilated ones keep the size)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, self.input_multiple)
        return crop_to(self.net(padded), size)


@SEGMENTERS.register("smp_deeplabv3")
class SmpDeepLabV3(_SmpDeepLab):
    """DeepLabV3 (Chen et al. 2017) on a dilated encoder, output stride 8 by default."""

    smp_class = "DeepLabV3"


@SEGMENTERS.register("smp_deeplabv3plus")
class SmpDeepLabV3Plus(_SmpDeepLab):
    """DeepLabV3+ (Chen et al. 2018): DeepLabV3 with a stride-4 decoder, output stride 16 by default."""

    smp_class = "DeepLabV3Plus"

    def __init__(
        self,
        num_classes: int = 19,
        encoder: str = "resnet101",
        output_stride: int = 16,
        decoder_channels: int = 256,
        in_channels: int = 3,
    ) -> None:
        super().__init__(num_classes, encoder, output_stride, decoder_channels, in_channels)


#: where pretrained weights go: the encoder (ImageNet backbones) or the whole segmenter
WEIGHTS_TARGETS = ("encoder", "model")
#: keys of an ImageNet classifier's head, which a segmentation encoder does not have
CLASSIFIER_HEAD = ("fc.", "classifier.", "head.")


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local ``.safetensors`` file or a ``.pth``/``.pt`` file read with
    ``weights_only=True`` (never unpickling objects); a missing or unreadable file is a ConfigError
    naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"segmenter weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot read segmenter weights {path}: {exc}") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"segmenter weights {path} hold no state dict (a mapping of names to tensors)")
    return dict(state)


def load_segmenter_weights(net: Segmenter, path: str | Path, into: str = "encoder") -> None:
    """Load a local weights file into ``net``'s encoder (``into="encoder"``: e.g. torchvision's
    ImageNet ResNet, whose classifier head ``fc.*`` is left out) or the whole segmenter
    (``into="model"``). Every key must be there with its shape; anything else is a ConfigError
    naming the file and the first mismatched keys, and nothing is loaded."""
    if into not in WEIGHTS_TARGETS:
        raise ConfigError(f"segmenter weights go into one of {', '.join(WEIGHTS_TARGETS)}, got '{into}'")
    target = net.encoder() if into == "encoder" else net
    state = without_dropped_weights(target, read_weights_file(path))
    if into == "encoder":
        state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_HEAD)}
    expected = target.state_dict()
    problems = [
        f"{k}: {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the {into}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems += [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise ConfigError(
            f"segmenter weights {path} do not match the {into} of {type(net).__name__} "
            f"({len(problems)} mismatched keys): {shown}"
        )
    target.load_state_dict(state, strict=True)
