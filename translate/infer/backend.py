"""A generator file run by an inference backend (torch, ONNX Runtime, OpenVINO), usable wherever a
generator module is: ``translate_image``, ``translate_path``, the augment hooks and the app.

``open_generator(source, backend, precision, device)`` returns a ``BackendGenerator``: an
``nn.Module`` whose forward runs the chosen ``translate.deploy.Runner`` on a whole batch. Tiled
inference must normalise every tile with the whole image's statistics (``stats``), which needs the
torch network's hooks; so a ``BackendGenerator`` also says what tiles run on:

* the torch backend tiles its own network (at bf16: under autocast, channels-last on the CPU);
* a graph backend (ONNX Runtime, OpenVINO) tiles a generator without input-dependent norms
  (none, or batch norm in eval mode) exactly as it is; one with instance or group norm it tiles
  as a ``graph_tiles.SegmentedGraph``, cut at its norm layers from the ``.safetensors`` weights,
  so the whole image's statistics reach every tile. A graph file alone (``.onnx``, ``.xml``)
  cannot be cut: tiling it is refused, naming the way out;
* ``auto`` measures every candidate once, runs whole images on the fastest and tiles with the
  fastest of those that tile exactly, and logs both in one line. Cut into segments a graph loses
  much of the speed its whole-image probe showed, so where segments are a candidate (an
  instance-norm generator whose fastest graph beat torch on the probe) the first tiled image
  times one tile on the torch path and on the segments and keeps the faster, logging that once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torch import nn

from ..deploy import Runner, channels_of, describe_timings, generator_metadata, measure, open_runners
from ..devices import autocast
from ..errors import ConfigError
from ..io import load_generator
from ..nets import build_generator
from .graph_tiles import SegmentedGraph, plan
from .stats import shareable_norms

log = logging.getLogger(__name__)

#: the precisions ``open_generator`` takes (``auto``: the fastest measured, bf16 only where native)
PRECISION_NAMES = ("fp32", "bf16", "auto")
BACKEND_NAMES = ("torch", "onnxruntime", "openvino", "auto")


class _Held:
    """Keeps a runner's torch network out of the wrapper's module bookkeeping: ``translate_image``
    moves and restores its generator's parameters, and a runner's network stays where it was built."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner


