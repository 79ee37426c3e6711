"""Textures: grey-level photographs tiled into an atlas and laid on each surface in perspective.

The photographs ship with scikit-image (no download). Ground pixels are textured by their (X, Z)
on the ground plane and facade pixels by their (Z, -Y) on the facade, so textures shrink with
distance as they would on a real street; surfaces facing the camera are textured in image space.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .appearance import Appearance
from .geometry import Layout
from .materials import GROUND, LEFT_WALL, MATERIAL_NAMES, RIGHT_WALL, SCREEN, TEXTURE_SOURCES


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


ATLAS_PX = 256  # atlas size in pixels; it covers _ATLAS_METRES on the ground and on facades
_ATLAS_METRES = 12.0
_ATLAS_STD = 40.0  # the atlas is stored as uint8: 128 + 40 × (zero-mean, unit-variance texture)
ATLAS_LUT = (np.arange(256, dtype=np.float32) - 128.0) / _ATLAS_STD


@lru_cache(maxsize=8)
def texture_atlas(metres: tuple[tuple[str, float], ...]) -> np.ndarray:
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
        tile = cv2.resize(img, (ATLAS_PX // reps, ATLAS_PX // reps), interpolation=cv2.INTER_AREA)
        full = np.tile(tile, (reps, reps))
        if full.shape[0] != ATLAS_PX:
            full = cv2.resize(full, (ATLAS_PX, ATLAS_PX), interpolation=cv2.INTER_LINEAR)
        full = (full - full.mean()) / (full.std() + 1e-6)
        channels.append(np.clip(128.0 + _ATLAS_STD * full, 0, 255))
    atlas = np.ascontiguousarray(np.stack(channels, axis=-1).round().astype(np.uint8))
    atlas.setflags(write=False)
    return atlas


@lru_cache(maxsize=16)
def pixel_grids(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel row, column and squared normalised radius (for vignetting)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / (width / 2)) ** 2 * 0.6 + ((yy - height / 2) / (height / 2)) ** 2 * 0.4
    for a in (yy, xx, r2):
        a.setflags(write=False)
    return yy, xx, r2


@lru_cache(maxsize=16)
def flat_index(h: int, w: int, n_ch: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    out = (yy * w + xx) * n_ch
    out.setflags(write=False)
    return out


def surface_coords(layout: Layout, plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance (m) of every pixel, and its 2-D coordinates (m) on its own surface.

    Ground pixels get (X, Z) on the ground plane, facade pixels (Z, -Y) on their facade plane,
    so a texture indexed by them lies in correct perspective; surfaces facing the camera get
    image coordinates scaled to metres at a nominal 10 m and their region's depth.
    """
    h, w = layout.shape
    cam = layout.camera
    f = cam.focal
    yy, xx, _ = pixel_grids(h, w)
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


def screen_texture(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """The atlas tiled over the image, ``scale`` atlas pixels per image pixel, at a random offset."""
    atlas = texture_atlas(tuple(sorted(_SCREEN_METRES.items())))
    ou, ov = rng.uniform(0, ATLAS_PX, 2)
    M = np.array([[1.0 / scale, 0, -ou / scale], [0, 1.0 / scale, -ov / scale]])
    return cv2.warpAffine(atlas, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


# on surfaces facing the camera textures are tiled in image space, at these tile sizes
_SCREEN_METRES = {"gravel": 3.0, "brick": 6.0, "grass": 4.0, "clouds": 12.0}


def surface_texture(
    layout: Layout,
    app: Appearance,
    rng: np.random.Generator,
    plane: np.ndarray,
    depth: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    contrast_of_mat: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Multiplicative texture (mean ≈ 1) of every pixel, and the raw atlas lookup (reused for clouds).

    One remap of the texture atlas through each pixel's surface coordinates, then each pixel
    keeps the channel of its material's texture source.
    """
    h, w = layout.shape
    R = layout.region
    atlas = texture_atlas(tuple(sorted(app.texture_metres.items())))
    n_ch = atlas.shape[2]
    ppm = ATLAS_PX / _ATLAS_METRES
    ou, ov = rng.uniform(0, ATLAS_PX, 2)
    screen = plane == SCREEN
    # screen surfaces: screen_texture_scale atlas pixels per image pixel (at 256 pixels width)
    k = np.float32(app.screen_texture_scale * 256.0 / w * layout.camera.focal / 10.0 / ppm)
    scale = np.where(screen, k * ppm, np.float32(ppm))
    # atlas coordinates, wrapped into [0, P) here (remap's fixed-point maps would overflow far away)
    mu, mv = u * scale + np.float32(ou), v * scale + np.float32(ov)
    p = np.float32(ATLAS_PX)
    mu -= np.floor(mu * np.float32(1.0 / ATLAS_PX)) * p
    mv -= np.floor(mv * np.float32(1.0 / ATLAS_PX)) * p
    lookup = cv2.remap(atlas, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    chan_of_mat = np.array([TEXTURE_SOURCES.index(app.textures[m]) if m in app.textures else 0 for m in MATERIAL_NAMES])
    mats = layout.region_material
    idx = flat_index(h, w, n_ch) + np.take(chan_of_mat[mats], R)
    t = ATLAS_LUT[lookup.reshape(-1)[idx]]
    # fade textures where they get smaller than a pixel (a camera averages them away; we would alias)
    fade = np.minimum((2.0 * layout.camera.focal / ppm) / np.maximum(depth, 1e-3), 1.0)
    fade[screen] = 1.0
    contrast = np.take(contrast_of_mat[mats], R) * fade
    return np.maximum(1.0 + contrast * t, 0.05), lookup
