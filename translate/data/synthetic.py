"""Procedural street scenes: a small, embedded stand-in for the GTA5 → Cityscapes benchmark.

A scene is made in two steps, so that the same street can be shown in two domains:

1. ``sample_layout(rng, height, width)`` draws the *geometry* of a street in perspective — road,
   sidewalks, building facades with windows, trees, poles, traffic signs, cars and people — and
   rasterises it into a map of *regions*. Each region is one surface of one object made of one
   material (a car's side window, a building's facade); the label map (Cityscapes trainIds) is a
   lookup of the region map, so labels never depend on appearance.
2. ``render(layout, appearance, rng)`` paints the regions under an ``Appearance``: the per-material
   palette, textures cut from real photographs shipped with scikit-image (warped into the
   perspective of the ground and facade planes), sunlight with cast shadows, an illumination
   gradient, haze, and camera effects (blur, sensor noise, vignetting, JPEG).

The source domain (preset ``game``) is flat, saturated and cleanly lit, like a game engine; the
target domain (preset ``real``, also ``overcast`` and ``dusk``) is textured and photographic, with a
different palette in which the brightness order of classes changes (the road is lighter than the
sidewalk in ``real``, darker in ``game``), so no global colour transform maps one onto the other.

Randomness: scene ``i`` of seed ``s`` draws its layout from ``default_rng([s, stream, i])`` and its
appearance from ``default_rng([s, 10 + domain, i])``, so a scene is independent of how many are
made. Paired scenes share the layout stream; unpaired source and target scenes use different ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError
from .labels import SYNTHETIC_TRAIN_IDS

DOMAINS = ("source", "target")
DEFAULT_PRESET = {"source": "game", "target": "real"}

# --------------------------------------------------------------------------------------------
# materials: every region is made of one; the material fixes the class and the palette entry
# --------------------------------------------------------------------------------------------
#: material name -> Cityscapes trainId
MATERIALS: dict[str, int] = {
    "sky": 10,
    "road": 0,
    "marking": 0,
    "sidewalk": 1,
    "curb": 1,
    "grass": 8,
    "facade": 2,
    "window": 2,
    "trunk": 8,
    "foliage": 8,
    "pole": 5,
    "sign": 7,
    "car_body": 13,
    "car_window": 13,
    "car_wheel": 13,
    "car_light": 13,
    "skin": 11,
    "shirt": 11,
    "trousers": 11,
}
MATERIAL_NAMES: tuple[str, ...] = tuple(MATERIALS)
_MAT = {name: i for i, name in enumerate(MATERIAL_NAMES)}
MATERIAL_CLASS = np.array([MATERIALS[m] for m in MATERIAL_NAMES], dtype=np.uint8)

#: texture sources: grey-level photographs from scikit-image, plus smooth noise for clouds
TEXTURE_SOURCES: tuple[str, ...] = ("gravel", "brick", "grass", "clouds")

# surface orientations (for sunlight) and texture planes (for perspective-correct textures)
FRONT, UP, PLUS_X, MINUS_X = 0, 1, 2, 3  # normals: facing the camera, up, +X, -X
NORMALS = np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0], [-1, 0, 0]], dtype=np.float64)
SCREEN, GROUND, LEFT_WALL, RIGHT_WALL = 0, 1, 2, 3  # texture planes

_SUBPIXEL = 4  # fixed-point bits for cv2 polygon filling
_Z_NEAR = 0.3


# --------------------------------------------------------------------------------------------
# appearance
# --------------------------------------------------------------------------------------------
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
    texture_metres: dict[str, float] = field(default_factory=lambda: {"gravel": 1.5, "brick": 3.0, "grass": 2.0, "clouds": 8.0})
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

    def validate(self) -> "Appearance":
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
                    raise ConfigError(f"appearance {what}: unknown material '{name}'; known: {', '.join(MATERIAL_NAMES)}")
        for name, src in self.textures.items():
            if src not in TEXTURE_SOURCES:
                raise ConfigError(f"appearance textures['{name}']: unknown source '{src}'; known: {', '.join(TEXTURE_SOURCES)}")
        for src, metres in self.texture_metres.items():
            if src not in TEXTURE_SOURCES or not metres > 0:
                raise ConfigError(f"appearance texture_metres: '{src}': {metres} (sources: {', '.join(TEXTURE_SOURCES)}, size > 0)")
        if len(self.sun_elevation) != 2 or not 0 < self.sun_elevation[0] <= self.sun_elevation[1] < 90:
            raise ConfigError(f"appearance sun_elevation must be [low, high] degrees in (0, 90), got {self.sun_elevation}")
        if not 0 <= self.jpeg_quality <= 100:
            raise ConfigError(f"appearance jpeg_quality must be 0 (off) to 100, got {self.jpeg_quality}")
        for name in ("blur_sigma", "noise_sigma", "shot_noise", "vignetting", "haze_distance", "clouds", "outline"):
            if getattr(self, name) < 0:
                raise ConfigError(f"appearance {name} must be >= 0, got {getattr(self, name)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _game() -> Appearance:
    """Source domain: a saturated per-class palette, flat colours, two-tone cel shading, inked edges."""
    return Appearance(
        palette={
            "sky": [[120, 200, 255]],
            "road": [[55, 55, 70]],
            "marking": [[250, 250, 250]],
            "sidewalk": [[205, 170, 150]],
            "curb": [[225, 225, 225]],
            "grass": [[70, 200, 60]],
            "facade": [[230, 180, 120], [215, 120, 90], [240, 220, 170], [170, 140, 200]],
            "window": [[70, 130, 220]],
            "trunk": [[130, 80, 40]],
            "foliage": [[40, 180, 50], [90, 200, 40]],
            "pole": [[150, 150, 165]],
            "sign": [[255, 40, 40], [40, 90, 255], [255, 210, 0]],
            "car_body": [[230, 30, 30], [30, 80, 230], [250, 200, 0], [30, 200, 80], [240, 240, 240]],
            "car_window": [[40, 50, 90]],
            "car_wheel": [[25, 25, 25]],
            "car_light": [[255, 60, 60]],
            "skin": [[240, 190, 150]],
            "shirt": [[255, 120, 0], [0, 200, 200], [200, 0, 200], [250, 250, 80]],
            "trousers": [[40, 40, 160], [90, 60, 40]],
        },
        colour_jitter=0.02,
        sky_zenith=[60, 140, 255],
        ambient=0.8,
        sun_strength=0.35,
        cel_levels=2,
        outline=0.35,
    )


def _real() -> Appearance:
    """Target domain: photographic textures, sun and cast shadows, haze, a real camera.

    The palette is chosen as real streets look, and differs class by class from the game's: a
    light, weathered asphalt above a darker brick sidewalk, grey and brown facades, dark olive
    vegetation, a pale sky, mostly grey and black cars, sombre clothes.
    """
    return Appearance(
        palette={
            "sky": [[205, 215, 225]],
            "road": [[150, 148, 145], [130, 130, 132], [165, 160, 150]],
            "marking": [[215, 215, 205]],
            "sidewalk": [[120, 85, 75], [105, 95, 90], [135, 100, 85]],
            "curb": [[140, 138, 135]],
            "grass": [[80, 95, 50]],
            "facade": [[110, 105, 100], [140, 120, 100], [90, 85, 85], [150, 145, 135], [125, 90, 75]],
            "window": [[45, 55, 65], [70, 80, 90]],
            "trunk": [[65, 55, 45]],
            "foliage": [[55, 75, 35], [70, 85, 40], [45, 60, 35]],
            "pole": [[75, 78, 80]],
            "sign": [[30, 80, 170], [190, 40, 40], [225, 225, 225]],
            "car_body": [[190, 190, 195], [35, 35, 40], [120, 125, 130], [20, 35, 80], [130, 30, 30], [220, 220, 220]],
            "car_window": [[30, 35, 40]],
            "car_wheel": [[20, 20, 20]],
            "car_light": [[200, 60, 40]],
            "skin": [[190, 150, 120], [120, 85, 60]],
            "shirt": [[50, 50, 55], [90, 95, 110], [140, 130, 115], [30, 40, 70], [160, 160, 160]],
            "trousers": [[35, 35, 45], [40, 50, 75], [70, 65, 60]],
        },
        colour_jitter=0.06,
        brightness_jitter=0.12,
        textures={
            "road": "gravel",
            "marking": "gravel",
            "sidewalk": "brick",
            "curb": "gravel",
            "grass": "grass",
            "facade": "brick",
            "window": "clouds",
            "trunk": "gravel",
            "foliage": "grass",
            "car_body": "clouds",
            "car_window": "clouds",
            "shirt": "gravel",
            "trousers": "gravel",
            "sky": "clouds",
        },
        texture_contrast={
            "road": 0.25,
            "marking": 0.2,
            "sidewalk": 0.35,
            "curb": 0.25,
            "grass": 0.5,
            "facade": 0.35,
            "window": 0.35,
            "trunk": 0.4,
            "foliage": 0.6,
            "car_body": 0.15,
            "car_window": 0.3,
            "shirt": 0.12,
            "trousers": 0.12,
        },
        texture_metres={"gravel": 1.2, "brick": 3.0, "grass": 4.0, "clouds": 12.0},
        sky_zenith=[130, 165, 210],
        clouds=0.5,
        cloud_colour=[235, 235, 238],
        ambient=0.55,
        sun_strength=0.75,
        shadow_strength=0.75,
        illumination_gradient=0.25,
        haze_distance=220.0,
        haze_colour=[195, 200, 210],
        exposure=1.0,
        saturation=0.85,
        gamma=1.1,
        vignetting=0.35,
        blur_sigma=0.7,
        noise_sigma=0.02,
        shot_noise=0.02,
        jpeg_quality=70,
    )


def _overcast() -> Appearance:
    """Target variant: diffuse light, no cast shadows, grey sky, wet-looking dark road."""
    app = _real()
    app.palette = {**app.palette, "sky": [[215, 218, 222]], "road": [[95, 95, 98], [110, 110, 112]]}
    app.sky_zenith = [175, 180, 190]
    app.clouds = 0.9
    app.ambient = 0.95
    app.sun_strength = 0.1
    app.shadow_strength = 0.0
    app.haze_distance = 70.0
    app.saturation = 0.7
    app.illumination_gradient = 0.1
    return app


def _dusk() -> Appearance:
    """Target variant: low warm sun, long shadows, darker exposure, more sensor noise."""
    app = _real()
    app.palette = {**app.palette, "sky": [[250, 180, 120]]}
    app.sky_zenith = [70, 80, 140]
    app.cloud_colour = [240, 160, 130]
    app.sun_elevation = [8.0, 20.0]
    app.haze_colour = [220, 160, 120]
    app.exposure = 0.75
    app.noise_sigma = 0.035
    app.shot_noise = 0.03
    app.vignetting = 0.5
    app.jpeg_quality = 60
    return app


PRESETS = {"game": _game, "real": _real, "overcast": _overcast, "dusk": _dusk}


def preset(name: str) -> Appearance:
    """A fresh copy of the named preset (``game`` is the source domain, the others are targets)."""
    try:
        return PRESETS[name]().validate()
    except KeyError:
        raise ConfigError(f"unknown appearance preset '{name}'; known: {', '.join(PRESETS)}") from None


def appearance_from(name: str, overrides: Mapping[str, Any] | None = None) -> Appearance:
    """Preset ``name`` with ``overrides`` applied; dict fields are merged key by key.

    An unknown field is an error naming it. ``overrides`` may itself hold ``preset`` (as in the
    YAML files of configs/synthetic), which then replaces ``name``.
    """
    overrides = dict(overrides or {})
    name = overrides.pop("preset", name)
    app = preset(name)
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
    return app.validate()


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


# --------------------------------------------------------------------------------------------
# layout
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Camera:
    """A pinhole camera at height ``height`` m above the ground at X = 0, looking along +Z."""

    focal: float  # pixels
    height: float  # metres
    cx: float  # vanishing point column
    horizon: float  # horizon row

    def project(self, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """World points (arrays of one shape) -> image points (that shape + (2,))."""
        inv = self.focal / np.maximum(Z, _Z_NEAR)
        out = np.empty(np.shape(inv) + (2,))
        out[..., 0] = self.cx + X * inv
        out[..., 1] = self.horizon + (self.height - Y) * inv
        return out


@dataclass
class Layout:
    """The geometry of one scene, independent of appearance.

    ``region`` numbers the visible surfaces; the ``region_*`` arrays describe each one.
    ``casters`` are boxes (X0, X1, Z0, Z1, h0, h1) whose sun shadows fall on the ground.
    """

    camera: Camera
    walls: tuple[float, float]  # X of the left and right facade planes
    region: np.ndarray  # H×W uint16
    region_material: np.ndarray  # (R,) int
    region_normal: np.ndarray  # (R,) int
    region_plane: np.ndarray  # (R,) int
    region_object: np.ndarray  # (R,) int
    region_depth: np.ndarray  # (R,) float, metres, for surfaces facing the camera
    n_objects: int
    casters: np.ndarray  # (K, 6)
    label: np.ndarray  # H×W uint8 trainIds

    @property
    def shape(self) -> tuple[int, int]:
        return self.region.shape  # type: ignore[return-value]


class _Canvas:
    """Rasterises surfaces far-to-near into the region map (the painter's algorithm)."""

    def __init__(self, height: int, width: int, camera: Camera) -> None:
        self.region = np.zeros((height, width), dtype=np.uint16)
        self.cam = camera
        self.materials: list[int] = []
        self.normals: list[int] = []
        self.planes: list[int] = []
        self.objects: list[int] = []
        self.depths: list[float] = []
        self.casters: list[tuple[float, ...]] = []
        self._queue: list[tuple[int, int, np.ndarray]] = []
        self.n_objects = 0

    def new_object(self) -> int:
        self.n_objects += 1
        return self.n_objects - 1

    def _new_region(self, material: str, normal: int, plane: int, obj: int, depth: float) -> int:
        self.materials.append(_MAT[material])
        self.normals.append(normal)
        self.planes.append(plane)
        self.objects.append(obj)
        self.depths.append(depth)
        rid = len(self.materials) - 1
        if rid > 65535:
            raise RuntimeError("too many regions in one scene")
        return rid

    def fill(
        self, polys: list[np.ndarray] | np.ndarray, material: str, normal: int, plane: int, obj: int, depth: float,
        disjoint: bool = False, convex: bool = True,
    ) -> None:
        """Queue image-space polygons (a list of N×2 arrays, or one P×N×2 array; float pixels) as one region.

        Polygons are rasterised in queue order by ``finish`` (far to near), all converted at once.
        ``disjoint`` polygons (windows, markings) go to OpenCV in one call; others one by one,
        because one call fills overlapping polygons by the even-odd rule, leaving holes.
        Polygons are ``convex`` unless said otherwise (a faster filler).
        """
        rid = self._new_region(material, normal, plane, obj, depth)
        if isinstance(polys, np.ndarray) and disjoint:
            self._queue.append((rid, polys.shape[1], polys.reshape(-1, 2)))
        else:
            for p in polys:
                self._queue.append((rid, -1 if convex else len(p), p))

    def circles(self, centres: np.ndarray, radii: np.ndarray, material: str, obj: int, depth: float) -> None:
        """Queue filled circles (centres K×2, radii K, pixels) as one region, as 12-gons."""
        t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        ring = np.stack([np.cos(t), np.sin(t)], 1)
        polys = centres[:, None, :] + np.maximum(radii, 0.5)[:, None, None] * ring[None]
        self.fill(polys, material, FRONT, SCREEN, obj, depth)

    def _rasterise(self) -> None:
        if not self._queue:
            return
        pts = np.concatenate([q[2] for q in self._queue])
        pts = np.clip(np.round(pts * (1 << _SUBPIXEL)), -(2**26), 2**26).astype(np.int32)
        region = self.region
        start = 0
        for rid, n, block in self._queue:
            stop = start + len(block)
            arr = pts[start:stop]
            if n < 0:  # one convex polygon: OpenCV's faster convex filler
                cv2.fillConvexPoly(region, arr, rid, lineType=cv2.LINE_8, shift=_SUBPIXEL)
            else:
                polys = list(arr.reshape(-1, n, 2)) if len(block) != n else [arr]
                cv2.fillPoly(region, polys, rid, lineType=cv2.LINE_8, shift=_SUBPIXEL)
            start = stop
        self._queue = []

    # geometric helpers: the corners of axis-aligned rectangles in the world, projected
    # (plain float arithmetic: these are called a hundred times per scene)
    def ground_quad(self, x0: float, x1: float, z0: float, z1: float, y: float = 0.0) -> np.ndarray:
        c = self.cam
        i0, i1 = c.focal / max(z0, _Z_NEAR), c.focal / max(z1, _Z_NEAR)
        y0, y1 = c.horizon + (c.height - y) * i0, c.horizon + (c.height - y) * i1
        return np.array([[c.cx + x0 * i0, y0], [c.cx + x1 * i0, y0], [c.cx + x1 * i1, y1], [c.cx + x0 * i1, y1]])

    def wall_quad(self, x: float, y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
        c = self.cam
        i0, i1 = c.focal / max(z0, _Z_NEAR), c.focal / max(z1, _Z_NEAR)
        return np.array([
            [c.cx + x * i0, c.horizon + (c.height - y0) * i0],
            [c.cx + x * i1, c.horizon + (c.height - y0) * i1],
            [c.cx + x * i1, c.horizon + (c.height - y1) * i1],
            [c.cx + x * i0, c.horizon + (c.height - y1) * i0],
        ])

    def front_quad(self, x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
        c = self.cam
        i = c.focal / max(z, _Z_NEAR)
        xa, xb = c.cx + x0 * i, c.cx + x1 * i
        ya, yb = c.horizon + (c.height - y0) * i, c.horizon + (c.height - y1) * i
        return np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]])

    def finish(self, walls: tuple[float, float]) -> Layout:
        self._rasterise()
        materials = np.array(self.materials, dtype=np.int64)
        label = MATERIAL_CLASS[materials][self.region]
        return Layout(
            camera=self.cam,
            walls=walls,
            region=self.region,
            region_material=materials,
            region_normal=np.array(self.normals, dtype=np.int64),
            region_plane=np.array(self.planes, dtype=np.int64),
            region_object=np.array(self.objects, dtype=np.int64),
            region_depth=np.array(self.depths, dtype=np.float32),
            n_objects=max(self.n_objects, 1),
            casters=np.array(self.casters, dtype=np.float64).reshape(-1, 6),
            label=label,
        )


