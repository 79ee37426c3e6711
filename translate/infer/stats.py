"""Whole-image normalisation statistics for tiles: hooks, moments and the passes that gather them.

InstanceNorm and GroupNorm normalise with statistics of the whole feature map, so a tile that
computes its own gets its own tone and the tiles show as patches. ``SharedNormStats`` installs
forward hooks that normalise every tile with given statistics and record the moments of each norm
layer's input over the tiles' *cores* (which partition the image, so the sums are the whole
image's). ``gather_image_stats`` gathers exact statistics layer by layer with tiled recording
passes; ``thumbnail_stats`` takes cheap, approximate ones from an untiled pass over a thumbnail.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..devices import autocast
from ..errors import ConfigError
from .cache import Frontier, is_channels_last
from .geometry import size_multiple

if TYPE_CHECKING:  # the passes drive a TiledRun, which itself normalises through this module
    from .tiled import TiledRun


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


#: functional normalisations, each with a test of its bound arguments: does this call take its
#: statistics from its input's spatial extent (so that a tile's differ from the whole image's)?
INPUT_STATISTICS: dict[Callable[..., Any], Callable[[Mapping[str, Any]], bool]] = {
    F.instance_norm: lambda a: bool(a["use_input_stats"]),
    F.group_norm: lambda a: True,
    # over the channels alone (a channels-last or token layout) it is per position, which tiles keep
    F.layer_norm: lambda a: len(a["normalized_shape"]) >= 2,
    # in training, or without running statistics, batch norm uses the tile's own
    F.batch_norm: lambda a: bool(a["training"]) or a["running_mean"] is None,
}


class _InputStatisticsCalls(TorchFunctionMode):
    """Records, during one forward pass, which module (by name) calls a normalisation that takes
    its statistics from its input (``INPUT_STATISTICS``), whatever the module's class: built-in
    norms, and custom layers that call ``F.instance_norm`` and the like themselves."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.found: dict[str, str] = {}  # module name -> what it calls
        self._running: list[tuple[str, nn.Module]] = []  # modules whose forward is running, outermost first
        self._handles: list = []

    def __enter__(self) -> _InputStatisticsCalls:
        for name, module in self.net.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._entered(name)))
            self._handles.append(module.register_forward_hook(self._left))
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        super().__exit__(*exc)

    def _entered(self, name: str):
        def hook(module: nn.Module, inputs: tuple) -> None:
            self._running.append((name, module))

        return hook

    def _left(self, module: nn.Module, inputs: tuple, output: object) -> None:
        self._running.pop()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        test = INPUT_STATISTICS.get(func)
        if test is not None and self._running:
            bound = inspect.signature(func).bind(*args, **kwargs)
            bound.apply_defaults()
            if test(bound.arguments):
                name, module = self._running[-1]
                self.found.setdefault(name, f"{type(module).__name__} calling {func.__name__}")
        return func(*args, **kwargs)


def unshared_norms(net: nn.Module, tile: torch.Tensor, amp: str = "off") -> dict[str, str]:
    """Layers that normalise a tile with its own statistics and that ``SharedNormStats`` cannot give
    the whole image's (name -> what it calls), found by one forward pass over ``tile``.

    ``shareable_norms`` (InstanceNorm, GroupNorm) are given whole-image statistics; BatchNorm in
    eval mode uses its running statistics, the same for every tile. Anything else that takes its
    statistics from its input (LayerNorm over the spatial dims, batch norm without running
    statistics, a custom layer calling ``F.instance_norm``) would give each tile its own tone.
    """
    shared = set(shareable_norms(net))
    # under the run's autocast, as the tiles will be: a half-precision net needs it
    with torch.inference_mode(), autocast(tile.device, amp), _InputStatisticsCalls(net) as calls:
        net(tile)
    return {name or "(the generator itself)": what for name, what in calls.found.items() if name not in shared}


