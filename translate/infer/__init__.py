"""Tiled inference: translate images of any size in bounded memory, without seams.

* ``geometry``: overlapping tiles whose cores partition the image, and their blending windows;
* ``stats``: whole-image normalisation statistics shared by the tiles (hooks, moments, the
  passes that gather them);
* ``cache``: the frontier, every tile's state between those passes, in RAM or spilled to disk;
* ``tiled``: one image's tiled run and ``translate_image``;
* ``files``: image files and folders (``translate_file``, ``translate_path``);
* ``backend``: a generator file run by ONNX Runtime, OpenVINO or torch at bf16 (``open_generator``);
* ``graph_tiles``: a graph engine's exact tiles, the network cut at its norm layers into segments;
* ``lock``: one run at a time writes into an output folder (``FolderLock``).

How it works and what it costs: docs/inference.md.
"""

from .backend import BackendGenerator, open_generator
from .cache import (
    CACHE_MODES,
    DEFAULT_CACHE_MB,
    FRONTIER_VALUES_PER_PIXEL,
    DiskSlots,
    Frontier,
    MemorySlots,
    choose_cache,
)
from .files import (
    FolderReport,
    TranslateOptions,
    check_outputs,
    output_path,
    plan_outputs,
    translate_file,
    translate_path,
)
from .geometry import Span, blend_window, effective_geometry, iter_tiles, size_multiple, tile_spans
from .lock import FolderLock
from .stats import (
    Moments,
    SharedNormStats,
    check_norms_shareable,
    gather_image_stats,
    normalise,
    shareable_norms,
    thumbnail_stats,
    unshared_norms,
)
from .tiled import NORM_STATS, TiledRun, frontier_cache_mode, translate_image

__all__ = [
    "CACHE_MODES",
    "BackendGenerator",
    "DEFAULT_CACHE_MB",
    "FRONTIER_VALUES_PER_PIXEL",
    "NORM_STATS",
    "DiskSlots",
    "FolderLock",
    "FolderReport",
    "Frontier",
    "MemorySlots",
    "Moments",
    "SharedNormStats",
    "Span",
    "TiledRun",
    "TranslateOptions",
    "blend_window",
    "check_norms_shareable",
    "check_outputs",
    "choose_cache",
    "effective_geometry",
    "frontier_cache_mode",
    "gather_image_stats",
    "iter_tiles",
    "normalise",
    "open_generator",
    "output_path",
    "plan_outputs",
    "shareable_norms",
    "size_multiple",
    "thumbnail_stats",
    "tile_spans",
    "translate_file",
    "translate_image",
    "translate_path",
    "unshared_norms",
]