def _intervals_overlap(a0: float, a1: float, spans: list[tuple[float, float]]) -> bool:
    return any(a0 < s1 and s0 < a1 for s0, s1 in spans)


def sample_layout(rng: np.random.Generator, height: int, width: int) -> Layout:
    """Draw a random street and rasterise it; all randomness comes from ``rng``."""
    u = rng.uniform
    cam = Camera(
        focal=width * u(0.55, 0.75),
        height=u(1.4, 1.9),
        cx=width * (0.5 + u(-0.12, 0.12)),
        horizon=height * u(0.36, 0.5),
    )
    cv = _Canvas(height, width, cam)
    z_far = 250.0

    # street cross-section (X metres; the camera drives at X = 0)
    road_l, road_r = -u(3.0, 7.5), u(3.0, 7.5)
    side_l, side_r = u(1.5, 4.0), u(1.5, 4.0)
    wall_l, wall_r = road_l - side_l, road_r + side_r
    crossings = {
        side: [(z, z + u(8.0, 14.0))] if rng.random() < 0.4 else []
        for side, z in (("l", u(12.0, 45.0)), ("r", u(12.0, 45.0)))
    }

    # sky, then the open ground behind everything
    sky = cv.new_object()
    cv.fill([np.array([[-1, -1], [width + 1, -1], [width + 1, height + 1], [-1, height + 1]], float)], "sky", FRONT, SCREEN, sky, np.inf)
    ground = cv.new_object()
    cv.fill([cv.ground_quad(-400, 400, _Z_NEAR, 2000)], "grass", UP, GROUND, ground, 0.0)

    # the end of the street: a row of distant buildings, a tree line, or open land
    end = rng.random()
    if end < 0.55:
        z_end = u(70.0, 160.0)
        x = -120.0
        while x < 120.0:
            w = u(8.0, 30.0)
            obj = cv.new_object()
            cv.fill([cv.front_quad(x, x + w, 0.0, u(6.0, 35.0), z_end)], "facade", FRONT, SCREEN, obj, z_end)
            x += w
        z_far = z_end
    elif end < 0.8:
        z_end = u(80.0, 180.0)
        obj = cv.new_object()
        xs = np.linspace(-150, 150, 40)
        heights = u(6.0, 16.0, size=xs.size)
        pts = cam.project(np.concatenate([xs, [150, -150]]), np.concatenate([heights, [0, 0]]), np.full(xs.size + 2, z_end))
        cv.fill([pts], "foliage", FRONT, SCREEN, obj, z_end, convex=False)
        z_far = z_end

    # sidewalks (interrupted by side streets), curbs, road, side-street road surface
    walk = cv.new_object()
    curb = cv.new_object()
    for side, (x_in, x_out) in (("l", (road_l, wall_l)), ("r", (road_r, wall_r))):
        z0 = _Z_NEAR
        cuts = crossings[side] + [(z_far, z_far)]
        for c0, c1 in cuts:
            if c0 > z0:
                cv.fill([cv.ground_quad(min(x_in, x_out), max(x_in, x_out), z0, c0)], "sidewalk", UP, GROUND, walk, 0.0)
                xc = x_in - 0.25 if side == "l" else x_in + 0.25
                cv.fill([cv.ground_quad(min(x_in, xc), max(x_in, xc), z0, c0, y=0.0)], "curb", UP, GROUND, curb, 0.0)
            z0 = c1
    road = cv.new_object()
    polys = [cv.ground_quad(road_l, road_r, _Z_NEAR, z_far)]
    for c0, c1 in crossings["l"]:
        polys.append(cv.ground_quad(-400, road_l, c0, c1))
    for c0, c1 in crossings["r"]:
        polys.append(cv.ground_quad(road_r, 400, c0, c1))
    cv.fill(polys, "road", UP, GROUND, road, 0.0)
    _markings(cv, rng, road_l, road_r, z_far)

    # buildings along both sides, far to near; gaps show trees or sky
    for side in ("l", "r"):
        _buildings(cv, rng, side, wall_l if side == "l" else wall_r, crossings[side], z_far)

    # street furniture, vegetation, people and cars, sorted far to near
    things: list[tuple[float, str, tuple]] = []
    for side, x_curb, x_wall in (("l", road_l, wall_l), ("r", road_r, wall_r)):
        sgn = -1.0 if side == "l" else 1.0
        for _ in range(rng.integers(0, 4)):
            z = u(4.0, 60.0)
            if not _intervals_overlap(z - 2, z + 2, crossings[side]):
                things.append((z, "tree", (x_curb + sgn * 0.9, z)))
        for _ in range(rng.integers(1, 4)):
            z = u(3.0, 50.0)
            if not _intervals_overlap(z - 1, z + 1, crossings[side]):
                things.append((z, "pole", (x_curb + sgn * 0.4, z, sgn)))
        for _ in range(rng.integers(0, 4)):
            z = u(3.0, 40.0)
            x = u(min(x_curb, x_wall) + 0.4, max(x_curb, x_wall) - 0.4)
            things.append((z, "person", (x, z)))
    # occasionally people crossing the road
    for _ in range(rng.integers(0, 2)):
        z = u(5.0, 30.0)
        things.append((z, "person", (u(road_l + 0.5, road_r - 0.5), z)))
    things.extend((z, "car", args) for z, args in _car_positions(rng, road_l, road_r))
    things.sort(key=lambda t: -t[0])
    for _, kind, args in things:
        if kind == "tree":
            _tree(cv, rng, *args)
        elif kind == "pole":
            _pole(cv, rng, *args)
        elif kind == "person":
            _person(cv, rng, *args)
        else:
            _car(cv, rng, *args)
    return cv.finish((wall_l, wall_r))