class BackendGenerator(nn.Module):
    """Runs ``whole`` on whole batches; ``for_tiles`` gives what tiled inference runs instead.

    ``segments_candidate``: a graph runner whose segments (``graph_tiles``) may tile faster than
    ``tiles``; the first tiled image measures both on one tile and keeps the faster.
    """

    def __init__(
        self,
        source: Path,
        whole: Runner,
        tiles: Runner | None,
        tiling_refusal: str = "",
        graph_tiling: str = "",
        segments_candidate: Runner | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self._whole = _Held(whole)
        self._tiles = _Held(tiles) if tiles is not None else None
        self._candidate = _Held(segments_candidate) if segments_candidate is not None else None
        self.tiling_refusal = tiling_refusal
        self.graph_tiling = graph_tiling  # tiling_in_graph(source), where a graph engine runs
        self._segmented: SegmentedGraph | None = None  # built on the first tiled image
        self.size_multiple = whole.size_multiple
        self.in_channels = channels_of(source)

    @property
    def backend(self) -> str:
        return self._whole.runner.backend

    @property
    def precision(self) -> str:
        return self._whole.runner.precision

    @property
    def tiles_path(self) -> str:
        """``"backend precision"`` of what tiles run on, or ``"refused"``."""
        if self._tiles is None:
            return "refused"
        path = f"{self._tiles.runner.backend} {self._tiles.runner.precision}"
        if self._candidate is not None:
            c = self._candidate.runner
            return f"{path} or {c.backend} {c.precision} in segments, measured on the first tiled image"
        return path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._whole.runner(x)

    def for_tiles(self, amp: str, tile: int = 256) -> tuple[nn.Module, str]:
        """The module tiled inference runs on ``tile``-sized tiles, and its autocast precision; a
        ``ConfigError`` when this backend cannot keep tiles equal to the untiled output."""
        if self._tiles is None:
            raise ConfigError(self.tiling_refusal)
        if self._candidate is not None:
            self._choose_between_torch_and_segments(amp, tile)
        return self._module_for(self._tiles.runner, amp)

    def _module_for(self, runner: Runner, amp: str) -> tuple[nn.Module, str]:
        net = getattr(runner, "net", None)
        if net is not None:
            return net, "bf16" if runner.precision == "bf16" else amp
        if self.graph_tiling == "as is":  # no input-dependent norms: tiles are exact as they are
            return _GraphTiles(runner), "off"
        if self._segmented is None:
            with torch.inference_mode(False):  # exported by tracing, which inference tensors break
                self._segmented = SegmentedGraph.of(load_generator(self.source), runner.backend, runner.precision)
        return self._segmented, "off"

    def _choose_between_torch_and_segments(self, amp: str, tile: int) -> None:
        """Time one ``tile``² tile on the torch path and on the candidate's segments; keep the faster."""
        held, candidate = self._tiles.runner, self._candidate.runner
        seconds = {}
        for runner in (held, candidate):
            module, module_amp = self._module_for(runner, amp)
            seconds[runner] = _seconds_per_tile(module, module_amp, tile, self.in_channels)
        self._candidate = None
        if seconds[candidate] < seconds[held]:
            self._tiles = _Held(candidate)
        else:
            self._segmented = None  # the losing segments' compiled graphs would only hold memory and threads
        log.info(
            "auto tiles for %s: %s %s (measured per %d² tile: %s %s %.2f s, %s %s in segments %.2f s)",
            self.source.name,
            self._tiles.runner.backend,
            self._tiles.runner.precision,
            tile,
            held.backend,
            held.precision,
            seconds[held],
            candidate.backend,
            candidate.precision,
            seconds[candidate],
        )

    def shape_twin(self) -> nn.Module:
        """The torch network of the same architecture, randomly initialised: what input sizes this
        generator takes is found on it (graph engines fail on too small inputs with their own errors)."""
        return build_generator(generator_metadata(self.source)["architecture"]).eval()

    def extra_repr(self) -> str:
        tiles = self._tiles.runner if self._tiles is not None else "refused"
        return f"source={self.source.name!r}, whole={self._whole.runner}, tiles={tiles}"


class _GraphTiles(nn.Module):
    """A graph runner as a module for ``TiledRun``: no norm layers to hook, tiles run as they are."""

    def __init__(self, runner: Runner) -> None:
        super().__init__()
        self._runner = _Held(runner)
        self.size_multiple = runner.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._runner.runner(x)


def _seconds_per_tile(module: nn.Module, amp: str, side: int, channels: int) -> float:
    """Seconds of one forward pass over a ``side``² tile (the faster of two after a warm-up)."""
    multiple = int(getattr(module, "size_multiple", 1))
    side = multiple * max(1, side // multiple)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    x = torch.rand(1, channels, side, side, device=device) * 2 - 1
    times = []
    with torch.inference_mode(), autocast(device, amp):
        for _ in range(3):
            start = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - start)
    return min(times[1:])


def tiling_in_graph(source: Path) -> str:
    """How a graph engine tiles the generator of ``source`` exactly: ``"as is"`` (its network has
    no layer that normalises with its input's statistics), ``"segments"`` (cut at its norm layers,
    see ``graph_tiles``; needs the ``.safetensors`` weights), or why it cannot."""
    spec = generator_metadata(source)["architecture"]
    try:
        with torch.device("meta"):  # the layers' types alone, no weights
            layers = build_generator(spec).eval()
    except Exception:  # a network this process cannot build: its norms are unknown, so refuse
        return f"this process cannot build its network '{spec.get('name')}'"
    if not shareable_norms(layers):
        return "as is"
    if source.suffix != ".safetensors":
        return (
            "a graph file alone cannot be cut at its instance/group norm layers, which need the whole "
            "image's statistics in every tile; tile from the generator's .safetensors (every backend then tiles "
            "exactly)"
        )
    segments = plan(build_generator(spec).eval())  # random weights: where the norms sit is what counts
    return "segments" if not isinstance(segments, str) else f"its norm layers cannot be cut apart: {segments}"


def open_generator(
    source: str | Path, backend: str = "torch", precision: str = "fp32", device: str | torch.device = "cpu"
) -> BackendGenerator:
    """A ``BackendGenerator`` for generator file ``source`` (``.safetensors``, ``.onnx`` or OpenVINO
    ``.xml``); ``backend`` and ``precision`` may each be ``auto`` (see the module's docstring)."""
    source = Path(source)
    runners = open_runners(source, backend, precision, device)
    candidate = None
    graph_tiling = tiling_in_graph(source) if any(r.backend != "torch" for r in runners) else ""
    exact = [r for r in runners if r.backend == "torch" or graph_tiling in ("as is", "segments")]
    if len(runners) == 1:
        whole = runners[0]
        tiles = whole if whole in exact else None
    else:
        timings = measure(runners, channels_of(source))
        whole = min(timings, key=timings.get)
        # the probe times whole graphs; cut into segments a graph loses much of that speed (each
        # boundary converts the state in and out; slower than torch bf16 tiles on a CPU without
        # AMX, docs/benchmarks.md), so segments are only a candidate, timed on the first tile
        unsegmented = [r for r in exact if r.backend == "torch" or graph_tiling == "as is"]
        tiles = min(unsegmented or exact, key=timings.get, default=None)
        segmented = [r for r in exact if r not in unsegmented]
        fastest_segmented = min(segmented, key=timings.get, default=None)
        if tiles is not None and fastest_segmented is not None and timings[fastest_segmented] < timings[tiles]:
            candidate = fastest_segmented  # may win as segments too: measured on the first tiled image
        tiled = f"{tiles.backend} {tiles.precision}" if tiles is not None else "refused (no torch backend)"
        if candidate is not None:
            tiled += f" or {candidate.backend} {candidate.precision} in segments, measured on the first tiled image"
        log.info(
            "auto backend for %s: %s %s; tiles with whole-image statistics: %s (measured: %s)",
            source.name,
            whole.backend,
            whole.precision,
            tiled,
            describe_timings(timings),
        )
    refusal = (
        f"backend '{whole.backend}' cannot tile {source.name}: {graph_tiling}; or translate untiled (a tile at least "
        "the image's longest side)"
    )
    return BackendGenerator(source, whole, tiles, refusal, graph_tiling, candidate)


def check_backend_names(backend: str, precision: str) -> None:
    """A ``ConfigError`` naming an unknown backend or precision."""
    if backend not in BACKEND_NAMES:
        raise ConfigError(f"unknown backend '{backend}'; known: {', '.join(BACKEND_NAMES)}")
    if precision not in PRECISION_NAMES:
        raise ConfigError(f"unknown precision '{precision}'; known: {', '.join(PRECISION_NAMES)}")


def is_default_torch(source: str | Path, backend: str, precision: str) -> bool:
    """Whether this is the plain torch fp32 run of a ``.safetensors`` file (the generator itself)."""
    return backend == "torch" and precision == "fp32" and Path(source).suffix == ".safetensors"
