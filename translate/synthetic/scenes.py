"""Scenes: scene ``i`` of a seed in a domain, as a pure function of its arguments.

Scene ``i`` of seed ``s`` draws its layout from ``default_rng([s, stream, i])`` and its
appearance from ``default_rng([s, 10 + domain, i])``, so a scene is independent of how many are
made. Paired scenes share the layout stream; unpaired source and target scenes use different ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..segdata.classes import overlay
from .appearance import DEFAULT_PRESET, Appearance, preset
from .geometry import Layout
from .layout import sample_layout
from .render import render

DOMAINS = ("source", "target")


def domain_index(domain: str) -> int:
    if domain not in DOMAINS:
        raise ConfigError(f"unknown domain '{domain}'; known: {', '.join(DOMAINS)}")
    return DOMAINS.index(domain)


@dataclass
class SceneGenerator:
    """Scene ``index`` of a seed, in a domain. A pure function of (seed, index, domain, paired, size).

    ``appearances`` maps each domain to its Appearance (defaults: the ``game`` and ``real`` presets).
    """

    seed: int = 0
    height: int = 128
    width: int = 256
    paired: bool = False
    appearances: dict[str, Appearance] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ConfigError(f"scene size must be at least 16×16, got {self.height}×{self.width}")
        for d in DOMAINS:
            if d not in self.appearances:
                self.appearances[d] = preset(DEFAULT_PRESET[d])

    def layout(self, index: int, domain: str) -> Layout:
        stream = 0 if self.paired else 1 + domain_index(domain)
        return sample_layout(np.random.default_rng([self.seed, stream, index]), self.height, self.width)

    def render(self, layout: Layout, index: int, domain: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 10 + domain_index(domain), index])
        return render(layout, self.appearances[domain], rng)

    def scene(self, index: int, domain: str) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 H×W×3, trainId label uint8 H×W)."""
        layout = self.layout(index, domain)
        return self.render(layout, index, domain), layout.label

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source image, target image, label) of one layout; needs ``paired=True``."""
        if not self.paired:
            raise ConfigError("pair() needs a paired SceneGenerator")
        layout = self.layout(index, "source")
        return self.render(layout, index, "source"), self.render(layout, index, "target"), layout.label


def parse_size(text: str) -> tuple[int, int]:
    """'128x256' -> (128, 256)."""
    try:
        h, w = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise ConfigError(f"size must look like HxW (e.g. 128x256), got '{text}'") from None
    if h < 16 or w < 16:
        raise ConfigError(f"size must be at least 16x16, got '{text}'")
    return h, w


def contact_sheet(gen: SceneGenerator, n: int, alpha: float = 0.55) -> np.ndarray:
    """Rows of [source | target | label over target] for ``n`` paired layouts (RGB uint8)."""
    if not gen.paired:
        raise ConfigError("a contact sheet compares domains on the same layouts: use a paired generator")
    rows = []
    sep = np.full((gen.height, 2, 3), 255, np.uint8)
    for i in range(n):
        src, tgt, label = gen.pair(i)
        rows.append(np.hstack([src, sep, tgt, sep, overlay(tgt, label, alpha)]))
        rows.append(np.full((2, rows[-1].shape[1], 3), 255, np.uint8))
    return np.vstack(rows[:-1])
