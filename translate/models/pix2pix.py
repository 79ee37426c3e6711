"""pix2pix (Isola et al. 2017): paired translation with a conditional PatchGAN.

D sees the input concatenated with either the real or the generated output, so it judges whether
the output fits *this* input; the L1 term pulls the output towards the ground truth at low
frequencies while the adversarial term supplies the high-frequency detail. An optional pix2pixHD
feature-matching term (``lambda_feat``) stabilises training with multi-scale discriminators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..nets import GENERATORS, build_discriminator, build_generator
from ..objectives import build_objective, d_loss, feature_matching, g_loss, gradient_penalty, reconstruction
from ..registry import resolved_spec
from .base import MODELS, GANModel, OptimGroup, clip_weights, set_requires_grad


@dataclass
class Pix2PixConfig:
    name: str = "pix2pix"
    generator: dict[str, Any] = field(default_factory=lambda: {"name": "unet"})
    discriminator: dict[str, Any] = field(default_factory=lambda: {"name": "patchgan", "norm": "batch"})
    gan_loss: Any = "nsgan"
    lambda_l1: float = 100.0
    lambda_feat: float = 0.0
    init: str = "normal"
    init_gain: float = 0.02
    channels_a: int = 3
    channels_b: int = 3


@MODELS.register("pix2pix")
class Pix2Pix(GANModel):
    Config = Pix2PixConfig
    requires_paired = True

    def __init__(self, cfg: Pix2PixConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.objective = build_objective(cfg.gan_loss)
        self.spec = resolved_spec(
            GENERATORS, {**cfg.generator, "in_channels": cfg.channels_a, "out_channels": cfg.channels_b}
        )
        self.G = build_generator(self.spec, cfg.init, cfg.init_gain)
        self.D = build_discriminator(cfg.discriminator, cfg.channels_a + cfg.channels_b, cfg.init, cfg.init_gain)

    def generators(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    def discriminators(self) -> dict[str, nn.Module]:
        return {"D": self.D}

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {
            "G": OptimGroup(self.generators(), lr="lr_g", averaged=True),
            "D": OptimGroup(self.discriminators(), lr="lr_d"),
        }

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        cfg, obj = self.cfg, self.objective
        real_a, real_b = batch["A"], batch["B"]
        real_pair = torch.cat([real_a, real_b], 1)
        with ctx.autocast():
            fake_b = self.G(real_a)
            fake_pair = torch.cat([real_a, fake_b], 1)
            loss_d = 0.5 * d_loss(obj, self.D(real_pair), self.D(fake_pair.detach()))
        logs = {"D": loss_d}
        if obj.gp_weight:
            gp = gradient_penalty(self.D, real_pair, fake_pair)
            loss_d = loss_d + obj.gp_weight * gp
            logs["gp"] = gp
        ctx.optimize("D", loss_d)
        if obj.clip_weights:
            clip_weights([self.D], obj.clip_weights)

        set_requires_grad([self.D], False)
        with ctx.autocast():
            pred_fake = self.D(fake_pair)
            adv = g_loss(obj, pred_fake)
            if cfg.lambda_feat > 0:
                with torch.no_grad():
                    pred_real = self.D(real_pair)
        l1 = reconstruction(fake_b, real_b)
        loss_g = adv + cfg.lambda_l1 * l1
        logs.update(G_adv=adv, L1=l1)
        if cfg.lambda_feat > 0:
            fm = feature_matching(pred_real, pred_fake)
            loss_g = loss_g + cfg.lambda_feat * fm
            logs["feat"] = fm
        ctx.optimize("G", loss_g)
        set_requires_grad([self.D], True)
        logs["G"] = loss_g
        return {k: v.detach() for k, v in logs.items()}

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        return {"real_A": batch["A"], "fake_B": nets["G"](batch["A"]), "real_B": batch["B"]}

    def export_info(self) -> dict[str, dict[str, Any]]:
        return {
            "G": {
                "family": "generator",
                "spec": self.spec,
                "info": {"model": "pix2pix", "direction": "A->B", "value_range": [-1, 1]},
            }
        }
