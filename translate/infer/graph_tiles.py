"""Exact tiles on a graph engine: the generator cut at its norm layers into exported segments.

A whole exported graph normalises each tile with the tile's own statistics, so tiles would show
as patches. Here the torch network's steps (``ImageGenerator.stages``) are grouped into
*segments* that each start at the step holding one norm layer, and each segment is exported to
ONNX (``KINDS``): with that norm's statistics as inputs (a per-channel ``scale`` and ``shift``,
computed from the whole image's mean and variance exactly as the torch hooks do), with the norm
as it is (the tile's own statistics: tracing, ``norm_stats="tile"``), and, where the norm's input
is not simply one of the segment's inputs, up to that input alone (the probe). ``SegmentedGraph``
runs them as ``TiledRun``'s steps and hands each norm's input to the attached ``SharedNormStats``
before its segment runs, so the statistics passes, the frontier and the blending of ``tiled``
work unchanged and a pass that stops at a norm computes nothing past it: the tiled output equals
the torch tiles within the engine's precision.

Networks without ``stages()``, or with a step that holds two norm layers, are not cut: ``plan``
says why, and the backend refuses to tile them. What the cuts cost is in docs/benchmarks.md.
"""

from __future__ import annotations

import io as bytes_io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..deploy.onnx_export import OPSET
from ..deploy.optional import require
from ..errors import ConfigError
from .stats import SharedNormStats, scale_and_shift

#: the graph engines that run segments, and the precisions each takes
ENGINES = {"onnxruntime": ("fp32",), "openvino": ("fp32", "bf16")}
#: name of the torch network inside ``SegmentedGraph``: norm layer names carry it as a prefix
NET = "net"


@dataclass(frozen=True)
class Segment:
    """Steps ``start`` to ``stop`` (exclusive) of the network, the first one holding ``norm``
    (a layer name in the network) or, for the steps before the first norm, none."""

    start: int
    stop: int
    norm: str | None
    arity_in: int
    arity_out: int


def _flatten(state: Any) -> list[torch.Tensor]:
    return [state] if isinstance(state, torch.Tensor) else list(state)


def _unflatten(tensors: Sequence[torch.Tensor]) -> Any:
    return tensors[0] if len(tensors) == 1 else tuple(tensors)


