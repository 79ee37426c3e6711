"""Procedural street scenes: a small, embedded stand-in for the GTA5 → Cityscapes benchmark.

A scene is made in two steps, so that the same street can be shown in two domains:

1. ``sample_layout(rng, height, width)`` (``layout.py``, on ``geometry.py``'s camera and canvas)
   draws the *geometry* of a street in perspective — road, sidewalks, building facades with
   windows, trees, poles, traffic signs, cars and people — and rasterises it into a map of
   *regions*. Each region is one surface of one object made of one material (``materials.py``:
   a car's side window, a building's facade); the label map (Cityscapes trainIds) is a lookup of
   the region map, so labels never depend on appearance.
2. ``render(layout, appearance, rng)`` (``render.py``, ``textures.py``) paints the regions under
   an ``Appearance`` (``appearance.py``, presets in ``presets/*.yaml``): the per-material palette,
   textures cut from real photographs shipped with scikit-image (warped into the perspective of
   the ground and facade planes), sunlight with cast shadows, an illumination gradient, haze,
   and camera effects (blur, sensor noise, vignetting, JPEG).

The source domain (preset ``game``) is flat, saturated and cleanly lit, like a game engine; the
target domain (preset ``real``, also ``overcast`` and ``dusk``) is textured and photographic, with a
different palette in which the brightness order of classes changes (the road is lighter than the
sidewalk in ``real``, darker in ``game``), so no global colour transform maps one onto the other.

``scenes.py`` makes scene ``i`` of a seed in a domain (a pure function of its arguments) and
``files.py`` writes scene sets in the GTA5 folder layout with a manifest.
"""

from ..segdata.classes import class_report
from .appearance import DEFAULT_PRESET, PRESETS, Appearance, appearance_from, load_appearance, preset
from .files import MANIFEST_FORMAT, write_scene_set
from .geometry import Camera, Layout
from .layout import sample_layout
from .materials import MATERIAL_NAMES, MATERIALS, TEXTURE_SOURCES
from .render import render
from .scenes import DOMAINS, SceneGenerator, contact_sheet, parse_size

__all__ = [
    "DEFAULT_PRESET",
    "DOMAINS",
    "MANIFEST_FORMAT",
    "MATERIALS",
    "MATERIAL_NAMES",
    "PRESETS",
    "TEXTURE_SOURCES",
    "Appearance",
    "Camera",
    "Layout",
    "SceneGenerator",
    "appearance_from",
    "class_report",
    "contact_sheet",
    "load_appearance",
    "parse_size",
    "preset",
    "render",
    "sample_layout",
    "write_scene_set",
]
