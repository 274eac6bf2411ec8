"""``depth``: how far is an object from the camera, and which of several is closest?

Each image is a photo-like perspective rendering from a pinhole camera above a flat plaza: sky and
distant hills above the horizon, 1 m paving tiles (darker joints every 5 m, counted from the point
under the camera) receding to it, and 3-8 labelled solids (cubes, crates, pillars, cylinders,
balls, cones) standing on the ground at known 3D positions, drawn far to near with soft shadows.

- numeric: "How far is the <X> from the camera, in metres?" -- the straight-line distance from
  the camera centre to the object's 3D centre (the middle of its bounding box). The question gives
  the camera height and the tile size, so the scene can be measured.
- multiple choice: "Which object is closer to the camera?" over 2-4 named objects; every other
  option is at least the level's ``margin`` times as far as the correct one.

Drawing helps: a line from the bottom of the image to an object's ground contact point crosses
the tile rows between camera and object (count them against the 5 m joints), and boxes tie each
name to the right silhouette among look-alikes and partly hidden objects.

World axes: x right, y up, z forward, in metres; the camera is at (0, h, 0), pitched down by
``pitch_deg``; pixels (u, v) grow right and down. Difficulty (:data:`LEVELS`) raises the number of
objects, occlusion, look-alike distractors (shared kinds, similar colours), the distance range and
the number of options, and narrows the margin between options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from drawenv.canvas import font
from drawenv.tasks.record import TaskRecord
from drawenv.tasks.scene import Painter, item_rng, shuffled_options, textured_background

WIDTH, HEIGHT = 504, 392  # multiples of 28 within 256*28*28 px: shown unresized
LABEL_PX = 13


@dataclass(frozen=True)
class Level:
    """Knobs of one difficulty level."""

    objects: tuple[int, int]  # fewest and most objects in the scene
    z_max: float  # farthest forward distance of an object, metres
    min_visible: float  # least visible share of any object's silhouette
    occlude: float  # chance an object is put on the line of sight of an earlier one
    similar: float  # chance an object shares the kind or a similar colour of an earlier one
    options: int  # options of the "closer" question
    margin: float  # wrong options are at least this many times as far as the right one


LEVELS = {
    1: Level((3, 4), 12.0, 1.0, 0.0, 0.0, 2, 1.5),
    2: Level((4, 6), 20.0, 0.75, 0.3, 0.4, 3, 1.3),
    3: Level((6, 8), 30.0, 0.5, 0.6, 0.8, 4, 1.15),
}
COLOURS = {  # around the colour wheel
    "red": (214, 48, 44),
    "orange": (238, 132, 32),
    "yellow": (236, 200, 40),
    "green": (56, 160, 64),
    "teal": (32, 156, 150),
    "blue": (46, 96, 212),
    "purple": (128, 72, 188),
    "pink": (228, 104, 168),
}
KINDS = ("cube", "crate", "pillar", "cylinder", "ball", "cone")
LIGHT = np.array([-0.45, 0.8, -0.4]) / np.linalg.norm([-0.45, 0.8, -0.4])


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at (0, height, 0) looking along +z, pitched down by ``pitch_deg``."""

    focal_px: float
    height_m: float
    pitch_deg: float
    cx: float = WIDTH / 2
    cy: float = HEIGHT / 2

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) to pixels (N, 2)."""
        p = np.asarray(points, dtype=float) - (0.0, self.height_m, 0.0)
        s, c = math.sin(math.radians(self.pitch_deg)), math.cos(math.radians(self.pitch_deg))
        up, forward = p[:, 1] * c + p[:, 2] * s, p[:, 2] * c - p[:, 1] * s
        return np.stack([self.cx + self.focal_px * p[:, 0] / forward,
                         self.cy - self.focal_px * up / forward], axis=1)  # fmt: skip


@dataclass
class Solid:
    """One object on the ground: kind, colour, footprint centre (x, z), size (w, h, d), yaw."""

    kind: str
    colour: str
    x: float
    z: float
    size: tuple[float, float, float]
    yaw: float
    faces: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    outline: np.ndarray | None = None  # silhouette polygon in pixels
    mask: tuple[tuple[slice, slice], np.ndarray] | None = None  # see _mask

    @property
    def name(self) -> str:
        """The name shown on the label and used in questions."""
        return f"{self.colour} {self.kind}"

    @property
    def centre(self) -> tuple[float, float, float]:
        """Middle of the bounding box, metres."""
        return (self.x, self.size[1] / 2, self.z)


def generate(seed: int, index: int, difficulty: int = 1) -> TaskRecord:
    """Item ``index`` of the suite: a pure function of (seed, index, difficulty)."""
    rng = item_rng("depth", seed, index, difficulty)
    level = LEVELS[difficulty]
    while True:  # a scene that cannot carry the question is redrawn from the same generator
        cam = Camera(
            float(rng.integers(360, 441)),
            round(float(rng.uniform(1.0, 1.8)), 1),
            round(float(rng.uniform(7.0, 14.0)), 1),
        )
        solids = _place(rng, cam, level)
        image, visible = _render(rng, cam, solids)
        distance = {s.name: _distance(cam, s) for s in solids}
        eligible = [s.name for s, seen in zip(solids, visible) if seen >= 0.6]
        numeric = bool(rng.random() < 0.5)
        ground = {s.name: math.hypot(s.x, s.z) for s in solids}
        asked = _pick(
            rng, eligible, distance, ground, 1 if numeric else level.options, level.margin
        )
        if asked and len(solids) >= level.objects[0]:
            break
    objects = [
        {
            "name": s.name,
            "box": [round(float(v), 1) for v in (*s.outline.min(0), *s.outline.max(0))],
            "centre_3d": [round(v, 3) for v in s.centre],
            "distance_m": distance[s.name],
            "kind": s.kind,
            "colour": list(COLOURS[s.colour]),
            "visible": round(float(seen), 3),
        }
        for s, seen in zip(solids, visible)
    ]
    key_drawings = []
    for o, s in zip(objects, solids):
        if o["name"] in asked:
            foot = cam.project(np.array([[s.x, 0.0, s.z]]))[0]
            key_drawings += [
                {"kind": "box", "index": 1, "bbox": o["box"], "label": o["name"]},
                {"kind": "line", "index": 1, "start": [WIDTH / 2, HEIGHT - 1],
                 "end": [round(float(v), 1) for v in foot], "label": f"to {o['name']}"},
            ]  # fmt: skip
    if numeric:
        question = (
            f"The camera is {cam.height_m:.1f} m above flat ground paved with 1 m square tiles "
            "(a darker joint every 5 m, counted from the point under the camera). How far is the "
            f"{asked[0]} from the camera, in metres, measured in a straight line to its centre?"
        )
        answer, options = distance[asked[0]], ()
    else:
        options, answer = shuffled_options(rng, asked[0], asked[1:])
        question = (
            "Which object is closer to the camera?"
            if len(asked) == 2
            else "Which of these objects is closest to the camera?"
        )
    return TaskRecord(
        id=f"depth-{seed}-{difficulty}-{index}",
        images=(image,),
        question=question,
        answer_type="numeric" if numeric else "multiple_choice",
        answer=answer,
        options=options,
        metadata={
            "suite": "depth",
            "difficulty": difficulty,
            "seed": seed,
            "index": index,
            "camera": {
                "focal_px": cam.focal_px,
                "cx": cam.cx,
                "cy": cam.cy,
                "height_m": cam.height_m,
                "pitch_deg": cam.pitch_deg,
            },
            "tile_m": 1.0,
            "asked": list(asked),
            "objects": objects,
            "key_drawings": key_drawings,
        },
    )


def _distance(cam: Camera, solid: Solid) -> float:
    x, y, z = (round(v, 3) for v in solid.centre)
    return round(math.sqrt(x * x + (y - cam.height_m) ** 2 + z * z), 2)


def _pick(rng, eligible, distance, ground, count, margin) -> list[str]:
    """``count`` names whose first is nearer than the others by ``margin``, both in a straight
    line and along the ground (so either reading of "closer" agrees); [] when there are none."""
    for i in rng.permutation(len(eligible)):
        near = eligible[i]
        far = [
            n
            for n in eligible
            if distance[n] >= margin * distance[near] and ground[n] >= margin * ground[near]
        ]
        if len(far) >= count - 1:
            return [near, *(str(n) for n in rng.choice(far, count - 1, replace=False))]
    return []


def _place(rng: np.random.Generator, cam: Camera, level: Level) -> list[Solid]:
    """Objects in view, apart on the ground and visible enough; sorted far to near."""
    solids: list[Solid] = []
    wanted = int(rng.integers(level.objects[0], level.objects[1] + 1))
    for _ in range(60 * wanted):
        if len(solids) == wanted:
            break
        kind, colour = str(rng.choice(KINDS)), str(rng.choice(list(COLOURS)))
        if solids and rng.random() < level.similar:
            ref = solids[int(rng.integers(len(solids)))]
            if rng.random() < 0.5:
                wheel = list(COLOURS)  # in hue order: neighbours look alike
                step = 1 if rng.random() < 0.5 else -1
                kind, colour = ref.kind, wheel[(wheel.index(ref.colour) + step) % len(wheel)]
            else:
                colour = ref.colour
        z = round(float(math.exp(rng.uniform(math.log(1.5), math.log(level.z_max)))), 2)
        if solids and rng.random() < level.occlude:
            ref = solids[int(rng.integers(len(solids)))]
            x = ref.x * z / ref.z + float(rng.normal(0, 0.25))
        else:
            x = float(rng.uniform(-0.85, 0.85)) * z * cam.cx / cam.focal_px
        solid = Solid(kind, colour, round(x, 2), z, _size(rng, kind), float(rng.uniform(0, 90)))
        if solid.name in {s.name for s in solids} or any(
            math.hypot(s.x - solid.x, s.z - solid.z) < _reach(s) + _reach(solid) + 0.3
            for s in solids
        ):
            continue
        _build(solid, cam)
        (x1, y1), (x2, y2) = solid.outline.min(0), solid.outline.max(0)
        if x1 < 6 or x2 > WIDTH - 6 or y1 < LABEL_PX + 10 or y2 > HEIGHT - 8 or y2 - y1 < 6:
            continue
        trial = sorted([*solids, solid], key=lambda s: -_distance(cam, s))
        if min(_visible(trial, [])) >= level.min_visible:
            solids = trial
    return solids


def _size(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
    u = lambda a, b: round(float(rng.uniform(a, b)), 2)  # noqa: E731
    if kind == "cube":
        side = u(0.45, 0.9)
        return side, side, side
    if kind == "crate":
        return u(0.8, 1.3), u(0.4, 0.7), u(0.6, 1.0)
    if kind == "pillar":
        side = u(0.3, 0.45)
        return side, u(1.1, 1.8), side
    radius = u(0.2, 0.55) if kind == "ball" else u(0.22, 0.45)
    tall = {"ball": 2 * radius, "cylinder": u(0.5, 1.3), "cone": u(0.6, 1.2)}[kind]
    return 2 * radius, tall, 2 * radius


def _reach(solid: Solid) -> float:
    return math.hypot(solid.size[0], solid.size[2]) / 2


def _build(solid: Solid, cam: Camera) -> None:
    """3D faces (vertices, outward normal) and the projected silhouette of ``solid``."""
    w, h, d = solid.size
    centre = np.array([solid.x, 0.0, solid.z])
    eye, lift = np.array([0.0, cam.height_m, 0.0]), np.array([0.0, h, 0.0])
    if solid.kind == "ball":
        sphere = centre + lift / 2
        gap = np.linalg.norm(eye - sphere)
        axis = (eye - sphere) / gap
        side = np.cross(axis, (0, 1, 0))
        side /= np.linalg.norm(side)
        ring_centre = sphere + axis * (h / 2) ** 2 / gap
        radius = h / 2 * math.sqrt(1 - (h / 2 / gap) ** 2)
        angle = np.linspace(0, 2 * math.pi, 48, endpoint=False)[:, None]
        ring = ring_centre + radius * (np.cos(angle) * side + np.sin(angle) * np.cross(axis, side))
        solid.outline = cam.project(ring)
        return
    if solid.kind in ("cube", "crate", "pillar"):
        cos, sin = math.cos(math.radians(solid.yaw)), math.sin(math.radians(solid.yaw))
        local = np.array([[-w, -d], [w, -d], [w, d], [-w, d]]) / 2
        ring = np.stack([local @ (cos, -sin), np.zeros(4), local @ (sin, cos)], 1)
    else:
        angle = np.linspace(0, 2 * math.pi, 36, endpoint=False)
        ring = np.stack([np.cos(angle) * w / 2, np.zeros(36), np.sin(angle) * d / 2], 1)
    bottom = centre + ring
    top = np.tile(centre + lift, (len(ring), 1)) if solid.kind == "cone" else bottom + lift
    verts = np.stack([bottom, np.roll(bottom, -1, 0), np.roll(top, -1, 0), top], 1)
    normals = np.cross(verts[:, 1] - verts[:, 0], verts[:, 2] - verts[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    normals *= np.sign(np.sum(normals * (verts.mean(1) - centre - (0, h / 3, 0)), 1))[:, None]
    faces = [*zip(verts, normals)]
    if solid.kind != "cone":
        faces.append((top, np.array([0.0, 1.0, 0.0])))
    solid.faces = [(v, n) for v, n in faces if n @ (eye - v.mean(0)) > 0]
    points = cam.project(np.concatenate([bottom, top]))
    solid.outline = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(float)


def _mask(points: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
    """The filled polygon as (rows, columns) slices of the image and a boolean crop."""
    (x1, y1), (x2, y2) = np.floor(points.min(0)).astype(int), np.ceil(points.max(0)).astype(int)
    canvas = Image.new("1", (x2 - x1 + 1, y2 - y1 + 1))
    ImageDraw.Draw(canvas).polygon([(u - x1, v - y1) for u, v in points], fill=1)
    return (slice(y1, y2 + 1), slice(x1, x2 + 1)), np.asarray(canvas)


def _visible(solids: list[Solid], labels: list[tuple[float, ...]]) -> list[float]:
    """Visible share of each silhouette (far to near order) behind nearer ones and labels."""
    cover = np.zeros((HEIGHT, WIDTH), bool)
    for x1, y1, x2, y2 in labels:
        cover[max(0, int(y1)) : int(y2) + 1, max(0, int(x1)) : int(x2) + 1] = True
    shares = []
    for solid in reversed(solids):
        if solid.mask is None:
            solid.mask = _mask(solid.outline)
        where, inside = solid.mask
        shares.append(float((inside & ~cover[where]).sum()) / max(1, int(inside.sum())))
        cover[where] |= inside
    return shares[::-1]


def _shade(rgb: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, c * k)) for c in rgb)


def _render(rng, cam: Camera, solids: list[Solid]) -> tuple[np.ndarray, list[float]]:
    """The picture, and each object's visible share once labels are on."""
    painter = Painter(_backdrop(rng, cam, solids), scale=2)
    for solid in solids:
        base = COLOURS[solid.colour]
        if solid.kind == "ball":
            glow = cam.project(np.array([solid.centre]) + 0.4 * solid.size[1] * LIGHT)[0]
            for t in np.linspace(1.0, 0.1, 16):  # rings shrinking towards the lit side
                painter.polygon(glow + (solid.outline - glow) * t, _shade(base, 1.1 - 0.55 * t))
        for verts, normal in solid.faces:
            fill = _shade(base, 0.5 + 0.5 * max(0.0, float(normal @ LIGHT)))
            edge = _shade(base, 0.45) if solid.kind in ("cube", "crate", "pillar") else fill
            painter.polygon(cam.project(verts), fill, edge, width=0.8)
        painter.polygon(solid.outline, None, _shade(base, 0.45), width=0.8)
    labels: list[tuple[float, ...]] = []
    taken = np.zeros((HEIGHT + 1, WIDTH + 1))
    for where, inside in (s.mask for s in solids):
        taken[1:, 1:][where] += inside
    taken = np.cumsum(np.cumsum(taken > 0, 0), 1)
    for solid in solids:
        labels.append(_label(painter, solid, labels, taken))
    return painter.result(), _visible(solids, labels)


