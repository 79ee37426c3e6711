"""What a scene is made of: materials (each fixes a class), texture sources, surface orientations.

Every region of a layout is one surface of one object made of one material; the material fixes
its Cityscapes trainId (so labels never depend on appearance) and its palette entry.
"""

from __future__ import annotations

import numpy as np

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
MATERIAL_INDEX = {name: i for i, name in enumerate(MATERIAL_NAMES)}
MATERIAL_CLASS = np.array([MATERIALS[m] for m in MATERIAL_NAMES], dtype=np.uint8)

#: texture sources: grey-level photographs from scikit-image, plus smooth noise for clouds
TEXTURE_SOURCES: tuple[str, ...] = ("gravel", "brick", "grass", "clouds")

# surface orientations (for sunlight) and texture planes (for perspective-correct textures)
FRONT, UP, PLUS_X, MINUS_X = 0, 1, 2, 3  # normals: facing the camera, up, +X, -X
NORMALS = np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0], [-1, 0, 0]], dtype=np.float64)
SCREEN, GROUND, LEFT_WALL, RIGHT_WALL = 0, 1, 2, 3  # texture planes
