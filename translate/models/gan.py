"""Noise -> data GANs: the original MLP GAN, DCGAN, and class-conditional GANs (cGAN by
concatenation, projection discriminator, AC-GAN), with the literature's training fixes as
config switches.

One ``training_step`` is one generator update preceded by ``n_critic`` discriminator updates,
each on its own share of the real batch (so ``data.batch_size`` must be a multiple of
``n_critic``), as WGAN counts its iterations. Which conditioning is used is the discriminator's
``conditioning`` option; the generator then gets ``classes`` one-hot inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.sampling_sets import GaussianRing
from ..errors import ConfigError
from ..nets import SAMPLER_CRITICS, SAMPLERS
from ..nets.layers import init_weights
from ..objectives import build_objective, gradient_penalty
from ..registry import resolved_spec
from .base import MODELS, GANModel, OptimGroup, clip_weights, noise_sampler_export, set_requires_grad
from .tricks import (
    HistoricalAverage,
    feature_matching_loss,
    instance_noise_std,
    with_instance_noise,
)


@dataclass
class GANConfig:
    name: str = "gan"
    generator: dict[str, Any] = field(default_factory=lambda: {"name": "mlp"})
    discriminator: dict[str, Any] = field(default_factory=lambda: {"name": "mlp"})
    # which batch entry holds the real data: "point" (ring) or "image" (digits)
    data_key: str = "point"
    # 0: unconditional; >= 2: class-conditional (labels from the batch's "label" entry)
    classes: int = 0
    # none | concat (cGAN) | projection | auxiliary (AC-GAN)
    conditioning: str = "none"
    gan_loss: Any = "nsgan"  # a name, or {name: nsgan, real_label: 0.9} for one-sided smoothing
    n_critic: int = 1
    feature_matching: float = 0.0  # weight of Salimans et al.'s feature-matching term in G's loss
    minibatch_stddev: bool = False
    instance_noise: float = 0.0  # std of noise added to D's inputs...
    instance_noise_steps: int = 0  # ...decayed linearly to 0 over this many steps (0: constant)
    historical_averaging: float = 0.0  # weight of ‖θ − θ̄‖² for both G and D
    lambda_aux: float = 1.0  # AC-GAN's classification terms
    init: str | None = None  # None keeps PyTorch's init (MLPs); "normal" is DCGAN's N(0, 0.02)


def points_image(points: torch.Tensor, extent: float = 3.0, size: int = 64) -> torch.Tensor:
    """2-D points drawn as a 1×1×size×size image in [-1, 1] (white where points fall), so the
    engine's sample grids can show a ring GAN's output."""
    cells = ((points.float().cpu() + extent) / (2 * extent) * size).long()
    inside = ((cells >= 0) & (cells < size)).all(1)
    hist = torch.zeros(size * size)
    flat = (size - 1 - cells[inside, 1]) * size + cells[inside, 0]
    hist.index_add_(0, flat, torch.ones(len(flat)))
    return (hist.view(1, 1, size, size) > 0).float() * 2 - 1


@MODELS.register("gan")
class GAN(GANModel):
    Config = GANConfig

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.n_critic < 1:
            raise ConfigError(f"n_critic must be >= 1, got {cfg.n_critic}")
        if (cfg.classes >= 2) != (cfg.conditioning != "none"):
            raise ConfigError(
                f"model: classes={cfg.classes} and conditioning='{cfg.conditioning}' disagree "
                "(a conditional GAN needs both, an unconditional one neither)"
            )
        self.objective = build_objective(cfg.gan_loss)
        self.spec = resolved_spec(SAMPLERS, {**cfg.generator, "classes": cfg.classes, "code_dim": self.code_dim()})
        self.G = SAMPLERS.build(self.spec)
        d_spec = {
            **cfg.discriminator,
            "classes": cfg.classes,
            "conditioning": cfg.conditioning,
            "minibatch_stddev": cfg.minibatch_stddev,
        }
        self.D = SAMPLER_CRITICS.build(d_spec)
        if cfg.init is not None:
            init_weights(self.G, cfg.init)
            init_weights(self.D, cfg.init)
        self.history = None
        if cfg.historical_averaging > 0:
            self.history = nn.ModuleDict({"G": HistoricalAverage(self.G), "D": HistoricalAverage(self.D)})

    # --- what subclasses (InfoGAN) extend --------------------------------------------------

    def code_dim(self) -> int:
        return 0

    def draw_code(self, n: int, device: torch.device) -> torch.Tensor | None:
        return None

    def code_loss(self, fake_features: torch.Tensor, code: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return {}

    def generator_groups(self) -> list[str]:
        return ["G"]

    def discriminator_groups(self) -> list[str]:
        return ["D"]

    # --- the contract ---------------------------------------------------------------------

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {"G": OptimGroup({"G": self.G}, lr="lr_g", averaged=True), "D": OptimGroup({"D": self.D}, lr="lr_d")}

    def draw_labels(self, n: int, device: torch.device) -> torch.Tensor | None:
        return torch.randint(0, self.cfg.classes, (n,), device=device) if self.cfg.classes else None

    def generate(self, n: int, device: torch.device, net: nn.Module | None = None):
        """``n`` fresh samples with the labels and codes they were drawn for."""
        label, code = self.draw_labels(n, device), self.draw_code(n, device)
        fake = (net or self.G)(torch.randn(n, self.G.noise_dim, device=device), label, code)
        return fake, label, code

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        cfg, obj = self.cfg, self.objective
        real_all = batch[cfg.data_key]
        labels_all = batch["label"] if cfg.classes else None
        if real_all.shape[0] % cfg.n_critic:
            raise ConfigError(f"data.batch_size {real_all.shape[0]} must be a multiple of n_critic {cfg.n_critic}")
        noise_std = instance_noise_std(cfg.instance_noise, cfg.instance_noise_steps, ctx.step)
        logs: dict[str, torch.Tensor] = {}
        for i, real in enumerate(real_all.chunk(cfg.n_critic)):
            label = labels_all.chunk(cfg.n_critic)[i] if labels_all is not None else None
            logs.update(self._discriminator_step(ctx, real, label, noise_std))

        set_requires_grad([self.D], False)
        n = real_all.shape[0]
        with ctx.autocast():
            fake, fake_label, code = self.generate(n, real_all.device)
            judged = self.D(with_instance_noise(fake, noise_std), fake_label)
            adv = obj.g_loss(judged.logit)
            terms = {"G_adv": adv}
            if cfg.feature_matching > 0:
                with torch.no_grad():
                    real_features = self.D(with_instance_noise(real_all, noise_std), labels_all).features
                terms["G_fm"] = cfg.feature_matching * feature_matching_loss(real_features, judged.features)
            if judged.class_logits is not None:
                terms["G_aux"] = cfg.lambda_aux * F.cross_entropy(judged.class_logits.float(), fake_label)
            terms.update(self.code_loss(judged.features, code))
        if self.history is not None:
            terms["G_hist"] = cfg.historical_averaging * self.history["G"].penalty(self.G)
        ctx.optimize(self.generator_groups(), torch.stack(list(terms.values())).sum())
        set_requires_grad([self.D], True)
        if self.history is not None:
            self.history["G"].update(self.G)
        logs.update(terms)
        return {k: v.detach() for k, v in logs.items()}

    def _discriminator_step(self, ctx, real, label, noise_std: float) -> dict[str, torch.Tensor]:
        cfg, obj = self.cfg, self.objective
        with torch.no_grad():
            fake, fake_label, code = self.generate(real.shape[0], real.device)
        with ctx.autocast():
            real_in, fake_in = with_instance_noise(real, noise_std), with_instance_noise(fake, noise_std)
            judged_real, judged_fake = self.D(real_in, label), self.D(fake_in, fake_label)
            terms = {"D": obj.d_loss(judged_real.logit, judged_fake.logit)}
            if judged_real.class_logits is not None:
                terms["D_aux"] = cfg.lambda_aux * (
                    F.cross_entropy(judged_real.class_logits.float(), label)
                    + F.cross_entropy(judged_fake.class_logits.float(), fake_label)
                )
            # InfoGAN: D's body and the Q head also learn to read the codes back (as in the paper,
            # where Q shares D's layers); G is stepped on the same term in its own step
            terms.update({f"D_{k}": v for k, v in self.code_loss(judged_fake.features, code).items()})
        if obj.gp_weight:
            # interpolates keep the real label: the penalty is on D's input, its condition fixed
            terms["gp"] = obj.gp_weight * gradient_penalty(lambda x: self.D(x, label).logit, real_in, fake_in)
        if self.history is not None:
            terms["D_hist"] = cfg.historical_averaging * self.history["D"].penalty(self.D)
        ctx.optimize(self.discriminator_groups(), torch.stack(list(terms.values())).sum())
        if obj.clip_weights:
            clip_weights([self.D], obj.clip_weights)
        if self.history is not None:
            self.history["D"].update(self.D)
        return terms

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        g = nets["G"]
        device = batch[self.cfg.data_key].device
        generator = torch.Generator(device=device).manual_seed(0)  # same noise at every step, global RNG untouched
        if self.cfg.data_key == "point":
            noise = torch.randn(1024, g.noise_dim, generator=generator, device=device)
            ring = GaussianRing(size=1024)
            fake = g(noise, None, self.visual_code(1024, device))
            return {"real": points_image(ring.points), "fake": points_image(fake)}
        real = batch[self.cfg.data_key]
        n = real.shape[0]
        noise = torch.randn(n, g.noise_dim, generator=generator, device=device)
        label = batch["label"] if self.cfg.classes else None
        return {"real": real, "fake": g(noise, label, self.visual_code(n, device))}

    def visual_code(self, n: int, device: torch.device) -> torch.Tensor | None:
        return None

    def export_info(self) -> dict[str, dict[str, Any]]:
        return noise_sampler_export(
            self.spec,
            self.cfg.name,
            self.G.noise_dim,
            self.cfg.data_key,
            self.cfg.classes,
            self.code_dim(),
            **self.code_info(),
        )

    def code_info(self) -> dict[str, Any]:
        return {}
