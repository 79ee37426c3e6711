"""Networks a model holds frozen, read from an exported file: CyCADA's segmenter, a distillation
teacher. Read once from the export (spec and weights checked), rebuilt from the spec, in eval mode
with gradients off; the model keeps the weights in its checkpoint so a rebuild needs no file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..nets import NETWORK_FAMILIES
from ..nets.layers import without_dropped_weights


def read_export(
    path: str | Path, family: str, label: str, expected: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(architecture spec, weights) of the network of ``family`` exported at ``path``; ``label``
    names the file in errors (e.g. "model.teacher: exported generator"), ``expected`` says what
    it should hold (e.g. "an exported segmenter")."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{label} not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{label} {path} is not a safetensors file: {exc}") from None
    if meta.get("family") != family:
        what = meta.get("family", "file without a network family")
        raise CheckpointError(f"{label} {path} holds a {what}, not {expected}")
    return json.loads(meta["architecture"]), load_file(str(path))


def frozen_network(family: str, spec: Mapping[str, Any], weights: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """The ``family`` network of ``spec`` with ``weights``, in eval mode with gradients switched
    off; weights that do not fit the spec are an error naming ``source``."""
    net = NETWORK_FAMILIES.get(family).build(dict(spec))
    weights = without_dropped_weights(net, weights)
    own = net.state_dict()
    if set(own) != set(weights) or any(own[k].shape != weights[k].shape for k in own):
        raise CheckpointError(f"{source}: the {family} weights do not fit its spec {dict(spec)}")
    net.load_state_dict(weights)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
