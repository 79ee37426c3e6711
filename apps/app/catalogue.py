"""Which exported generators the app offers, and what each one is.

A model is any ``.safetensors`` file written by ``i2i export`` or ``i2i import`` (or by
``apps.app.bundle``), or an ``.onnx`` file written by ``i2i export --format onnx`` when the app runs
a backend that reads ONNX (onnxruntime, openvino or auto). Its
card — title, the two domains, what it was trained on and what it cannot do — comes from the
export's metadata: bundled models carry a full card under ``info["card"]``; a user's own export
gets a plain card built from the facts every export holds (model, direction, step).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from translate.deploy import read_graph_metadata
from translate.errors import CheckpointError, ConfigError
from translate.infer.backend import check_backend_names, is_default_torch, open_generator
from translate.io import load_generator, read_metadata

#: the models shipped with the app (package data)
BUNDLED_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class ModelCard:
    """What a user needs to know to pick a model."""

    label: str  # unique name shown in the model list and passed to the API
    path: Path
    source: str  # the input domain, e.g. "photo"
    target: str  # the output domain
    trained_on: str
    notes: str  # what it does well and what it cannot do
    model: str  # pix2pix, cyclegan, ...
    step: int | None
    order: int = 0  # position in the model list (bundled models set it; others keep file order)

    @property
    def direction(self) -> str:
        return f"{self.source} → {self.target}"

    def markdown(self) -> str:
        step = f", {self.step} training steps" if self.step is not None else ""
        lines = [
            f"**{self.direction}** · {self.model}{step}",
            f"*Trained on:* {self.trained_on}",
        ]
        if self.notes:
            lines.append(f"*Good to know:* {self.notes}")
        return "\n\n".join(lines)


#: the model files the app looks for, and which backends run each
MODEL_SUFFIXES = (".safetensors", ".onnx")


def read_card(path: Path) -> ModelCard:
    """The card of one exported generator (``.safetensors`` or ``.onnx``); an error if the file is not one."""
    meta = read_metadata(path) if path.suffix == ".safetensors" else read_graph_metadata(path)
    if meta["family"] != "generator":
        raise CheckpointError(f"{path} holds a '{meta['family']}', not a generator")
    info = meta["info"]
    card = info.get("card") or {}
    model = str(info.get("model", "unknown model"))
    src, _, dst = str(info.get("direction", "A->B")).partition("->")
    return ModelCard(
        label=str(card.get("title") or path.stem),
        path=path,
        source=str(card.get("source") or f"domain {src.strip() or 'A'}"),
        target=str(card.get("target") or f"domain {dst.strip() or 'B'}"),
        trained_on=str(card.get("trained_on") or f"exported from '{path.parent.parent.name or path.parent}'"),
        notes=str(card.get("notes") or ""),
        model=model,
        step=info.get("step"),
        order=int(card.get("order", 0)),
    )


def discover(
    folders: Sequence[str | Path], include_bundled: bool = True, backend: str = "torch"
) -> tuple[list[ModelCard], list[str]]:
    """Cards of every exported generator under ``folders`` (and the bundled ones), and a list of
    files that were skipped with the reason. A missing folder is an error: it is most likely a typo.
    ``.onnx`` files are offered when ``backend`` runs them (onnxruntime, openvino, auto)."""
    roots = ([BUNDLED_DIR] if include_bundled else []) + [Path(f).expanduser() for f in folders]
    cards: list[ModelCard] = []
    skipped: list[str] = []
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"model folder not found: {root}")
        found = []
        for path in sorted(p for suffix in MODEL_SUFFIXES for p in root.rglob(f"*{suffix}")):
            if path.suffix == ".onnx" and backend == "torch":
                skipped.append(f"{path}: an ONNX model runs with backend onnxruntime, openvino or auto, not torch")
                continue
            try:
                found.append(read_card(path.resolve()))
            except (CheckpointError, ConfigError) as exc:  # ConfigError: the deploy extra is missing
                skipped.append(str(exc))
        cards += sorted(found, key=lambda card: card.order)  # stable: file order among equals
    if not cards:
        raise ConfigError("no exported generators found in " + ", ".join(str(r) for r in roots))
    return _unique_labels(cards), skipped


def _unique_labels(cards: list[ModelCard]) -> list[ModelCard]:
    # two runs both export "G_AB": tell them apart by their folder
    seen: set[str] = set()
    out = []
    for card in cards:
        label = card.label
        if label in seen:
            label = f"{card.label} ({card.path.parent.parent.name or card.path.parent.name})"
        while label in seen:
            label = f"{label}'"
        seen.add(label)
        out.append(card if label == card.label else dataclasses.replace(card, label=label))
    return out


class GeneratorPool:
    """Generators loaded on first use and lent out one request at a time.

    Tiled inference temporarily hooks a network's normalisation layers, so two requests must
    never run the same module at once; a request borrows an idle copy, and a new copy is loaded
    only when every existing one is busy (at most one per concurrent request). At most
    ``max_idle`` copies, of all models together, are kept between requests; the least recently
    used go first, so a server whose users try every model does not keep them all in memory.
    """

    def __init__(self, device: str, max_idle: int = 4, backend: str = "torch", precision: str = "fp32") -> None:
        if max_idle < 1:
            raise ConfigError(f"the generator pool must keep at least one idle copy, got max_idle={max_idle}")
        check_backend_names(backend, precision)
        self.device = device
        self.max_idle = max_idle
        self.backend, self.precision = backend, precision
        self._idle: collections.OrderedDict[int, tuple[Path, nn.Module]] = collections.OrderedDict()  # oldest first
        self._lock = threading.Lock()

    @property
    def idle(self) -> list[Path]:
        """The model file of each idle copy, least recently used first."""
        with self._lock:
            return [path for path, _ in self._idle.values()]

    @contextlib.contextmanager
    def borrow(self, card: ModelCard) -> Iterator[nn.Module]:
        net = self._take_idle(card.path)
        if net is None:
            net = self._load(card.path)
        try:
            yield net
        finally:
            self._give_back(card.path, net)

    def _load(self, path: Path) -> nn.Module:
        """The torch network for a plain fp32 torch run of a ``.safetensors`` file, else the file run
        by the pool's backend and precision (``auto`` measures and logs its choice when loaded)."""
        if is_default_torch(path, self.backend, self.precision):
            return load_generator(path, self.device)
        return open_generator(path, self.backend, self.precision, self.device)

    def _take_idle(self, path: Path) -> nn.Module | None:
        with self._lock:
            for key in reversed(self._idle):  # the most recently returned copy of this model
                if self._idle[key][0] == path:
                    return self._idle.pop(key)[1]
        return None

    def _give_back(self, path: Path, net: nn.Module) -> None:
        with self._lock:
            self._idle[id(net)] = (path, net)
            while len(self._idle) > self.max_idle:
                self._idle.popitem(last=False)  # the least recently used copy
