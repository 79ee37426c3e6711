"""Batch-norm statistics re-estimated on the target domain (AdaBN, Li et al. 2016).

A segmenter's batch-norm layers normalise with the running mean and variance of the images it
trained on. On another domain its features arrive with other statistics, and much of what a
source-trained segmenter gets wrong there is that mismatch alone. Re-estimating every batch-norm
layer's statistics on unlabelled target images (the weights untouched) is the cheapest domain
adaptation there is: no labels, no training, one pass over the target training images. A study
row with ``norm_stats: target`` is scored by its segmenter so adapted (an ensemble row: each
member), which makes it both a training-free baseline (source-only + AdaBN) and a step on top of
any other row.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def reestimate_batch_norm(model: nn.Module, inputs: Iterable[torch.Tensor]) -> nn.Module:
    """A copy of ``model`` whose batch-norm running statistics are the average over ``inputs``
    (batches, as the model takes them) of each batch's statistics; weights and every other layer's
    state are unchanged, the copy is in eval mode. Each layer normalises its batch with the batch's
    own statistics while they are gathered, so a layer's estimate sees the features the adapted
    layers before it give, and re-estimating twice gives the same statistics."""
    adapted = copy.deepcopy(model).eval()
    layers = batch_norms(adapted)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no batch-norm layers with running statistics to re-estimate")
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average: every batch counts the same
        layer.train()  # only the norms: dropout and the like stay as in inference
    seen = 0
    for batch in inputs:
        adapted(batch)
        seen += 1
    if seen == 0:
        raise ValueError("no input batches to re-estimate batch-norm statistics from")
    return adapted.eval()


def adapt_segmenter(
    source: Path, dataset, destination: Path, batch_size: int, num_workers: int = 0, device: str = "cpu"
) -> Path:
    """The exported segmenter ``source`` with batch-norm statistics re-estimated on ``dataset``'s
    images (a study set read from disk, at its resized size; labels unused) on ``device``, exported
    to ``destination`` with the same architecture and info, plus where its statistics came from."""
    from translate.data.images import to_tensor
    from translate.io import export_network, load_network
    from translate.nets.layers import pad_to_multiple

    from .evaluation import batches
    from .segmenter import input_multiple

    model, meta = load_network(source, device)
    multiple = input_multiple(model)
    inputs = (
        pad_to_multiple(to_tensor(images).to(device), multiple)[0]
        for images, _ in batches(dataset, batch_size, num_workers)
    )
    try:
        adapted = reestimate_batch_norm(model, inputs)
    except ValueError as exc:
        raise ValueError(f"norm_stats: target cannot adapt {source}: {exc}") from None
    info = {**meta["info"], "norm_stats": "target", "norm_stats_images": len(dataset), "adapted_from": str(source)}
    return export_network(destination, adapted, meta["architecture"], meta["family"], info)
