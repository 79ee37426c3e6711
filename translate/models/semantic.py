"""Semantic consistency (CyCADA, Hoffman et al. 2018): a translation must keep what is where.

A frozen segmenter trained on the source domain labels the source image; the translated image
must get the same labels from it (cross-entropy against the source prediction). Any translator
can add the term: it takes (source image, translated image) in [-1, 1] and returns a scalar.
The segmenter comes from an exported network of the ``segmenter`` family (one .safetensors file)
when training starts; from then on its weights and spec travel in the model's state, so a
checkpoint rebuilds the term without that file (``semantic_term(..., stored=...)``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .frozen import frozen_network, read_export


def read_exported_segmenter(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(architecture spec, weights) of the segmenter exported at ``path``."""
    return read_export(path, "segmenter", "semantic consistency: segmenter file", "an exported segmenter")


def frozen_segmenter(spec: Mapping[str, Any], weights: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """The segmenter of ``spec`` with ``weights``, in eval mode with gradients switched off."""
    return frozen_network("segmenter", spec, weights, source)


class SemanticConsistency(nn.Module):
    """``loss(source, translated)``: cross-entropy of the frozen segmenter's logits on the
    translation against its own labels of the source (the frozen net is a buffer-like part of
    the model: it moves with it, its weights are in the model's state and it is never optimised).

    ``spec`` is kept so that the model can store it beside the weights (see ``STATE_PREFIX``)."""

    #: where the frozen net's weights sit in the state of a model that holds the term as ``semantic``
    STATE_PREFIX = "semantic.segmenter."

    def __init__(self, spec: Mapping[str, Any], weights: Mapping[str, torch.Tensor], source: str) -> None:
        super().__init__()
        self.spec = dict(spec)
        self.segmenter = frozen_segmenter(spec, weights, source)

    @classmethod
    def from_file(cls, path: str | Path) -> SemanticConsistency:
        return cls(*read_exported_segmenter(path), source=str(path))

    def train(self, mode: bool = True) -> SemanticConsistency:
        super().train(mode)
        self.segmenter.eval()  # frozen: batch-norm statistics must not drift with the translator
        return self

    def forward(self, source: torch.Tensor, translated: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.segmenter(source.float()).argmax(1)
        return F.cross_entropy(self.segmenter(translated.float()), target)


def stored_segmenter(
    stored: Mapping[str, Any], spec_json: str | None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """(spec, weights) of the frozen segmenter in a model state ``stored`` whose extra state kept
    ``spec_json``; None when it kept none (no term, or a checkpoint from before segmenters were stored)."""
    if not spec_json:
        return None
    prefix = SemanticConsistency.STATE_PREFIX
    return json.loads(spec_json), {k[len(prefix) :]: v for k, v in stored.items() if k.startswith(prefix)}


def semantic_term(
    weight: float, segmenter_path: str, stored: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = None
) -> SemanticConsistency | None:
    """The term a translator's config switches on (``weight`` > 0), else None. ``stored``: the
    (spec, weights) a checkpoint holds, used instead of the file when a model is rebuilt from it."""
    if weight < 0:
        raise ConfigError(f"lambda_semantic must be >= 0, got {weight}")
    if weight == 0:
        return None
    if stored is not None:
        return SemanticConsistency(*stored, source="the checkpoint's frozen segmenter")
    if not segmenter_path:
        raise ConfigError("lambda_semantic > 0 needs semantic_segmenter: the path of an exported segmenter")
    return SemanticConsistency.from_file(segmenter_path)