def check_norms_shareable(net: nn.Module, tile: torch.Tensor, image_side: int, amp: str = "off") -> None:
    """A ``ConfigError`` naming each of ``unshared_norms``: tiles would silently show seams."""
    unshared = unshared_norms(net, tile, amp)
    if unshared:
        listed = ", ".join(f"'{name}' ({what})" for name, what in unshared.items())
        raise ConfigError(
            f"generator layer(s) {listed} normalise each tile with its own statistics, which tiled inference "
            f"cannot share across tiles (seams); translate untiled (tile >= {image_side}), or accept seams with "
            "allow_unshared_norms=True (or norm_stats='tile')"
        )


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
        """Add a 1×C×h×w region.

        Each image row (a few hundred values) is summed in float32, accurate to about 1e-7 of the
        sum, and only the row sums are added in float64: a tile's moments cost a third of casting
        the whole region to float64 first, with the same sums to about 1e-8.
        """
        x = x.detach().float()
        if is_channels_last(x):
            rows = x.permute(0, 2, 3, 1)  # contiguous rows of w pixels × C channels
            row_dim, rest = 2, (0, 1)
        else:
            rows, row_dim, rest = x, 3, (0, 2)
        self.total += rows.sum(dim=row_dim).double().sum(dim=rest).cpu()
        self.total_sq += (rows * rows).sum(dim=row_dim).double().sum(dim=rest).cpu()
        self.count += x.shape[0] * x.shape[2] * x.shape[3]

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.count
        return mean, (self.total_sq / self.count - mean.square()).clamp_min(0.0)


Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def scale_and_shift(module: nn.Module, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel float32 ``scale`` and ``shift`` with which ``module`` maps its input when its
    statistics are the given per-channel mean and (biased) variance: ``x * scale + shift``."""
    c = mean.numel()
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
    return scale.float(), shift.float()


def normalise(module: nn.Module, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """What ``module`` computes on ``x``, but with the given per-channel mean and (biased) variance."""
    c = x.shape[1]
    scale, shift = scale_and_shift(module, mean, var)
    out = x.float() * scale.to(x.device).view(1, c, 1, 1) + shift.to(x.device).view(1, c, 1, 1)
    # a layer that keeps float32 under autocast (``nets.layers``) hands it on; others their input's dtype
    full_precision = getattr(module, "full_precision_under_autocast", False) and torch.is_autocast_enabled(
        x.device.type
    )
    return out if full_precision else out.to(x.dtype)


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

    A network whose norm layers do not run as torch modules (``graph_tiles.SegmentedGraph``)
    takes part through ``attach_norm_stats(hooks)``: it is handed this object instead of hooks,
    normalises with ``use`` itself and reports each norm layer's input to ``seen``.
    """

    def __init__(
        self,
        net: nn.Module,
        use: Stats | None = None,
        record: set[str] | None = frozenset(),
        stop_after: str | None = None,
    ) -> None:
        self.net = net
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
        attach = getattr(self.net, "attach_norm_stats", None)
        if callable(attach):
            attach(self)
            return self
        for name, module in self.norms.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        attach = getattr(self.net, "attach_norm_stats", None)
        if callable(attach):
            attach(None)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def wants(self, name: str) -> bool:
        """Whether ``seen(name, ...)`` would do anything: a layer not seen yet, recorded, or the last."""
        return name not in self.order or self.record is None or name in self.record or name == self.stop_after

    def seen(self, name: str, x: torch.Tensor) -> None:
        """Norm layer ``name`` was given ``x``: note the order, record its moments where asked, and
        end the pass (``StopForward``) after ``stop_after``."""
        if name not in self.order:
            self.order.append(name)
            self.step_of[name] = self.step
        if self.record is None or name in self.record:
            self._accumulate(name, x)
        if name == self.stop_after:
            raise StopForward

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
            x = inputs[0]
            self.seen(name, x)
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


def thumbnail_stats(
    generator: nn.Module, padded: torch.Tensor, tile: int, device: torch.device, amp: str = "off"
) -> Stats:
    """Statistics of an untiled pass over the image shrunk to fit ``tile``: a cheap first estimate."""
    h, w = padded.shape[-2:]
    multiple = size_multiple(generator)
    scale = tile / max(h, w)
    size = (
        max(multiple, round(h * scale / multiple) * multiple),
        max(multiple, round(w * scale / multiple) * multiple),
    )
    thumb = F.interpolate(padded, size=size, mode="bilinear", antialias=True, align_corners=False)
    with SharedNormStats(generator, record=None) as hooks, autocast(device, amp):
        hooks.set_core(size, None)
        generator(thumb.to(device))
    return hooks.statistics()
