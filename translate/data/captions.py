"""Captioned digits for text-to-image training: every caption is generated from what the data says
exactly — the digit's label and two attributes measured on the image.

* **thickness**: the ink mass of the 32² image against the other images of its class: the lightest
  40 % are *thin* (or *light*), the heaviest 40 % *thick* (or *bold*); the middle 20 % get no
  thickness word, so a caption only states what is clearly so.
* **slant**: the shear of the ink, −μ₁₁/μ₀₂ of its second central moments (positive when the top
  of the digit lies to the right of its bottom), against the class: the 35 % most left-leaning are
  *slanted left*, the 35 % most right-leaning *slanted right*, the rest get no slant words.

Thresholds are per class because digits differ in ink and shape (a 1 is lighter than an 8); they
are measured once on the real training split (``AttributeThresholds``), which also judges generated
images by the same measures (their class median splits thick from thin and left from right).

Each item's caption is drawn from its key's seed among several phrasings ("a thick seven", "the
digit 7, written bold and slanted left", ...), so a new epoch brings new wordings. The vocabulary is
closed and small: ``Tokeniser`` turns a caption into word ids and refuses unknown words, an empty
caption or one that is too long with one line naming the problem (no silent ``<unk>``: a word
the encoder never saw carries no meaning it could use).

``hold_out: ["thick 3", "thin 8"]`` removes every image with that (digit, attribute) combination,
so a model trained on the rest never sees it, and can be asked for it afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from .base import DATASETS, split_key
from .sampling_sets import digits_split, digits_tensor

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
THICKNESS = ("thin", "thick")  # attribute value 0, 1
SLANT = ("left", "right")
THICKNESS_WORDS = {0: ("thin", "light"), 1: ("thick", "bold")}
THIN_SHARE, THICK_SHARE = 0.4, 0.4  # of each class; the middle 20 % get no thickness word
LEFT_SHARE, RIGHT_SHARE = 0.35, 0.35
UNSTATED = -1  # an attribute the caption does not mention

# {d}: the digit (word or numeral), {t}: thickness word, {s}: left / right
PLAIN = ("a {d}", "the digit {d}", "a handwritten {d}")
WITH_THICKNESS = ("a {t} {d}", "the digit {d}, written {t}", "a {d} with {t} strokes", "a {t} handwritten {d}")
WITH_SLANT = ("a {d} slanted {s}", "the digit {d} leaning {s}")
WITH_BOTH = (
    "a {t} {d} slanted {s}",
    "the digit {d}, written {t} and slanted {s}",
    "a {d} with {t} strokes, leaning {s}",
)
MAX_WORDS = 12
PAD = "<pad>"


def _template_words() -> list[str]:
    words = set(DIGIT_WORDS) | {str(d) for d in range(10)} | set(SLANT)
    words |= {w for pair in THICKNESS_WORDS.values() for w in pair}
    for template in PLAIN + WITH_THICKNESS + WITH_SLANT + WITH_BOTH:
        words |= {w for w in split_words(template) if not w.startswith("{")}
    return sorted(words)


def split_words(text: str) -> list[str]:
    """Lower-case words of a caption; commas, full stops and extra spaces are ignored."""
    return re.sub(r"[,.;:!?]", " ", text.lower()).split()


#: the closed vocabulary of the digit captions; index 0 is padding
DIGIT_VOCABULARY: tuple[str, ...] = (PAD, *_template_words())


class Tokeniser:
    """Captions <-> word ids (0 = padding), over a closed vocabulary stored with the model."""

    def __init__(self, vocabulary: Sequence[str], max_words: int = MAX_WORDS) -> None:
        if not vocabulary or vocabulary[0] != PAD:
            raise ConfigError(f"a vocabulary starts with the padding token '{PAD}'")
        self.vocabulary, self.max_words = tuple(vocabulary), int(max_words)
        self.ids = {word: i for i, word in enumerate(self.vocabulary)}

    def encode(self, caption: str) -> torch.Tensor:
        """One caption -> ``max_words`` int64 ids, padded with 0."""
        if not isinstance(caption, str):
            raise ConfigError(f"a caption is a string, got {type(caption).__name__}")
        words = ["a" if w == "an" else w for w in split_words(caption)]  # "an eight" reads as "a eight"
        if not words:
            raise ConfigError(f"caption {caption!r} is empty; describe the image, e.g. 'a thick seven'")
        unknown = [w for w in words if w not in self.ids or w == PAD]
        if unknown:
            known = ", ".join(w for w in self.vocabulary[1:])
            raise ConfigError(f"caption {caption!r}: unknown word(s) {', '.join(unknown)}; known words: {known}")
        if len(words) > self.max_words:
            raise ConfigError(f"caption {caption!r} has {len(words)} words; at most {self.max_words}")
        ids = torch.zeros(self.max_words, dtype=torch.long)
        ids[: len(words)] = torch.tensor([self.ids[w] for w in words])
        return ids

    def encode_all(self, captions: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.encode(c) for c in captions])

    def decode(self, ids: torch.Tensor) -> str:
        return " ".join(self.vocabulary[int(i)] for i in ids if int(i) != 0)


# --- measured attributes ------------------------------------------------------------------------


def ink_mass(images: torch.Tensor) -> torch.Tensor:
    """Total ink of N×1×H×W images in [-1, 1], as a share of the image area."""
    return ((images.float() + 1) / 2).clamp(0, 1).flatten(1).mean(1)


def ink_slant(images: torch.Tensor) -> torch.Tensor:
    """−μ₁₁/μ₀₂ of the ink's second central moments: how far x moves per row going up (> 0: the
    top leans right). Rows count downwards, hence the sign."""
    ink = ((images.float() + 1) / 2).clamp(0, 1)[:, 0]
    h, w = ink.shape[1:]
    ys = torch.arange(h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(w, dtype=torch.float32)[None, None, :]
    total = ink.sum((1, 2)).clamp_min(1e-6)
    cy = (ink * ys).sum((1, 2)) / total
    cx = (ink * xs).sum((1, 2)) / total
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    mu11 = (ink * dx * dy).sum((1, 2))
    mu02 = (ink * dy * dy).sum((1, 2)).clamp_min(1e-6)
    return -mu11 / mu02


@dataclass(frozen=True)
class AttributeThresholds:
    """Per-class quantiles of ink mass and slant on real images: the caption cut-offs and the
    medians that judge generated images."""

    thin: torch.Tensor  # 10 values each
    thick: torch.Tensor
    mass_median: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    slant_median: torch.Tensor

    @classmethod
    def measure(cls, images: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> AttributeThresholds:
        mass, slant = ink_mass(images), ink_slant(images)

        def per_class(values: torch.Tensor, q: float) -> torch.Tensor:
            return torch.stack([values[labels == k].quantile(q) for k in range(classes)])

        return cls(
            per_class(mass, THIN_SHARE),
            per_class(mass, 1 - THICK_SHARE),
            per_class(mass, 0.5),
            per_class(slant, LEFT_SHARE),
            per_class(slant, 1 - RIGHT_SHARE),
            per_class(slant, 0.5),
        )

    def caption_attributes(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(thickness, slant) to state in captions: 0/1, or ``UNSTATED`` in the ambiguous middle."""
        mass, slant = ink_mass(images), ink_slant(images)
        thickness = torch.full_like(labels, UNSTATED)
        thickness[mass <= self.thin[labels]] = 0
        thickness[mass >= self.thick[labels]] = 1
        lean = torch.full_like(labels, UNSTATED)
        lean[slant <= self.left[labels]] = 0
        lean[slant >= self.right[labels]] = 1
        return thickness, lean

    def judge(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(thickness, slant) of generated images, 0/1 each, split at the real class medians of the
        digit they were asked to show."""
        thick = (ink_mass(images) > self.mass_median[labels]).long()
        right = (ink_slant(images) > self.slant_median[labels]).long()
        return thick, right


def real_thresholds(size: int = 32) -> AttributeThresholds:
    """Thresholds measured on the fixed real training split of the digits."""
    images, labels = digits_split("train")
    return AttributeThresholds.measure(digits_tensor(images, size), torch.from_numpy(np.asarray(labels, np.int64)))


# --- captions -----------------------------------------------------------------------------------


def parse_combination(text: str) -> tuple[int, str, int]:
    """'thick 3' -> (3, 'thickness', 1); 'left 7' -> (7, 'slant', 0)."""
    words = split_words(str(text))
    attribute = {
        **{w: ("thickness", i) for i, w in enumerate(THICKNESS)},
        **{w: ("slant", i) for i, w in enumerate(SLANT)},
    }
    if len(words) != 2 or words[0] not in attribute or not words[1].isdigit() or not 0 <= int(words[1]) <= 9:
        raise ConfigError(
            f"hold_out entry {text!r} must be an attribute and a digit, e.g. 'thick 3' (attributes: "
            f"{', '.join(THICKNESS + SLANT)})"
        )
    kind, value = attribute[words[0]]
    return int(words[1]), kind, value


def held_out(
    labels: torch.Tensor, thickness: torch.Tensor, slant: torch.Tensor, combinations: Sequence[tuple[int, str, int]]
) -> torch.Tensor:
    """Which items show one of the (digit, attribute, value) ``combinations`` (``parse_combination``)."""
    out = torch.zeros(len(labels), dtype=torch.bool)
    for digit, kind, value in combinations:
        out |= (labels == digit) & ((thickness if kind == "thickness" else slant) == value)
    return out


def with_article(caption: str) -> str:
    """'a eight' -> 'an eight' (the tokeniser reads both as the same word)."""
    return re.sub(r"\ba (eight|8)\b", r"an \1", caption)


def compose_caption(digit: int, thickness: int, slant: int, rng: np.random.Generator) -> str:
    """A caption stating the digit and every stated (non-``UNSTATED``) attribute, in a random phrasing."""
    d = DIGIT_WORDS[digit] if rng.random() < 0.5 else str(digit)
    t = rng.choice(THICKNESS_WORDS[thickness]) if thickness != UNSTATED else ""
    s = SLANT[slant] if slant != UNSTATED else ""
    if t and s:
        templates = WITH_BOTH
    elif t:
        templates = WITH_THICKNESS
    elif s:
        templates = WITH_SLANT
    else:
        templates = PLAIN
    return with_article(str(rng.choice(templates)).format(d=d, t=t, s=s))


def caption_for(digit: int, thickness: int = UNSTATED, slant: int = UNSTATED) -> str:
    """The plainest caption of a combination (evaluation, class-conditional use)."""
    t = THICKNESS_WORDS[thickness][0] + " " if thickness != UNSTATED else ""
    s = f" slanted {SLANT[slant]}" if slant != UNSTATED else ""
    return with_article(f"a {t}{DIGIT_WORDS[digit]}{s}")


@DATASETS.register("digit_captions")
class DigitCaptions(Dataset):
    """Digits with captions. Items: {"image": 1×size×size in [-1, 1], "label": digit, "tokens":
    ``MAX_WORDS`` word ids, "thickness", "slant": the stated attribute values (``UNSTATED`` when
    the caption leaves one out)}. ``slant_share``: how often a caption mentions a stated slant
    (the rest mention the thickness alone), so thickness stays the main attribute."""

    def __init__(
        self, split: str = "train", size: int = 32, hold_out: Sequence[str] = (), slant_share: float = 0.5
    ) -> None:
        if not 0 <= slant_share <= 1:
            raise ConfigError(f"slant_share must be in [0, 1], got {slant_share}")
        held = [parse_combination(text) for text in hold_out]  # bad entries fail before the data is read
        images, labels = digits_split(split)
        x, y = digits_tensor(images, size), torch.from_numpy(np.asarray(labels, np.int64))
        thresholds = AttributeThresholds.measure(x, y) if split == "train" else real_thresholds(size)
        thickness, slant = thresholds.caption_attributes(x, y)
        keep = ~held_out(y, thickness, slant, held)
        self.images, self.labels = x[keep], y[keep]
        self.thickness, self.slant = thickness[keep], slant[keep]
        self.slant_share = slant_share
        self.tokeniser = Tokeniser(DIGIT_VOCABULARY)
        self.classes = 10

    def __len__(self) -> int:
        return len(self.labels)

    def caption(self, index: int, seed: int) -> tuple[str, int, int]:
        """The caption of item ``index`` under key seed ``seed`` and the attributes it states."""
        rng = np.random.default_rng(seed)
        thickness, slant = int(self.thickness[index]), int(self.slant[index])
        if rng.random() >= self.slant_share and thickness != UNSTATED:
            slant = UNSTATED
        return compose_caption(int(self.labels[index]), thickness, slant, rng), thickness, slant

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index, seed = split_key(key)
        text, thickness, slant = self.caption(index, seed)
        return {
            "image": self.images[index],
            "label": self.labels[index],
            "tokens": self.tokeniser.encode(text),
            "thickness": torch.tensor(thickness),
            "slant": torch.tensor(slant),
        }