def _label(painter: Painter, solid: Solid, labels, taken: np.ndarray) -> tuple[float, ...]:
    """Put the name next to the object where it hides the least, and return its box."""
    left, top, right, bottom = font(LABEL_PX).getbbox(solid.name)
    lw, lh = right - left + 4, bottom - top + 4
    (x1, y1), (x2, y2) = solid.outline.min(0), solid.outline.max(0)
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    best = None
    for rank, (u, v) in enumerate(
        [(mx, y1 - 3 - lh / 2), (x2 + 4 + lw / 2, my), (x1 - 4 - lw / 2, my), (mx, y2 + 3 + lh / 2)]
    ):
        u = min(max(u, lw / 2 + 2), WIDTH - lw / 2 - 2)
        v = min(max(v, lh / 2 + 2), HEIGHT - lh / 2 - 2)
        box = (u - lw / 2, v - lh / 2, u + lw / 2, v + lh / 2)
        a, b, c, d = (round(t) for t in box)
        cost = taken[d, c] - taken[b, c] - taken[d, a] + taken[b, a] + 3 * rank
        cost += sum(
            50 * max(0, min(c, q[2]) - max(a, q[0])) * max(0, min(d, q[3]) - max(b, q[1]))
            for q in labels
        )
        if best is None or cost < best[0]:
            best = (cost, u, v)
    return painter.text(best[1:], solid.name, LABEL_PX, (255, 255, 255), halo=(25, 25, 25))


