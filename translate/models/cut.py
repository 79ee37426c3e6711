"""CUT and FastCUT (Park et al. 2020, contrastive unpaired translation): one generator, one
discriminator, and PatchNCE in place of CycleGAN's second generator and cycle.

G_AB maps A→B and D_B judges domain B images. PatchNCE ties each patch of the output to the input
patch at the same location: the generator's own encoder features of the input and of the output
(``forward_features``) are sampled at shared locations, projected by a small MLP per layer (the
``F`` optimiser group) and compared with InfoNCE against the other patches of the same image
(``translate.objectives.patch_nce``). CUT adds the same term on real B images (G(B) against B),
an identity that keeps B's content; FastCUT drops it, weights NCE 10× and instead asks for flip
equivariance: half of the steps translate the horizontally flipped batch and compare the output's
features, flipped back, with the unflipped input's.

Defaults are the authors' (ResNet-9 generator, 70×70 PatchGAN, LSGAN, Xavier init, NCE on the
input, both downsampling levels and residual blocks 1 and 5, 256 patches per layer, τ 0.07, a
256-unit projection). Two small differences from their code: their downsampling features are the
raw stride-1 convolutions before an anti-aliased blur-pool, ours the normalised, activated output
of each strided downsampling (``down1``, ``down2``); and their input layer is the image after a
3-pixel reflection pad, ours the image itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nets import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator, init_weights
from ..objectives import build_objective, d_loss, g_loss, gradient_penalty, patch_nce
from ..registry import resolved_spec
from .base import (
    MODELS,
    GANModel,
    OptimGroup,
    clip_weights,
    discriminate_batched,
    normalises_per_sample,
    run_batched,
    set_requires_grad,
)

#: the authors' NCE layers 0, 4, 8, 12, 16 of their ResNet-9 generator, in our feature names
REFERENCE_NCE_LAYERS = ["input", "down1", "down2", "block1", "block5"]


@dataclass
class CUTConfig:
    name: str = "cut"
    generator: dict[str, Any] = field(default_factory=lambda: {"name": "resnet"})
    discriminator: dict[str, Any] = field(default_factory=lambda: {"name": "patchgan"})
    gan_loss: Any = "lsgan"
    lambda_gan: float = 1.0
    lambda_nce: float = 1.0
    # identity NCE on real B (G(B) against B), averaged with the A term
    nce_idt: bool = True
    # generator features (names of its feature_info()) PatchNCE compares
    nce_layers: list[str] = field(default_factory=lambda: list(REFERENCE_NCE_LAYERS))
    num_patches: int = 256  # sampled locations per layer and image
    nce_temperature: float = 0.07
    projection_dim: int = 256  # width of each layer's projection MLP (both of its layers)
    # translate the flipped batch on half of the steps and compare features flipped back (FastCUT)
    flip_equivariance: bool = False
    init: str = "xavier"
    init_gain: float = 0.02
    channels_a: int = 3
    channels_b: int = 3


@dataclass
class FastCUTConfig(CUTConfig):
    name: str = "fastcut"
    lambda_nce: float = 10.0
    nce_idt: bool = False
    flip_equivariance: bool = True


class PatchProjection(nn.Module):
    """CUT's H_l: for each NCE layer a two-layer MLP (Linear, ReLU, Linear) that maps the features
    at sampled locations to unit vectors. Built from the channel counts the generator declares,
    so it exists (and is in its optimiser and checkpoints) before the first batch."""

    def __init__(self, channels: Mapping[str, int], dim: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict(
            {name: nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim)) for name, c in channels.items()}
        )

    def forward(self, layer: str, patches: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.heads[layer](patches), dim=-1)


def draw_locations(feature: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` distinct flat (row-major) locations of an N×C×H×W feature map (all of them when it
    has fewer), drawn from torch's global stream so a resumed run draws the same ones."""
    return torch.randperm(feature.shape[2] * feature.shape[3])[:count].to(feature.device)


