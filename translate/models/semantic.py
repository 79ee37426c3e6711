"""Semantic consistency (CyCADA, Hoffman et al. 2018): a translation must keep what is where.

A frozen segmenter trained on the source domain labels the source image; the translated image
must get the same labels from it (cross-entropy against the source prediction). Any translator
can add the term: it takes (source image, translated image) in [-1, 1] and returns a scalar.
The segmenter is an exported network of the ``segmenter`` family (one .safetensors file).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..nets import NETWORK_FAMILIES


def load_frozen_segmenter(path: str | Path) -> nn.Module:
    """The segmenter exported at ``path``, in eval mode with gradients switched off."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"semantic consistency: segmenter file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{path} is not a safetensors file: {exc}") from None
    if meta.get("family") != "segmenter":
        raise CheckpointError(f"{path} holds a {meta.get('family', 'file without a network family')}, not an exported segmenter")
    net = NETWORK_FAMILIES.get("segmenter").build(json.loads(meta["architecture"]))
    net.load_state_dict(load_file(str(path)))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class SemanticConsistency(nn.Module):
    """``loss(source, translated)``: cross-entropy of the frozen segmenter's logits on the
    translation against its own labels of the source (the frozen net is a buffer-like part of
    the model: it moves with it and is never optimised)."""

    def __init__(self, segmenter_path: str | Path) -> None:
        super().__init__()
        self.segmenter = load_frozen_segmenter(segmenter_path)

    def train(self, mode: bool = True) -> "SemanticConsistency":
        super().train(mode)
        self.segmenter.eval()  # frozen: batch-norm statistics must not drift with the translator
        return self

    def forward(self, source: torch.Tensor, translated: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.segmenter(source.float()).argmax(1)
        return F.cross_entropy(self.segmenter(translated.float()), target)


def semantic_term(weight: float, segmenter_path: str) -> SemanticConsistency | None:
    """The term a translator's config switches on (``weight`` > 0 with a segmenter file), else None."""
    if weight < 0:
        raise ConfigError(f"lambda_semantic must be >= 0, got {weight}")
    if weight == 0:
        return None
    if not segmenter_path:
        raise ConfigError("lambda_semantic > 0 needs semantic_segmenter: the path of an exported segmenter")
    return SemanticConsistency(segmenter_path)