def _markings(cv: _Canvas, rng: np.random.Generator, road_l: float, road_r: float, z_far: float) -> None:
    obj = cv.new_object()
    polys = []
    if rng.random() < 0.8:
        xc = rng.uniform(road_l + 2.5, road_r - 2.5) if road_r - road_l > 5 else 0.5 * (road_l + road_r)
        dash, gap = rng.uniform(2.0, 4.0), rng.uniform(4.0, 9.0)
        z = rng.uniform(0.5, dash + gap)
        while z < min(z_far, 120.0):
            polys.append(cv.ground_quad(xc - 0.08, xc + 0.08, z, z + dash))
            z += dash + gap
    if rng.random() < 0.5:
        for x in (road_l + 0.3, road_r - 0.3):
            polys.append(cv.ground_quad(x - 0.07, x + 0.07, _Z_NEAR, min(z_far, 150.0)))
    if rng.random() < 0.2:  # a zebra crossing
        z = rng.uniform(6.0, 20.0)
        x = road_l + 0.3
        while x < road_r - 0.5:
            polys.append(cv.ground_quad(x, x + 0.5, z, z + 3.0))
            x += 1.0
    if polys:
        cv.fill(np.stack(polys), "marking", UP, GROUND, obj, 0.0, disjoint=True)


