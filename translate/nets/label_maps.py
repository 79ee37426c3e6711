"""Label map -> image generators with spatially-adaptive normalisation (SPADE, Park et al. 2019).

Normalising activations wipes out a label map fed only at the input; SPADE instead re-injects
the label map at every block, as a per-pixel scale and shift of the normalised activations. A
noise vector broadcast over the first layer gives different images for one label map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .generators import Generator
from .samplers import SAMPLERS


def one_hot_map(labels: torch.Tensor, classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """N×H×W int64 class indices (values >= classes read as "unlabelled", the last channel) ->
    N×(classes+1)×H×W one-hot."""
    return F.one_hot(labels.long().clamp(0, classes), classes + 1).permute(0, 3, 1, 2).to(dtype)


class SPADENorm(nn.Module):
    def __init__(self, channels: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, 1, 1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, 1, 1)
        self.beta = nn.Conv2d(hidden, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        h = self.shared(seg)
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SPADEBlock(nn.Module):
    """A residual block whose two norms are SPADE; a learned 1×1 shortcut where channels change."""

    def __init__(self, cin: int, cout: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        mid = min(cin, cout)
        self.norm0, self.conv0 = SPADENorm(cin, label_channels, hidden), nn.Conv2d(cin, mid, 3, 1, 1)
        self.norm1, self.conv1 = SPADENorm(mid, label_channels, hidden), nn.Conv2d(mid, cout, 3, 1, 1)
        self.skip = None
        if cin != cout:
            self.skip_norm, self.skip = SPADENorm(cin, label_channels, hidden), nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.skip is None else self.skip(self.skip_norm(x, seg))
        h = self.conv0(F.leaky_relu(self.norm0(x, seg), 0.2))
        h = self.conv1(F.leaky_relu(self.norm1(h, seg), 0.2))
        return shortcut + h


@SAMPLERS.register("spade")
class SPADEGenerator(Generator):
    """(label map N×H×W, noise N×noise_dim) -> N×channels×H×W in [-1, 1]; H and W must be
    multiples of 2**ups. The label map, downsampled, with the noise broadcast over it, is the
    first layer's input; each of ``ups`` SPADE blocks then doubles the resolution."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """True: SPADE's instance norms normalise each sample alone (see ``GANModel``)."""
        return True

    def __init__(
        self, classes: int = 19, noise_dim: int = 16, channels: int = 3, width: int = 32, ups: int = 3, hidden: int = 32
    ) -> None:
        super().__init__()
        if classes < 1 or ups < 1:
            raise ConfigError(f"spade needs classes >= 1 and ups >= 1, got {classes}, {ups}")
        self.classes, self.noise_dim, self.ups = classes, noise_dim, ups
        self.code_dim = 0
        label_channels = classes + 1
        top = width * 2 ** (ups - 1)
        self.stem = nn.Conv2d(label_channels + noise_dim, top, 3, 1, 1)
        blocks, ch = [], top
        for i in range(ups):
            out = max(width, ch // 2) if i < ups - 1 else width
            blocks.append(SPADEBlock(ch, out, label_channels, hidden))
            ch = out
        self.blocks = nn.ModuleList(blocks)
        self.to_image = nn.Conv2d(width, channels, 3, 1, 1)

    def forward(self, labels: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        n, h, w = labels.shape
        factor = 2**self.ups
        if h % factor or w % factor:
            raise ConfigError(
                f"spade with ups={self.ups} needs label maps whose sides are multiples of {factor}, got {h}×{w}"
            )
        seg = one_hot_map(labels, self.classes, self.stem.weight.dtype)
        if noise is None:
            noise = torch.zeros(n, self.noise_dim, device=labels.device, dtype=seg.dtype)
        small = F.interpolate(seg, size=(h // factor, w // factor), mode="nearest")
        x = self.stem(torch.cat([small, noise.to(seg.dtype)[:, :, None, None].expand(-1, -1, *small.shape[2:])], 1))
        for block in self.blocks:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self.run_block(block, x, seg)
        return torch.tanh(self.to_image(F.leaky_relu(x, 0.2)))
