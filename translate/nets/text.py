"""Text-to-image networks (Reed et al. 2016, GAN-INT-CLS), small enough for a CPU.

* ``TextEncoder``: word ids -> a unit-length text embedding (word embeddings, a bidirectional GRU,
  the mean over the caption's words, a linear map). It is trained with ``ImageEncoder`` by a
  contrastive objective (a joint embedding of captions and images, as Reed's), then frozen.
* ``text_dcgan`` sampler: the frozen text encoder and a DCGAN generator that takes the noise and
  the embedding compressed by a fully connected layer with leaky ReLU (Reed's 128-d projection;
  here ``proj_dim``), concatenated. The vocabulary is part of the spec, so an exported sampler
  turns a caption into an image with no other file.
* ``text_dcgan`` discriminator: DCGAN convolutions down to 4×4, the compressed embedding
  replicated over the 4×4 grid and concatenated in depth, a 1×1 convolution, then the 4×4
  convolution to the logit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .samplers import SAMPLER_CRITICS, SAMPLERS, DCGANSampler, Judgement, _doublings, _norm2d, _sampler_norm_per_sample


class TextEncoder(nn.Module):
    """N×L word ids (0 = padding, at the end) -> N×dim unit vectors."""

    def __init__(self, vocabulary_size: int, width: int = 64, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary_size, width, padding_idx=0)
        self.rnn = nn.GRU(width, width, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * width, dim)
        self.dim = dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).unsqueeze(-1).float()
        if bool((mask.sum(1) == 0).any()):
            raise ConfigError("a caption without words cannot be encoded")
        h, _ = self.rnn(self.embed(tokens))
        pooled = (h * mask).sum(1) / mask.sum(1)
        return F.normalize(self.out(pooled), dim=1)


class ImageEncoder(nn.Module):
    """N×C×32×32 (or 64×64) images -> N×dim unit vectors: the image side of the joint embedding."""

    def __init__(self, image_size: int = 32, channels: int = 1, width: int = 16, dim: int = 64) -> None:
        super().__init__()
        layers, ch = [], channels
        for i in range(_doublings(image_size)):
            layers += [nn.Conv2d(ch, width * 2**i, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            ch = width * 2**i
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch * 16, dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.body(images), dim=1)


def compress(text_dim: int, proj_dim: int) -> nn.Module:
    """Reed's compression of the text embedding before it conditions G or D."""
    return nn.Sequential(nn.Linear(text_dim, proj_dim), nn.LeakyReLU(0.2, inplace=True))


class TextConditionedGenerator(nn.Module):
    """(noise, text embedding) -> image: a DCGAN generator whose code input is the compressed
    embedding."""

    def __init__(self, text_dim: int, proj_dim: int, **dcgan: Any) -> None:
        super().__init__()
        self.compress = compress(text_dim, proj_dim)
        self.dcgan = DCGANSampler(code_dim=proj_dim, classes=0, **dcgan)

    def forward(self, noise: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.dcgan(noise, None, self.compress(embedding.to(noise.dtype)))


@SAMPLERS.register("text_dcgan")
class TextSampler(nn.Module):
    """Caption word ids (+ noise) -> image. ``text`` is the frozen text encoder, ``body`` the
    generator; ``forward(noise, tokens)`` or, for interpolation between captions,
    ``body(noise, embedding)``. ``vocabulary`` (index 0 = padding) and ``max_words`` define the
    tokeniser (``translate.data.captions.Tokeniser``)."""

    classes = 0  # not conditioned on class indices: on text
    code_dim = 0

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Whether one sample's output is independent of the rest of the batch (see ``GANModel``)."""
        return _sampler_norm_per_sample(spec["norm"])

    def __init__(
        self,
        vocabulary: Sequence[str] = ("<pad>",),
        max_words: int = 12,
        text_width: int = 64,
        text_dim: int = 64,
        proj_dim: int = 32,
        noise_dim: int = 64,
        image_size: int = 32,
        channels: int = 1,
        width: int = 16,
        upsample: str = "transpose",
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if len(vocabulary) < 2:
            raise ConfigError("a text sampler needs a vocabulary of at least one word beside the padding")
        self.vocabulary, self.max_words, self.noise_dim = list(vocabulary), max_words, noise_dim
        self.out_shape = (channels, image_size, image_size)
        self.text = TextEncoder(len(vocabulary), text_width, text_dim)
        self.body = TextConditionedGenerator(
            text_dim,
            proj_dim,
            noise_dim=noise_dim,
            image_size=image_size,
            channels=channels,
            width=width,
            upsample=upsample,
            norm=norm,
        )

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)

    def forward(self, noise: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.body(noise, self.text(tokens))


@SAMPLER_CRITICS.register("text_dcgan")
class TextDiscriminator(nn.Module):
    """(image, text embedding) -> ``Judgement``; the embedding joins the image features at 4×4."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Whether one sample's output is independent of the rest of the batch (see ``GANModel``)."""
        return _sampler_norm_per_sample(spec["norm"])

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        width: int = 16,
        text_dim: int = 64,
        proj_dim: int = 32,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        layers, ch = [], channels
        for i in range(_doublings(image_size)):
            out = width * 2**i
            layers += [nn.Conv2d(ch, out, 4, 2, 1, bias=i == 0 or norm == "none")]
            layers += [nn.Identity() if i == 0 else _norm2d(norm, out), nn.LeakyReLU(0.2, inplace=True)]
            ch = out
        self.body = nn.Sequential(*layers)
        self.compress = compress(text_dim, proj_dim)
        self.joint = nn.Sequential(nn.Conv2d(ch + proj_dim, ch, 1), _norm2d(norm, ch), nn.LeakyReLU(0.2, inplace=True))
        self.judge = nn.Conv2d(ch, 1, 4, 1, 0)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> Judgement:
        h = self.body(x)
        text = self.compress(embedding.to(h.dtype))[:, :, None, None].expand(-1, -1, *h.shape[2:])
        joint = self.joint(torch.cat([h, text], 1))
        return Judgement(joint.flatten(1), self.judge(joint).flatten(1), None)