def _buildings(cv: _Canvas, rng: np.random.Generator, side: str, x_wall: float, cuts: list[tuple[float, float]], z_far: float) -> None:
    u = rng.uniform
    segments = []
    z = u(-2.0, 6.0)
    while z < z_far:
        if rng.random() < 0.18:  # a gap between buildings
            z += u(3.0, 12.0)
            segments.append((z, None, None))
            continue
        length = u(6.0, 30.0)
        segments.append((z, z + length, u(5.0, 28.0)))
        z += length
    sgn = -1.0 if side == "l" else 1.0
    plane = LEFT_WALL if side == "l" else RIGHT_WALL
    normal = PLUS_X if side == "l" else MINUS_X
    for z0, z1, h in reversed(segments):  # far to near
        if z1 is None:
            if rng.random() < 0.6:  # trees behind a gap
                _tree(cv, rng, x_wall + sgn * u(1.0, 4.0), z0 - 1.5, scale=u(1.2, 1.8))
            continue
        z1 = min(z1, z_far)
        if _intervals_overlap(z0, z1, cuts):
            continue
        obj = cv.new_object()
        depth = 12.0
        cv.casters.append((min(x_wall, x_wall + sgn * depth), max(x_wall, x_wall + sgn * depth), max(z0, 0.0), z1, 0.0, h))
        # end face towards the camera (visible where the nearer neighbour is lower or absent)
        if z0 > 1.0:
            cv.fill([cv.front_quad(min(x_wall, x_wall + sgn * depth), max(x_wall, x_wall + sgn * depth), 0.0, h, z0)],
                    "facade", FRONT, SCREEN, obj, z0)
        cv.fill([cv.wall_quad(x_wall, 0.0, h, max(z0, _Z_NEAR), z1)], "facade", normal, plane, obj, 0.0)
        # windows: a grid per floor
        col = u(2.2, 3.5)
        floor = u(2.8, 3.4)
        ww, wh = col * u(0.4, 0.65), floor * u(0.4, 0.6)
        zs = np.arange(z0 + col * 0.5, z1 - col * 0.5, col)
        ys = np.arange(u(0.9, 1.4), h - floor * 0.6, floor)
        if zs.size and ys.size:
            zs = zs[zs > 0.5]
            Zc = np.repeat(zs[None, :], ys.size, 0).ravel()
            Yc = np.repeat(ys[:, None], zs.size, 1).ravel()
            if Zc.size:
                corners_z = np.stack([Zc - ww / 2, Zc + ww / 2, Zc + ww / 2, Zc - ww / 2], 1)
                corners_y = np.stack([Yc, Yc, Yc + wh, Yc + wh], 1)
                pts = cv.cam.project(np.full_like(corners_z, x_wall), corners_y, corners_z)
                cv.fill(pts, "window", normal, plane, obj, 0.0, disjoint=True)


def _tree(cv: _Canvas, rng: np.random.Generator, x: float, z: float, scale: float = 1.0) -> None:
    u = rng.uniform
    obj = cv.new_object()
    trunk_h, trunk_w = u(2.0, 3.5) * scale, u(0.2, 0.4) * scale
    cv.fill([cv.front_quad(x - trunk_w / 2, x + trunk_w / 2, 0.0, trunk_h + 0.5, z)], "trunk", FRONT, SCREEN, obj, z)
    n = int(rng.integers(4, 9))
    r = u(1.2, 2.4) * scale
    cx = x + rng.normal(0, r * 0.45, n)
    cy = trunk_h + r * 0.8 + np.abs(rng.normal(0, r * 0.5, n))
    radii = r * u(0.5, 0.9, n)
    centres = cv.cam.project(cx, cy, np.full(n, z))
    cv.circles(centres, cv.cam.focal * radii / max(z, _Z_NEAR), "foliage", obj, z)
    cv.casters.append((x - r, x + r, z - r * 0.7, z + r * 0.7, trunk_h, trunk_h + 2 * r))
    cv.casters.append((x - trunk_w / 2, x + trunk_w / 2, z - 0.1, z + 0.1, 0.0, trunk_h))


