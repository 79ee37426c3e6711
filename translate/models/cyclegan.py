"""CycleGAN (Zhu et al. 2017): unpaired translation with two generators and two discriminators.

G_AB maps A→B and G_BA maps B→A; D_A judges domain A images, D_B judges domain B images.
Cycle consistency (A→B→A ≈ A and back) makes the mapping meaningful without pairs; the identity
term (G_AB(B) ≈ B) keeps colour composition when the input is already in the target domain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..nets import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator
from ..objectives import build_objective, d_loss, g_loss, gradient_penalty, reconstruction
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
from .pool import ImagePool
from .semantic import semantic_term, stored_segmenter


@dataclass
class CycleGANConfig:
    name: str = "cyclegan"
    # network specs: constructor options of the registered nets; defaults are the reference ones
    generator: dict[str, Any] = field(default_factory=lambda: {"name": "resnet"})
    discriminator: dict[str, Any] = field(default_factory=lambda: {"name": "patchgan"})
    gan_loss: Any = "lsgan"  # a name, or {name: ..., option: ...}
    lambda_cycle: float = 10.0
    # relative to lambda_cycle, as in the reference: 0.5 means an identity weight of 5
    lambda_identity: float = 0.5
    pool_size: int = 50
    init: str = "normal"
    init_gain: float = 0.02
    channels_a: int = 3
    channels_b: int = 3
    # semantic consistency (CyCADA): weight of the frozen segmenter's agreement on A and G_AB(A)
    lambda_semantic: float = 0.0
    semantic_segmenter: str = ""  # an exported segmenter (.safetensors) trained on domain A


@MODELS.register("cyclegan")
class CycleGAN(GANModel):
    Config = CycleGANConfig

    def __init__(self, cfg: CycleGANConfig, stored: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.objective = build_objective(cfg.gan_loss)
        if cfg.lambda_identity > 0 and cfg.channels_a != cfg.channels_b:
            raise ValueError("the identity term needs domains with the same number of channels; set lambda_identity=0")
        self.spec_ab = resolved_spec(
            GENERATORS, {**cfg.generator, "in_channels": cfg.channels_a, "out_channels": cfg.channels_b}
        )
        self.spec_ba = resolved_spec(
            GENERATORS, {**cfg.generator, "in_channels": cfg.channels_b, "out_channels": cfg.channels_a}
        )
        self.G_AB = build_generator(self.spec_ab, cfg.init, cfg.init_gain)
        self.G_BA = build_generator(self.spec_ba, cfg.init, cfg.init_gain)
        self.D_A = build_discriminator(cfg.discriminator, cfg.channels_a, cfg.init, cfg.init_gain)
        self.D_B = build_discriminator(cfg.discriminator, cfg.channels_b, cfg.init, cfg.init_gain)
        # per-sample norms allow merging calls of the same net into one batch (faster, same result)
        self.batch_generator_calls = normalises_per_sample(GENERATORS, cfg.generator)
        self.batch_discriminator_calls = normalises_per_sample(DISCRIMINATORS, cfg.discriminator)
        self.pool_A = ImagePool(cfg.pool_size, seed=1)
        self.pool_B = ImagePool(cfg.pool_size, seed=2)
        # rebuilt from a checkpoint, the frozen segmenter is the one stored in it, not the file
        spec_json = (stored or {}).get("_extra_state", {}).get("semantic_spec")
        frozen = stored_segmenter(stored or {}, spec_json)
        self.semantic = semantic_term(cfg.lambda_semantic, cfg.semantic_segmenter, frozen)

    @classmethod
    def rebuild(cls, cfg: CycleGANConfig, stored: Mapping[str, Any]) -> CycleGAN:
        return cls(cfg, stored)

    def generators(self) -> dict[str, nn.Module]:
        return {"G_AB": self.G_AB, "G_BA": self.G_BA}

    def discriminators(self) -> dict[str, nn.Module]:
        return {"D_A": self.D_A, "D_B": self.D_B}

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {
            "G": OptimGroup(self.generators(), lr="lr_g", averaged=True),
            "D": OptimGroup(self.discriminators(), lr="lr_d"),
        }

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        cfg, obj = self.cfg, self.objective
        real_a, real_b = batch["A"], batch["B"]
        discs = [self.D_A, self.D_B]

        set_requires_grad(discs, False)
        use_identity = cfg.lambda_identity > 0
        with ctx.autocast():
            if use_identity and self.batch_generator_calls:
                fake_b, idt_b = run_batched(self.G_AB, real_a, real_b)
                fake_a, idt_a = run_batched(self.G_BA, real_b, real_a)
            else:
                fake_b, fake_a = self.G_AB(real_a), self.G_BA(real_b)
                if use_identity:
                    idt_b, idt_a = self.G_AB(real_b), self.G_BA(real_a)
            rec_a = self.G_BA(fake_b)
            rec_b = self.G_AB(fake_a)
            adv = g_loss(obj, self.D_B(fake_b)) + g_loss(obj, self.D_A(fake_a))
        cycle = reconstruction(rec_a, real_a) + reconstruction(rec_b, real_b)
        loss_g = adv + cfg.lambda_cycle * cycle
        logs = {"G_adv": adv, "cycle": cycle}
        if use_identity:
            identity = reconstruction(idt_b, real_b) + reconstruction(idt_a, real_a)
            loss_g = loss_g + cfg.lambda_cycle * cfg.lambda_identity * identity
            logs["identity"] = identity
        if self.semantic is not None:
            logs["semantic"] = self.semantic(real_a, fake_b)
            loss_g = loss_g + cfg.lambda_semantic * logs["semantic"]
        ctx.optimize("G", loss_g)

        set_requires_grad(discs, True)
        pooled_b = self.pool_B.query(fake_b.detach())
        pooled_a = self.pool_A.query(fake_a.detach())
        with ctx.autocast():
            if self.batch_discriminator_calls:
                loss_d_b = d_loss(obj, *discriminate_batched(self.D_B, real_b, pooled_b))
                loss_d_a = d_loss(obj, *discriminate_batched(self.D_A, real_a, pooled_a))
            else:
                loss_d_b = d_loss(obj, self.D_B(real_b), self.D_B(pooled_b))
                loss_d_a = d_loss(obj, self.D_A(real_a), self.D_A(pooled_a))
        # halving D's objective slows D relative to G, as in the reference implementation
        loss_d = 0.5 * (loss_d_a + loss_d_b)
        if obj.gp_weight:
            gp = gradient_penalty(self.D_B, real_b, pooled_b) + gradient_penalty(self.D_A, real_a, pooled_a)
            loss_d = loss_d + obj.gp_weight * gp
            logs["gp"] = gp
        ctx.optimize("D", loss_d)
        if obj.clip_weights:
            clip_weights(discs, obj.clip_weights)
        logs.update(D_A=loss_d_a, D_B=loss_d_b, G=loss_g)
        return {k: v.detach() for k, v in logs.items()}

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        g_ab, g_ba = nets["G_AB"], nets["G_BA"]
        fake_b, fake_a = g_ab(batch["A"]), g_ba(batch["B"])
        return {
            "real_A": batch["A"],
            "fake_B": fake_b,
            "rec_A": g_ba(fake_b),
            "real_B": batch["B"],
            "fake_A": fake_a,
            "rec_B": g_ab(fake_a),
        }

    def export_info(self) -> dict[str, dict[str, Any]]:
        return {
            "G_AB": {
                "family": "generator",
                "spec": self.spec_ab,
                "info": {"model": "cyclegan", "direction": "A->B", "value_range": [-1, 1]},
            },
            "G_BA": {
                "family": "generator",
                "spec": self.spec_ba,
                "info": {"model": "cyclegan", "direction": "B->A", "value_range": [-1, 1]},
            },
        }

    # the history pools are part of the training state, so resume is exact; the frozen segmenter's
    # spec is stored beside its weights (in the state as semantic.segmenter.*) so a rebuild needs no file
    def get_extra_state(self) -> dict:
        state = {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}
        if self.semantic is not None:
            state["semantic_spec"] = json.dumps(self.semantic.spec, sort_keys=True)
        return state

    def set_extra_state(self, state: dict) -> None:
        stored_spec = state.get("semantic_spec")
        own_spec = json.dumps(self.semantic.spec, sort_keys=True) if self.semantic is not None else None
        if stored_spec is not None and stored_spec != own_spec:
            raise CheckpointError(
                f"the checkpoint's frozen segmenter ({stored_spec}) is not this model's ({own_spec}); "
                "rebuild the model from the checkpoint (build_model(cfg, stored=...))"
            )
        device = next(self.parameters()).device
        self.pool_A.load_state_dict(state["pool_A"], device)
        self.pool_B.load_state_dict(state["pool_B"], device)
