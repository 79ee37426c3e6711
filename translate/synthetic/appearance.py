"""Appearance: how a layout is painted, as plain data, and the named presets shipped as YAML.

Presets live in ``presets/NAME.yaml`` next to this module (package data). A preset file, like a
user's appearance config, is a mapping of ``Appearance`` fields; it may start from another
preset with ``preset: NAME``, whose dict fields (palette, textures, ...) are then merged key by
key. Adding a preset is adding a file.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from ..errors import ConfigError
from .materials import MATERIAL_NAMES, MATERIALS, TEXTURE_SOURCES

#: the preset each domain is rendered with unless told otherwise
DEFAULT_PRESET = {"source": "game", "target": "real"}


Colours = list[list[int]]


@dataclass
class Appearance:
    """How a layout is painted. Every field is plain data, so a preset can be written as YAML.

    Colours are RGB 0–255. Distances are metres. ``blur_sigma`` is in pixels of a 128-pixel-high
    image and scales with the image height; noise is in units of the [0, 1] intensity range.
    """

    #: material -> candidate colours; each object draws one (cars differ, a car's parts agree)
    palette: dict[str, Colours] = field(default_factory=dict)
    #: per-object colour noise (std of a log-normal factor, per channel) and brightness noise
    colour_jitter: float = 0.0
    brightness_jitter: float = 0.0
    #: material -> texture source (one of TEXTURE_SOURCES); materials not listed are flat
    textures: dict[str, str] = field(default_factory=dict)
    #: material -> texture modulation depth (0 = flat)
    texture_contrast: dict[str, float] = field(default_factory=dict)
    #: texture source -> size in metres of one tile on the ground and facades
    texture_metres: dict[str, float] = field(
        default_factory=lambda: {"gravel": 1.5, "brick": 3.0, "grass": 2.0, "clouds": 8.0}
    )
    #: texture pixels per image pixel on surfaces facing the camera (at 256 pixels width)
    screen_texture_scale: float = 1.5
    #: sky colour at the top of the image (palette['sky'] is the colour at the horizon)
    sky_zenith: list[int] = field(default_factory=lambda: [90, 150, 230])
    clouds: float = 0.0
    cloud_colour: list[int] = field(default_factory=lambda: [240, 240, 240])
    #: light = ambient + sun_strength * max(0, normal · sun), shadows remove the sun part
    ambient: float = 1.0
    sun_strength: float = 0.0
    sun_elevation: list[float] = field(default_factory=lambda: [25.0, 60.0])  # degrees, drawn per scene
    shadow_strength: float = 0.0
    #: quantise the sun term to this many levels (cel shading); 0 = smooth
    cel_levels: int = 0
    #: darkening of region outlines (the inked edges of a cel-shaded game)
    outline: float = 0.0
    #: strength of a linear illumination ramp across the image, in a random direction
    illumination_gradient: float = 0.0
    #: aerial perspective: distance (m) at which 63% of a surface's colour is replaced by haze
    haze_distance: float = 0.0
    haze_colour: list[int] = field(default_factory=lambda: [200, 205, 215])
    exposure: float = 1.0
    saturation: float = 1.0
    gamma: float = 1.0
    vignetting: float = 0.0
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    shot_noise: float = 0.0
    #: JPEG round trip at this quality; 0 = none
    jpeg_quality: int = 0

    def validate(self) -> Appearance:
        for name in self.palette:
            if name not in MATERIALS:
                raise ConfigError(f"appearance palette: unknown material '{name}'; known: {', '.join(MATERIAL_NAMES)}")
            colours = self.palette[name]
            if not colours or any(len(c) != 3 for c in colours):
                raise ConfigError(f"appearance palette['{name}'] must be a non-empty list of [R, G, B]")
        missing = [m for m in MATERIAL_NAMES if m not in self.palette]
        if missing:
            raise ConfigError(f"appearance palette has no colour for: {', '.join(missing)}")
        for what, mapping in (("textures", self.textures), ("texture_contrast", self.texture_contrast)):
            for name in mapping:
                if name not in MATERIALS:
                    raise ConfigError(
                        f"appearance {what}: unknown material '{name}'; known: {', '.join(MATERIAL_NAMES)}"
                    )
        for name, src in self.textures.items():
            if src not in TEXTURE_SOURCES:
                raise ConfigError(
                    f"appearance textures['{name}']: unknown source '{src}'; known: {', '.join(TEXTURE_SOURCES)}"
                )
        for src, metres in self.texture_metres.items():
            if src not in TEXTURE_SOURCES or not metres > 0:
                raise ConfigError(
                    f"appearance texture_metres: '{src}': {metres} (sources: {', '.join(TEXTURE_SOURCES)}, size > 0)"
                )
        if len(self.sun_elevation) != 2 or not 0 < self.sun_elevation[0] <= self.sun_elevation[1] < 90:
            raise ConfigError(
                f"appearance sun_elevation must be [low, high] degrees in (0, 90), got {self.sun_elevation}"
            )
        if not 0 <= self.jpeg_quality <= 100:
            raise ConfigError(f"appearance jpeg_quality must be 0 (off) to 100, got {self.jpeg_quality}")
        for name in ("blur_sigma", "noise_sigma", "shot_noise", "vignetting", "haze_distance", "clouds", "outline"):
            if getattr(self, name) < 0:
                raise ConfigError(f"appearance {name} must be >= 0, got {getattr(self, name)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _preset_files() -> dict[str, Any]:
    folder = resources.files(__package__) / "presets"
    return {entry.name[: -len(".yaml")]: entry for entry in folder.iterdir() if entry.name.endswith(".yaml")}


#: names of the shipped presets (``game`` is the source domain, the others are targets)
PRESETS: tuple[str, ...] = tuple(sorted(_preset_files()))


@cache
def _preset_data(name: str) -> Mapping[str, Any]:
    from omegaconf import OmegaConf

    files = _preset_files()
    if name not in files:
        raise ConfigError(f"unknown appearance preset '{name}'; known: {', '.join(PRESETS)}")
    data = OmegaConf.to_container(OmegaConf.create(files[name].read_text(encoding="utf-8")), resolve=True)
    if not isinstance(data, dict):
        raise ConfigError(f"appearance preset file {name}.yaml must be a mapping")
    return data


def preset(name: str) -> Appearance:
    """A fresh copy of the named preset (``game`` is the source domain, the others are targets)."""
    data = dict(_preset_data(name))
    base = data.pop("preset", None)
    if base == name:
        raise ConfigError(f"appearance preset '{name}' names itself as its base")
    app = preset(str(base)) if base is not None else Appearance()
    return _apply(app, copy.deepcopy(data)).validate()


def _apply(app: Appearance, overrides: Mapping[str, Any]) -> Appearance:
    """Set the fields named in ``overrides`` (dict fields merged key by key); unknown fields are errors."""
    known = {f.name for f in dataclasses.fields(Appearance)}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"unknown appearance field '{key}'; known: {', '.join(sorted(known))}")
        current = getattr(app, key)
        if isinstance(current, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"appearance field '{key}' takes a mapping, got {value!r}")
            value = {**current, **value}
        setattr(app, key, value)
    return app


def appearance_from(name: str, overrides: Mapping[str, Any] | None = None) -> Appearance:
    """Preset ``name`` with ``overrides`` applied; dict fields are merged key by key.

    An unknown field is an error naming it. ``overrides`` may itself hold ``preset`` (as in the
    YAML files of configs/synthetic), which then replaces ``name``.
    """
    overrides = dict(overrides or {})
    name = overrides.pop("preset", name)
    return _apply(preset(name), overrides).validate()


def load_appearance(path: str, default_preset: str) -> tuple[str, Appearance]:
    """Read an appearance YAML (``preset: NAME`` plus overrides); returns (preset name, appearance)."""
    from omegaconf import OmegaConf

    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as exc:  # omegaconf/yaml errors, missing file
        raise ConfigError(f"cannot read appearance config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"appearance config {path} must be a mapping")
    name = str(data.get("preset", default_preset))
    return name, appearance_from(default_preset, data)
