"""``TranslateBatch``: translate a random part of a batch inside the training loop, on its device."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from translate.errors import ConfigError, DataError
from translate.infer.backend import BackendGenerator, check_backend_names, is_default_torch

from ._runtime import AMP_NAMES, autocast, resolve_amp
from .generator import (
    ChannelPlan,
    GeneratorFacts,
    check_amp_with_backend,
    check_image_size,
    generator_min_side,
    load_backend_generator,
)


class _Frozen:
    """Holds the generator outside ``nn.Module``'s bookkeeping: its parameters are then not the
    hook's parameters, so ``model.parameters()``, optimisers, DDP and ``state_dict`` never see them."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net


class TranslateBatch(nn.Module):
    """Translate each sample of an N×C×H×W batch with probability ``p``; the rest stay bit-identical.

    Args:
        generator: path to an exported generator, or a generator module (it is put in eval mode
            and its parameters are frozen).
        p: probability that a sample is translated, drawn per sample from torch's global random
            generator on the batch's device (``torch.manual_seed`` makes it repeatable).
        blend: weight of the translation, ``b * translated + (1 - b) * sample``; a number or a
            ``(low, high)`` range drawn uniformly per translated sample.
        value_range: the range of float batches (default ``(0, 1)``); uint8 batches are 0..255.
            A float batch outside it is an error, not clipped (``check_range=False`` skips the
            check, which costs one device synchronisation per call).
        amp: ``"auto"`` (bf16 where the device computes it natively: a GPU with bf16 or a bf16-native
            CPU; fp16 on other GPUs; full precision on other CPUs), ``"off"``, ``"bf16"`` or ``"fp16"``.
        backend: ``"torch"`` (default), ``"onnxruntime"``, ``"openvino"`` or ``"auto"`` (the fastest
            measured on the first batch's device, logged once); other than torch needs a file
            ``generator`` (``.safetensors``, ``.onnx`` or OpenVINO ``.xml``). Graph engines run on
            the CPU (a GPU batch makes the round trip).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"auto"``; other than torch at fp32 runs
            with ``amp`` ``"auto"`` or ``"off"``, and the precision decides.

    The output has the input's shape, dtype, device and range. No gradient reaches the generator.
    Like dropout, the hook acts in training mode only: after ``.eval()`` it returns its input.
    The generator follows the batch to its device on the first call there.
    """

    def __init__(
        self,
        generator: str | Path | nn.Module,
        p: float = 0.5,
        blend: float | tuple[float, float] = 1.0,
        value_range: tuple[float, float] = (0.0, 1.0),
        amp: str = "auto",
        check_range: bool = True,
        backend: str = "torch",
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"p must be in [0, 1], got {p}")
        low, high = (blend, blend) if isinstance(blend, (int, float)) else blend
        if not 0.0 <= low <= high <= 1.0:
            raise ConfigError(f"blend must satisfy 0 <= low <= high <= 1, got {blend}")
        if amp not in AMP_NAMES:
            raise ConfigError(f"unknown amp '{amp}'; known: {', '.join(AMP_NAMES)}")
        if not value_range[0] < value_range[1]:
            raise ConfigError(f"value_range must be (low, high) with low < high, got {value_range}")
        check_backend_names(backend, precision)
        self.backend, self.precision = backend, precision
        if isinstance(generator, nn.Module):
            if not (backend == "torch" and precision == "fp32"):
                raise ConfigError(
                    f"backend '{backend}' at precision '{precision}' runs a generator file; pass the path of the "
                    "exported .safetensors (or .onnx) instead of a module"
                )
            facts, net = GeneratorFacts.of_module(generator), generator
            net.eval().requires_grad_(False)
        elif is_default_torch(generator, backend, precision):
            facts, net = (
                GeneratorFacts.read(generator),
                load_backend_generator(generator, torch.device("cpu"), backend, precision),
            )
        else:  # opened on the first batch's device, where auto measures
            check_amp_with_backend("off" if amp == "auto" else amp, backend, precision)
            facts, net = GeneratorFacts.read(generator), None
        self._path = None if isinstance(generator, nn.Module) else str(generator)
        self._generator = _Frozen(net)
        self.in_channels = facts.in_channels
        self.p = float(p)
        self.blend = (float(low), float(high))
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.amp = amp
        self.check_range = check_range
        self._min_side: dict[torch.device, int] = {}

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, blend={self.blend}, value_range={self.value_range}, amp={self.amp!r}, "
            f"backend={self.backend!r}, precision={self.precision!r}"
        )

    def _generator_on(self, device: torch.device) -> tuple[nn.Module, int]:
        net = self._generator.net
        if isinstance(net, BackendGenerator) or net is None:
            if net is None or (net.backend == "torch" and device not in self._min_side):
                where = device if self.backend in ("torch", "auto") else torch.device("cpu")  # graphs: the CPU
                net = load_backend_generator(self._path, where, self.backend, self.precision)
                self._generator.net = net
        elif next(net.parameters()).device != device:
            net.to(device)
        if device not in self._min_side:
            self._min_side[device] = generator_min_side(net, self.in_channels, device)
        return net, self._min_side[device]

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return batch
        if batch.ndim != 4:
            raise DataError(f"TranslateBatch takes an N×C×H×W batch, got shape {tuple(batch.shape)}")
        plan = ChannelPlan(batch.shape[1], self.in_channels)
        self._check_values(batch)
        chosen = (torch.rand(batch.shape[0], device=batch.device) < self.p).nonzero().squeeze(1)
        if chosen.numel() == 0:
            return batch.clone()
        net, min_side = self._generator_on(batch.device)
        check_image_size(batch.shape[2], batch.shape[3], min_side)
        x = self._to_unit(batch[chosen])
        colour = plan.colour(x)
        amp = resolve_amp(self.amp, batch.device) if not isinstance(net, BackendGenerator) else "off"
        with torch.no_grad(), autocast(batch.device, amp):
            translated = net(colour).float()
        low, high = self.blend
        if high < 1.0 or low < 1.0:
            weight = low + (high - low) * torch.rand(len(chosen), 1, 1, 1, device=batch.device)
            translated = weight * translated + (1.0 - weight) * colour
        restored = self._from_unit(plan.restore(translated, x), batch.dtype)
        if plan.keeps_alpha:
            restored[:, 3:] = batch[chosen, 3:]
        out = batch.clone()
        out[chosen] = restored
        return out

    def _check_values(self, batch: torch.Tensor) -> None:
        if batch.dtype == torch.uint8:
            return
        if not batch.is_floating_point():
            raise DataError(f"TranslateBatch takes uint8 or float batches, got {batch.dtype}")
        if self.check_range:
            low, high = (float(v) for v in torch.aminmax(batch.detach()))
            lo, hi = self.value_range
            if not (lo <= low and high <= hi):  # NaN fails both comparisons
                raise DataError(
                    f"batch values lie in [{low:.4g}, {high:.4g}], outside value_range ({lo:g}, {hi:g}); "
                    "pass the batch's range as value_range (normalise after this hook)"
                )

    def _to_unit(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            return x.float().div_(127.5).sub_(1.0)
        lo, hi = self.value_range
        return (x.float() - lo).mul_(2.0 / (hi - lo)).sub_(1.0)

    def _from_unit(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        y = y.clamp(-1.0, 1.0).add_(1.0)
        if dtype == torch.uint8:
            return y.mul_(127.5).round_().to(torch.uint8)
        lo, hi = self.value_range
        return y.mul_((hi - lo) / 2.0).add_(lo).to(dtype)