def _pole(cv: _Canvas, rng: np.random.Generator, x: float, z: float, sgn: float) -> None:
    u = rng.uniform
    obj = cv.new_object()
    h, w = u(3.0, 8.0), u(0.12, 0.25)
    cv.fill([cv.front_quad(x - w / 2, x + w / 2, 0.0, h, z)], "pole", FRONT, SCREEN, obj, z)
    cv.casters.append((x - w / 2, x + w / 2, z - w / 2, z + w / 2, 0.0, h))
    if h > 5.5 and rng.random() < 0.6:  # street light arm over the road
        arm = u(1.0, 2.5)
        x0, x1 = sorted((x, x - sgn * arm))
        cv.fill([cv.front_quad(x0, x1, h - 0.15, h, z)], "pole", FRONT, SCREEN, obj, z)
    if rng.random() < 0.75:  # a traffic sign, mounted facing the road
        sign = cv.new_object()
        size = u(0.55, 0.9)
        yc = min(h - size / 2, u(2.2, 3.0))
        zs = z - 0.05
        shape = rng.integers(0, 4)
        if shape == 0:  # round
            t = np.linspace(0, 2 * np.pi, 14, endpoint=False)
            X, Y = x + size / 2 * np.cos(t), yc + size / 2 * np.sin(t)
        elif shape == 1:  # triangle
            X = x + size / 2 * np.array([-1.0, 1.0, 0.0])
            Y = yc + size / 2 * np.array([0.8, 0.8, -0.9])
        elif shape == 2:  # rectangle
            X = x + size / 2 * np.array([-1.2, 1.2, 1.2, -1.2])
            Y = yc + size / 2 * np.array([-0.7, -0.7, 0.7, 0.7])
        else:  # diamond
            X = x + size / 2 * np.array([0.0, 1.0, 0.0, -1.0])
            Y = yc + size / 2 * np.array([-1.0, 0.0, 1.0, 0.0])
        cv.fill([cv.cam.project(X, Y, np.full(X.shape, zs))], "sign", FRONT, SCREEN, sign, zs)


def _person(cv: _Canvas, rng: np.random.Generator, x: float, z: float) -> None:
    u = rng.uniform
    obj = cv.new_object()
    h = u(1.55, 1.95)
    w = h * 0.25
    stride = u(0.0, 0.12) * h
    leg_w = w * 0.38
    legs = [
        cv.front_quad(x - w / 2 + 0.02, x - w / 2 + 0.02 + leg_w, 0.0, 0.5 * h, z),
        cv.front_quad(x + w / 2 - 0.02 - leg_w, x + w / 2 - 0.02, 0.0, 0.5 * h, z),
    ]
    legs[0][:2, 0] -= cv.cam.focal * stride / z
    legs[1][:2, 0] += cv.cam.focal * stride / z
    cv.fill(legs, "trousers", FRONT, SCREEN, obj, z)
    arm_w = w * 0.22
    torso = [
        cv.front_quad(x - w / 2, x + w / 2, 0.47 * h, 0.82 * h, z),
        cv.front_quad(x - w / 2 - arm_w, x - w / 2, 0.45 * h, 0.8 * h, z),
        cv.front_quad(x + w / 2, x + w / 2 + arm_w, 0.45 * h, 0.8 * h, z),
    ]
    cv.fill(torso, "shirt", FRONT, SCREEN, obj, z)
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    head = cv.cam.project(x + 0.09 * h * np.cos(t) * 0.8, 0.905 * h + 0.09 * h * np.sin(t), np.full(t.shape, z))
    cv.fill([head], "skin", FRONT, SCREEN, obj, z)
    cv.casters.append((x - w / 2, x + w / 2, z - 0.15, z + 0.15, 0.0, h))


def _car_positions(rng: np.random.Generator, road_l: float, road_r: float) -> list[tuple[float, tuple]]:
    """Cars parked at the curbs and driving in lanes, not overlapping."""
    u = rng.uniform
    slots: list[tuple[float, float]] = []
    lanes = [road_l + 1.1, road_r - 1.1]
    x = road_l + 3.0
    while x < road_r - 2.5:
        lanes.append(x)
        x += 3.3
    out = []
    for _ in range(int(rng.integers(1, 7))):
        lane = lanes[int(rng.integers(0, len(lanes)))]
        z = u(3.5, 70.0)
        if any(abs(lane - lx) < 2.0 and abs(z - lz) < 6.0 for lx, lz in slots):
            continue
        slots.append((lane, z))
        out.append((z, (lane + u(-0.3, 0.3), z)))
    return out


def _car(cv: _Canvas, rng: np.random.Generator, x: float, z: float) -> None:
    u = rng.uniform
    obj = cv.new_object()
    w, length = u(1.7, 1.95), u(3.9, 4.8)
    top = u(1.4, 1.6)
    belt = top * u(0.6, 0.68)
    x0, x1 = x - w / 2, x + w / 2
    z1 = z + length
    cv.casters.append((x0, x1, z, z1, 0.0, top))
    # the side facing the camera, if any
    if x0 > 0.3 or x1 < -0.3:
        xs = x0 if x0 > 0.3 else x1
        normal = MINUS_X if x0 > 0.3 else PLUS_X
        cv.fill([cv.wall_quad(xs, 0.25, belt, z, z1)], "car_body", normal, SCREEN, obj, z)
        win = cv.cam.project(np.full(4, xs), np.array([belt, belt, top, top]), np.array([z + 1.0, z1 - 0.6, z1 - 1.2, z + 1.4]))
        cv.fill([win], "car_window", normal, SCREEN, obj, z)
        t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        wheels = [cv.cam.project(np.full(t.shape, xs), 0.33 + 0.33 * np.sin(t), zc + 0.33 * np.cos(t)) for zc in (z + 0.85, z1 - 0.85)]
        cv.fill(wheels, "car_wheel", normal, SCREEN, obj, z)
    if cv.cam.height > top:  # the roof is seen from above
        cv.fill([cv.ground_quad(x0 + 0.15, x1 - 0.15, z + 1.4, z1 - 1.2, y=top)], "car_body", UP, SCREEN, obj, z)
    # the rear (or front) facing the camera
    cv.fill([cv.front_quad(x0 + 0.05, x0 + 0.3, 0.0, 0.35, z), cv.front_quad(x1 - 0.3, x1 - 0.05, 0.0, 0.35, z)], "car_wheel", FRONT, SCREEN, obj, z)
    cv.fill([cv.front_quad(x0, x1, 0.25, belt, z)], "car_body", FRONT, SCREEN, obj, z)
    rear_win = cv.cam.project(np.array([x0 + 0.1, x1 - 0.1, x1 - 0.25, x0 + 0.25]), np.array([belt, belt, top, top]), np.full(4, z + 0.3))
    cv.fill([rear_win], "car_window", FRONT, SCREEN, obj, z)
    yl = belt - 0.22
    cv.fill([cv.front_quad(x0 + 0.08, x0 + 0.38, yl, yl + 0.14, z - 0.01), cv.front_quad(x1 - 0.38, x1 - 0.08, yl, yl + 0.14, z - 0.01)],
            "car_light", FRONT, SCREEN, obj, z)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _texture_photos() -> dict[str, np.ndarray]:
    """Grey-level texture photographs from scikit-image (bundled, no download), and cloud noise."""
    import skimage.data

    photos = {
        "gravel": skimage.data.gravel().astype(np.float32),
        "brick": skimage.data.brick().astype(np.float32),
        "grass": skimage.data.grass().astype(np.float32),
    }
    rng = np.random.default_rng(12345)  # fixed: the cloud texture is part of the library, not of a scene
    noise = np.zeros((512, 512), np.float32)
    for octave, amp in ((3, 1.0), (6, 0.5), (12, 0.3), (24, 0.15), (48, 0.08)):
        small = rng.standard_normal((octave, octave)).astype(np.float32)
        tiled = np.tile(small, (3, 3))
        big = cv2.resize(tiled, (512 * 3, 512 * 3), interpolation=cv2.INTER_CUBIC)[512:1024, 512:1024]
        noise += amp * big
    photos["clouds"] = noise
    return photos


