"""Text to image: GAN-INT-CLS (Reed et al., "Generative Adversarial Text to Image Synthesis", 2016).

Training has two phases, both steps of the engine (so AMP, multi-process gradient averaging,
checkpoints and exact resume apply to each):

1. the first ``encoder_steps`` steps train a text encoder ``T`` and an image encoder ``I`` into a
   joint embedding (group "E"): a symmetric contrastive loss (InfoNCE) over the batch, in which
   every caption/image pair of the same meaning counts as a positive (a batch holds several
   "thick seven"s; calling them negatives would teach the encoder to tell apart what the caption
   cannot). Nothing can be downloaded here, so the encoder is learned from the captions;
2. from then on ``T`` is frozen and the GAN trains: G takes noise and the text embedding, D judges
   (image, embedding) pairs with Reed's **matching-aware** loss (GAN-CLS): real image + matching
   text -> real; fake image + matching text -> fake; real image + mismatched text -> fake, the last
   two weighted ``1 - mismatch_weight`` and ``mismatch_weight`` (½ each in the paper; 0 is plain
   conditioning). **GAN-INT**: G is also trained on embeddings interpolated between two captions
   of the batch (β = ``beta``), which D judges with that interpolated embedding.

The export is one sampler file holding the frozen text encoder and the (EMA) generator, with the
vocabulary in its spec: ``load_sampler(path).sample(8, text="a thick seven")`` needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..data.captions import DIGIT_VOCABULARY, MAX_WORDS, UNSTATED, caption_for
from ..errors import ConfigError
from ..nets import SAMPLER_CRITICS, SAMPLERS
from ..nets.layers import init_weights
from ..nets.text import ImageEncoder, TextConditionedGenerator, TextEncoder
from ..objectives import Adversarial, build_objective
from ..registry import resolved_spec
from .base import MODELS, GANModel, OptimGroup, set_requires_grad

#: the closed vocabularies captions come from (one per caption source)
VOCABULARIES = {"digits": DIGIT_VOCABULARY}
#: what a step logs; each phase leaves the other's entries NaN
LOG_KEYS = ("E_contrastive", "E_retrieval", "D", "D_real_logit", "D_wrong_logit", "G_adv", "G_int")


@dataclass
class TextToImageConfig:
    name: str = "text2image"
    captions: str = "digits"  # which caption source's vocabulary the text encoder reads
    # text_dcgan generator options (noise_dim, image_size, channels, width, upsample, norm)
    generator: dict[str, Any] = field(default_factory=dict)
    # text_dcgan discriminator options (image_size, channels, width, norm)
    discriminator: dict[str, Any] = field(default_factory=dict)
    text_width: int = 64
    text_dim: int = 64
    proj_dim: int = 32  # Reed's compressed embedding (128 there)
    encoder_steps: int = 300  # phase 1: contrastive training of the text and image encoders
    temperature: float = 0.1
    mismatch_weight: float = 0.5  # GAN-CLS; 0 = plain conditioning (no mismatched-text term)
    gan_int: bool = True
    beta: float = 0.5
    gan_loss: Any = "nsgan"
    init: str | None = "normal"


def meaning_matches(label: torch.Tensor, thickness: torch.Tensor, slant: torch.Tensor) -> torch.Tensor:
    """N×N: does caption i fit image j? Same digit, and every attribute caption i states is the
    one stated for image j (an attribute i leaves out fits any image)."""

    def fits(values: torch.Tensor) -> torch.Tensor:
        return (values[:, None] == UNSTATED) | (values[:, None] == values[None, :])

    return (label[:, None] == label[None, :]) & fits(thickness) & fits(slant)


def joint_embedding_loss(
    text: torch.Tensor, image: torch.Tensor, positives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric InfoNCE between N unit text and N unit image embeddings; ``positives[i, j]``:
    caption i fits image j (the diagonal always). Each side's target spreads evenly over its
    positives."""
    logits = text.float() @ image.float().t() / temperature
    pos = positives.float()
    text_to_image = -(F.log_softmax(logits, 1) * pos / pos.sum(1, keepdim=True)).sum(1).mean()
    image_to_text = -(F.log_softmax(logits, 0) * pos / pos.sum(0, keepdim=True)).sum(0).mean()
    return (text_to_image + image_to_text) / 2


