"""Progressive growing of GANs (Karras et al. 2018) as a model of the registry.

G and D (``translate.nets.progressive``) train at 4×4 first and gain one resolution at a time up to
the generator's ``image_size``, each new resolution faded in. The level and the fade-in weight α
are a pure function of the engine's step (``growth_at``), so nothing about the growth is state:
a run resumed in the middle of a fade-in continues bit-identically. Real images are shown to D
at the level's resolution (2×2 averages) and, during a fade-in, blended the same way as G's output
(α·x + (1 − α)·up(down(x))). The loss is WGAN-GP plus Karras et al.'s drift term
ε_drift·E[D(x)²], which keeps the critic's output on real images near zero.

The export is the final-resolution generator: ``i2i sample`` draws at ``image_size`` with α = 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nets import SAMPLER_CRITICS, SAMPLERS
from ..nets.progressive import Growth, fade, growth_at
from ..objectives import build_objective, gradient_penalty
from ..registry import resolved_spec
from .base import MODELS, GANModel, OptimGroup, noise_sampler_export, set_requires_grad


@dataclass
class ProGANConfig:
    name: str = "progan"
    generator: dict[str, Any] = field(default_factory=lambda: {"name": "progan"})
    discriminator: dict[str, Any] = field(default_factory=lambda: {"name": "progan"})
    data_key: str = "image"
    stabilise_steps: int = 200  # steps at 4×4, and at every level after its fade-in
    fade_steps: int = 200  # steps over which each new level fades in
    gan_loss: Any = "wgan-gp"  # a name, or {name: wgan-gp, gp_weight: 10}
    drift: float = 0.001  # ε_drift


def drift_penalty(real_logits: torch.Tensor, weight: float) -> torch.Tensor:
    """Karras et al.'s drift term, ``weight · E[D(x)²]`` over real images' critic outputs."""
    return weight * real_logits.float().pow(2).mean()


def real_at(images: torch.Tensor, growth: Growth) -> torch.Tensor:
    """Real images as D sees them at ``growth``: averaged down to the level's resolution, and
    during a fade-in blended with their own coarser version, as G's output is."""
    factor = images.shape[-1] // growth.resolution
    x = F.avg_pool2d(images, factor) if factor > 1 else images
    if growth.alpha >= 1.0:
        return x
    return fade(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"), x, growth.alpha)


@MODELS.register("progan")
class ProGAN(GANModel):
    Config = ProGANConfig

    def __init__(self, cfg: ProGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.stabilise_steps < 1 or cfg.fade_steps < 1:
            raise ConfigError(
                f"model.stabilise_steps and model.fade_steps must be >= 1, got {cfg.stabilise_steps}, {cfg.fade_steps}"
            )
        if cfg.drift < 0:
            raise ConfigError(f"model.drift must be >= 0, got {cfg.drift}")
        self.spec = resolved_spec(SAMPLERS, {"name": "progan", **cfg.generator})
        d_spec = resolved_spec(SAMPLER_CRITICS, {"name": "progan", **cfg.discriminator})
        for key in ("image_size", "channels"):
            if self.spec[key] != d_spec[key]:
                raise ConfigError(
                    f"model.generator.{key}={self.spec[key]} and model.discriminator.{key}={d_spec[key]} must agree"
                )
        if self.spec["classes"] or self.spec["code_dim"]:
            raise ConfigError("progan is unconditional: model.generator.classes and code_dim must be 0")
        self.G = SAMPLERS.build(self.spec)
        self.D = SAMPLER_CRITICS.build(d_spec)
        self.objective = build_objective(cfg.gan_loss)
        self.growth = self.growth_at(0)  # the last trained step's, for sample grids only

    def growth_at(self, step: int) -> Growth:
        return growth_at(step, self.G.levels, self.cfg.stabilise_steps, self.cfg.fade_steps)

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {"G": OptimGroup({"G": self.G}, lr="lr_g", averaged=True), "D": OptimGroup({"D": self.D}, lr="lr_d")}

    def fake(self, n: int, device: torch.device, growth: Growth, net: nn.Module | None = None) -> torch.Tensor:
        return (net or self.G).grow(torch.randn(n, self.G.noise_dim, device=device), growth.level, growth.alpha)

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        images = batch[self.cfg.data_key]
        if tuple(images.shape[1:]) != tuple(self.G.out_shape):
            raise ConfigError(
                f"progan's generator makes {tuple(self.G.out_shape)} images; the data gives {tuple(images.shape[1:])}"
            )
        growth = self.growth = self.growth_at(ctx.step)
        real = real_at(images, growth)
        logs = self._discriminator_step(ctx, real, growth)
        set_requires_grad([self.D], False)
        with ctx.autocast():
            adv = self.objective.g_loss(self.D.grow(self.fake(real.shape[0], real.device, growth), *growth).logit)
        ctx.optimize("G", adv)
        set_requires_grad([self.D], True)
        logs.update(G_adv=adv, level=torch.tensor(float(growth.level)), alpha=torch.tensor(growth.alpha))
        return {k: v.detach() for k, v in logs.items()}

    def _discriminator_step(self, ctx, real: torch.Tensor, growth: Growth) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.fake(real.shape[0], real.device, growth)
        with ctx.autocast():
            judged_real, judged_fake = self.D.grow(real, *growth), self.D.grow(fake, *growth)
            terms = {
                "D": self.objective.d_loss(judged_real.logit, judged_fake.logit),
                "drift": drift_penalty(judged_real.logit, self.cfg.drift),
            }
        if self.objective.gp_weight:
            terms["gp"] = self.objective.gp_weight * gradient_penalty(
                lambda x: self.D.grow(x, *growth).logit, real, fake
            )
        ctx.optimize("D", torch.stack(list(terms.values())).sum())
        return terms

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        """Real images and G's (EMA's) at the level last trained, enlarged to the full size."""
        real = batch[self.cfg.data_key]
        generator = torch.Generator(device=real.device).manual_seed(0)
        noise = torch.randn(real.shape[0], self.G.noise_dim, generator=generator, device=real.device)
        fake = nets["G"].grow(noise, *self.growth).clamp(-1, 1)
        scale = real.shape[-1] // fake.shape[-1]
        return {"real": real, "fake": F.interpolate(fake, scale_factor=scale, mode="nearest") if scale > 1 else fake}

    def export_info(self) -> dict[str, dict[str, Any]]:
        return noise_sampler_export(self.spec, self.cfg.name, self.G.noise_dim, self.cfg.data_key, levels=self.G.levels)
