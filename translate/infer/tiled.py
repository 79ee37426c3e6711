"""The tiled run: one image cut into tiles for one generator, and ``translate_image``.

A generator's activations grow with the image, so a large image is cut into overlapping tiles of
at most ``tile`` pixels a side; each translated tile is weighted by a smooth window and the
weighted tiles are summed and divided by the summed weights (``geometry``). Convolutions are
local, so with enough overlap a tile's middle sees what the whole image would have shown it;
normalisation is not, so tiles normalise with whole-image statistics (``stats``), gathered by
passes that resume each tile from its cached state (``cache``). Measured accuracy and costs are in
docs/inference.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..devices import autocast, resolve_device
from ..errors import ConfigError
from ..nets.layers import crop_to, pad_to_multiple
from .cache import DEFAULT_CACHE_MB, Frontier, choose_cache, frontier_worst_bytes, open_frontier, state_numel
from .geometry import Span, blend_window, effective_geometry, iter_tiles, size_multiple
from .stats import (
    SharedNormStats,
    Stats,
    StopForward,
    check_norms_shareable,
    gather_image_stats,
    shareable_norms,
    thumbnail_stats,
)

NORM_STATS = ("image", "thumbnail", "tile")


@dataclass
class TiledRun:
    """One image, cut into tiles for one generator; each method is one pass over all tiles.

    Only one tile's activations are alive at a time, so device memory is bounded by ``tile``;
    what a ``Frontier`` caches between passes lives on the CPU or on disk.
    """

    generator: nn.Module
    padded: torch.Tensor  # 1×C×H×W, H and W multiples of the generator's size_multiple
    tile: int
    overlap: int
    device: torch.device
    amp: str = "off"
    #: called as ``progress(done, total)`` after each tile's forward pass (statistics passes too)
    progress: Callable[[int, int], None] | None = None
    #: tile forward passes the whole run will make, set by the caller that plans the passes
    total_passes: int = 0

    def __post_init__(self) -> None:
        self.done_passes = 0
        stages = getattr(self.generator, "stages", None)
        steps = stages() if callable(stages) else None
        #: the generator as a chain of steps; tiles are multiples of its size_multiple, so no
        #: padding is needed and its body is its forward
        self.steps: list[Callable[[Any], Any]] = list(steps) if steps else [self.generator]

    def tiles(self) -> Iterator[tuple[Span, Span]]:
        h, w = self.padded.shape[-2:]
        return iter_tiles(h, w, self.tile, self.overlap, size_multiple(self.generator))

    def first_tile(self) -> torch.Tensor:
        """The first tile's input, on the device."""
        return self._crop(*next(self.tiles()))

    def tile_pixels(self) -> int:
        """The pixels of one tile (tiles all have the same size)."""
        ys, xs = next(self.tiles())
        return (ys.stop - ys.start) * (xs.stop - xs.start)

    def _crop(self, ys: Span, xs: Span) -> torch.Tensor:
        return self.padded[..., ys.start : ys.stop, xs.start : xs.stop].to(self.device)

    def _run(self, hooks: SharedNormStats, state: Any, start: int, stop: int) -> Any:
        for j in range(start, stop):
            hooks.step = j
            state = self.steps[j](state)
        return state

    def _tile_done(self) -> None:
        self.done_passes += 1
        if self.progress is not None:
            self.progress(self.done_passes, max(self.total_passes, self.done_passes))

    def _resume(self, frontier: Frontier | None, index: int, ys: Span, xs: Span) -> tuple[Any, int]:
        """Tile ``index``'s state at the frontier (a copy: steps may work in place) and its step."""
        if frontier is None or frontier.step == 0:
            return self._crop(ys, xs), 0
        return frontier.cached(index, self.device), frontier.step

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
        unless it is larger than ``frontier.values_per_pixel`` allows (the frontier then stays).
        """
        advance = frontier is not None and advance_to > frontier.step
        with SharedNormStats(self.generator, use, record, stop_after) as hooks, autocast(self.device, self.amp):
            for index, (ys, xs) in enumerate(self.tiles()):
                core = (
                    ys.core_start - ys.start,
                    ys.core_stop - ys.start,
                    xs.core_start - xs.start,
                    xs.core_stop - xs.start,
                )
                tile_hw = (ys.stop - ys.start, xs.stop - xs.start)
                hooks.set_core(tile_hw, core)
                state, step = self._resume(frontier, index, ys, xs)
                try:
                    if advance:
                        state, step = self._run(hooks, state, step, advance_to), advance_to
                        if index == 0:  # tiles are all the same size: decide once
                            advance = state_numel(state) <= frontier.values_per_pixel * tile_hw[0] * tile_hw[1]
                        if advance:
                            frontier.cache(index, state)
                    self._run(hooks, state, step, len(self.steps))
                except StopForward:
                    pass
                self._tile_done()
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
                self._tile_done()
        missing = set(hooks.order) - set(use)
        if use and missing:
            raise RuntimeError(f"no statistics for norm layers {sorted(missing)}")
        return out.div_(weight)


def frontier_cache_mode(
    generator: nn.Module,
    height: int,
    width: int,
    tile: int = 512,
    overlap: int = 64,
    cache: str = "auto",
    cache_mb: float = DEFAULT_CACHE_MB,
    cache_dir: str | None = None,
) -> str:
    """Where exact statistics of a ``height`` × ``width`` image keep their frontier: "ram",
    "disk" or "off" (see ``cache.choose_cache``), as ``translate_image`` decides it."""
    multiple = size_multiple(generator)
    tile, overlap = effective_geometry(tile, overlap, multiple)
    h, w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    tile_pixels = sum(
        (ys.stop - ys.start) * (xs.stop - xs.start) for ys, xs in iter_tiles(h, w, tile, overlap, multiple)
    )
    return choose_cache(cache, frontier_worst_bytes(tile_pixels), cache_mb, cache_dir)


@contextmanager
def _mode_and_placement_kept(net: nn.Module) -> Iterator[None]:
    """Undo on the way out what a run does to the caller's ``net``: each module's train/eval flag and
    each parameter's, gradient's and buffer's tensor (the originals come back: nothing is copied)."""
    modes = [(module, module.training) for module in net.modules()]
    # ``Module.to`` moves a parameter's data in place or, across incompatible devices, replaces the
    # parameter, and always replaces buffers: keep the objects and what they held
    params = [
        (module._parameters, name, param, param.data, param.grad)
        for module in net.modules()
        for name, param in module._parameters.items()
        if param is not None
    ]
    buffers = [(module._buffers, name, buffer) for module in net.modules() for name, buffer in module._buffers.items()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for owner, name, param, data, grad in params:
            param.data, param.grad = data, grad
            owner[name] = param
        for owner, name, buffer in buffers:
            owner[name] = buffer


def _leaves_generator_as_it_was(run: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    @functools.wraps(run)
    def kept(generator: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        with _mode_and_placement_kept(generator):  # restored outside inference mode: ordinary tensors
            return run(generator, *args, **kwargs)

    return kept


def _tiling_module(generator: nn.Module, amp: str, device: torch.device, tile: int) -> tuple[nn.Module, str]:
    """What the tiles run: the generator itself, or, for a generator run by an inference backend
    (``backend.BackendGenerator``), the module that keeps tiles exact (or its refusal)."""
    for_tiles = getattr(generator, "for_tiles", None)
    if not callable(for_tiles):
        return generator, amp
    net, amp = for_tiles(amp, tile)
    return net.to(device).eval(), amp


@_leaves_generator_as_it_was
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
    cache: str = "auto",
    cache_dir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_unshared_norms: bool = False,
) -> torch.Tensor:
    """Translate a 1×3×H×W image in [-1, 1] of any size; returns 1×C×H×W float32 on the CPU.

    Images no larger than ``tile`` are translated in one pass (exact). Larger ones are tiled;
    ``norm_stats`` says where tiles take their normalisation statistics from:

    * ``"image"`` (default): the whole image's, see ``gather_image_stats``; ``stat_passes`` caps
      the recording passes (``None``: one per norm layer, which makes them exact);
    * ``"thumbnail"``: an untiled pass over the image shrunk to ``tile`` (cheap, approximate);
    * ``"tile"``: each tile its own (no extra cost, visible tone seams; for comparison).

    The ``"image"`` mode caches every tile's state between passes (the frontier). ``cache``
    says where: ``"auto"`` (default) keeps it in RAM up to ``cache_mb`` and spills a larger one
    to a temporary file in ``cache_dir`` (the system's temporary folder by default), removed
    afterwards; ``"ram"``, ``"disk"`` force a store; ``"off"`` recomputes instead (the same
    output, several times slower). Every store gives the same output, bit for bit.

    ``progress(done, total)`` is called after every tile's forward pass, statistics passes
    included, with the total known from the first call (an untiled image counts as one pass).

    The run moves ``generator`` to ``device`` and into eval mode, and afterwards leaves it as the
    caller had it (mode of every module, device of its weights).

    ``generator`` may be a ``backend.BackendGenerator`` (an ONNX Runtime / OpenVINO / bf16 run):
    whole images go through it, tiles through what it gives for tiles (or its refusal, an error).

    A tiled run refuses (``ConfigError``, naming the layers) a generator with norm layers whose
    statistics it cannot share across tiles (see ``stats.unshared_norms``), unless
    ``allow_unshared_norms`` accepts the seams they leave, or ``norm_stats`` is ``"tile"``.
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
            out = generator(image.to(dev)).float().cpu()
        if progress is not None:
            progress(1, 1)
        return out

    generator, amp = _tiling_module(generator, amp, dev, tile)
    padded, size = pad_to_multiple(image, multiple)
    run = TiledRun(generator, padded, tile, overlap, dev, amp, progress)
    if norm_stats != "tile" and not allow_unshared_norms:
        check_norms_shareable(generator, run.first_tile(), max(image.shape[-2:]), amp)
    mode = frontier_cache_mode(generator, *padded.shape[-2:], tile, overlap, cache, cache_mb, cache_dir)
    tiles, norms = sum(1 for _ in run.tiles()), len(shareable_norms(generator))
    stat_passes_run = 0 if norm_stats != "image" else (norms if stat_passes is None else min(stat_passes, norms))
    run.total_passes = tiles * (stat_passes_run + 1)
    if not shareable_norms(generator) or norm_stats == "tile":
        return crop_to(run.blend({}), size)
    if norm_stats == "thumbnail":
        return crop_to(run.blend(thumbnail_stats(generator, padded, tile, dev, amp)), size)
    frontier = open_frontier(mode, run.tile_pixels(), cache_dir)
    try:
        stats = gather_image_stats(run, stat_passes, frontier)
        return crop_to(run.blend(stats, frontier), size)
    finally:
        frontier.close()
