"""Rendering: paint a layout under an ``Appearance``; all randomness comes from one generator.

Surface colour × sunlight (with cast shadows) × texture, then sky and clouds, haze, inked
outlines, and the camera: exposure, illumination ramp, vignetting, blur, sensor noise, tone
curve, JPEG.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from .appearance import Appearance
from .geometry import SUBPIXEL, Layout
from .materials import MATERIAL_INDEX, MATERIAL_NAMES, NORMALS, TEXTURE_SOURCES, UP
from .textures import ATLAS_LUT, pixel_grids, screen_texture, surface_coords, surface_texture


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
        [
            layout.camera.project(X + d[0] * c[:, k : k + 1], np.zeros_like(X), Z + d[1] * c[:, k : k + 1])
            for k in (4, 5)
        ],
        axis=1,
    )  # (K, 8, 2)
    pts = np.round(np.clip(pts, -8 * w, 8 * w) * (1 << SUBPIXEL)).astype(np.int32)
    for p in pts:
        cv2.fillConvexPoly(out, cv2.convexHull(p), 1, lineType=cv2.LINE_8, shift=SUBPIXEL)
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
    yy, xx, r2 = pixel_grids(h, w)
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
    sky_region = mats == MATERIAL_INDEX["sky"]
    direct = np.where(sky_region, 0.0, app.sun_strength * lam[layout.region_normal])
    ambient = np.where(sky_region, 1.0, app.ambient)
    img = np.take(saturate(colour * (ambient + direct)[:, None]), R, axis=0)

    gain = None  # per-pixel grey factor of the surfaces: cast shadows × texture
    if app.shadow_strength > 0 and app.sun_strength > 0:
        ground_region = layout.region_normal == UP
        factor = np.where(ground_region, (ambient + (1 - app.shadow_strength) * direct) / (ambient + direct), 1.0)
        gain = np.where(_shadow_map(layout, sun) > 0, np.take(factor.astype(np.float32), R), np.float32(1.0))

    plane = np.take(layout.region_plane, R)
    depth, u, v = surface_coords(layout, plane)
    contrast_of_mat = np.array(
        [app.texture_contrast.get(m, 0.0) if m in app.textures else 0.0 for m in MATERIAL_NAMES], np.float32
    )
    lookup = None
    if contrast_of_mat.any():
        modulation, lookup = surface_texture(layout, app, rng, plane, depth, u, v, contrast_of_mat)
        gain = modulation if gain is None else gain * modulation
    if gain is not None:
        img *= gain[..., None]

    # sky: gradient from the horizon colour to the zenith, with clouds (rows above the lowest sky pixel)
    sky = np.take(sky_region, R)
    rows = np.flatnonzero(sky.any(axis=1))
    if rows.size:
        r1 = rows[-1] + 1
        t = (np.clip((cam.horizon - np.arange(r1, dtype=np.float32)) / max(cam.horizon, 1.0), 0.0, 1.0) ** 0.6)[
            :, None, None
        ]
        horizon_c = saturate(colour[sky_region][0])
        zenith = saturate(np.asarray(app.sky_zenith, np.float64) / 255.0)
        sky_img = horizon_c * (1 - t) + zenith * t  # r1×1×3
        if app.clouds > 0:
            if lookup is None:
                lookup = screen_texture(rng, h, w, app.screen_texture_scale * 256.0 / w)
            noise = ATLAS_LUT[lookup[:r1, :, TEXTURE_SOURCES.index("clouds")]]
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
        ramp = np.float32(math.cos(theta) * 2.0 / w) * (xx - w / 2) + np.float32(math.sin(theta) * 2.0 / h) * (
            yy - h / 2
        )
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