_ATLAS_PX = 256  # atlas size in pixels; it covers _ATLAS_METRES on the ground and on facades
_ATLAS_METRES = 12.0
_ATLAS_STD = 40.0  # the atlas is stored as uint8: 128 + 40 × (zero-mean, unit-variance texture)
_ATLAS_LUT = ((np.arange(256, dtype=np.float32) - 128.0) / _ATLAS_STD)


@lru_cache(maxsize=8)
def _atlas(metres: tuple[tuple[str, float], ...]) -> np.ndarray:
    """A P×P×C uint8 stack of seamlessly tiled textures (128 + 40 × a normalised texture).

    Each source is resized so that one photo covers its ``texture_metres`` and repeated to fill
    the atlas, which then tiles the plane (warps use BORDER_WRAP). uint8 keeps the warps fast.
    """
    photos = _texture_photos()
    sizes = dict(metres)
    channels = []
    for name in TEXTURE_SOURCES:
        reps = max(1, round(_ATLAS_METRES / sizes.get(name, _ATLAS_METRES)))
        img = photos[name]
        # make the photo tileable by mirroring (no seams), then fit it to one tile
        img = np.concatenate([img, img[:, ::-1]], axis=1)
        img = np.concatenate([img, img[::-1, :]], axis=0)
        tile = cv2.resize(img, (_ATLAS_PX // reps, _ATLAS_PX // reps), interpolation=cv2.INTER_AREA)
        full = np.tile(tile, (reps, reps))
        if full.shape[0] != _ATLAS_PX:
            full = cv2.resize(full, (_ATLAS_PX, _ATLAS_PX), interpolation=cv2.INTER_LINEAR)
        full = (full - full.mean()) / (full.std() + 1e-6)
        channels.append(np.clip(128.0 + _ATLAS_STD * full, 0, 255))
    atlas = np.ascontiguousarray(np.stack(channels, axis=-1).round().astype(np.uint8))
    atlas.setflags(write=False)
    return atlas


@lru_cache(maxsize=16)
def _grids(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel row, column and squared normalised radius (for vignetting)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / (width / 2)) ** 2 * 0.6 + ((yy - height / 2) / (height / 2)) ** 2 * 0.4
    for a in (yy, xx, r2):
        a.setflags(write=False)
    return yy, xx, r2


@lru_cache(maxsize=16)
def _flat_index(h: int, w: int, n_ch: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    out = (yy * w + xx) * n_ch
    out.setflags(write=False)
    return out


def _palette_table(app: Appearance) -> tuple[np.ndarray, np.ndarray]:
    k = max(len(app.palette[m]) for m in MATERIAL_NAMES)
    table = np.zeros((len(MATERIAL_NAMES), k, 3), np.float32)
    count = np.zeros(len(MATERIAL_NAMES), np.int64)
    for i, m in enumerate(MATERIAL_NAMES):
        colours = np.asarray(app.palette[m], np.float32) / 255.0
        table[i, : len(colours)] = colours
        count[i] = len(colours)
    return table, count


def _sun(app: Appearance, rng: np.random.Generator) -> np.ndarray:
    el = math.radians(rng.uniform(*app.sun_elevation))
    az = rng.uniform(0, 2 * math.pi)
    return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


def _shadow_map(layout: Layout, sun: np.ndarray) -> np.ndarray:
    """Ground pixels in the sun shadow of the layout's casters (1 = shadowed)."""
    h, w = layout.shape
    out = np.zeros((h, w), np.uint8)
    c = layout.casters
    if not len(c):
        return out
    d = -sun[[0, 2]] / sun[1]  # ground displacement of a shadow per metre of height
    X = np.stack([c[:, 0], c[:, 1], c[:, 1], c[:, 0]], 1)
    Z = np.stack([c[:, 2], c[:, 2], c[:, 3], c[:, 3]], 1)
    pts = np.concatenate(
        [layout.camera.project(X + d[0] * c[:, k : k + 1], np.zeros_like(X), Z + d[1] * c[:, k : k + 1]) for k in (4, 5)], axis=1
    )  # (K, 8, 2)
    pts = np.round(np.clip(pts, -8 * w, 8 * w) * (1 << _SUBPIXEL)).astype(np.int32)
    for p in pts:
        cv2.fillConvexPoly(out, cv2.convexHull(p), 1, lineType=cv2.LINE_8, shift=_SUBPIXEL)
    return out


def render(layout: Layout, app: Appearance, rng: np.random.Generator) -> np.ndarray:
    """Paint ``layout`` under ``app``; returns H×W×3 uint8 RGB. All randomness comes from ``rng``.

    Surface colour × light × texture, then sky, haze, and the camera. Grey-level factors are
    gathered into 2-D gain maps and colour operations that commute with them (saturation) are
    applied to the few source colours, which keeps a scene within a few milliseconds.
    """
    h, w = layout.shape
    R = layout.region
    mats = layout.region_material
    n_obj = layout.n_objects
    obj = layout.region_object
    yy, xx, r2 = _grids(h, w)
    cam = layout.camera

    def saturate(c: np.ndarray) -> np.ndarray:  # linear, so it commutes with grey gains and mixing
        if app.saturation == 1.0:
            return c.astype(np.float32)
        lum = c @ np.array([0.299, 0.587, 0.114])
        return (lum[..., None] + app.saturation * (c - lum[..., None])).astype(np.float32)

    # colour of every region: a palette entry per object, jittered per object
    table, count = _palette_table(app)
    pick = rng.random(n_obj)[obj]
    choice = np.minimum((pick * count[mats]).astype(np.int64), count[mats] - 1)
    jitter = rng.normal(0.0, app.colour_jitter, (n_obj, 3)) + rng.normal(0.0, app.brightness_jitter, (n_obj, 1))
    colour = table[mats, choice] * np.exp(jitter)[obj]

    # sunlight per surface orientation (the sky emits its own colour)
    sun = _sun(app, rng)
    lam = np.clip(NORMALS @ sun, 0.0, 1.0)
    if app.cel_levels > 0:
        lam = np.round(lam * app.cel_levels) / app.cel_levels
    sky_region = mats == _MAT["sky"]
    direct = np.where(sky_region, 0.0, app.sun_strength * lam[layout.region_normal])
    ambient = np.where(sky_region, 1.0, app.ambient)
    img = np.take(saturate(colour * (ambient + direct)[:, None]), R, axis=0)

    gain = None  # per-pixel grey factor of the surfaces: cast shadows × texture
    if app.shadow_strength > 0 and app.sun_strength > 0:
        ground_region = layout.region_normal == UP
        factor = np.where(ground_region, (ambient + (1 - app.shadow_strength) * direct) / (ambient + direct), 1.0)
        gain = np.where(_shadow_map(layout, sun) > 0, np.take(factor.astype(np.float32), R), np.float32(1.0))

    plane = np.take(layout.region_plane, R)
    depth, u, v = _surface_coords(layout, plane)
    contrast_of_mat = np.array([app.texture_contrast.get(m, 0.0) if m in app.textures else 0.0 for m in MATERIAL_NAMES], np.float32)
    lookup = None
    if contrast_of_mat.any():
        modulation, lookup = _texture(layout, app, rng, plane, depth, u, v, contrast_of_mat)
        gain = modulation if gain is None else gain * modulation
    if gain is not None:
        img *= gain[..., None]

    # sky: gradient from the horizon colour to the zenith, with clouds (rows above the lowest sky pixel)
    sky = np.take(sky_region, R)
    rows = np.flatnonzero(sky.any(axis=1))
    if rows.size:
        r1 = rows[-1] + 1
        t = (np.clip((cam.horizon - np.arange(r1, dtype=np.float32)) / max(cam.horizon, 1.0), 0.0, 1.0) ** 0.6)[:, None, None]
        horizon_c = saturate(colour[sky_region][0])
        zenith = saturate(np.asarray(app.sky_zenith, np.float64) / 255.0)
        sky_img = horizon_c * (1 - t) + zenith * t  # r1×1×3
        if app.clouds > 0:
            if lookup is None:
                lookup = _screen_texture(rng, h, w, app.screen_texture_scale * 256.0 / w)
            noise = _ATLAS_LUT[lookup[:r1, :, TEXTURE_SOURCES.index("clouds")]]
            cover = np.clip(noise * 0.5 + (app.clouds - 0.5) * 2.0, 0.0, 1.0)[..., None] * (0.3 + 0.7 * t)
            sky_img = sky_img + (saturate(np.asarray(app.cloud_colour, np.float64) / 255.0) - sky_img) * cover
        img[:r1] = np.where(sky[:r1, :, None], sky_img, img[:r1])

    if app.haze_distance > 0:  # aerial perspective
        a = 1.0 - np.exp(depth * np.float32(-1.0 / app.haze_distance))
        a[sky] = 0.0
        haze = saturate(np.asarray(app.haze_colour, np.float64) / 255.0)
        img += (haze - img) * a[..., None]

    if app.outline > 0:
        edge = np.zeros((h, w), bool)
        edge[1:, :] |= R[1:, :] != R[:-1, :]
        edge[:, 1:] |= R[:, 1:] != R[:, :-1]
        edge &= ~sky
        img[edge] *= 1.0 - app.outline

    # camera: exposure, illumination ramp, vignetting, optics, sensor, tone curve, JPEG
    cam_gain = np.float32(app.exposure)
    if app.illumination_gradient > 0:
        theta = rng.uniform(0, 2 * math.pi)
        ramp = np.float32(math.cos(theta) * 2.0 / w) * (xx - w / 2) + np.float32(math.sin(theta) * 2.0 / h) * (yy - h / 2)
        cam_gain = cam_gain * (1.0 + np.float32(app.illumination_gradient) * ramp)
    if app.vignetting > 0:
        cam_gain = cam_gain * (1.0 - np.float32(app.vignetting) * r2)
    img *= cam_gain[..., None] if np.ndim(cam_gain) else cam_gain
    if app.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), app.blur_sigma * h / 128.0)
    if app.noise_sigma > 0 or app.shot_noise > 0:
        np.maximum(img, 0.0, out=img)
        img += _sensor_noise(rng, h, w) * (np.float32(app.noise_sigma) + np.float32(app.shot_noise) * np.sqrt(img))
    out = _tone_lut(float(app.gamma))[np.clip(img * 1023.0 + 0.5, 0, 1023).astype(np.int16)]
    if app.jpeg_quality > 0:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(app.jpeg_quality)])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # channel order is irrelevant for a round trip
    return out


