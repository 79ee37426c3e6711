"""One small interface to run a generator on an N×C×H×W float batch, with several engines.

``open_runner(source, backend, precision)`` returns a ``Runner``: call it with a batch, get the
translated batch (float32, same size, same device as the input). Engines:

* ``torch``: the ``.safetensors`` generator itself; ``bf16`` runs it under autocast (channels-last
  on the CPU, where that layout is what makes bf16 fast);
* ``onnxruntime``: an ONNX graph (an ``.onnx`` file, or exported on the fly from ``.safetensors``),
  fp32;
* ``openvino``: the same graph or an OpenVINO IR ``.xml``, fp32 or bf16 (inference precision hint).

``auto`` (backend, precision or both) is resolved in one place, ``choose``: every candidate the
machine can run is timed on a small probe image and the fastest is kept; the choice and the
timings are logged once. bf16 is a candidate of ``auto`` only where the device computes bf16
natively (a bf16 GPU; a CPU with AVX512-BF16 or AMX), since elsewhere it is emulated and slow.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..devices import autocast, resolve_device
from ..errors import ConfigError
from ..io import load_generator, read_metadata
from ..nets.layers import crop_to, pad_to_multiple
from .onnx_export import export_onnx, read_graph_metadata
from .optional import is_installed, require

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
#: which engines run which precisions
SUPPORTED = {"torch": ("fp32", "bf16"), "onnxruntime": ("fp32",), "openvino": ("fp32", "bf16")}
#: which engines read which files
READS = {
    ".safetensors": ("torch", "onnxruntime", "openvino"),
    ".onnx": ("onnxruntime", "openvino"),
    ".xml": ("openvino",),
}
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}
PROBE_SIDE = 128
PROBE_REPEATS = 3


class Runner(ABC):
    """Runs one generator on N×C×H×W float batches; ``backend`` and ``precision`` say how."""

    backend: str
    precision: str
    size_multiple: int

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.dim() != 4 or not batch.is_floating_point():
            raise ConfigError(f"a generator runs on an N×C×H×W float batch, got {batch.dim()}-D {batch.dtype}")
        with torch.no_grad():
            return self.run(batch)

    @abstractmethod
    def run(self, batch: torch.Tensor) -> torch.Tensor: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, precision={self.precision!r})"


class TorchRunner(Runner):
    backend = "torch"

    def __init__(self, source: Path, precision: str, device: torch.device) -> None:
        self.precision, self.device = precision, device
        self.net = load_generator(source, device)
        self.size_multiple = self.net.size_multiple
        # bf16 convolutions on the CPU are fast in the channels-last layout only
        self.channels_last = precision == "bf16" and device.type == "cpu"
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, "bf16" if self.precision == "bf16" else "off"):
            out = self.net(x)
        return out.float().contiguous().to(batch.device)


class GraphRunner(Runner):
    """An engine that runs the exported graph on the CPU from numpy arrays.

    The graph pads by reflection; where the torch network would replicate edges instead (an
    image smaller than the padding), that padding is done here, so all engines agree.
    """

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.detach().to("cpu", torch.float32)
        h, w = x.shape[-2:]
        small = (-h) % self.size_multiple >= h or (-w) % self.size_multiple >= w
        if small:
            x, size = pad_to_multiple(x, self.size_multiple)
        out = torch.from_numpy(np.asarray(self.infer(np.ascontiguousarray(x.numpy()))))
        if small:
            out = crop_to(out, size)
        return out.float().to(batch.device)

    @abstractmethod
    def infer(self, array: np.ndarray) -> np.ndarray: ...


class OnnxRuntimeRunner(GraphRunner):
    backend = "onnxruntime"

    def __init__(self, model: Path, precision: str, size_multiple: int) -> None:
        ort = require("onnxruntime", "the onnxruntime backend")
        self.precision, self.size_multiple = precision, size_multiple
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def infer(self, array: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: array})[0]


class OpenVinoRunner(GraphRunner):
    backend = "openvino"

    def __init__(self, model: Path, precision: str, size_multiple: int) -> None:
        ov = require("openvino", "the openvino backend")
        self.precision, self.size_multiple = precision, size_multiple
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision]}
        self.compiled = core.compile_model(core.read_model(str(model)), "CPU", config)

    def infer(self, array: np.ndarray) -> np.ndarray:
        return self.compiled(array)[0]


# --- choosing and opening ---------------------------------------------------------------------


def available_backends() -> list[str]:
    """The engines installed here (torch always)."""
    modules = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
    return [name for name in BACKENDS if is_installed(modules[name])]


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (elsewhere bf16 is emulated and slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def candidates(source: Path, backend: str, precision: str, device: torch.device) -> list[tuple[str, str]]:
    """The (backend, precision) pairs that ``backend``/``precision`` (each a name or ``auto``) allow
    for ``source`` on ``device``; an explicit choice that cannot run is an error saying why."""
    if backend not in ("auto", *BACKENDS):
        raise ConfigError(f"unknown backend '{backend}'; known: auto, {', '.join(BACKENDS)}")
    if precision not in ("auto", *PRECISIONS):
        raise ConfigError(f"unknown precision '{precision}'; known: auto, {', '.join(PRECISIONS)}")
    readers = READS.get(source.suffix)
    if readers is None:
        raise ConfigError(f"{source}: a generator is a .safetensors, .onnx or OpenVINO .xml file")
    if backend != "auto":
        if backend not in readers:
            raise ConfigError(
                f"backend '{backend}' cannot run {source.name}; it runs {_files_of(backend)} files "
                f"({source.suffix} files run with backend {', '.join(readers)} or auto)"
            )
        if precision != "auto" and precision not in SUPPORTED[backend]:
            raise ConfigError(f"backend '{backend}' runs {', '.join(SUPPORTED[backend])}, not {precision}")
        if backend != "torch":
            require(backend, f"the {backend} backend")
        if device.type != "cpu" and backend != "torch":
            raise ConfigError(f"backend '{backend}' runs on the CPU here; device {device} needs backend torch")
    engines = [backend] if backend != "auto" else [b for b in readers if b in available_backends()]
    if device.type != "cpu":
        engines = [b for b in engines if b == "torch"]  # the graph engines run on the CPU here
    pairs = [
        (b, p)
        for b in engines
        for p in ([precision] if precision != "auto" else PRECISIONS)
        if p in SUPPORTED[b] and (precision != "auto" or p == "fp32" or bf16_native(device))
    ]
    if not pairs:
        raise ConfigError(
            f"no installed backend can run {source.name}; install the deploy extra: pip install 'i2i-translate[deploy]'"
        )
    return pairs


def _files_of(backend: str) -> str:
    return ", ".join(suffix for suffix, engines in READS.items() if backend in engines)


def open_runner(
    source: str | Path, backend: str = "auto", precision: str = "auto", device: str | torch.device = "cpu"
) -> Runner:
    """A ``Runner`` for generator file ``source`` (``.safetensors``, ``.onnx`` or OpenVINO ``.xml``)."""
    runners = open_runners(source, backend, precision, device)
    return runners[0] if len(runners) == 1 else choose(runners, channels_of(Path(source)))


def open_runners(
    source: str | Path, backend: str = "auto", precision: str = "auto", device: str | torch.device = "cpu"
) -> list[Runner]:
    """One ``Runner`` for each (backend, precision) that ``backend``/``precision`` allow for ``source``
    here (see ``candidates``): the candidates an ``auto`` choice measures."""
    source, device = Path(source), resolve_device(device)
    if not source.is_file():
        raise ConfigError(f"generator not found: {source}")
    pairs = candidates(source, backend, precision, device)
    with tempfile.TemporaryDirectory(prefix="i2i-runner-") as scratch:
        graph = _graph_for(source, Path(scratch)) if any(b != "torch" for b, _ in pairs) else None
        return [_build(source, graph, b, p, device) for b, p in pairs]


def _graph_for(source: Path, scratch: Path) -> Path:
    """The graph the CPU engines read: the file itself, or an ONNX export of a ``.safetensors``."""
    return export_onnx(source, scratch / "generator.onnx") if source.suffix == ".safetensors" else source


def _build(source: Path, graph: Path | None, backend: str, precision: str, device: torch.device) -> Runner:
    if backend == "torch":
        return TorchRunner(source, precision, device)
    runner_class = OnnxRuntimeRunner if backend == "onnxruntime" else OpenVinoRunner
    return runner_class(graph, precision, read_graph_metadata(graph)["size_multiple"])


def generator_metadata(source: Path) -> dict:
    """The toolkit's metadata of a generator file of any kind the runners read."""
    return read_metadata(source) if source.suffix == ".safetensors" else read_graph_metadata(source)