def _backdrop(rng, cam: Camera, solids: list[Solid]) -> np.ndarray:
    """Sky, hazy hills and the tiled ground with the objects' soft shadows."""
    u = np.arange(WIDTH, dtype=np.float32) + 0.5
    v = np.arange(HEIGHT, dtype=np.float32)[:, None] + 0.5
    s, c = math.sin(math.radians(cam.pitch_deg)), math.cos(math.radians(cam.pitch_deg))
    up = -(v - cam.cy) / cam.focal_px
    fall = s - up * c  # downward slope of each pixel row's ray; > 0 below the horizon
    ground = fall > 1e-4
    t = np.where(ground, cam.height_m / np.where(ground, fall, 1.0), 0.0)  # metres per unit
    gx, gz = t * (u - cam.cx) / cam.focal_px, t * (up * s + c)  # gz and all but gx: per row
    per_m_u, per_m_v = (
        cam.focal_px / np.maximum(t, 1e-6),
        1 / (np.abs(np.gradient(gz, axis=0)) + 1e-9),
    )
    joints = np.zeros((HEIGHT, WIDTH), np.float32)
    for period, half, strength in ((1.0, 0.01, 0.3), (5.0, 0.022, 0.55)):
        for coord, scale in ((gx, per_m_u), (gz, per_m_v)):
            dist = np.abs(coord / period - np.round(coord / period)) * period * scale
            width = 2 * half * scale
            cover = np.clip((np.maximum(width, 1) + 1) / 2 - dist, 0, 1) * np.minimum(width, 1)
            joints = np.maximum(joints, strength * cover * np.clip((period * scale - 3) / 6, 0, 1))
    tiles = rng.normal(0, 0.05, (32, 32)).astype(np.float32)
    tiles = tiles[np.floor(gx).astype(np.int32) & 31, np.floor(gz).astype(np.int32) & 31]
    tiles *= np.clip((np.minimum(per_m_u, per_m_v) - 3) / 8, 0, 1)
    shadow = Image.new("L", (WIDTH // 2, HEIGHT // 2))  # soft anyway: drawn at half size
    away = -LIGHT[[0, 2]] / np.linalg.norm(LIGHT[[0, 2]])
    angle = np.linspace(0, 2 * math.pi, 32)[:, None]
    for solid in solids:
        reach, tall = _reach(solid) * 0.9, solid.size[1]
        spot = (solid.x, solid.z) + away * 0.25 * tall + np.cos(angle) * away * (reach + tall / 4)
        spot += np.sin(angle) * (-away[1], away[0]) * reach
        ring = np.stack([spot[:, 0], np.zeros(len(spot)), spot[:, 1]], 1)
        ImageDraw.Draw(shadow).polygon([tuple(p / 2) for p in cam.project(ring)], fill=128)
    shadow = shadow.filter(ImageFilter.GaussianBlur(1.2)).resize((WIDTH, HEIGHT), Image.BILINEAR)
    shadow = np.asarray(shadow, np.float32) / 255
    tint = (int(rng.integers(150, 180)), int(rng.integers(145, 170)), int(rng.integers(130, 160)))
    floor = textured_background(rng, WIDTH, HEIGHT, tint, grain=5).astype(np.float32)
    floor *= ((1 + tiles) * (1 - joints) * (1 - shadow))[..., None]
    haze = np.array([212, 220, 228], np.float32) + rng.normal(0, 4, 3).astype(np.float32)
    floor += (haze - floor) * (1 - np.exp(-gz / 70))[..., None]
    rows = int(np.argmax(ground[:, 0]))  # the sky's rows
    floor[:rows] = _sky(rng, u, v[:rows], cam.cy - cam.focal_px * s / c, haze)
    return np.clip(floor, 0, 255).astype(np.uint8)


def _sky(rng, u: np.ndarray, v: np.ndarray, horizon: float, haze: np.ndarray) -> np.ndarray:
    """A blue gradient with soft clouds, and a ridge of hazy hills on the horizon."""
    lift = np.clip((horizon - v) / (horizon + 30), 0, 1) ** 0.7
    top = np.array([92, 142, 212], np.float32) + rng.normal(0, 8, 3).astype(np.float32)
    sky = np.repeat(haze + (top - haze) * lift[..., None], len(u), axis=1)
    clouds = Image.new("L", (len(u) // 4, max(1, len(v) // 4)))
    for _ in range(int(rng.integers(2, 6))):
        cu, cv, size = rng.uniform(0, len(u)), rng.uniform(0, horizon - 25), rng.uniform(12, 30)
        for du, dv in rng.normal(0, 1, (4, 2)) * (2 * size, size / 3):
            box = (
                cu + du - 1.6 * size,
                cv + dv - size / 2,
                cu + du + 1.6 * size,
                cv + dv + size / 2,
            )
            ImageDraw.Draw(clouds).ellipse([q / 4 for q in box], fill=150)
    clouds = clouds.filter(ImageFilter.GaussianBlur(1.75)).resize((len(u), len(v)), Image.BILINEAR)
    sky += (250 - sky) * (np.asarray(clouds, np.float32) / 255)[..., None]
    phase = rng.uniform(0, 2 * math.pi, 3)
    ridge = sum(a * (1 + np.sin(u / p + q)) for a, p, q in zip((4, 2.5, 1.2), (70, 23, 9), phase))
    hill = np.clip(v - (horizon - ridge - 2), 0, 1)[..., None]
    return sky + (haze * 0.8 + np.array([-10, 5, -5], np.float32) - sky) * hill
