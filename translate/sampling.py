"""Drawing from an exported sampler: tensors for Python users, grids for people.

``load_sampler("G.safetensors").sample(16, label=3, seed=0)`` -> 16×C×H×W in [-1, 1] (or 16×2
points). The same seed always gives the same samples. Labels outside the trained classes, codes of
the wrong size and files that hold another kind of network are clear errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import io
from .data.captions import Tokeniser
from .errors import CheckpointError, ConfigError


@dataclass
class Sampler:
    net: torch.nn.Module
    info: dict[str, Any]
    device: torch.device

    @property
    def classes(self) -> int:
        return int(self.net.classes)

    @property
    def code_dim(self) -> int:
        return int(self.net.code_dim)

    @property
    def noise_dim(self) -> int:
        return int(self.net.noise_dim)

    def noise(self, n: int, seed: int) -> torch.Tensor:
        return torch.randn(n, self.noise_dim, generator=torch.Generator().manual_seed(seed)).to(self.device)

    def labels(self, n: int, label: int | Sequence[int] | torch.Tensor | None, seed: int) -> torch.Tensor | None:
        if not self.classes:
            if label is not None:
                raise ConfigError("this sampler is unconditional: it takes no label")
            return None
        if label is None:  # classes drawn uniformly, from the seed
            return torch.randint(0, self.classes, (n,), generator=torch.Generator().manual_seed(seed + 1)).to(
                self.device
            )
        values = torch.as_tensor(label, dtype=torch.long).flatten()
        bad = sorted({int(v) for v in values if not 0 <= int(v) < self.classes})
        if bad:
            raise ConfigError(f"label(s) {bad} outside the trained classes 0..{self.classes - 1}")
        return values.expand(n).clone().to(self.device) if values.numel() == 1 else values.to(self.device)

    def codes(self, n: int, code: Sequence[float] | torch.Tensor | None, seed: int) -> torch.Tensor | None:
        """The code vector for each sample: as given (one for all, or one per sample), or drawn
        like in training (random categories one-hot, continuous values uniform in [-1, 1])."""
        if not self.code_dim:
            if code is not None:
                raise ConfigError("this sampler takes no code")
            return None
        if code is None:
            return self.random_codes(n, seed)
        values = torch.as_tensor(code, dtype=torch.float32)
        if values.shape[-1] != self.code_dim:
            raise ConfigError(
                f"code has {values.shape[-1]} values; this sampler takes {self.code_dim} ({self.code_layout()})"
            )
        return (
            values.reshape(-1, self.code_dim).expand(n, -1).clone().to(self.device)
            if values.ndim == 1
            else values.to(self.device)
        )

    def code_layout(self) -> str:
        cats, cont = self.info.get("cat_codes", []), self.info.get("cont_codes", 0)
        return f"categorical one-hot {list(cats)} then {cont} continuous"

    def random_codes(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed + 2)
        cats, cont = list(self.info.get("cat_codes", [])), int(self.info.get("cont_codes", 0))
        parts = [F.one_hot(torch.randint(0, k, (n,), generator=g), k).float() for k in cats]
        parts.append(torch.rand(n, cont, generator=g) * 2 - 1)
        return torch.cat(parts, 1).to(self.device)

    @torch.no_grad()
    def sample(self, n: int, label=None, code=None, seed: int = 0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` samples (a fixed label or one per sample, a fixed code or one per sample)."""
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        if self.takes_label_maps:
            raise ConfigError("this sampler draws images for label maps: use from_label_maps(labels, seed)")
        z = self.noise(n, seed) if noise is None else noise.to(self.device)
        return self.net(z, self.labels(n, label, seed), self.codes(n, code, seed)).float().cpu()

    @property
    def takes_label_maps(self) -> bool:
        return self.info.get("input") == "label map"

    @torch.no_grad()
    def from_label_maps(self, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Images (N×C×H×W in [-1, 1]) for N×H×W class-id label maps; the seed picks the noise."""
        if not self.takes_label_maps:
            raise ConfigError("this sampler draws from noise, not from label maps: use sample(n, ...)")
        labels = torch.as_tensor(labels)
        if labels.ndim != 3:
            raise ConfigError(f"label maps must be N×H×W class ids, got shape {tuple(labels.shape)}")
        return self.net(labels.long().to(self.device), self.noise(labels.shape[0], seed)).float().cpu()

    @torch.no_grad()
    def interpolate(self, rows: int, steps: int, seed: int = 0, label=None) -> torch.Tensor:
        """``rows`` walks between two random latents, ``steps`` images each (rows·steps samples,
        row-major). Spherical interpolation keeps the norm a Gaussian latent expects."""
        a, b = self.noise(rows, seed), self.noise(rows, seed + 10_007)
        t = torch.linspace(0, 1, steps)
        walks = torch.stack([slerp(a, b, float(v)) for v in t], 1).reshape(rows * steps, -1)
        labels = None
        if self.classes:  # one class per walk: the given one, or drawn from the seed
            labels = label if label is not None else self.labels(rows, None, seed).repeat_interleave(steps)
        codes = None if not self.code_dim else self.random_codes(rows, seed).repeat_interleave(steps, 0)
        return self.sample(rows * steps, labels, codes, seed, noise=walks)

    @torch.no_grad()
    def class_grid(self, per_class: int, seed: int = 0) -> torch.Tensor:
        """``per_class`` samples of each class, class-major (row k shows label k)."""
        if not self.classes:
            raise ConfigError("this sampler is unconditional: no per-class grid")
        labels = torch.arange(self.classes).repeat_interleave(per_class)
        return self.sample(len(labels), labels, None, seed)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    cos = F.cosine_similarity(a, b, dim=1).clamp(-1 + 1e-6, 1 - 1e-6)[:, None]
    omega = torch.arccos(cos)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def load_sampler(path: str | Path, device: str | torch.device = "cpu") -> Sampler:
    """An exported sampler; a file holding any other family (a translator) is an error naming it."""
    meta = io.read_metadata(path)
    if meta["family"] != "sampler":
        what = meta.get("info", {}).get("model", "unknown model")
        raise CheckpointError(
            f"{path} holds a {meta['family']} (from '{what}'), not a sampler; "
            "use `i2i translate` for image-to-image generators"
        )
    net, meta = io.load_network(path, device)
    kind = TextSampler if meta.get("info", {}).get("input") == "text" else Sampler
    return kind(net.eval(), dict(meta.get("info", {})), torch.device(device))


# --- text to image (GAN-INT-CLS) ----------------------------------------------------------------


class TextSampler(Sampler):
    """A sampler conditioned on a caption (``translate.models.text2image``): ``sample(8, text="a
    thick seven")``, one caption for all or one per sample. ``label=k`` asks for class k through
    the export's caption for it ("a seven"), so class-driven users such as ``SyntheticMix`` work
    unchanged. Captions are tokenised with the vocabulary stored in the file: an unknown word, an
    empty or too long caption is a one-line error."""

    @property
    def classes(self) -> int:
        return len(self.info.get("class_captions", []))

    @property
    def tokeniser(self) -> Tokeniser:
        return Tokeniser(self.net.vocabulary, self.net.max_words)

    @torch.no_grad()
    def encode(self, captions: str | Sequence[str]) -> torch.Tensor:
        """Unit text embeddings, one per caption."""
        captions = [captions] if isinstance(captions, str) else list(captions)
        if not captions:
            raise ConfigError("no caption given; describe the image, e.g. 'a thick seven'")
        return self.net.encode(self.tokeniser.encode_all(captions).to(self.device)).float()

    def captions(self, n: int, label, text, seed: int) -> list[str]:
        """The caption of each of ``n`` samples, from ``text`` or from class labels."""
        if text is not None and label is not None:
            raise ConfigError("give a caption (text) or a label, not both")
        if text is None:
            if label is None:
                raise ConfigError(
                    "this sampler draws images for a caption: give one (--text, or text= in Python) or a label"
                )
            return [self.info["class_captions"][int(k)] for k in self.labels(n, label, seed)]
        captions = [text] if isinstance(text, str) else list(text)
        if len(captions) not in (1, n):
            raise ConfigError(f"{len(captions)} captions for {n} samples: give one, or one per sample")
        return captions * n if len(captions) == 1 else captions

    @torch.no_grad()
    def sample(self, n: int, label=None, code=None, seed: int = 0, noise: torch.Tensor | None = None, text=None):
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        if code is not None:
            raise ConfigError("this sampler takes no code")
        embedding = self.encode(self.captions(n, label, text, seed))
        return self.from_embeddings(embedding, seed, noise)

    @torch.no_grad()
    def from_embeddings(self, embedding: torch.Tensor, seed: int = 0, noise: torch.Tensor | None = None):
        """Images for N text embeddings (e.g. interpolated ones); the seed picks the noise."""
        z = self.noise(embedding.shape[0], seed) if noise is None else noise.to(self.device)
        return self.net.body(z, embedding.to(self.device)).float().cpu()

    @torch.no_grad()
    def interpolate(self, rows: int, steps: int, seed: int = 0, label=None, text=None, text_to=None) -> torch.Tensor:
        """GAN-INT's grid: with ``text_to``, each row walks linearly from the embedding of ``text``
        to that of ``text_to`` at one noise per row (what changes along a row is the caption's
        meaning, down the rows the style). Without it, each row walks spherically between two
        noises at one caption (``text``, or the captions of ``label`` / random classes)."""
        if text_to is None:
            captions = self.captions(rows, label, text, seed)
            a, b = self.noise(rows, seed), self.noise(rows, seed + 10_007)
            t = torch.linspace(0, 1, steps)
            walks = torch.stack([slerp(a, b, float(v)) for v in t], 1).reshape(rows * steps, -1)
            embedding = self.encode(captions).repeat_interleave(steps, 0)
            return self.from_embeddings(embedding, seed, noise=walks)
        if text is None:
            raise ConfigError("an interpolation between captions needs the caption to start from (text)")
        start, end = self.encode(text), self.encode(text_to)
        t = torch.linspace(0, 1, steps, device=start.device)[:, None]
        walk = (1 - t) * start + t * end  # steps × dim, shared by the rows
        noise = self.noise(rows, seed).repeat_interleave(steps, 0)
        return self.from_embeddings(walk.repeat(rows, 1), seed, noise=noise)