def _small_input(net: nn.Module) -> torch.Tensor:
    side = net.size_multiple * max(1, -(-32 // net.size_multiple))
    return torch.zeros(1, int(getattr(net, "in_channels", 3)), side, side)


def plan(net: nn.Module) -> list[Segment] | str:
    """The segments of ``net``, found by one forward pass over a small image, or why it cannot be cut."""
    stages = getattr(net, "stages", None)
    steps = stages() if callable(stages) else None
    if not steps:
        return f"{type(net).__name__} is not split into steps (no stages())"
    arities = [1]
    with torch.no_grad(), SharedNormStats(net) as hooks:
        state: Any = _small_input(net)
        for j, step in enumerate(steps):
            hooks.step = j
            state = step(state)
            arities.append(len(_flatten(state)))
    holders: dict[int, str] = {}
    for name in hooks.order:
        step = hooks.step_of[name]
        if step in holders:
            return f"step {step} of {type(net).__name__} holds two norm layers ({holders[step]}, {name})"
        holders[step] = name
    starts = sorted({0, *holders})
    stops = [*starts[1:], len(steps)]
    return [Segment(a, b, holders.get(a), arities[a], arities[b]) for a, b in zip(starts, stops, strict=True)]


#: the graphs of a segment: its steps with the norm given its statistics, the same with the norm
#: as it is (the tile's own statistics), and the steps up to the norm's input alone
KINDS = ("given", "own", "probe")


class _NormInputFound(Exception):
    """Ends a probe's forward pass at the norm's input."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.x = x


class _SegmentModule(nn.Module):
    """What one graph of a segment computes (``KINDS``): the next state, or the norm's input."""

    def __init__(self, net: nn.Module, segment: Segment, kind: str) -> None:
        super().__init__()
        self.net, self.segment, self.kind = net, segment, kind
        self.steps = net.stages()[segment.start : segment.stop]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.segment.arity_in
        state, extra = _unflatten(inputs[:n]), inputs[n:]

        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            if self.kind == "probe":
                raise _NormInputFound(args[0])
            return args[0] * extra[0] + extra[1] if self.kind == "given" else output

        handle = None
        if self.segment.norm is not None:
            handle = self.net.get_submodule(self.segment.norm).register_forward_hook(hook)
        try:
            for step in self.steps:
                state = step(state)
        except _NormInputFound as found:
            return (found.x,)
        finally:
            if handle is not None:
                handle.remove()
        return tuple(_flatten(state))


def _probe_input(net: nn.Module, segment: Segment, example: Sequence[torch.Tensor]) -> int | None:
    """Which of the segment's input tensors is its norm's input as it is, if one is (a ResNet's norm
    steps take it so): the statistics passes then read it without running a graph."""
    with torch.no_grad():
        (x,) = _SegmentModule(net, segment, "probe")(*example)
    return next((i for i, t in enumerate(example) if t is x), None)


def _export(module: _SegmentModule, example: Sequence[torch.Tensor], channels: int) -> bytes:
    """The ONNX bytes of ``module``, every image-sized input and output dynamic in height and width."""
    seg = module.segment
    names_in = [f"state{i}" for i in range(seg.arity_in)]
    inputs = list(example)
    if module.kind == "given":
        names_in += ["scale", "shift"]
        inputs += [torch.ones(1, channels, 1, 1), torch.zeros(1, channels, 1, 1)]
    names_out = ["norm_input"] if module.kind == "probe" else [f"next{i}" for i in range(seg.arity_out)]
    axes = {0: "batch", 2: "height", 3: "width"}
    dynamic = {name: axes for name in [*names_in[: seg.arity_in], *names_out]}
    buffer = bytes_io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            tuple(inputs),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dynamic,
        )
    return buffer.getvalue()


def _channels(net: nn.Module, segment: Segment) -> int:
    """The channels of the segment's norm layer (0 without one)."""
    if segment.norm is None:
        return 0
    norm = net.get_submodule(segment.norm)
    return int(getattr(norm, "num_features", None) or norm.num_channels)


def _compile(
    onnx_bytes: bytes, engine: str, precision: str, core: Any
) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """A function from the graph's inputs (in order) to its outputs (in order), on ``engine``
    (OpenVINO: compiled by ``core``, shared by all the segments of a network; else unused)."""
    if engine == "openvino":
        hint = {"fp32": "f32", "bf16": "bf16"}[precision]
        # every tile of a run has the same size: a graph compiled for that static shape plans its
        # memory and layouts once, where a dynamic one pays for it at every call
        by_shape: dict[tuple, Any] = {}

        def run_openvino(arrays: list[np.ndarray]) -> list[np.ndarray]:
            shapes = tuple(a.shape for a in arrays)
            if shapes not in by_shape:
                model = core.read_model(onnx_bytes)
                model.reshape({i: list(shape) for i, shape in enumerate(shapes)})
                compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
                by_shape.clear()  # one tile size at a time
                by_shape[shapes] = compiled.create_infer_request()
            request = by_shape[shapes]
            request.infer(arrays)
            return [request.get_output_tensor(i).data.copy() for i in range(len(request.model_outputs))]

        return run_openvino
    ort = require("onnxruntime", "the onnxruntime backend")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run_onnxruntime(arrays: list[np.ndarray]) -> list[np.ndarray]:
        return session.run(None, dict(zip(names, arrays, strict=True)))

    return run_onnxruntime


class SegmentedGraph(nn.Module):
    """A generator run segment by segment on a graph engine, for ``TiledRun``.

    ``stages()`` gives one callable per segment. While a ``SharedNormStats`` is entered on this
    module it is attached (``attach_norm_stats``): each segment then normalises with its
    ``use`` statistics where it has them (else with the tile's own) and hands the norm's input to
    it (``seen``: order, recording, stopping), as the torch hooks would.
    """

    def __init__(self, net: nn.Module, segments: Sequence[Segment], engine: str, precision: str) -> None:
        super().__init__()
        if precision not in ENGINES.get(engine, ()):
            raise ValueError(f"segments run on {', '.join(ENGINES)}, not {engine} {precision}")
        self.net = net.eval()
        self.segments = list(segments)
        self.engine, self.precision = engine, precision
        self.size_multiple = net.size_multiple
        self._attached: SharedNormStats | None = None
        # exported now, outside any inference mode, and compiled on first use: tracing the torch
        # network later would fire the hooks of whatever statistics are attached
        examples = self._example_states()
        self._probe_inputs = [
            _probe_input(self.net, seg, examples[i]) if seg.norm else None for i, seg in enumerate(self.segments)
        ]
        self._onnx = {
            (i, kind): _export(_SegmentModule(self.net, seg, kind), examples[i], _channels(self.net, seg))
            for i, seg in enumerate(self.segments)
            for kind in KINDS
            if (kind == "own" or seg.norm) and not (kind == "probe" and self._probe_inputs[i] is not None)
        }
        self._graphs: dict[tuple[int, str], Callable[[list[np.ndarray]], list[np.ndarray]]] = {}
        # one OpenVINO runtime for all the segments: a runtime per graph starts its own threads
        self._core = require("openvino", "the openvino backend").Core() if engine == "openvino" else None

    @classmethod
    def of(cls, net: nn.Module, engine: str, precision: str) -> SegmentedGraph:
        """``net`` cut at its norm layers (``plan``); a ``ConfigError`` saying why where it cannot be."""
        segments = plan(net)
        if isinstance(segments, str):
            raise ConfigError(f"cannot cut the generator at its norm layers for {engine}: {segments}")
        return cls(net, segments, engine, precision)

    def _example_states(self) -> list[list[torch.Tensor]]:
        """Each segment's input state on a small image: the shapes its export traces with."""
        state: Any = _small_input(self.net)
        steps = self.net.stages()
        inputs = []
        with torch.no_grad():
            for seg in self.segments:
                inputs.append(_flatten(state))
                for step in steps[seg.start : seg.stop]:
                    state = step(state)
        return inputs

    def _graph(self, index: int, kind: str) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        if (index, kind) not in self._graphs:
            self._graphs[index, kind] = _compile(self._onnx[index, kind], self.engine, self.precision, self._core)
        return self._graphs[index, kind]

    def attach_norm_stats(self, hooks: SharedNormStats | None) -> None:
        self._attached = hooks

    def stages(self) -> list[Callable[[Any], Any]]:
        return [self._step(i) for i in range(len(self.segments))]

    def _step(self, index: int) -> Callable[[Any], Any]:
        seg = self.segments[index]
        module = self.net.get_submodule(seg.norm) if seg.norm else None

        def step(state: Any) -> Any:
            tensors = _flatten(state)
            arrays = [np.ascontiguousarray(t.detach().float().cpu().numpy()) for t in tensors]
            hooks, name = self._attached, f"{NET}.{seg.norm}"
            if seg.norm is not None and hooks is not None and hooks.wants(name):
                # before the segment runs, so a pass that stops at this norm costs nothing more
                probe = self._probe_inputs[index]
                x = tensors[probe] if probe is not None else torch.from_numpy(self._graph(index, "probe")(arrays)[0])
                hooks.seen(name, x)
            use = hooks.use.get(name) if hooks is not None and seg.norm is not None else None
            if use is not None:
                scale, shift = scale_and_shift(module, *use)
                arrays += [scale.view(1, -1, 1, 1).numpy(), shift.view(1, -1, 1, 1).numpy()]
            outputs = self._graph(index, "given" if use is not None else "own")(arrays)
            return _unflatten([torch.from_numpy(a) for a in outputs])

        return step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state: Any = x
        for step in self.stages():
            state = step(state)
        return state
