"""InfoGAN (Chen et al. 2016): unsupervised latent codes made meaningful by maximising a lower
bound on their mutual information with the samples.

G takes categorical codes (one-hot) and continuous codes (uniform in [-1, 1]) beside the noise;
a Q head on D's penultimate features predicts them back. The information loss (cross-entropy for
the categorical codes, squared error — a fixed-variance Gaussian log-likelihood — for the
continuous ones) steps G and Q in one backward in G's step, and D's body and Q in D's step (Q
shares D's layers, as in the paper; without that, Q on a body trained only to tell real from
fake did not learn the codes at all in 1,200 steps: its loss stayed at ln 10). Q is its own
optimiser group "Q".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import MODELS, OptimGroup
from .gan import GAN, GANConfig


@dataclass
class InfoGANConfig(GANConfig):
    name: str = "infogan"
    data_key: str = "image"
    cat_codes: list[int] = field(default_factory=lambda: [10])  # one entry per categorical code: its size
    cont_codes: int = 2
    lambda_cat: float = 1.0
    lambda_cont: float = 0.1
    q_width: int = 128


def code_layout(cat_codes: list[int], cont_codes: int) -> int:
    if any(k < 2 for k in cat_codes) or cont_codes < 0:
        raise ConfigError(f"cat_codes need sizes >= 2 and cont_codes >= 0, got {cat_codes}, {cont_codes}")
    return sum(cat_codes) + cont_codes


def make_code(categories: list[torch.Tensor], continuous: torch.Tensor, cat_codes: list[int]) -> torch.Tensor:
    """The generator's code vector: each categorical code one-hot, then the continuous values."""
    parts = [F.one_hot(c.long(), k).float() for c, k in zip(categories, cat_codes, strict=True)]
    return torch.cat([*parts, continuous.float()], 1)


@MODELS.register("infogan")
class InfoGAN(GAN):
    Config = InfoGANConfig

    def __init__(self, cfg: InfoGANConfig) -> None:
        if cfg.classes or cfg.conditioning != "none":
            raise ConfigError("infogan learns its own codes: leave classes at 0 and conditioning at 'none'")
        self._code_dim = code_layout(list(cfg.cat_codes), cfg.cont_codes)
        super().__init__(cfg)
        features = self.D.head.judge.in_features
        self.Q = nn.Sequential(
            nn.Linear(features, cfg.q_width), nn.LeakyReLU(0.2), nn.Linear(cfg.q_width, self._code_dim)
        )

    def code_dim(self) -> int:
        return self._code_dim

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {**super().optimizer_groups(), "Q": OptimGroup({"Q": self.Q}, lr="lr_g")}

    def generator_groups(self) -> list[str]:
        return ["G", "Q"]

    def discriminator_groups(self) -> list[str]:
        return ["D", "Q"]

    def draw_code(self, n: int, device: torch.device) -> torch.Tensor:
        cats = [torch.randint(0, k, (n,), device=device) for k in self.cfg.cat_codes]
        cont = torch.rand(n, self.cfg.cont_codes, device=device) * 2 - 1
        return make_code(cats, cont, list(self.cfg.cat_codes)).to(device)

    def code_loss(self, fake_features: torch.Tensor, code: torch.Tensor) -> dict[str, torch.Tensor]:
        predicted = self.Q(fake_features).float()
        terms, start = [], 0
        for k in self.cfg.cat_codes:
            target = code[:, start : start + k].argmax(1)
            terms.append(F.cross_entropy(predicted[:, start : start + k], target))
            start += k
        losses = {"info_cat": self.cfg.lambda_cat * torch.stack(terms).mean()} if terms else {}
        if self.cfg.cont_codes:
            losses["info_cont"] = self.cfg.lambda_cont * F.mse_loss(predicted[:, start:], code[:, start:].float())
        return losses

    def visual_code(self, n: int, device: torch.device) -> torch.Tensor:
        # row i shows the first categorical code's value i (mod its size), continuous codes at 0
        k = self.cfg.cat_codes[0] if self.cfg.cat_codes else 1
        cats = [torch.arange(n, device=device) % k] + [
            torch.zeros(n, dtype=torch.long, device=device) for _ in self.cfg.cat_codes[1:]
        ]
        cats = cats[: len(self.cfg.cat_codes)]
        return make_code(cats, torch.zeros(n, self.cfg.cont_codes, device=device), list(self.cfg.cat_codes))

    def code_info(self) -> dict[str, Any]:
        return {"cat_codes": list(self.cfg.cat_codes), "cont_codes": self.cfg.cont_codes}

    def predict_code(self, images: torch.Tensor) -> torch.Tensor:
        """Q's logits/values for images (used to read the learned code of real data)."""
        return self.Q(self.D(images).features)
