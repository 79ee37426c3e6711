"""Multiply-accumulates of one forward pass: what a network costs, independent of the machine.

Counted by torch's own ``FlopCounterMode`` (convolutions, transposed and grouped ones included,
and matrix products); one multiply-accumulate is two of its floating-point operations. Norms,
activations and padding are not counted, as in the literature's GMAC figures (GAN Compression).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError


def count_macs(net: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of ``net`` on one input of ``input_shape`` (C, H, W), batch 1.

    The net runs once on zeros, in eval mode and without gradients, on its own device; its
    training mode is restored afterwards."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"MAC count: input shape must be (channels, height, width) >= 1, got {tuple(input_shape)}")
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros((1, *shape), device=device))
    finally:
        net.train(was_training)
    return counter.get_total_flops() // 2
