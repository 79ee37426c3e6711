"""Tiling geometry: overlapping tiles whose cores partition the image, and their blending windows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the tile covers [start, stop); its core [core_start, core_stop)."""

    start: int
    stop: int
    core_start: int
    core_stop: int


def tile_spans(length: int, tile: int, overlap: int, multiple: int) -> list[Span]:
    """Overlapping tiles covering ``length``, with cores that partition it.

    Tile origins and core boundaries are multiples of ``multiple`` (the generator's stride
    product), so strided convolutions sample every tile on the whole image's grid and a core maps
    to whole pixels at every feature-map resolution. ``length`` must itself be such a multiple.
    """
    if length <= tile:
        return [Span(0, length, 0, length)]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    spans = []
    for i, start in enumerate(starts):
        core_start = 0 if i == 0 else _middle(starts[i], starts[i - 1] + tile, multiple)
        core_stop = length if i == len(starts) - 1 else _middle(starts[i + 1], start + tile, multiple)
        spans.append(Span(start, start + tile, core_start, core_stop))
    return spans


def _middle(a: int, b: int, multiple: int) -> int:
    """The middle of the overlap [a, b), rounded down to ``multiple`` (a and b are multiples)."""
    return (a + b) // 2 // multiple * multiple


def iter_tiles(height: int, width: int, tile: int, overlap: int, multiple: int) -> Iterator[tuple[Span, Span]]:
    """Every tile of a ``height`` × ``width`` image, row by row, as (rows, columns) spans."""
    for ys in tile_spans(height, tile, overlap, multiple):
        for xs in tile_spans(width, tile, overlap, multiple):
            yield ys, xs


def blend_window(span: Span, length: int, overlap: int) -> torch.Tensor:
    """1-D blending weights of one tile: 1 on its core, raised-cosine ramps across core boundaries.

    Each ramp is ``overlap // 2`` wide and centred on the boundary between two cores, where the
    neighbour's ramp mirrors it, so the weights of all tiles sum to exactly 1 at every pixel
    (never 0, including at the image border, where there is no ramp). The outer quarter of the
    overlap gets weight 0: there a tile's convolutions saw its own edge instead of the image,
    so its output is least like the untiled one (measured: this halves the seam error of a ramp
    over the whole overlap).
    """
    size = span.stop - span.start
    lo, hi = span.core_start - span.start, span.core_stop - span.start
    weights = torch.zeros(size, dtype=torch.float32)
    weights[lo:hi] = 1.0
    half = overlap // 4
    if half == 0:
        return weights
    rise = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(2 * half, dtype=torch.float32) + 0.5) / (2 * half))
    if span.core_start > 0:
        _paste(weights, lo - half, rise)
    if span.core_stop < length:
        _paste(weights, hi - half, rise.flip(0))
    return weights


def _paste(weights: torch.Tensor, start: int, values: torch.Tensor) -> None:
    """``weights[start : start + len(values)] = values``, clipped to the tile."""
    a, b = max(start, 0), min(start + len(values), len(weights))
    if a < b:
        weights[a:b] = values[a - start : b - start]


def effective_geometry(tile: int, overlap: int, multiple: int) -> tuple[int, int]:
    """``tile`` rounded down and ``overlap`` rounded up to ``multiple``.

    An error if the tile cannot hold the generator's stride product or the overlap leaves no core.
    """
    if tile < multiple:
        raise ConfigError(f"tile {tile} is smaller than this generator's size multiple {multiple}")
    if overlap < 0:
        raise ConfigError(f"overlap must be >= 0, got {overlap}")
    tile_r = tile // multiple * multiple
    overlap_r = -(-overlap // multiple) * multiple
    if overlap_r >= tile_r:
        raise ConfigError(
            f"overlap {overlap} (rounded to {overlap_r}, a multiple of {multiple}) must be less than the tile {tile_r}"
        )
    return tile_r, overlap_r


def size_multiple(generator: nn.Module) -> int:
    """The generator's stride product: image and tile sides must be multiples of it."""
    return int(getattr(generator, "size_multiple", 1))