@lru_cache(maxsize=8)
def _tone_lut(gamma: float) -> np.ndarray:
    """1024 linear levels -> 8-bit display values through the gamma curve."""
    lut = np.round(255.0 * (np.arange(1024) / 1023.0) ** (1.0 / gamma)).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def _surface_coords(layout: Layout, plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance (m) of every pixel, and its 2-D coordinates (m) on its own surface.

    Ground pixels get (X, Z) on the ground plane, facade pixels (Z, -Y) on their facade plane,
    so a texture indexed by them lies in correct perspective; surfaces facing the camera get
    image coordinates scaled to metres at a nominal 10 m and their region's depth.
    """
    h, w = layout.shape
    cam = layout.camera
    f = cam.focal
    yy, xx, _ = _grids(h, w)
    dx = xx - cam.cx
    dx = np.where(np.abs(dx) < 1e-2, 1e-2, dx)
    dy = np.maximum(yy - cam.horizon, 1e-2)
    ground = plane == GROUND
    left = plane == LEFT_WALL
    walls = left | (plane == RIGHT_WALL)
    x_wall = np.where(left, layout.walls[0], layout.walls[1]).astype(np.float32)
    z_ground = (f * cam.height) / dy
    z_wall = np.abs(x_wall * f / dx)
    depth = np.take(layout.region_depth, layout.region)
    depth = np.where(ground, z_ground, np.where(walls, z_wall, depth))
    depth = np.minimum(depth, 2000.0)
    nominal = 10.0 / f
    u = np.where(ground, dx * depth / f, np.where(walls, depth, xx * nominal))
    v = np.where(ground, depth, np.where(walls, (yy - cam.horizon) * depth / f, yy * nominal))
    return depth.astype(np.float32), u.astype(np.float32), v.astype(np.float32)


def _screen_texture(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """The atlas tiled over the image, ``scale`` atlas pixels per image pixel, at a random offset."""
    atlas = _atlas(tuple(sorted(_SCREEN_METRES.items())))
    ou, ov = rng.uniform(0, _ATLAS_PX, 2)
    M = np.array([[1.0 / scale, 0, -ou / scale], [0, 1.0 / scale, -ov / scale]])
    return cv2.warpAffine(atlas, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


# on surfaces facing the camera textures are tiled in image space, at these tile sizes
_SCREEN_METRES = {"gravel": 3.0, "brick": 6.0, "grass": 4.0, "clouds": 12.0}


def _texture(
    layout: Layout, app: Appearance, rng: np.random.Generator, plane: np.ndarray, depth: np.ndarray,
    u: np.ndarray, v: np.ndarray, contrast_of_mat: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Multiplicative texture (mean ≈ 1) of every pixel, and the raw atlas lookup (reused for clouds).

    One remap of the texture atlas through each pixel's surface coordinates, then each pixel
    keeps the channel of its material's texture source.
    """
    h, w = layout.shape
    R = layout.region
    atlas = _atlas(tuple(sorted(app.texture_metres.items())))
    n_ch = atlas.shape[2]
    ppm = _ATLAS_PX / _ATLAS_METRES
    ou, ov = rng.uniform(0, _ATLAS_PX, 2)
    screen = plane == SCREEN
    # screen surfaces: screen_texture_scale atlas pixels per image pixel (at 256 pixels width)
    k = np.float32(app.screen_texture_scale * 256.0 / w * layout.camera.focal / 10.0 / ppm)
    scale = np.where(screen, k * ppm, np.float32(ppm))
    # atlas coordinates, wrapped into [0, P) here (remap's fixed-point maps would overflow far away)
    mu, mv = u * scale + np.float32(ou), v * scale + np.float32(ov)
    p = np.float32(_ATLAS_PX)
    mu -= np.floor(mu * np.float32(1.0 / _ATLAS_PX)) * p
    mv -= np.floor(mv * np.float32(1.0 / _ATLAS_PX)) * p
    lookup = cv2.remap(atlas, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    chan_of_mat = np.array([TEXTURE_SOURCES.index(app.textures[m]) if m in app.textures else 0 for m in MATERIAL_NAMES])
    mats = layout.region_material
    idx = _flat_index(h, w, n_ch) + np.take(chan_of_mat[mats], R)
    t = _ATLAS_LUT[lookup.reshape(-1)[idx]]
    # fade textures where they get smaller than a pixel (a camera averages them away; we would alias)
    fade = np.minimum((2.0 * layout.camera.focal / ppm) / np.maximum(depth, 1e-3), 1.0)
    fade[screen] = 1.0
    contrast = np.take(contrast_of_mat[mats], R) * fade
    return np.maximum(1.0 + contrast * t, 0.05), lookup


@lru_cache(maxsize=4)
def _noise_bank(h: int, w: int) -> np.ndarray:
    """Fixed Gaussian noise larger than the image; scenes take random crops and flips of it.

    Drawing fresh normals costs more than the rest of the camera model; sensor noise only needs
    to look random, not to be independent between scenes.
    """
    bank = np.random.default_rng(271828).standard_normal((h + 61, w + 67, 3), dtype=np.float32)
    bank.setflags(write=False)
    return bank


def _sensor_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    bank = _noise_bank(h, w)
    oy, ox = int(rng.integers(0, 62)), int(rng.integers(0, 68))
    crop = bank[oy : oy + h, ox : ox + w]
    if rng.random() < 0.5:
        crop = crop[::-1]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return crop[..., rng.permutation(3)]


# --------------------------------------------------------------------------------------------
# scenes and datasets of scenes
# --------------------------------------------------------------------------------------------
def _domain_index(domain: str) -> int:
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
        stream = 0 if self.paired else 1 + _domain_index(domain)
        return sample_layout(np.random.default_rng([self.seed, stream, index]), self.height, self.width)

    def render(self, layout: Layout, index: int, domain: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 10 + _domain_index(domain), index])
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


def class_report(labels: list[np.ndarray] | np.ndarray, class_ids: tuple[int, ...] = SYNTHETIC_TRAIN_IDS) -> dict[str, dict[str, float]]:
    """Share of scenes containing each class, and its share of labelled pixels."""
    from .labels import CLASS_NAMES

    scenes = np.zeros(256, np.int64)
    pixels = np.zeros(256, np.int64)
    n = 0
    for lab in labels:
        counts = np.bincount(lab.ravel(), minlength=256)
        scenes += counts > 0
        pixels += counts
        n += 1
    total = max(int(pixels[list(class_ids)].sum()), 1)
    return {
        CLASS_NAMES[c]: {"scene_share": float(scenes[c] / max(n, 1)), "pixel_share": float(pixels[c] / total)}
        for c in class_ids
    }


def parse_size(text: str) -> tuple[int, int]:
    """'128x256' -> (128, 256)."""
    try:
        h, w = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise ConfigError(f"size must look like HxW (e.g. 128x256), got '{text}'") from None
    if h < 16 or w < 16:
        raise ConfigError(f"size must be at least 16x16, got '{text}'")
    return h, w


# --------------------------------------------------------------------------------------------
# writing scene sets to disk
# --------------------------------------------------------------------------------------------
MANIFEST_FORMAT = "i2i-synthetic-streets"


def _encode_png(array: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".png", array)
    if not ok:  # pragma: no cover - cv2 cannot fail on uint8 arrays
        raise RuntimeError("PNG encoding failed")
    return buf


def write_scene_set(
    out: str | Path,
    n: int,
    seed: int = 0,
    size: tuple[int, int] = (128, 256),
    domain: str | None = "target",
    paired: bool = False,
    appearances: dict[str, Appearance] | None = None,
    presets: dict[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``n`` scenes in the GTA5 folder layout and return the manifest (also written).

    Unpaired: ``out/images/00000.png``, ``out/labels/00000.png`` for one ``domain``. Paired: the
    same layouts in both domains, ``out/source/{images,labels}`` and ``out/target/{images,labels}``
    with identical file names and labels (for pix2pix and for scoring translations). Labels are
    single-channel PNGs of trainIds (``label_format: trainId`` in the manifest). PNG output is a
    pure function of the arguments, so the same seed gives byte-identical files.
    """
    from tqdm import tqdm

    out = Path(out)
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    domains = list(DOMAINS) if paired else [domain or ""]
    for d in domains:
        _domain_index(d)
    appearances = dict(appearances or {})
    presets = {d: (presets or {}).get(d, DEFAULT_PRESET[d]) for d in DOMAINS}
    for d in DOMAINS:
        if d not in appearances:
            appearances[d] = preset(presets[d])
    gen = SceneGenerator(seed=seed, height=size[0], width=size[1], paired=paired, appearances=appearances)
    folders = {d: (out / d if paired else out) for d in domains}
    for folder in folders.values():
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "labels").mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(n - 1)))
    counts_scenes = np.zeros(256, np.int64)
    counts_pixels = np.zeros(256, np.int64)
    for i in tqdm(range(n), desc=f"rendering {'/'.join(domains)} scenes", unit="scene", disable=not progress):
        name = f"{i:0{width}d}.png"
        layout = gen.layout(i, domains[0])
        label = layout.label
        for d in domains:
            image = gen.render(layout, i, d)
            _encode_png(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)).tofile(folders[d] / "images" / name)
            _encode_png(label).tofile(folders[d] / "labels" / name)
        c = np.bincount(label.ravel(), minlength=256)
        counts_scenes += c > 0
        counts_pixels += c

    from .labels import CLASS_NAMES

    total = max(int(counts_pixels.sum()), 1)
    classes = {
        CLASS_NAMES[c]: {"train_id": c, "scene_share": round(float(counts_scenes[c] / n), 4), "pixel_share": round(float(counts_pixels[c] / total), 5)}
        for c in SYNTHETIC_TRAIN_IDS
    }
    base = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "seed": seed,
        "n": n,
        "size": [size[0], size[1]],
        "paired": paired,
        "label_format": "trainId",
        "layout": "images/NNNNN.png (RGB) + labels/NNNNN.png (trainIds, 255 = ignore)",
        "classes": classes,
    }
    if paired:
        manifest = {**base, "domains": {d: {"folder": d, "preset": presets[d], "appearance": appearances[d].to_dict()} for d in DOMAINS}}
        for d in DOMAINS:
            sub = {**base, "domain": d, "preset": presets[d], "paired_with": f"../{DOMAINS[1 - DOMAINS.index(d)]}",
                   "appearance": appearances[d].to_dict()}
            (out / d / "manifest.json").write_text(json.dumps(sub, indent=2))
    else:
        d = domains[0]
        manifest = {**base, "domain": d, "preset": presets[d], "appearance": appearances[d].to_dict()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def contact_sheet(gen: SceneGenerator, n: int, alpha: float = 0.55) -> np.ndarray:
    """Rows of [source | target | label over target] for ``n`` paired layouts (RGB uint8)."""
    from .labels import overlay

    if not gen.paired:
        raise ConfigError("a contact sheet compares domains on the same layouts: use a paired generator")
    rows = []
    sep = np.full((gen.height, 2, 3), 255, np.uint8)
    for i in range(n):
        src, tgt, label = gen.pair(i)
        rows.append(np.hstack([src, sep, tgt, sep, overlay(tgt, label, alpha)]))
        rows.append(np.full((2, rows[-1].shape[1], 3), 255, np.uint8))
    return np.vstack(rows[:-1])
