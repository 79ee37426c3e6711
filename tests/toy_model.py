"""A tiny InfoGAN-like model that exercises the whole model contract with non-image inputs.

Three optimiser groups (G, D, Q), batches of class labels (int64, 1-D) and noise (float, 2-D)
beside images, one backward that steps G and Q together (the mutual-information term), and a
network family of its own for the export. Registered once, on import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from translate.data.base import DATASETS
from translate.models.base import MODELS, GANModel, OptimGroup, set_requires_grad
from translate.nets import NETWORK_FAMILIES
from translate.objectives import build_objective, d_loss, g_loss
from translate.registry import Registry

CLASSES, NOISE, SIZE = 4, 3, 6

TOY_SAMPLERS: Registry[type[nn.Module]] = Registry("toy sampler")


@TOY_SAMPLERS.register("mlp")
class ToySampler(nn.Module):
    """(noise, label) -> a 1×SIZE×SIZE image."""

    def __init__(self, noise_dim: int = NOISE, classes: int = CLASSES, width: int = 32) -> None:
        super().__init__()
        self.classes = classes
        self.net = nn.Sequential(
            nn.Linear(noise_dim + classes, width), nn.ReLU(), nn.Linear(width, SIZE * SIZE), nn.Tanh()
        )

    def forward(self, noise: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noise, F.one_hot(label, self.classes).float()], 1)
        return self.net(x).view(-1, 1, SIZE, SIZE)


class Trunk(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, width), nn.LeakyReLU(0.2))
        self.judge = nn.Linear(width, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(image)
        return h, self.judge(h)


class ToyCodes(torch.utils.data.Dataset):
    """Class k is a bright horizontal band at row k (plus noise): learnable, label-dependent."""

    def __init__(self, size: int = 32) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        index, seed = (key, key) if isinstance(key, int) else key
        rng = np.random.default_rng(seed)
        label = index % CLASSES
        image = -np.ones((1, SIZE, SIZE), np.float32)
        image[0, label] = 1.0
        image += rng.normal(0, 0.05, image.shape).astype(np.float32)
        return {
            "image": torch.from_numpy(image),
            "label": torch.tensor(label, dtype=torch.int64),
            "noise": torch.from_numpy(rng.normal(size=NOISE).astype(np.float32)),
        }


@dataclass
class ToyInfoGANConfig:
    name: str = "toy_infogan"
    lambda_info: float = 1.0
    gan_loss: str = "nsgan"


class ToyInfoGAN(GANModel):
    Config = ToyInfoGANConfig

    def __init__(self, cfg: ToyInfoGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.objective = build_objective(cfg.gan_loss)
        self.spec = {"name": "mlp", "noise_dim": NOISE, "classes": CLASSES, "width": 32}
        self.G = ToySampler(NOISE, CLASSES, 32)
        self.D = Trunk()
        self.Q = nn.Linear(32, CLASSES)  # predicts the label (the "code") from D's features

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {
            "G": OptimGroup({"G": self.G}, lr="lr_g", averaged=True),
            "D": OptimGroup({"D": self.D}, lr="lr_d"),
            "Q": OptimGroup({"Q": self.Q}, lr="lr_g"),
        }

    def training_step(self, batch, ctx):
        real, label, noise = batch["image"], batch["label"], batch["noise"]
        assert label.dtype == torch.int64 and noise.ndim == 2  # non-image inputs arrive as they are
        with ctx.autocast():
            fake = self.G(noise, label)
            loss_d = d_loss(self.objective, [[self.D(real)[1]]], [[self.D(fake.detach())[1]]])
        ctx.optimize("D", loss_d)

        set_requires_grad([self.D], False)
        with ctx.autocast():
            features, logits = self.D(fake)
            adv = g_loss(self.objective, [[logits]])
            info = F.cross_entropy(self.Q(features).float(), label)
        ctx.optimize(["G", "Q"], adv + self.cfg.lambda_info * info)
        set_requires_grad([self.D], True)
        return {"D": loss_d.detach(), "G_adv": adv.detach(), "info": info.detach()}

    @torch.no_grad()
    def visuals(self, batch, nets):
        return {"real": batch["image"], "fake": nets["G"](batch["noise"], batch["label"])}

    def export_info(self):
        return {"G": {"family": "toy_sampler", "spec": self.spec, "info": {"model": "toy_infogan", "classes": CLASSES}}}


if "toy_infogan" not in MODELS:
    MODELS.register("toy_infogan")(ToyInfoGAN)
    DATASETS.register("toy_codes")(ToyCodes)
    NETWORK_FAMILIES.register("toy_sampler")(TOY_SAMPLERS)