def channels_of(source: Path) -> int:
    return int(generator_metadata(source)["architecture"].get("in_channels", 3))


def measure(runners: Sequence[Runner], channels: int = 3, side: int = PROBE_SIDE) -> dict[Runner, float]:
    """Seconds per run of each of ``runners`` on a ``side``² probe image (median of a few runs
    after a warm-up), measured one runner after the other."""
    return {runner: _seconds_per_run(runner, channels, side) for runner in runners}


def describe_timings(timings: dict[Runner, float]) -> str:
    return ", ".join(f"{r.backend} {r.precision} {t * 1000:.1f} ms" for r, t in timings.items())


def choose(runners: Sequence[Runner], channels: int = 3, side: int = PROBE_SIDE) -> Runner:
    """The fastest of ``runners`` on a probe image (see ``measure``); the choice and every timing
    are logged in one line."""
    timings = measure(runners, channels, side)
    best = min(timings, key=timings.get)
    log.info(
        "auto backend: %s %s, the fastest on a %d×%d probe (%s)",
        best.backend,
        best.precision,
        side,
        side,
        describe_timings(timings),
    )
    return best


def _seconds_per_run(runner: Runner, channels: int, side: int) -> float:
    side = runner.size_multiple * max(1, -(-side // runner.size_multiple))
    probe = torch.rand(1, channels, side, side) * 2 - 1
    runner(probe)  # warm-up: allocations, kernel selection
    times = []
    for _ in range(PROBE_REPEATS):
        start = time.perf_counter()
        runner(probe)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
