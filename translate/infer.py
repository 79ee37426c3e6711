"""Tiled inference: translate images of any size in bounded memory, without seams.

A generator's activations grow with the image, so a large image is cut into overlapping tiles of
at most ``tile`` pixels a side; each translated tile is weighted by a smooth window (flat in the
middle, a raised-cosine ramp over the overlap, never zero at the image border) and the weighted
tiles are summed and divided by the summed weights. Convolutions are local, so with enough
overlap a tile's middle sees what the whole image would have shown it.

Normalisation is not local: InstanceNorm and GroupNorm normalise with statistics of the whole
feature map, so a tile computing its own statistics gets its own tone, and the tiles show as
patches. ``SharedNormStats`` fixes this with forward hooks that normalise every tile with the
*whole image's* statistics, gathered first by tiled recording passes that accumulate the mean and
variance of each norm layer's input over the tiles' *cores* (the parts of the tiles that partition
the image exactly). Layer k's statistics depend on how the layers before it were normalised, so
they are gathered layer by layer (``gather_image_stats``), each pass resuming every tile from
its state cached by the previous pass (a ``Frontier``) where the generator exposes its body as a
chain of steps (``stages()``); a cheaper, approximate alternative takes them from an untiled pass
over a thumbnail. Measured accuracy and costs are in docs/inference.md.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, list_images, read_image, to_image, to_tensor
from .errors import ConfigError, DataError
from .nets.layers import crop_to, pad_to_multiple

NORM_STATS = ("image", "thumbnail", "tile")
AMP_MODES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: largest state a Frontier caches per tile, in values per tile pixel (ResNet's residual stage
#: with its skip: 2 × 4·ngf channels / 4²); larger ones (full-resolution feature maps) are
#: recomputed from the previous cached state instead, which is cheap there
FRONTIER_VALUES_PER_PIXEL = 32
#: default CPU memory budget of that cache (about a 3000×3000 image at tile 512, overlap 64)
DEFAULT_CACHE_MB = 2048.0
DEVICES = ("auto", "cpu", "cuda")

# --- tiling geometry ---------------------------------------------------------------------------


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


# --- shared normalisation statistics -----------------------------------------------------------


def shareable_norms(net: nn.Module) -> dict[str, nn.Module]:
    """Norm layers whose statistics depend on the input extent (InstanceNorm and GroupNorm).

    InstanceNorm with running statistics in eval mode, and BatchNorm in eval mode, already use
    fixed statistics and need nothing.
    """
    found = {}
    for name, module in net.named_modules():
        if isinstance(module, nn.GroupNorm):
            found[name] = module
        elif isinstance(module, nn.modules.instancenorm._InstanceNorm):
            if not (module.track_running_stats and not module.training and module.running_mean is not None):
                found[name] = module
    return found


@dataclass
class Moments:
    """Per-channel sums of one norm layer's input, in float64 so millions of pixels add exactly."""

    total: torch.Tensor
    total_sq: torch.Tensor
    count: int = 0

    @classmethod
    def zeros(cls, channels: int) -> Moments:
        return cls(torch.zeros(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64))

    def add(self, x: torch.Tensor) -> None:
        """Add a 1×C×h×w region."""
        x = x.detach().to(torch.float64)
        self.total += x.sum(dim=(0, 2, 3)).cpu()
        self.total_sq += x.square().sum(dim=(0, 2, 3)).cpu()
        self.count += x.shape[0] * x.shape[2] * x.shape[3]

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.count
        return mean, (self.total_sq / self.count - mean.square()).clamp_min(0.0)


Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def normalise(module: nn.Module, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """What ``module`` computes on ``x``, but with the given per-channel mean and (biased) variance."""
    c = x.shape[1]
    if isinstance(module, nn.GroupNorm):
        # GroupNorm's statistics pool the channels of a group; equal counts make that a plain mean
        g = module.num_groups
        g_mean = mean.view(g, -1).mean(dim=1)
        g_var = (var + mean.square()).view(g, -1).mean(dim=1) - g_mean.square()
        mean = g_mean.repeat_interleave(c // g)
        var = g_var.clamp_min(0.0).repeat_interleave(c // g)
    scale = (var + module.eps).rsqrt()
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    shift = -mean * scale
    if weight is not None:
        scale, shift = scale * weight.detach().double().cpu(), shift * weight.detach().double().cpu()
    if bias is not None:
        shift = shift + bias.detach().double().cpu()
    scale = scale.to(device=x.device, dtype=torch.float32).view(1, c, 1, 1)
    shift = shift.to(device=x.device, dtype=torch.float32).view(1, c, 1, 1)
    return (x.float() * scale + shift).to(x.dtype)


class StopForward(Exception):
    """Raised by a hook to end a recording pass early, once the layers it records have been seen."""


class SharedNormStats:
    """Forward hooks that let tiles share whole-image normalisation statistics.

    ``use``: statistics to normalise with, by layer name; a layer not in ``use`` normalises with
    the statistics of whatever it is given (the tile's own). ``record``: names of the layers whose
    input moments to accumulate over the current core (``None``: all), set with ``set_core``
    before each forward pass. ``stop_after``: a layer after whose recording the forward pass is
    cut short with ``StopForward`` (the rest of the network would only cost time).
    Used as a context manager; the hooks are removed on exit, leaving the network untouched.
    """

    def __init__(
        self,
        net: nn.Module,
        use: Stats | None = None,
        record: set[str] | None = frozenset(),
        stop_after: str | None = None,
    ) -> None:
        self.norms = shareable_norms(net)
        self.use = use or {}
        self.record = record
        self.stop_after = stop_after
        self.moments: dict[str, Moments] = {}
        #: the norm layers in the order the forward pass calls them (module order may differ)
        self.order: list[str] = []
        #: the network step (see ``TiledRun.steps``) set by the caller, and each layer's first one
        self.step = 0
        self.step_of: dict[str, int] = {}
        self._core: tuple[int, int, int, int, int, int] | None = None  # tile h, w; core y0, y1, x0, x1
        self._handles: list = []

    def set_core(self, tile_hw: tuple[int, int], core: tuple[int, int, int, int] | None) -> None:
        """The input tile's size and its core (y0, y1, x0, x1) in tile pixels; ``None``: all of it."""
        h, w = tile_hw
        self._core = (h, w, *(core if core is not None else (0, h, 0, w)))

    def statistics(self) -> Stats:
        return {name: m.mean_var() for name, m in self.moments.items()}

    def __enter__(self) -> SharedNormStats:
        for name, module in self.norms.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
            x = inputs[0]
            if name not in self.order:
                self.order.append(name)
                self.step_of[name] = self.step
            if self.record is None or name in self.record:
                self._accumulate(name, x)
            if name == self.stop_after:
                raise StopForward
            if name not in self.use:
                return None  # the layer normalises with this tile's own statistics
            mean, var = self.use[name]
            return normalise(module, x, mean, var)

        return hook

    def _accumulate(self, name: str, x: torch.Tensor) -> None:
        if self._core is None:
            raise RuntimeError("SharedNormStats.set_core must be called before a recording pass")
        th, tw, y0, y1, x0, x1 = self._core
        h, w = x.shape[-2:]
        # the core, mapped to this layer's resolution; exact because cores are stride-aligned
        region = x[..., y0 * h // th : y1 * h // th, x0 * w // tw : x1 * w // tw]
        if name not in self.moments:
            self.moments[name] = Moments.zeros(x.shape[1])
        self.moments[name].add(region)


# --- translating one image ---------------------------------------------------------------------


def resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA device is available")
    if device not in DEVICES:
        raise ConfigError(f"unknown device '{device}'; known: {', '.join(DEVICES)}")
    return torch.device(device)


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp not in AMP_MODES:
        raise ConfigError(f"unknown amp '{amp}'; known: {', '.join(AMP_MODES)}")
    dtype = AMP_MODES[amp]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def size_multiple(generator: nn.Module) -> int:
    return int(getattr(generator, "size_multiple", 1))


@torch.inference_mode()
def translate_image(
    generator: nn.Module,
    image: torch.Tensor,
    tile: int = 512,
    overlap: int = 64,
    device: str | torch.device = "auto",
    amp: str = "off",
    norm_stats: str = "image",
    stat_passes: int | None = None,
    cache_mb: float = DEFAULT_CACHE_MB,
) -> torch.Tensor:
    """Translate a 1×3×H×W image in [-1, 1] of any size; returns 1×C×H×W float32 on the CPU.

    Images no larger than ``tile`` are translated in one pass (exact). Larger ones are tiled;
    ``norm_stats`` says where tiles take their normalisation statistics from:

    * ``"image"`` (default): the whole image's, see ``gather_image_stats``; ``stat_passes`` caps
      the recording passes (``None``: one per norm layer, which makes them exact);
    * ``"thumbnail"``: an untiled pass over the image shrunk to ``tile`` (cheap, approximate);
    * ``"tile"``: each tile its own (no extra cost, visible tone seams; for comparison).

    ``cache_mb`` bounds the CPU memory the ``"image"`` mode may spend caching tile states between
    passes; an image whose cache could exceed it is processed without the cache (the same
    result, several times slower), so memory stays bounded whatever the image size.
    """
    if norm_stats not in NORM_STATS:
        raise ConfigError(f"unknown norm_stats '{norm_stats}'; known: {', '.join(NORM_STATS)}")
    if stat_passes is not None and stat_passes < 1:
        raise ConfigError(f"stat_passes must be >= 1 (or None for exact statistics), got {stat_passes}")
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"translate_image takes one 1×C×H×W image, got shape {tuple(image.shape)}")
    dev = resolve_device(device)
    generator = generator.to(dev).eval()
    multiple = size_multiple(generator)
    tile, overlap = effective_geometry(tile, overlap, multiple)
    if max(image.shape[-2:]) <= tile:
        with autocast(dev, amp):
            return generator(image.to(dev)).float().cpu()

    padded, size = pad_to_multiple(image, multiple)
    run = TiledRun(generator, padded, tile, overlap, dev, amp)
    stats: Stats = {}
    frontier = None
    if shareable_norms(generator):
        if norm_stats == "image":
            frontier = Frontier(values_per_pixel=cache_values_per_pixel(run, cache_mb))
            stats = gather_image_stats(run, stat_passes, frontier)
        elif norm_stats == "thumbnail":
            stats = thumbnail_stats(generator, padded, tile, dev, amp)
    return crop_to(run.blend(stats, frontier), size)


def cache_values_per_pixel(run: "TiledRun", cache_mb: float) -> int:
    """``FRONTIER_VALUES_PER_PIXEL`` if the frontier's worst case fits ``cache_mb``, else 0 (no cache)."""
    tiles = [(ys.stop - ys.start) * (xs.stop - xs.start) for ys, xs in run.tiles()]
    worst_bytes = FRONTIER_VALUES_PER_PIXEL * sum(tiles) * 4
    return FRONTIER_VALUES_PER_PIXEL if worst_bytes <= cache_mb * 2**20 else 0


def gather_image_stats(run: TiledRun, passes: int | None = None, frontier: Frontier | None = None) -> Stats:
    """The whole image's statistics at every norm layer, by sequential tiled recording passes.

    Layer k's input depends on how layers before k were normalised, so its statistics are exact
    only once theirs are. Pass i normalises layers before the i-th with their exact statistics and
    records the i-th, stopping the forward pass right after it. One pass per norm layer is exact.

    Each pass resumes every tile from ``frontier``, the tile's state cached by the previous pass
    just before the step that holds the previous layer, so pass i computes only the network
    between layers i-1 and i, and all passes together cost about one full tiled pass (plus what
    the frontier does not cache, see ``FRONTIER_VALUES_PER_PIXEL``). A generator without
    ``stages()`` is one step: each pass then runs it from the image up to layer i (about half a
    full pass per norm layer). The frontier is left where the last pass put it, for the output
    pass to resume from.

    With ``passes`` below the number of layers, the last pass also records every later layer
    (normalised with tile-own statistics), a cheaper approximation that improves with each pass.
    Re-estimating all layers from the previous pass's estimates (a fixed-point iteration) is not
    used: it diverges, because the estimates of deep layers go stale as shallow ones change.
    """
    order, step_of = run.trace()
    if not order:
        return {}
    frontier = frontier if frontier is not None else Frontier()
    passes = len(order) if passes is None else min(passes, len(order))
    stats: Stats = {}
    for i in range(passes):
        last = i == passes - 1
        targets = set(order[i:]) if last else {order[i]}
        recorded = run.record(stats, targets, order[-1] if last else order[i], frontier, step_of[order[i]]).statistics()
        stats.update({name: recorded[name] for name in targets})
    return stats


def thumbnail_stats(generator: nn.Module, padded: torch.Tensor, tile: int, device: torch.device, amp: str = "off") -> Stats:
    """Statistics of an untiled pass over the image shrunk to fit ``tile``: a cheap first estimate."""
    h, w = padded.shape[-2:]
    multiple = size_multiple(generator)
    scale = tile / max(h, w)
    size = (max(multiple, round(h * scale / multiple) * multiple), max(multiple, round(w * scale / multiple) * multiple))
    thumb = F.interpolate(padded, size=size, mode="bilinear", antialias=True, align_corners=False)
    with SharedNormStats(generator, record=None) as hooks, autocast(device, amp):
        hooks.set_core(size, None)
        generator(thumb.to(device))
    return hooks.statistics()


def iter_tiles(height: int, width: int, tile: int, overlap: int, multiple: int) -> Iterator[tuple[Span, Span]]:
    for ys in tile_spans(height, tile, overlap, multiple):
        for xs in tile_spans(width, tile, overlap, multiple):
            yield ys, xs


def _map_state(state: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``fn`` applied to every tensor of a network state (a tensor, or tuples/lists of them)."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(_map_state(s, fn) for s in state)
    raise TypeError(f"unsupported network state {type(state).__name__}")


def _state_numel(state: Any) -> int:
    total = 0

    def count(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel()
        return t

    _map_state(state, count)
    return total


@dataclass
class Frontier:
    """Every tile's network state before step ``step``, on the CPU, in ``TiledRun.tiles`` order.

    At step 0 nothing is cached: the state is the tile cut from the image. Its size is that of
    the feature maps there, for all tiles together: proportional to the image, like the output.
    """

    step: int = 0
    states: list[Any] = field(default_factory=list)
    #: largest state cached per tile, in values per tile pixel; 0 turns caching off
    values_per_pixel: int = FRONTIER_VALUES_PER_PIXEL

    def nbytes(self) -> int:
        total = 0

        def count(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        for state in self.states:
            _map_state(state, count)
        return total


@dataclass
class TiledRun:
    """One image, cut into tiles for one generator; each method is one pass over all tiles.

    Only one tile's activations are alive at a time, so device memory is bounded by ``tile``;
    what a ``Frontier`` caches between passes lives on the CPU.
    """

    generator: nn.Module
    padded: torch.Tensor  # 1×C×H×W, H and W multiples of the generator's size_multiple
    tile: int
    overlap: int
    device: torch.device
    amp: str = "off"

    def __post_init__(self) -> None:
        stages = getattr(self.generator, "stages", None)
        steps = stages() if callable(stages) else None
        #: the generator as a chain of steps; tiles are multiples of its size_multiple, so no
        #: padding is needed and its body is its forward
        self.steps: list[Callable[[Any], Any]] = list(steps) if steps else [self.generator]

    def tiles(self) -> Iterator[tuple[Span, Span]]:
        h, w = self.padded.shape[-2:]
        return iter_tiles(h, w, self.tile, self.overlap, size_multiple(self.generator))

    def _crop(self, ys: Span, xs: Span) -> torch.Tensor:
        return self.padded[..., ys.start : ys.stop, xs.start : xs.stop].to(self.device)

    def _run(self, hooks: SharedNormStats, state: Any, start: int, stop: int) -> Any:
        for j in range(start, stop):
            hooks.step = j
            state = self.steps[j](state)
        return state

    def _resume(self, frontier: Frontier | None, index: int, ys: Span, xs: Span) -> tuple[Any, int]:
        """Tile ``index``'s state at the frontier (a copy: steps may work in place) and its step."""
        if frontier is None or frontier.step == 0:
            return self._crop(ys, xs), 0
        return _map_state(frontier.states[index], lambda t: t.to(self.device, copy=True)), frontier.step

    def trace(self) -> tuple[list[str], dict[str, int]]:
        """The norm layers in call order and the step holding each, from one forward pass over one tile."""
        ys, xs = next(self.tiles())
        with SharedNormStats(self.generator) as hooks, autocast(self.device, self.amp):
            self._run(hooks, self._crop(ys, xs), 0, len(self.steps))
        return hooks.order, hooks.step_of

    def record(
        self,
        use: Stats,
        record: set[str] | None,
        stop_after: str | None = None,
        frontier: Frontier | None = None,
        advance_to: int = 0,
    ) -> SharedNormStats:
        """Normalise with ``use`` and accumulate the moments of ``record`` over the tiles' cores.

        Each tile starts from ``frontier`` (``None``: from the image), and where ``advance_to``
        is past the frontier, its state before step ``advance_to`` replaces the cached one,
        unless it is larger than ``FRONTIER_VALUES_PER_PIXEL`` allows (the frontier then stays).
        """
        advance = frontier is not None and advance_to > frontier.step
        with SharedNormStats(self.generator, use, record, stop_after) as hooks, autocast(self.device, self.amp):
            for index, (ys, xs) in enumerate(self.tiles()):
                core = (ys.core_start - ys.start, ys.core_stop - ys.start, xs.core_start - xs.start, xs.core_stop - xs.start)
                tile_hw = (ys.stop - ys.start, xs.stop - xs.start)
                hooks.set_core(tile_hw, core)
                state, step = self._resume(frontier, index, ys, xs)
                try:
                    if advance:
                        state, step = self._run(hooks, state, step, advance_to), advance_to
                        if index == 0:  # tiles are all the same size: decide once
                            advance = _state_numel(state) <= frontier.values_per_pixel * tile_hw[0] * tile_hw[1]
                        if advance:
                            cached = _map_state(state, lambda t: t.to("cpu", copy=True))
                            if index < len(frontier.states):
                                frontier.states[index] = cached
                            else:
                                frontier.states.append(cached)
                    self._run(hooks, state, step, len(self.steps))
                except StopForward:
                    pass
        if advance:
            frontier.step = advance_to
        return hooks

    def blend(self, use: Stats, frontier: Frontier | None = None) -> torch.Tensor:
        """Translate every tile normalising with ``use`` and blend the tiles with smooth windows.

        Tiles resume from ``frontier`` when given (cached with the same statistics).
        """
        h, w = self.padded.shape[-2:]
        out = weight = None
        with SharedNormStats(self.generator, use) as hooks, autocast(self.device, self.amp):
            for index, (ys, xs) in enumerate(self.tiles()):
                state, step = self._resume(frontier, index, ys, xs)
                y = self._run(hooks, state, step, len(self.steps)).float().cpu()
                if out is None:
                    out = torch.zeros(1, y.shape[1], h, w)
                    weight = torch.zeros(1, 1, h, w)
                win = blend_window(ys, h, self.overlap)[:, None] * blend_window(xs, w, self.overlap)[None, :]
                out[..., ys.start : ys.stop, xs.start : xs.stop] += y * win
                weight[..., ys.start : ys.stop, xs.start : xs.stop] += win
        missing = set(hooks.order) - set(use)
        if use and missing:
            raise RuntimeError(f"no statistics for norm layers {sorted(missing)}")
        return out.div_(weight)


# --- files and folders -------------------------------------------------------------------------


@dataclass(frozen=True)
class TranslateOptions:
    """How ``translate_file``/``translate_folder`` run the generator; see ``translate_image``."""

    tile: int = 512
    overlap: int = 64
    device: str = "auto"
    amp: str = "off"
    norm_stats: str = "image"
    stat_passes: int | None = None
    cache_mb: float = DEFAULT_CACHE_MB
    max_pixels: int | None = DEFAULT_MAX_PIXELS


def output_path(source: Path, input_root: Path | None, output_dir: Path) -> Path:
    """``output_dir`` / the source's path relative to ``input_root``, with suffix ``.png``."""
    relative = source.relative_to(input_root) if input_root is not None else Path(source.name)
    return output_dir / relative.with_suffix(".png")


def write_png_atomic(path: Path, rgb: np.ndarray) -> Path:
    """Write ``rgb`` as PNG via a temporary file renamed into place: a kill leaves no half image.

    The temporary name ends in ``.tmp`` so a later ``list_images`` never mistakes it for an image.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"cannot encode PNG for {path}")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def translate_file(generator: nn.Module, source: str | Path, target: str | Path, options: TranslateOptions) -> Path:
    """Read ``source``, translate it, write ``target`` (PNG) atomically. Errors name the file."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve():
        raise DataError(f"refusing to overwrite the input {source}; choose another output folder")
    rgb = read_image(source, max_pixels=options.max_pixels)
    try:
        out = translate_image(
            generator,
            to_tensor(rgb)[None],
            tile=options.tile,
            overlap=options.overlap,
            device=options.device,
            amp=options.amp,
            norm_stats=options.norm_stats,
            stat_passes=options.stat_passes,
            cache_mb=options.cache_mb,
        )
    except torch.OutOfMemoryError:
        raise DataError(f"{source}: out of memory; use a smaller --tile") from None
    return write_png_atomic(target, to_image(out))


@dataclass
class FolderReport:
    written: list[Path]
    skipped: list[Path]
    failed: list[tuple[Path, str]]


def plan_outputs(inputs: list[Path], input_root: Path | None, output_dir: Path) -> list[tuple[Path, Path]]:
    """(source, target) pairs, checked before anything is written.

    Two inputs that would write the same output (``a.jpg`` and ``a.png``) or an output that is an
    input are errors here, so a run never silently overwrites an input or its own work.
    """
    pairs = [(src, output_path(src, input_root, output_dir)) for src in inputs]
    sources = {src.resolve() for src in inputs}
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        key = dst.resolve()
        if key in sources:
            raise DataError(f"output {dst} would overwrite an input image; choose another output folder")
        if key in seen:
            raise DataError(f"{seen[key]} and {src} would both be written to {dst}; rename one")
        seen[key] = src
    return pairs


def translate_path(
    generator: nn.Module,
    input_path: str | Path,
    output_dir: str | Path,
    options: TranslateOptions,
    skip_existing: bool = False,
    progress: bool = True,
) -> FolderReport:
    """Translate one image or every image under a folder into ``output_dir``.

    A file that cannot be read (corrupt, too large, ...) is skipped with a message and reported in
    ``failed``, so one bad file in a thousand does not throw away the other 999; the caller decides
    whether that is an error (the CLI exits non-zero). A single-file input raises instead.
    """
    from tqdm import tqdm

    input_path, output_dir = Path(input_path), Path(output_dir)
    if input_path.is_file():
        if input_path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(f"{input_path} is not an image ({', '.join(IMAGE_EXTENSIONS)})")
        (pair,) = plan_outputs([input_path], None, output_dir)
        if skip_existing and pair[1].exists():
            return FolderReport([], [pair[1]], [])
        return FolderReport([translate_file(generator, *pair, options)], [], [])
    pairs = plan_outputs(list_images(input_path), input_path, output_dir)
    report = FolderReport([], [], [])
    for src, dst in tqdm(pairs, desc="translate", unit="image", disable=not progress):
        if skip_existing and dst.exists():
            report.skipped.append(dst)
            continue
        try:
            report.written.append(translate_file(generator, src, dst, options))
        except DataError as exc:
            tqdm.write(f"skipping: {exc}", file=sys.stderr)
            report.failed.append((src, str(exc)))
    return report
