"""The generator behind every hook: what it takes, loading it once per process, running it on a
stack of images, and the channel rule shared by the transform and the batch hook.

Channel rule (an image's channels against the generator's, which are 3 for every shipped one):

* same count: translated as is;
* grayscale (1 channel) into a 3-channel generator: replicated to RGB, translated, and turned back
  into one channel by ITU-R BT.601 luma, so the output keeps the input's shape;
* RGBA (4 channels) into a 3-channel generator: RGB translated, alpha kept byte for byte;
* anything else is an error naming both counts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from translate.deploy import read_graph_metadata
from translate.errors import CheckpointError, ConfigError, DataError
from translate.infer import translate_image
from translate.infer.backend import (
    BackendGenerator,
    check_backend_names,
    is_default_torch,
    open_generator,
)
from translate.io import load_generator, read_metadata

from ._runtime import autocast, check_cuda_usable_here

#: weights of R, G, B in BT.601 luma, the usual RGB -> gray conversion (OpenCV's too)
LUMA = (0.299, 0.587, 0.114)
#: the largest side tried when looking for the smallest image a generator accepts
MAX_PROBE_SIDE = 256
#: the smallest tile accepted: below it the tiles' overlap leaves almost no core
MIN_TILE = 16
#: what torch says when an input is too small for a layer: a pad, kernel or pooling window larger
#: than the input, norm statistics of one value, skip connections of mismatched sizes
_SIZE_ERROR = re.compile(r"size|shape|dimension|spatial element|value per channel|padding|kernel", re.IGNORECASE)
#: what allocators say when memory runs out (CUDA, MPS, the CPU's), whatever the exception type
_OUT_OF_MEMORY = re.compile(r"out of memory|can't allocate memory|cannot allocate memory", re.IGNORECASE)


@dataclass(frozen=True)
class GeneratorFacts:
    """What an exported generator takes and gives, read from its metadata without loading weights."""

    path: str
    in_channels: int
    out_channels: int

    @classmethod
    def read(cls, path: str | Path) -> GeneratorFacts:
        # raises CheckpointError for missing / foreign files; .onnx / .xml carry the same metadata
        meta = read_metadata(path) if Path(path).suffix == ".safetensors" else read_graph_metadata(path)
        if meta["family"] != "generator":
            raise CheckpointError(f"{path} holds a '{meta['family']}', not a generator")
        spec = meta["architecture"]
        facts = cls(str(path), int(spec.get("in_channels", 3)), int(spec.get("out_channels", 3)))
        facts.check_same_channels()
        return facts

    @classmethod
    def of_module(cls, net: nn.Module) -> GeneratorFacts:
        convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        if not convs:
            raise CheckpointError("the generator has no convolution; cannot tell its channel counts")
        facts = cls("<module>", convs[0].in_channels, convs[-1].out_channels)
        facts.check_same_channels()
        return facts

    def check_same_channels(self) -> None:
        # An augmentation must give back an image of the input's shape.
        if self.in_channels != self.out_channels:
            raise CheckpointError(
                f"{self.path}: generator maps {self.in_channels} to {self.out_channels} channels; "
                "augmentation needs the same count in and out"
            )


class ChannelPlan:
    """How an image of ``channels`` channels goes through a generator of ``generator_channels``."""

    def __init__(self, channels: int, generator_channels: int) -> None:
        self.channels = channels
        self.generator_channels = generator_channels
        self.gray_via_rgb = channels == 1 and generator_channels == 3
        self.keeps_alpha = channels == 4 and generator_channels == 3
        if channels != generator_channels and not (self.gray_via_rgb or self.keeps_alpha):
            raise DataError(
                f"image has {channels} channel(s) but the generator takes {generator_channels}; "
                "supported: the same count, grayscale or RGBA into an RGB generator"
            )

    def colour(self, x: torch.Tensor) -> torch.Tensor:
        """The generator's input (N×C×H×W) from an image stack in the same value range."""
        if self.gray_via_rgb:
            return x.expand(-1, 3, -1, -1)
        if self.keeps_alpha:
            return x[:, :3]
        return x

    def restore(self, colour: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """The image stack again, from translated colour; alpha (if any) is the original's."""
        if self.gray_via_rgb:
            weights = colour.new_tensor(LUMA).view(1, 3, 1, 1)
            return (colour * weights).sum(1, keepdim=True)
        if self.keeps_alpha:
            return torch.cat([colour, original[:, 3:].to(colour.dtype)], dim=1)
        return colour


def is_size_error(error: BaseException) -> bool:
    """Whether a forward pass failed because its input was too small for a layer. Running out of
    memory is never one, even where its message mentions sizes."""
    message = str(error)
    if isinstance(error, torch.OutOfMemoryError) or _OUT_OF_MEMORY.search(message):
        return False
    return isinstance(error, (RuntimeError, ValueError, IndexError)) and bool(_SIZE_ERROR.search(message))


def smallest_side(net: nn.Module, channels: int, device: torch.device) -> int:
    """The smallest square side the generator accepts (reflection pads and norms set a floor).

    Only errors about the input's size mean "too small, try larger"; any other error (out of
    memory, a wrong dtype or device) is the generator's and propagates as it is.
    """
    for side in range(1, MAX_PROBE_SIDE + 1):
        try:
            with torch.inference_mode():
                net(torch.zeros(1, channels, side, side, device=device))
            return side
        except (RuntimeError, ValueError, IndexError) as error:
            if not is_size_error(error):
                raise
    raise CheckpointError(f"the generator accepts no image up to {MAX_PROBE_SIDE}×{MAX_PROBE_SIDE}")


def generator_min_side(net: nn.Module, channels: int, device: torch.device) -> int:
    """``smallest_side`` of a generator module, or of a backend-run generator's torch twin."""
    if isinstance(net, BackendGenerator):
        return smallest_side(net.shape_twin(), channels, torch.device("cpu"))
    return smallest_side(net, channels, device)


def check_image_size(height: int, width: int, min_side: int) -> None:
    if min(height, width) < min_side:
        raise DataError(
            f"image {height}×{width} is smaller than the generator takes "
            f"(at least {min_side} pixels a side); pad or resize it before translating"
        )


def run_generator(net: nn.Module, x: torch.Tensor, device: torch.device, amp: str, tile: int) -> torch.Tensor:
    """Translate a stack (N×C×H×W in [-1, 1]) in one batched call; stacks larger than ``tile`` go
    image by image through the toolkit's tiled inference. Returns float32 on ``x``'s device."""
    # no_grad rather than inference_mode: callers blend and convert the result in place
    if max(x.shape[-2:]) <= tile:
        with torch.no_grad(), autocast(device, amp):
            return net(x.to(device)).float().to(x.device)
    overlap = min(64, tile // 4)  # the toolkit's default overlap, kept below small tiles
    outs = [translate_image(net, image[None], tile=tile, overlap=overlap, device=device, amp=amp) for image in x]
    return torch.cat(outs).to(x.device)  # cat outside inference mode gives an ordinary tensor


class LazyGenerator:
    """An exported generator that is loaded on first use, once per process, and never pickled.

    Pickling (spawned DataLoader workers, ``copy.deepcopy``) keeps only the path and the device.
    A forked copy notices the process id changed and loads its own, so a model is never shared
    across a fork. On a CUDA device that works in spawned workers, and in forked ones only while
    the parent has not initialised CUDA: a fork of a process that has is refused with an error
    naming the fixes (``check_cuda_usable_here``), since CUDA cannot start again in it.
    """

    def __init__(self, path: str | Path, device: torch.device, backend: str = "torch", precision: str = "fp32") -> None:
        check_backend_names(backend, precision)
        self.facts = GeneratorFacts.read(path)
        self.device = device
        self.backend, self.precision = backend, precision
        self._forget()

    def _forget(self) -> None:
        self._net: nn.Module | None = None
        self._min_side = 0
        self._pid = os.getpid()
        #: how many times this object loaded the weights in the current process (1 after first use)
        self.loads_in_process = 0
        #: the process that loaded the weights held now (None before the first use)
        self.loaded_pid: int | None = None

    def get(self) -> tuple[nn.Module, int]:
        """The generator (eval mode, on the device) and the smallest image side it takes."""
        if self._pid != os.getpid():
            self._forget()
        if self._net is None:
            check_cuda_usable_here(self.device)
            net = load_backend_generator(self.facts.path, self.device, self.backend, self.precision)
            self._min_side = generator_min_side(net, self.facts.in_channels, self.device)
            self._net = net
            self.loads_in_process += 1
            self.loaded_pid = os.getpid()
        return self._net, self._min_side

    def __getstate__(self) -> dict:
        return {"facts": self.facts, "device": self.device, "backend": self.backend, "precision": self.precision}

    def __setstate__(self, state: dict) -> None:
        self.facts = state["facts"]
        self.device = state["device"]
        self.backend, self.precision = state.get("backend", "torch"), state.get("precision", "fp32")
        self._forget()


def check_amp_with_backend(amp: str, backend: str, precision: str) -> None:
    """Autocast belongs to the torch network at fp32; other runs take their precision from ``precision``."""
    if amp != "off" and not (backend == "torch" and precision == "fp32"):
        raise ConfigError(
            f"amp '{amp}' applies to backend 'torch' at precision 'fp32'; with backend '{backend}' and precision "
            f"'{precision}' leave amp off and choose the precision (fp32, bf16 or auto)"
        )


def load_backend_generator(path: str | Path, device: torch.device, backend: str, precision: str) -> nn.Module:
    """The generator of file ``path`` in eval mode without gradients: the torch network for a plain
    fp32 torch run of a ``.safetensors`` file, else the file run by ``backend`` at ``precision``
    (``translate.infer.open_generator``; ``auto`` measures and logs its choice once)."""
    if is_default_torch(path, backend, precision):
        net = load_generator(path, device)
    else:
        net = open_generator(path, backend, precision, device)
    return net.eval().requires_grad_(False)
