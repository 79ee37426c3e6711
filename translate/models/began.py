"""BEGAN (Berthelot, Schumm & Metz 2017): boundary equilibrium GAN.

The discriminator D is an autoencoder and judges an image by how well it reconstructs it,
L(x) = mean |x − D(x)|. D learns to reconstruct real images and to fail on generated ones, G to
make images D reconstructs well:

    L_D = L(x) − k_t · L(G(z))        L_G = L(G(z))
    k_{t+1} = clip(k_t + λ_k (γ L(x) − L(G(z))), 0, 1)

The equilibrium variable k_t decides how much D attends to generated images, keeping
E[L(G(z))] = γ E[L(x)]: the diversity ratio γ trades diversity (high γ) for quality (low γ).
M_global = L(x) + |γ L(x) − L(G(z))| is the paper's convergence measure: it falls while
training still improves. One step updates D, then G on the same samples through the updated D
(so L(G(z)) in k_t's update and in M_global is measured after D's step). It is logged with L(x), L(G(z)) and k_t at every step the engine logs.

k_t is a buffer of the model, so the engine's checkpoint holds it and a resumed run continues
with exactly the value it stopped at. With several processes the two reconstruction losses are
averaged over them before k_t moves, so every process keeps the same k_t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError
from ..nets import SAMPLERS
from ..nets.began import AUTOENCODER_CRITICS
from ..registry import resolved_spec
from .base import MODELS, GANModel, OptimGroup, noise_sampler_export, set_requires_grad


@dataclass
class BEGANConfig:
    name: str = "began"
    generator: dict[str, Any] = field(default_factory=lambda: {"name": "began"})
    discriminator: dict[str, Any] = field(default_factory=lambda: {"name": "began"})
    data_key: str = "image"
    # 0: unconditional (the paper); >= 2: conditional BEGAN, labels from the batch's "label" entry
    classes: int = 0
    gamma: float = 0.5  # diversity ratio γ = E[L(G(z))] / E[L(x)] at equilibrium
    lambda_k: float = 0.001  # the step of k_t's update
    k_init: float = 0.0


def reconstruction_loss(autoencoder: nn.Module, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
    """L(x): the mean absolute difference between images and their reconstruction (float32)."""
    return (x.float() - autoencoder(x, label).float()).abs().mean()


def next_k(k: float, gamma: float, lambda_k: float, loss_real: float, loss_fake: float) -> float:
    """k_{t+1} = clip(k_t + λ_k (γ L(x) − L(G(z))), 0, 1)."""
    return min(1.0, max(0.0, k + lambda_k * (gamma * loss_real - loss_fake)))


def convergence_measure(gamma: float, loss_real: torch.Tensor, loss_fake: torch.Tensor) -> torch.Tensor:
    """M_global = L(x) + |γ L(x) − L(G(z))|."""
    return loss_real + (gamma * loss_real - loss_fake).abs()


def _mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= dist.get_world_size()
    return values


@MODELS.register("began")
class BEGAN(GANModel):
    Config = BEGANConfig

    def __init__(self, cfg: BEGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if not 0 < cfg.gamma <= 1:
            raise ConfigError(f"model.gamma (BEGAN's diversity ratio) must be in (0, 1], got {cfg.gamma}")
        if cfg.lambda_k < 0:
            raise ConfigError(f"model.lambda_k must be >= 0, got {cfg.lambda_k}")
        if not 0 <= cfg.k_init <= 1:
            raise ConfigError(f"model.k_init must be in [0, 1], got {cfg.k_init}")
        if cfg.classes == 1 or cfg.classes < 0:
            raise ConfigError(f"model.classes must be 0 (unconditional) or >= 2, got {cfg.classes}")
        self.spec = resolved_spec(SAMPLERS, {**cfg.generator, "classes": cfg.classes, "code_dim": 0})
        self.G = SAMPLERS.build(self.spec)
        self.D = AUTOENCODER_CRITICS.build({**cfg.discriminator, "classes": cfg.classes})
        # a buffer: saved in and restored from the training checkpoint with the nets
        self.register_buffer("k", torch.tensor(float(cfg.k_init)))

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {"G": OptimGroup({"G": self.G}, lr="lr_g", averaged=True), "D": OptimGroup({"D": self.D}, lr="lr_d")}

    def noise(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.G.noise_dim, device=device)

    def draw_labels(self, n: int, device: torch.device) -> torch.Tensor | None:
        return torch.randint(0, self.cfg.classes, (n,), device=device) if self.cfg.classes else None

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        real = batch[self.cfg.data_key]
        real_label = batch["label"] if self.cfg.classes else None
        n, k = real.shape[0], float(self.k)
        fake_label = self.draw_labels(n, real.device)
        with ctx.autocast():
            # one draw of G serves both steps: D's on a detached copy, G's through the updated D
            fake = self.G(self.noise(n, real.device), fake_label)
            # D normalises nothing across the batch, so real and fake go through it in one call
            both = torch.cat([real, fake.detach()])
            labels = None if real_label is None else torch.cat([real_label, fake_label])
            errors = (both.float() - self.D(both, labels).float()).abs()
            loss_real, loss_fake_d = errors[:n].mean(), errors[n:].mean()
        ctx.optimize("D", loss_real - k * loss_fake_d)

        set_requires_grad([self.D], False)
        with ctx.autocast():
            loss_fake = reconstruction_loss(self.D, fake, fake_label)
        ctx.optimize("G", loss_fake)
        set_requires_grad([self.D], True)

        shared = _mean_over_processes(torch.stack([loss_real.detach(), loss_fake.detach()]))
        measured_real, measured_fake = float(shared[0]), float(shared[1])
        self.k.fill_(next_k(k, self.cfg.gamma, self.cfg.lambda_k, measured_real, measured_fake))
        return {
            "D": (loss_real - k * loss_fake_d).detach(),
            "L_real": loss_real.detach(),
            "L_fake": loss_fake.detach(),
            "k": self.k.detach().clone(),
            "M_global": convergence_measure(self.cfg.gamma, loss_real.detach(), loss_fake.detach()),
        }

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        real = batch[self.cfg.data_key]
        generator = torch.Generator(device=real.device).manual_seed(0)  # same noise every time, global RNG untouched
        noise = torch.randn(real.shape[0], nets["G"].noise_dim, generator=generator, device=real.device)
        label = batch["label"] if self.cfg.classes else None
        reconstructed = self.D(real, label).clamp(-1, 1)
        return {"real": real, "reconstructed": reconstructed, "fake": nets["G"](noise, label)}

    def export_info(self) -> dict[str, dict[str, Any]]:
        return noise_sampler_export(
            self.spec, self.cfg.name, self.G.noise_dim, self.cfg.data_key, self.cfg.classes, gamma=self.cfg.gamma
        )
