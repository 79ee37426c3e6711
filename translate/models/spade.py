"""Label map -> image synthesis (SPADE generator, pix2pixHD-style conditional discriminator), so
new (image, mask) pairs can be drawn from label layouts.

D sees the image concatenated with the one-hot label map, so it judges whether the image fits
*this* layout. G's loss adds D's feature matching to the adversarial term (SPADE's VGG term needs
downloaded weights, which this toolkit does not use). G draws fresh noise every step, so one
label map gives different images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..nets import SAMPLERS, build_discriminator
from ..nets.label_maps import one_hot_map
from ..objectives import build_objective, d_loss, feature_matching, g_loss
from ..registry import resolved_spec
from .base import MODELS, GANModel, OptimGroup, set_requires_grad


@dataclass
class SPADEConfig:
    name: str = "spade"
    generator: dict[str, Any] = field(default_factory=lambda: {"name": "spade"})
    discriminator: dict[str, Any] = field(default_factory=lambda: {"name": "multiscale"})
    classes: int = 19
    gan_loss: Any = "hinge"
    lambda_feat: float = 10.0


@MODELS.register("spade")
class SPADE(GANModel):
    Config = SPADEConfig

    def __init__(self, cfg: SPADEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.objective = build_objective(cfg.gan_loss)
        self.spec = resolved_spec(SAMPLERS, {**cfg.generator, "classes": cfg.classes})
        self.G = SAMPLERS.build(self.spec)
        self.D = build_discriminator(cfg.discriminator, self.spec["channels"] + cfg.classes + 1)

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {"G": OptimGroup({"G": self.G}, lr="lr_g", averaged=True), "D": OptimGroup({"D": self.D}, lr="lr_d")}

    def _judge(self, image: torch.Tensor, seg: torch.Tensor):
        return self.D(torch.cat([image, seg.to(image.dtype)], 1))

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        real, labels = batch["image"], batch["label"]
        seg = one_hot_map(labels, self.cfg.classes)
        noise = torch.randn(real.shape[0], self.G.noise_dim, device=real.device)
        with ctx.autocast():
            fake = self.G(labels, noise)
            loss_d = d_loss(self.objective, self._judge(real, seg), self._judge(fake.detach(), seg))
        ctx.optimize("D", loss_d)

        set_requires_grad([self.D], False)
        with ctx.autocast():
            judged_fake = self._judge(fake, seg)
            adv = g_loss(self.objective, judged_fake)
            with torch.no_grad():
                judged_real = self._judge(real, seg)
        feat = feature_matching(judged_real, judged_fake)
        ctx.optimize("G", adv + self.cfg.lambda_feat * feat)
        set_requires_grad([self.D], True)
        return {"D": loss_d.detach(), "G_adv": adv.detach(), "G_feat": feat.detach()}

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        labels = batch["label"]
        generator = torch.Generator(device=labels.device).manual_seed(0)
        noise = torch.randn(labels.shape[0], self.G.noise_dim, generator=generator, device=labels.device)
        shown = (labels.clamp(0, self.cfg.classes).float() / self.cfg.classes * 2 - 1)[:, None]
        return {"label": shown, "real": batch["image"], "fake": nets["G"](labels, noise)}

    def export_info(self) -> dict[str, dict[str, Any]]:
        info = {"model": "spade", "classes": self.cfg.classes, "noise_dim": self.G.noise_dim, "input": "label map"}
        return {"G": {"family": "sampler", "spec": self.spec, "info": info}}
