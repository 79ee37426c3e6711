"""Building blocks shared by generators and discriminators: norms, padding, initialisation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

#: the norms ``norm_layer`` builds, each with whether it computes its statistics from one sample
#: alone (batch norm pools the batch in training, so a sample's output depends on its neighbours)
PER_SAMPLE_NORMS = {"instance": True, "batch": False, "group": True, "none": True}
NORMS = tuple(PER_SAMPLE_NORMS)

#: what every network registry asks each network class to declare (``Registry.required``): a model
#: that runs several inputs through a net in one call (faster) must know the answers are the same
NETWORK_DECLARATIONS = (
    (
        "normalises_per_sample",
        (
            "a static method normalises_per_sample(spec) -> bool, given the complete spec: True when one sample's "
            "output does not depend on the rest of the batch (False with batch norm or other batch statistics)"
        ),
    ),
)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation layer named by ``kind`` for ``channels`` feature maps.

    Instance norm has no affine parameters and does not track running statistics, as in the
    CycleGAN/pix2pix reference, so that eval mode behaves like training mode.
    """
    if kind == "instance":
        return InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return GroupNorm(math.gcd(32, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm '{kind}'; known: {', '.join(NORMS)}")


def dropped_weight_prefixes(net: nn.Module, prefix: str = "") -> tuple[str, ...]:
    """Key prefixes (under ``prefix``) of the weights that ``net`` or one of its modules no longer
    holds: a module lists them, relative to itself, in ``dropped_weights`` (e.g. the encoder stages
    a shallow U-Net never runs), so files written when it still held them load."""
    return tuple(
        f"{prefix}{name}.{key}" if name else f"{prefix}{key}"
        for name, module in net.named_modules()
        for key in getattr(module, "dropped_weights", ())
    )


def without_dropped_weights(net: nn.Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` without the weights ``net`` declares dropped (``dropped_weight_prefixes``)."""
    dropped = dropped_weight_prefixes(net)
    return {k: v for k, v in state.items() if not k.startswith(dropped)}


def skip_dropped_weights(module: nn.Module, state: dict, prefix: str, *args: Any) -> None:
    """A load-state-dict pre-hook doing ``without_dropped_weights`` in place, for loads that go
    through ``load_state_dict`` (resumed checkpoints, models holding the module)."""
    dropped = dropped_weight_prefixes(module, prefix)
    for key in [k for k in state if k.startswith(dropped)]:
        del state[key]


class FullPrecisionUnderAutocast:
    """A norm layer that normalises in float32 under autocast, and returns float32.

    CUDA's autocast already runs group and layer norm in float32; CPU autocast keeps them in
    bf16, and there they cost GAN training its quality: a CycleGAN trained in bf16 on the CPU
    turned skies into buildings (FCN score 0.346 against 0.469 in fp32), while the same run with
    its norms in float32 matched fp32 (0.470; docs/results.md). The convolutions after the norm
    cast back to bf16 themselves, so only the normalisation's own arithmetic changes."""

    #: read by tiled inference (``infer.stats.normalise``) to give its tiles the same dtype
    full_precision_under_autocast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float64 and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.normalise(x.float())
        return self.normalise(x)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)  # type: ignore[misc]


class InstanceNorm2d(FullPrecisionUnderAutocast, nn.InstanceNorm2d):
    """Instance norm computed as group norm with one channel per group: the same numbers, but
    ``F.instance_norm`` returns a *view* of a batch-norm output, so an in-place ReLU after it
    makes autograd copy the whole gradient back (``CopySlices``); group norm's output is a plain
    tensor and its CPU kernel is faster. Parameters and state dict are those of the parent."""

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.affine or self.track_running_stats or x.dim() != 4:
            return nn.InstanceNorm2d.forward(self, x)
        return F.group_norm(x, self.num_features, eps=self.eps)


class GroupNorm(FullPrecisionUnderAutocast, nn.GroupNorm):
    """``nn.GroupNorm``, in float32 under autocast; parameters and state dict are the parent's."""


def norm_is_per_sample(kind: str) -> bool:
    """Whether ``norm_layer(kind, ...)`` normalises each sample alone; an unknown kind is an error."""
    if kind not in PER_SAMPLE_NORMS:
        raise ConfigError(f"unknown norm '{kind}'; known: {', '.join(NORMS)}")
    return PER_SAMPLE_NORMS[kind]


def conv_bias(norm: str) -> bool:
    """Batch/group norm have their own shift, so a conv bias before them is redundant."""
    return norm in ("instance", "none")


def maybe_spectral(module: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W up to a multiple of ``multiple``; returns the padded tensor and the original size.

    Reflection is used where the input is large enough, replication otherwise (reflection cannot
    pad by more than the input size), so any H×W is accepted.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, pad, mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    top = (x.shape[-2] - h) // 2
    left = (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


INIT_SCHEMES = ("normal", "xavier", "kaiming", "orthogonal")


def init_weights(net: nn.Module, scheme: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise conv/linear weights with ``scheme`` (the reference default is N(0, 0.02))."""
    if scheme not in INIT_SCHEMES:
        raise ConfigError(f"unknown init '{scheme}'; known: {', '.join(INIT_SCHEMES)}")

    def init(m: nn.Module) -> None:
        weight = getattr(m, "weight", None)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and weight is not None:
            # spectral norm keeps the raw weight under parametrizations.weight.original
            target = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            if scheme == "normal":
                nn.init.normal_(target, 0.0, gain)
            elif scheme == "xavier":
                nn.init.xavier_normal_(target, gain=gain)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(target, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(target, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            if hasattr(m, "parametrizations"):
                _restart_power_iteration(m)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    net.apply(init)
    return net


@torch.no_grad()
def _restart_power_iteration(module: nn.Module) -> None:
    """Spectral norm estimates the top singular vectors of the raw weight by power iteration and
    keeps them between calls; after the raw weight is re-drawn they describe the old weight (an
    eval-mode layer then had norm ~39 instead of 1), so the iteration is run afresh, as the
    parametrisation does when it is first registered."""
    for param in module.parametrizations.weight:
        if hasattr(param, "_u"):  # only weights of two or more dimensions have vectors
            weight = module.parametrizations.weight.original
            matrix = param._reshape_weight_to_matrix(weight)
            param._u.copy_(F.normalize(torch.randn_like(param._u), dim=0, eps=param.eps))
            param._v.copy_(F.normalize(torch.randn_like(param._v), dim=0, eps=param.eps))
            param._power_method(matrix, 15)