def features_at(feature: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
    """N×C×H×W features at flat ``locations`` -> N×P×C."""
    return feature.flatten(2)[:, :, locations].transpose(1, 2)


def check_options(cfg: CUTConfig) -> None:
    if cfg.channels_a != cfg.channels_b:
        raise ConfigError(
            f"model '{cfg.name}': the generator re-encodes its own output for PatchNCE, so channels_a and "
            f"channels_b must be equal, got {cfg.channels_a} and {cfg.channels_b}"
        )
    if cfg.num_patches < 1:
        raise ConfigError(f"model.num_patches must be >= 1, got {cfg.num_patches}")
    if not cfg.nce_temperature > 0:
        raise ConfigError(f"model.nce_temperature must be > 0, got {cfg.nce_temperature}")
    if cfg.projection_dim < 1:
        raise ConfigError(f"model.projection_dim must be >= 1, got {cfg.projection_dim}")
    if cfg.lambda_nce < 0 or cfg.lambda_gan < 0:
        raise ConfigError(f"model.lambda_nce and lambda_gan must be >= 0, got {cfg.lambda_nce} and {cfg.lambda_gan}")
    if not cfg.nce_layers:
        raise ConfigError("model.nce_layers is empty; name at least one generator feature (e.g. input, down1)")


def nce_channels(generator: nn.Module, layers: Sequence[str]) -> dict[str, int]:
    """Channels of each NCE layer, from the generator's declared features; a name it does not
    have is an error listing the ones it has."""
    try:
        info = generator.feature_info()
        generator.check_layers(layers)
    except (ConfigError, NotImplementedError) as err:
        raise ConfigError(f"model.nce_layers {list(layers)}: {err}") from None
    return {name: info[name]["channels"] for name in layers}


@MODELS.register("cut")
class CUT(GANModel):
    Config = CUTConfig

    def __init__(self, cfg: CUTConfig) -> None:
        super().__init__()
        check_options(cfg)
        self.cfg = cfg
        self.objective = build_objective(cfg.gan_loss)
        self.spec = resolved_spec(
            GENERATORS, {**cfg.generator, "in_channels": cfg.channels_a, "out_channels": cfg.channels_b}
        )
        self.G_AB = build_generator(self.spec, cfg.init, cfg.init_gain)
        self.D_B = build_discriminator(cfg.discriminator, cfg.channels_b, cfg.init, cfg.init_gain)
        self.layers = list(cfg.nce_layers)
        self.F = init_weights(
            PatchProjection(nce_channels(self.G_AB, self.layers), cfg.projection_dim), cfg.init, cfg.init_gain
        )
        self.batch_generator_calls = normalises_per_sample(GENERATORS, cfg.generator)
        self.batch_discriminator_calls = normalises_per_sample(DISCRIMINATORS, cfg.discriminator)

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {
            "G": OptimGroup({"G_AB": self.G_AB}, lr="lr_g", averaged=True),
            "D": OptimGroup({"D_B": self.D_B}, lr="lr_d"),
            # the projection heads learn with the generator's rate, as in the authors' code
            "F": OptimGroup({"F": self.F}, lr="lr_g"),
        }

    def translate_inputs(self, real_a: torch.Tensor, real_b: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """G_AB(A) and, for the identity term, G_AB(B): one call when the generator allows it."""
        if real_b is None:
            return (self.G_AB(real_a),)
        if self.batch_generator_calls:
            return run_batched(self.G_AB, real_a, real_b)
        return self.G_AB(real_a), self.G_AB(real_b)

    def nce(self, source: torch.Tensor, output: torch.Tensor, flipped: bool) -> torch.Tensor:
        """PatchNCE between ``source`` and G's ``output`` for it, averaged over the NCE layers.
        ``flipped``: ``output`` was generated from the horizontally flipped source, so its
        features are flipped back before they are compared."""
        cfg = self.cfg
        with torch.no_grad():  # the input's projections are fixed targets (patch_nce detaches them)
            keys = self.G_AB.forward_features(source, self.layers)
        queries = self.G_AB.forward_features(output, self.layers)
        losses = []
        for name in self.layers:
            query = queries[name].flip(3) if flipped else queries[name]
            locations = draw_locations(keys[name], cfg.num_patches)
            with torch.no_grad():
                key = self.F(name, features_at(keys[name], locations))
            losses.append(patch_nce(self.F(name, features_at(query, locations)), key, cfg.nce_temperature))
        return torch.stack(losses).mean()

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        cfg, obj = self.cfg, self.objective
        real_a, real_b = batch["A"], batch["B"]
        # FastCUT: on half of the steps G sees the flipped batch (one draw per step, as in the authors' code)
        flipped = cfg.flip_equivariance and bool(torch.rand(()) < 0.5)
        inputs_a = real_a.flip(3) if flipped else real_a
        inputs_b = (real_b.flip(3) if flipped else real_b) if cfg.nce_idt else None
        with ctx.autocast():
            outputs = self.translate_inputs(inputs_a, inputs_b)
        fake_b = outputs[0]

        # D first, on the detached output (the authors' order; no image pool)
        with ctx.autocast():
            if self.batch_discriminator_calls:
                loss_d = 0.5 * d_loss(obj, *discriminate_batched(self.D_B, real_b, fake_b.detach()))
            else:
                loss_d = 0.5 * d_loss(obj, self.D_B(real_b), self.D_B(fake_b.detach()))
        logs = {"D": loss_d}
        if obj.gp_weight:
            logs["gp"] = gradient_penalty(self.D_B, real_b, fake_b)
            loss_d = loss_d + obj.gp_weight * logs["gp"]
        ctx.optimize("D", loss_d)
        if obj.clip_weights:
            clip_weights([self.D_B], obj.clip_weights)

        set_requires_grad([self.D_B], False)
        with ctx.autocast():
            adv = g_loss(obj, self.D_B(fake_b)) if cfg.lambda_gan > 0 else fake_b.new_zeros(())
            nce = self.nce(real_a, fake_b, flipped)
            nce_both = nce
            if cfg.nce_idt:
                logs["nce_idt"] = self.nce(real_b, outputs[1], flipped)
                nce_both = 0.5 * (nce + logs["nce_idt"])
        loss_g = cfg.lambda_gan * adv + cfg.lambda_nce * nce_both
        ctx.optimize(["G", "F"], loss_g)
        set_requires_grad([self.D_B], True)
        logs.update(G_adv=adv, nce=nce, G=loss_g)
        return {k: v.detach() for k, v in logs.items()}

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        g_ab = nets["G_AB"]
        shown = {"real_A": batch["A"], "fake_B": g_ab(batch["A"]), "real_B": batch["B"]}
        if self.cfg.nce_idt:
            shown["idt_B"] = g_ab(batch["B"])
        return shown

    def export_info(self) -> dict[str, dict[str, Any]]:
        # exported under CycleGAN's name for its A→B generator, so every user of translators finds it
        return {
            "G_AB": {
                "family": "generator",
                "spec": self.spec,
                "info": {"model": self.cfg.name, "direction": "A->B", "value_range": [-1, 1]},
            }
        }


@MODELS.register("fastcut")
class FastCUT(CUT):
    """CUT with FastCUT's defaults: λ_NCE 10, no identity NCE, flip-equivariance."""

    Config = FastCUTConfig
