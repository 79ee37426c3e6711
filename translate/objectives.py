"""Training objectives: adversarial losses (a registry of small pure classes) and the
reconstruction-type and contrastive (PatchNCE) terms that image-to-image models add to them.

An adversarial objective maps discriminator logits to a scalar: ``d_loss(real, fake)`` for the
discriminator, ``g_loss(fake)`` for the generator. Targets are implied by the objective, never
allocated by the caller. Losses are computed in float32 even under autocast, because the
log/square of half-precision logits loses the small differences the gradients depend on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .registry import Registry

OBJECTIVES: Registry[type[Adversarial]] = Registry("GAN objective")

Features = list[list[torch.Tensor]]


class Adversarial:
    """Base of adversarial objectives.

    ``clip_weights``: WGAN clips every discriminator weight to ±c after each D step.
    ``gp_weight``: weight of the gradient penalty the model adds to the D loss (WGAN-GP).
    """

    clip_weights: float | None = None
    gp_weight: float = 0.0

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _check_label(real_label: float) -> float:
    if not 0.5 < real_label <= 1.0:
        raise ConfigError(f"real_label must be in (0.5, 1.0] (one-sided label smoothing), got {real_label}")
    return real_label


@OBJECTIVES.register("nsgan")
class NonSaturating(Adversarial):
    """Goodfellow et al.'s non-saturating loss: G maximises log D(G(z)).

    ``real_label`` < 1 is one-sided label smoothing (Salimans et al.): only real targets are softened.
    """

    def __init__(self, real_label: float = 1.0) -> None:
        self.real_label = _check_label(real_label)

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        real, fake = real.float(), fake.float()
        return (
            F.binary_cross_entropy_with_logits(real, torch.full_like(real, self.real_label)) + F.softplus(fake).mean()
        )

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake.float()).mean()


@OBJECTIVES.register("minimax")
class Minimax(NonSaturating):
    """The original minimax game: G minimises log(1 - D(G(z))), which saturates early in training."""

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -F.softplus(fake.float()).mean()


@OBJECTIVES.register("lsgan")
class LeastSquares(Adversarial):
    """Mao et al.'s least-squares GAN (the CycleGAN reference default)."""

    def __init__(self, real_label: float = 1.0) -> None:
        self.real_label = _check_label(real_label)

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return (real.float() - self.real_label).pow(2).mean() + fake.float().pow(2).mean()

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return (fake.float() - 1.0).pow(2).mean()


@OBJECTIVES.register("wgan")
class Wasserstein(Adversarial):
    """Arjovsky et al.'s WGAN; the critic is kept Lipschitz by clipping its weights."""

    def __init__(self, clip_weights: float | None = 0.01) -> None:
        self.clip_weights = clip_weights

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return fake.float().mean() - real.float().mean()

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.float().mean()


@OBJECTIVES.register("wgan-gp")
class WassersteinGP(Wasserstein):
    """Gulrajani et al.'s WGAN-GP: a gradient penalty replaces weight clipping."""

    def __init__(self, gp_weight: float = 10.0) -> None:
        super().__init__(clip_weights=None)
        self.gp_weight = gp_weight


@OBJECTIVES.register("hinge")
class Hinge(Adversarial):
    """Hinge loss (geometric GAN / SAGAN / BigGAN)."""

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real.float()).mean() + F.relu(1.0 + fake.float()).mean()

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.float().mean()


def build_objective(spec: str | Mapping[str, Any]) -> Adversarial:
    """``"lsgan"`` or ``{"name": "nsgan", "real_label": 0.9}`` -> objective instance."""
    if isinstance(spec, str):
        spec = {"name": spec}
    return OBJECTIVES.build(spec)


# --- helpers over multi-scale discriminator outputs -----------------------------------------


def d_loss(objective: Adversarial, real: Features, fake: Features) -> torch.Tensor:
    """Discriminator loss averaged over the discriminator's scales."""
    return torch.stack([objective.d_loss(r[-1], f[-1]) for r, f in zip(real, fake, strict=True)]).mean()


def g_loss(objective: Adversarial, fake: Features) -> torch.Tensor:
    """Generator adversarial loss averaged over the discriminator's scales."""
    return torch.stack([objective.g_loss(f[-1]) for f in fake]).mean()


def feature_matching(real: Features, fake: Features) -> torch.Tensor:
    """pix2pixHD's feature-matching term: L1 between D's intermediate features of real and fake."""
    terms = [
        F.l1_loss(f.float(), r.detach().float())
        for r_scale, f_scale in zip(real, fake, strict=True)
        for r, f in zip(r_scale[:-1], f_scale[:-1], strict=True)
    ]
    if not terms:
        raise ConfigError("feature matching needs a discriminator with intermediate features")
    return torch.stack(terms).mean()


def reconstruction(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance: pix2pix's λ_L1 term, CycleGAN's cycle and identity terms."""
    return F.l1_loss(output.float(), target.float())


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], Any], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP: E[(‖∇D(x̂)‖₂ − 1)²] on random interpolates x̂ between real and fake samples of any
    rank (2-D points or images). ``discriminator`` returns either multi-scale features (the
    logits of every scale are summed) or a plain tensor of logits."""
    eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, dtype=torch.float32)
    mixed = (eps * real.detach().float() + (1 - eps) * fake.detach().float()).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        outputs = discriminator(mixed)
        if isinstance(outputs, torch.Tensor):
            score = outputs.float().sum()
        else:
            score = sum(scale[-1].float().sum() for scale in outputs)
    (grad,) = torch.autograd.grad(score, mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def patch_nce(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """CUT's PatchNCE (Park et al. 2020): InfoNCE over patches of one feature layer.

    ``query``: B×P×D projections of the output image's features at P sampled locations; ``key``:
    B×P×D projections of the input image's features at the same locations, both L2-normalised.
    Each output patch must pick out the input patch at its own location (the positive) against
    the other P-1 input patches of the same image (the negatives). As in the authors' code, the
    logits are ``cat(l_pos, l_neg) / τ`` with the diagonal of ``l_neg`` (the positive again)
    masked to -10, and the loss is the cross-entropy towards index 0, averaged over patches.
    The keys are targets: no gradient flows into them.
    """
    if query.ndim != 3 or query.shape != key.shape:
        raise ValueError(
            f"patch_nce needs query and key of one B×P×D shape, got {tuple(query.shape)}, {tuple(key.shape)}"
        )
    # float32 at least (double stays double, for gradient checks)
    dtype = torch.promote_types(query.dtype, torch.float32)
    query, key = query.to(dtype), key.detach().to(dtype)
    patches = query.shape[1]
    positives = (query * key).sum(dim=2, keepdim=True)  # B×P×1
    negatives = query @ key.transpose(1, 2)  # B×P×P, entry (i, j): output patch i against input patch j
    own = torch.eye(patches, dtype=torch.bool, device=query.device)
    negatives = negatives.masked_fill(own, -10.0)
    logits = torch.cat([positives, negatives], dim=2).flatten(0, 1) / temperature
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=query.device))