def matching_aware_d_loss(
    objective: Adversarial,
    real: torch.Tensor,
    fake: torch.Tensor,
    mismatched: torch.Tensor | None,
    mismatch_weight: float,
) -> torch.Tensor:
    """GAN-CLS: (real, right text) -> real; (fake, right text) and (real, wrong text) -> fake,
    weighted 1 − w and w. With w = 0 (or no mismatched pairs) it is the plain conditional loss."""
    plain = objective.d_loss(real, fake)
    if mismatch_weight == 0 or mismatched is None or mismatched.numel() == 0:
        return plain
    return (1 - mismatch_weight) * plain + mismatch_weight * objective.d_loss(real, mismatched)


def mismatched_captions(fits: torch.Tensor) -> torch.Tensor:
    """For each image j, the index of a caption of the batch that does not fit it (``fits[i, j]``
    False): the nearest one after j, cyclically, so the choice is fixed by the batch order. An
    image that every caption fits (a batch of one meaning) gets the next caption anyway."""
    n = fits.shape[0]
    index = torch.arange(n, device=fits.device)
    distance = (index[:, None] - index[None, :]) % n  # [i, j]: how far caption i comes after image j
    distance = torch.where(distance == 0, n, distance)
    score = torch.where(fits, 2 * n + distance, distance)  # fitting captions only as a last resort
    return score.argmin(0)


