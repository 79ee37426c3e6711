"""Layout sampling: the random geometry of a street in perspective, independent of appearance.

Road, sidewalks with curbs and side streets, building facades with windows, trees, poles with
traffic signs, people and cars are drawn from one random generator and rasterised far to near.
"""

from __future__ import annotations

import numpy as np

from .geometry import Z_NEAR, Camera, Canvas, Layout
from .materials import FRONT, GROUND, LEFT_WALL, MINUS_X, PLUS_X, RIGHT_WALL, SCREEN, UP


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
    cv = Canvas(height, width, cam)
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
    cv.fill(
        [np.array([[-1, -1], [width + 1, -1], [width + 1, height + 1], [-1, height + 1]], float)],
        "sky",
        FRONT,
        SCREEN,
        sky,
        np.inf,
    )
    ground = cv.new_object()
    cv.fill([cv.ground_quad(-400, 400, Z_NEAR, 2000)], "grass", UP, GROUND, ground, 0.0)

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
        pts = cam.project(
            np.concatenate([xs, [150, -150]]), np.concatenate([heights, [0, 0]]), np.full(xs.size + 2, z_end)
        )
        cv.fill([pts], "foliage", FRONT, SCREEN, obj, z_end, convex=False)
        z_far = z_end

    # sidewalks (interrupted by side streets), curbs, road, side-street road surface
    walk = cv.new_object()
    curb = cv.new_object()
    for side, (x_in, x_out) in (("l", (road_l, wall_l)), ("r", (road_r, wall_r))):
        z0 = Z_NEAR
        cuts = crossings[side] + [(z_far, z_far)]
        for c0, c1 in cuts:
            if c0 > z0:
                cv.fill([cv.ground_quad(min(x_in, x_out), max(x_in, x_out), z0, c0)], "sidewalk", UP, GROUND, walk, 0.0)
                xc = x_in - 0.25 if side == "l" else x_in + 0.25
                cv.fill([cv.ground_quad(min(x_in, xc), max(x_in, xc), z0, c0, y=0.0)], "curb", UP, GROUND, curb, 0.0)
            z0 = c1
    road = cv.new_object()
    polys = [cv.ground_quad(road_l, road_r, Z_NEAR, z_far)]
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


def _markings(cv: Canvas, rng: np.random.Generator, road_l: float, road_r: float, z_far: float) -> None:
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
            polys.append(cv.ground_quad(x - 0.07, x + 0.07, Z_NEAR, min(z_far, 150.0)))
    if rng.random() < 0.2:  # a zebra crossing
        z = rng.uniform(6.0, 20.0)
        x = road_l + 0.3
        while x < road_r - 0.5:
            polys.append(cv.ground_quad(x, x + 0.5, z, z + 3.0))
            x += 1.0
    if polys:
        cv.fill(np.stack(polys), "marking", UP, GROUND, obj, 0.0, disjoint=True)


def _buildings(
    cv: Canvas, rng: np.random.Generator, side: str, x_wall: float, cuts: list[tuple[float, float]], z_far: float
) -> None:
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
        cv.casters.append(
            (min(x_wall, x_wall + sgn * depth), max(x_wall, x_wall + sgn * depth), max(z0, 0.0), z1, 0.0, h)
        )
        # end face towards the camera (visible where the nearer neighbour is lower or absent)
        if z0 > 1.0:
            cv.fill(
                [cv.front_quad(min(x_wall, x_wall + sgn * depth), max(x_wall, x_wall + sgn * depth), 0.0, h, z0)],
                "facade",
                FRONT,
                SCREEN,
                obj,
                z0,
            )
        cv.fill([cv.wall_quad(x_wall, 0.0, h, max(z0, Z_NEAR), z1)], "facade", normal, plane, obj, 0.0)
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


def _tree(cv: Canvas, rng: np.random.Generator, x: float, z: float, scale: float = 1.0) -> None:
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
    cv.circles(centres, cv.cam.focal * radii / max(z, Z_NEAR), "foliage", obj, z)
    cv.casters.append((x - r, x + r, z - r * 0.7, z + r * 0.7, trunk_h, trunk_h + 2 * r))
    cv.casters.append((x - trunk_w / 2, x + trunk_w / 2, z - 0.1, z + 0.1, 0.0, trunk_h))


def _pole(cv: Canvas, rng: np.random.Generator, x: float, z: float, sgn: float) -> None:
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


def _person(cv: Canvas, rng: np.random.Generator, x: float, z: float) -> None:
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


def _car(cv: Canvas, rng: np.random.Generator, x: float, z: float) -> None:
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
        win = cv.cam.project(
            np.full(4, xs), np.array([belt, belt, top, top]), np.array([z + 1.0, z1 - 0.6, z1 - 1.2, z + 1.4])
        )
        cv.fill([win], "car_window", normal, SCREEN, obj, z)
        t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        wheels = [
            cv.cam.project(np.full(t.shape, xs), 0.33 + 0.33 * np.sin(t), zc + 0.33 * np.cos(t))
            for zc in (z + 0.85, z1 - 0.85)
        ]
        cv.fill(wheels, "car_wheel", normal, SCREEN, obj, z)
    if cv.cam.height > top:  # the roof is seen from above
        cv.fill([cv.ground_quad(x0 + 0.15, x1 - 0.15, z + 1.4, z1 - 1.2, y=top)], "car_body", UP, SCREEN, obj, z)
    # the rear (or front) facing the camera
    cv.fill(
        [cv.front_quad(x0 + 0.05, x0 + 0.3, 0.0, 0.35, z), cv.front_quad(x1 - 0.3, x1 - 0.05, 0.0, 0.35, z)],
        "car_wheel",
        FRONT,
        SCREEN,
        obj,
        z,
    )
    cv.fill([cv.front_quad(x0, x1, 0.25, belt, z)], "car_body", FRONT, SCREEN, obj, z)
    rear_win = cv.cam.project(
        np.array([x0 + 0.1, x1 - 0.1, x1 - 0.25, x0 + 0.25]), np.array([belt, belt, top, top]), np.full(4, z + 0.3)
    )
    cv.fill([rear_win], "car_window", FRONT, SCREEN, obj, z)
    yl = belt - 0.22
    cv.fill(
        [
            cv.front_quad(x0 + 0.08, x0 + 0.38, yl, yl + 0.14, z - 0.01),
            cv.front_quad(x1 - 0.38, x1 - 0.08, yl, yl + 0.14, z - 0.01),
        ],
        "car_light",
        FRONT,
        SCREEN,
        obj,
        z,
    )
