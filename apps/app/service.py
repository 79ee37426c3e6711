"""One translation request, from an uploaded file to a downloadable PNG, free of any UI code.

The Gradio layer (``apps.app.ui``) only maps widgets to ``TranslationService.run`` and turns a
``DataError`` into a message; everything here can be called and tested directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from translate.data.images import to_image, to_tensor
from translate.devices import resolve_amp, resolve_device
from translate.errors import ConfigError, DataError
from translate.infer import translate_image

from .catalogue import GeneratorPool, ModelCard
from .imaging import Limits, ResultFolder, Upload, blend, is_data_url, load_upload, preview

#: progress callback: fraction done in [0, 1] and what is happening
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class InferenceSettings:
    device: str = "auto"
    amp: str = "off"  # off | auto (bf16 where the device computes it natively, fp16 on other GPUs) | bf16 | fp16
    backend: str = "torch"  # torch | onnxruntime | openvino | auto (the fastest measured, logged once)
    precision: str = "fp32"  # fp32 | bf16 | auto
    tile: int = 512  # larger images are translated in tiles of this size, in bounded memory
    overlap: int = 64
    preview_side: int = 1600  # long side of the on-page comparison; downloads stay full size
    idle_generators: int = 4  # loaded generator copies kept between requests (least recently used go first)


@dataclass(frozen=True)
class Result:
    before: Path  # PNG preview of the input as translated (upright, RGB)
    after: Path  # PNG preview of the result
    png: Path  # the full-resolution result
    summary: str


def _no_progress(fraction: float, text: str) -> None:
    pass


def _engine_of(generator: torch.nn.Module) -> str:
    """`` (openvino bf16)`` for a generator run by an inference backend; nothing for the torch network."""
    backend = getattr(generator, "backend", None)
    return f" ({backend} {generator.precision})" if backend is not None else ""


def upload_stem(upload: Upload) -> str:
    """The name the result is saved under: the upload's, or what it was for a pasted image or an array."""
    if isinstance(upload, np.ndarray):
        return "array"
    return "pasted" if is_data_url(upload) else Path(upload).stem


class TranslationService:
    """Translate uploads with a fixed set of models under fixed limits."""

    def __init__(
        self,
        cards: Sequence[ModelCard],
        results: ResultFolder,
        limits: Limits = Limits(),
        settings: InferenceSettings = InferenceSettings(),
    ) -> None:
        if not cards:
            raise ConfigError("the app needs at least one model")
        self.cards = {card.label: card for card in cards}
        self.limits = limits
        self.settings = settings
        self.results = results
        self.device = resolve_device(settings.device)
        self.amp = resolve_amp(
            settings.amp, self.device, cuda_fallback="fp16"
        )  # a bad name fails here, not per request
        self.generators = GeneratorPool(
            str(self.device), settings.idle_generators, settings.backend, settings.precision
        )

    @property
    def labels(self) -> list[str]:
        return list(self.cards)

    def card(self, label: str) -> ModelCard:
        card = self.cards.get(label)
        if card is None:
            raise DataError(f"unknown model '{label}'; choose one of: {', '.join(self.cards)}")
        return card

    def run(
        self, upload: Upload | None, label: str, strength: float = 1.0, progress: Progress = _no_progress
    ) -> Result:
        if upload is None:
            raise DataError("upload an image (or pick an example) first")
        card = self.card(label)
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:  # checked before the expensive part
            raise DataError(f"strength must be between 0 and 1, got {strength}")
        started = time.perf_counter()
        progress(0.05, "reading the image")
        rgb = load_upload(upload, self.limits)
        progress(0.15, f"loading {card.label}")
        height, width = rgb.shape[:2]
        tiled = max(height, width) > self.settings.tile
        with self.generators.borrow(card) as generator:
            engine = _engine_of(generator)
            progress(0.25, "translating in tiles" if tiled else "translating")

            def tile_progress(done: int, total: int) -> None:
                progress(
                    0.25 + 0.6 * done / total, f"translating: tile pass {done} of {total}" if tiled else "translating"
                )

            translated = self.translate(generator, rgb, tile_progress)
        result = blend(rgb, translated, strength)
        progress(0.85, "writing the PNG")
        stem = f"{upload_stem(upload)}_{card.path.stem}"
        png = self.results.write_png(result, stem)
        side = self.settings.preview_side
        before = self.results.write_png(preview(rgb, side), f"{stem}-before")
        after = png if max(height, width) <= side else self.results.write_png(preview(result, side), f"{stem}-after")
        seconds = time.perf_counter() - started
        summary = (
            f"{width}×{height} px · {card.direction} · strength {strength:.2f} · "
            f"{seconds:.1f} s on {self.device.type}{engine}" + (" (tiled)" if tiled else "")
        )
        progress(1.0, "done")
        return Result(before, after, png, summary)

    def translate(self, generator: torch.nn.Module, rgb: np.ndarray, progress=None) -> np.ndarray:
        """The full-strength translation of an H×W×3 uint8 image, same size, RGB uint8;
        ``progress(done, total)`` hears of every tile pass (see ``translate_image``)."""
        s = self.settings
        with torch.inference_mode():
            out = translate_image(
                generator,
                to_tensor(rgb).unsqueeze(0),
                tile=s.tile,
                overlap=s.overlap,
                device=self.device,
                amp=self.amp,
                progress=progress,
            )
        if out.shape[1] == 1:  # a one-channel generator (e.g. to grey): show it as RGB
            out = out.expand(-1, 3, -1, -1)
        return to_image(out[:, :3].clamp(-1, 1))