@MODELS.register("text2image")
class TextToImage(GANModel):
    Config = TextToImageConfig

    def __init__(self, cfg: TextToImageConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.captions not in VOCABULARIES:
            raise ConfigError(f"model.captions must be one of {', '.join(VOCABULARIES)}, got '{cfg.captions}'")
        if not 0 <= cfg.mismatch_weight < 1:
            raise ConfigError(f"model.mismatch_weight must be in [0, 1), got {cfg.mismatch_weight}")
        if not 0 <= cfg.beta <= 1:
            raise ConfigError(f"model.beta must be in [0, 1], got {cfg.beta}")
        if cfg.encoder_steps < 0:
            raise ConfigError(f"model.encoder_steps must be >= 0, got {cfg.encoder_steps}")
        self.objective = build_objective(cfg.gan_loss)
        if self.objective.gp_weight or self.objective.clip_weights:
            raise ConfigError("text2image takes gan_loss nsgan, minimax, lsgan or hinge (no WGAN clipping or penalty)")
        self.spec = resolved_spec(
            SAMPLERS,
            {
                **cfg.generator,
                "name": "text_dcgan",
                "vocabulary": list(VOCABULARIES[cfg.captions]),
                "max_words": MAX_WORDS,
                "text_width": cfg.text_width,
                "text_dim": cfg.text_dim,
                "proj_dim": cfg.proj_dim,
            },
        )
        dcgan = {k: self.spec[k] for k in ("noise_dim", "image_size", "channels", "width", "upsample", "norm")}
        self.T = TextEncoder(len(self.spec["vocabulary"]), cfg.text_width, cfg.text_dim)
        self.I = ImageEncoder(self.spec["image_size"], self.spec["channels"], dim=cfg.text_dim)
        self.G = TextConditionedGenerator(cfg.text_dim, cfg.proj_dim, **dcgan)
        self.D = SAMPLER_CRITICS.build(
            {**cfg.discriminator, "name": "text_dcgan", "text_dim": cfg.text_dim, "proj_dim": cfg.proj_dim}
        )
        if cfg.init is not None:
            init_weights(self.G, cfg.init)
            init_weights(self.D, cfg.init)

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        return {
            "E": OptimGroup({"T": self.T, "I": self.I}, lr="lr_d"),
            "G": OptimGroup({"G": self.G}, lr="lr_g", averaged=True),
            "D": OptimGroup({"D": self.D}, lr="lr_d"),
        }

    # --- training -----------------------------------------------------------------------------

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        fits = meaning_matches(batch["label"], batch["thickness"], batch["slant"])
        if ctx.step < self.cfg.encoder_steps:
            logs = self._encoder_step(batch, fits, ctx)
        else:
            with torch.no_grad():  # frozen from here on
                embedding = self.T(batch["tokens"]).float()
            logs = self._discriminator_step(batch["image"], embedding, fits, ctx)
            logs.update(self._generator_step(embedding, ctx))
        # the same columns in every phase (metrics.csv takes its header from the first row)
        missing = torch.tensor(float("nan"), device=batch["image"].device)
        return {k: logs[k].detach() if k in logs else missing for k in LOG_KEYS}

    def _encoder_step(self, batch, fits: torch.Tensor, ctx) -> dict[str, torch.Tensor]:
        with ctx.autocast():
            text, image = self.T(batch["tokens"]), self.I(batch["image"])
            loss = joint_embedding_loss(text, image, fits, self.cfg.temperature)
        ctx.optimize("E", loss)
        with torch.no_grad():  # how often a caption's nearest image fits it
            nearest = (text.float() @ image.float().t()).argmax(1)
            retrieval = fits[torch.arange(len(nearest), device=nearest.device), nearest].float().mean()
        return {"E_contrastive": loss.detach(), "E_retrieval": retrieval}

    def _discriminator_step(self, real, embedding, fits: torch.Tensor, ctx) -> dict[str, torch.Tensor]:
        n = real.shape[0]
        with torch.no_grad():
            fake = self.G(torch.randn(n, self.G.dcgan.noise_dim, device=real.device), embedding)
        with ctx.autocast():
            judged_real = self.D(real, embedding).logit
            judged_fake = self.D(fake, embedding).logit
            judged_wrong = None
            if self.cfg.mismatch_weight > 0:
                judged_wrong = self.D(real, embedding[mismatched_captions(fits)]).logit
            loss = matching_aware_d_loss(
                self.objective, judged_real, judged_fake, judged_wrong, self.cfg.mismatch_weight
            )
        ctx.optimize("D", loss)
        logs = {"D": loss.detach(), "D_real_logit": judged_real.detach().float().mean()}
        if judged_wrong is not None:
            logs["D_wrong_logit"] = judged_wrong.detach().float().mean()
        return logs

    def _generator_step(self, embedding: torch.Tensor, ctx) -> dict[str, torch.Tensor]:
        n, cfg = embedding.shape[0], self.cfg
        set_requires_grad([self.D], False)
        with ctx.autocast():
            noise = torch.randn(n, self.G.dcgan.noise_dim, device=embedding.device)
            terms = {"G_adv": self.objective.g_loss(self.D(self.G(noise, embedding), embedding).logit)}
            if cfg.gan_int:
                mixed = cfg.beta * embedding + (1 - cfg.beta) * torch.roll(embedding, 1, 0)
                noise = torch.randn(n, self.G.dcgan.noise_dim, device=embedding.device)
                terms["G_int"] = self.objective.g_loss(self.D(self.G(noise, mixed), mixed).logit)
        ctx.optimize("G", torch.stack(list(terms.values())).sum())
        set_requires_grad([self.D], True)
        return terms

    # --- what the engine draws and exports ---------------------------------------------------

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        real = batch["image"]
        generator = torch.Generator(device=real.device).manual_seed(0)
        noise = torch.randn(real.shape[0], self.G.dcgan.noise_dim, generator=generator, device=real.device)
        return {"real": real, "fake": nets["G"](noise, self.T(batch["tokens"]))}

    def export_info(self) -> dict[str, dict[str, Any]]:
        info = {
            "model": self.cfg.name,
            "input": "text",
            "captions": self.cfg.captions,
            "noise_dim": self.spec["noise_dim"],
            # a caption per class, so that class-driven users (SyntheticMix) can ask for a digit
            "class_captions": [caption_for(k) for k in range(10)] if self.cfg.captions == "digits" else [],
            "mismatch_weight": self.cfg.mismatch_weight,
            "gan_int": self.cfg.gan_int,
        }
        # one file: the frozen text encoder and the (averaged) generator, as a text_dcgan sampler
        return {"G": {"family": "sampler", "spec": self.spec, "info": info, "parts": {"text": "T", "body": "G"}}}
