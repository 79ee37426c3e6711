"""LAPGAN (Denton et al. 2015) as a model of the registry: a Laplacian pyramid of GANs.

Every real batch is split into its Laplacian pyramid (``translate.nets.laplacian``). Level 0 is an
unconditional GAN on the coarsest images; each finer level k is a conditional GAN whose generator
draws the residual h_k from the upsampled *real* coarser image l_k = up(I_{k−1}) and a noise plane,
and whose discriminator judges (h_k, l_k) stacked. As in the paper the levels train independently
(one optimiser step updates all of them; their losses share no parameters). Sampling runs coarse
to fine on generated images (``LaplacianSampler.pyramid``); the export is that one sampler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..nets import SAMPLERS
from ..nets.laplacian import LevelDiscriminator, gaussian_pyramid, upsample
from ..objectives import build_objective, gradient_penalty
from ..registry import resolved_spec
from .base import MODELS, GANModel, OptimGroup, noise_sampler_export, set_requires_grad


@dataclass
class LAPGANConfig:
    name: str = "lapgan"
    # {name: lapgan, image_size, base_size, channels, noise_dim, width, residual_width}
    generator: dict[str, Any] = field(default_factory=lambda: {"name": "lapgan"})
    d_width: int = 32  # channels of every level's discriminator
    data_key: str = "image"
    gan_loss: Any = "nsgan"


@MODELS.register("lapgan")
class LAPGAN(GANModel):
    Config = LAPGANConfig

    def __init__(self, cfg: LAPGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.d_width < 1:
            raise ConfigError(f"model.d_width must be >= 1, got {cfg.d_width}")
        self.spec = resolved_spec(SAMPLERS, {"name": "lapgan", **cfg.generator})
        self.G = SAMPLERS.build(self.spec)
        channels = self.spec["channels"]
        # level 0 judges coarse images; level k the residual stacked on its upsampled coarser image
        self.D = nn.ModuleList(
            LevelDiscriminator(size, channels if k == 0 else 2 * channels, cfg.d_width)
            for k, size in enumerate(self.G.sizes)
        )
        self.objective = build_objective(cfg.gan_loss)
        if self.objective.clip_weights:
            raise ConfigError("lapgan does not clip weights: use a gan_loss other than wgan (wgan-gp works)")

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {"G": OptimGroup({"G": self.G}, lr="lr_g", averaged=True), "D": OptimGroup({"D": self.D}, lr="lr_d")}

    def real_levels(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level, what D judges as real and what G is conditioned on: (coarse image, None) at
        level 0, (residual, upsampled coarser image) above."""
        if tuple(images.shape[1:]) != tuple(self.G.out_shape):
            raise ConfigError(
                f"lapgan's generator makes {tuple(self.G.out_shape)} images; the data gives {tuple(images.shape[1:])}"
            )
        gauss = gaussian_pyramid(images, self.G.levels)
        conditions = [None, *(upsample(g) for g in gauss[:-1])]
        targets = [gauss[0], *(fine - up for fine, up in zip(gauss[1:], conditions[1:], strict=False))]
        return targets, conditions

    def fake_levels(self, conditions: list[torch.Tensor | None], n: int) -> list[torch.Tensor]:
        """Generated coarse images, and residuals for the real coarser images (one noise draw)."""
        coarse_noise, planes = self.G.split_noise(torch.randn(n, self.G.noise_dim, device=self.device_of()))
        fakes = [self.G.coarse(coarse_noise)]
        for level, plane in enumerate(planes, start=1):
            fakes.append(self.G.residuals[level - 1](conditions[level], plane))
        return fakes

    def device_of(self) -> torch.device:
        return next(self.G.parameters()).device

    def judge(self, level: int, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return self.D[level](x if condition is None else torch.cat([x, condition], 1))

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        targets, conditions = self.real_levels(batch[self.cfg.data_key])
        n, obj = targets[0].shape[0], self.objective
        with torch.no_grad():
            fakes = self.fake_levels(conditions, n)
        logs: dict[str, torch.Tensor] = {}
        with ctx.autocast():
            for k, (real, fake, cond) in enumerate(zip(targets, fakes, conditions, strict=False)):
                logs[f"D{k}"] = obj.d_loss(self.judge(k, real, cond), self.judge(k, fake, cond))
        if obj.gp_weight:
            for k, (real, fake, cond) in enumerate(zip(targets, fakes, conditions, strict=False)):
                logs[f"gp{k}"] = obj.gp_weight * gradient_penalty(lambda x: self.judge(k, x, cond), real, fake)  # noqa: B023
        ctx.optimize("D", torch.stack(list(logs.values())).sum())

        set_requires_grad([self.D], False)
        with ctx.autocast():
            fakes = self.fake_levels(conditions, n)
            g_terms = {
                f"G{k}": obj.g_loss(self.judge(k, fake, cond))
                for k, (fake, cond) in enumerate(zip(fakes, conditions, strict=False))
            }
        ctx.optimize("G", torch.stack(list(g_terms.values())).sum())
        set_requires_grad([self.D], True)
        logs.update(g_terms)
        return {k: v.detach() for k, v in logs.items()}

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        """Real images and samples drawn coarse to fine by the (EMA) sampler, same noise every time."""
        real = batch[self.cfg.data_key]
        generator = torch.Generator(device=real.device).manual_seed(0)
        noise = torch.randn(real.shape[0], self.G.noise_dim, generator=generator, device=real.device)
        return {"real": real, "fake": nets["G"].decode(noise)}

    def export_info(self) -> dict[str, dict[str, Any]]:
        return noise_sampler_export(
            self.spec,
            self.cfg.name,
            self.G.noise_dim,
            self.cfg.data_key,
            levels=self.G.levels,
            sizes=list(self.G.sizes),
        )
