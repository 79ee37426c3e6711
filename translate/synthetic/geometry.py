"""Scene geometry: the pinhole camera, the ``Layout`` of one scene and the canvas that rasterises it.

The canvas fills image-space polygons far to near (the painter's algorithm) into a map of
*regions*, and records for every region its material, orientation, texture plane, object and
depth; the label map is a lookup of the region map.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .materials import FRONT, MATERIAL_CLASS, MATERIAL_INDEX, SCREEN

SUBPIXEL = 4  # fixed-point bits for cv2 polygon filling
Z_NEAR = 0.3  # metres: nothing is projected nearer than this


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at height ``height`` m above the ground at X = 0, looking along +Z."""

    focal: float  # pixels
    height: float  # metres
    cx: float  # vanishing point column
    horizon: float  # horizon row

    def project(self, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """World points (arrays of one shape) -> image points (that shape + (2,))."""
        inv = self.focal / np.maximum(Z, Z_NEAR)
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


class Canvas:
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
        self.materials.append(MATERIAL_INDEX[material])
        self.normals.append(normal)
        self.planes.append(plane)
        self.objects.append(obj)
        self.depths.append(depth)
        rid = len(self.materials) - 1
        if rid > 65535:
            raise RuntimeError("too many regions in one scene")
        return rid

    def fill(
        self,
        polys: list[np.ndarray] | np.ndarray,
        material: str,
        normal: int,
        plane: int,
        obj: int,
        depth: float,
        disjoint: bool = False,
        convex: bool = True,
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
        pts = np.clip(np.round(pts * (1 << SUBPIXEL)), -(2**26), 2**26).astype(np.int32)
        region = self.region
        start = 0
        for rid, n, block in self._queue:
            stop = start + len(block)
            arr = pts[start:stop]
            if n < 0:  # one convex polygon: OpenCV's faster convex filler
                cv2.fillConvexPoly(region, arr, rid, lineType=cv2.LINE_8, shift=SUBPIXEL)
            else:
                polys = list(arr.reshape(-1, n, 2)) if len(block) != n else [arr]
                cv2.fillPoly(region, polys, rid, lineType=cv2.LINE_8, shift=SUBPIXEL)
            start = stop
        self._queue = []

    # geometric helpers: the corners of axis-aligned rectangles in the world, projected
    # (plain float arithmetic: these are called a hundred times per scene)
    def ground_quad(self, x0: float, x1: float, z0: float, z1: float, y: float = 0.0) -> np.ndarray:
        c = self.cam
        i0, i1 = c.focal / max(z0, Z_NEAR), c.focal / max(z1, Z_NEAR)
        y0, y1 = c.horizon + (c.height - y) * i0, c.horizon + (c.height - y) * i1
        return np.array([[c.cx + x0 * i0, y0], [c.cx + x1 * i0, y0], [c.cx + x1 * i1, y1], [c.cx + x0 * i1, y1]])

    def wall_quad(self, x: float, y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
        c = self.cam
        i0, i1 = c.focal / max(z0, Z_NEAR), c.focal / max(z1, Z_NEAR)
        return np.array(
            [
                [c.cx + x * i0, c.horizon + (c.height - y0) * i0],
                [c.cx + x * i1, c.horizon + (c.height - y0) * i1],
                [c.cx + x * i1, c.horizon + (c.height - y1) * i1],
                [c.cx + x * i0, c.horizon + (c.height - y1) * i0],
            ]
        )

    def front_quad(self, x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
        c = self.cam
        i = c.focal / max(z, Z_NEAR)
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
