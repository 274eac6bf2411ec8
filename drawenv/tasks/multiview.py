"""``multiview``: frames of a short video of a tabletop; which object moved, or in what order did
objects appear?

Each item shows 2-4 frames (one original image each, all the same size) of one table with 4-8
coloured objects (mugs, books, balls, boxes, phones, plates, toy cars), filmed by a hand-held
camera: between frames the whole view pans and zooms a little and the lighting drifts. Two kinds of
question (multiple choice, four options):

- ``moved``: exactly one object is moved noticeably at some point; "Which object moved between the
  first and the last frame?" The wrong options are other objects of the scene.
- ``order``: someone puts objects on the table, one new object per frame; "In what order did these
  objects first appear?" The wrong options are other orderings of the same objects.

Drawing helps: boxing an object in each frame makes the comparison across frames explicit; with
the camera moving, only positions relative to boxed neighbours tell an object that was moved from
one that merely shifted with the view.

Difficulty (``LEVELS``): the number of frames (order questions need three or more), the number of
objects, how alike the objects look (level 1: every colour and kind differs; level 2: kinds
repeat; level 3: the same kinds in neighbouring shades), the camera's pan and zoom, and the size of
the move.

Metadata beyond the common keys: ``question_kind`` ("moved" or "order"); ``frames``: per frame the
visible objects ``{"name", "box"}`` in that frame's pixels; ``cameras``: per frame ``{"scale",
"offset"}`` mapping table coordinates to frame pixels (pixel = scale * table + offset);
``colours``: name -> fill RGB; ``moved``: ``{"name", "shift": [dx, dy], "frame"}`` (shift in table
pixels, ``frame`` the first frame showing the new position) or ``order``: the names in order of
first appearance. ``objects`` are the objects of frame 1; ``key_drawings`` box the moved object in
every frame, or each ordered object in the frame where it first appears, labelled
"<name> f<frame>" (image index = frame number).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from drawenv.tasks.record import TaskRecord
from drawenv.tasks.scene import Painter, item_rng, shuffled_options, textured_background


class Level(NamedTuple):
    """One difficulty level's knobs."""

    frames: int  # order questions use at least 3
    objects: tuple[int, int]  # inclusive range
    kinds: int  # how many kinds the objects share (0: every kind differs)
    shades: int  # how many neighbouring colours they share (0: every colour differs)
    pan: float  # largest camera shift from the centre, px
    zoom: float  # largest relative zoom change
    shift: tuple[float, float]  # how far the moved object goes, table px


LEVELS = {
    1: Level(2, (4, 5), 0, 0, 8.0, 0.02, (70.0, 110.0)),
    2: Level(3, (5, 6), 3, 0, 16.0, 0.05, (55.0, 85.0)),
    3: Level(4, (6, 8), 3, 4, 26.0, 0.10, (40.0, 65.0)),
}
WIDTH, HEIGHT = 448, 336  # multiples of 28, shown unresized
MARGIN = 56  # table texture beyond the first view, so every frame of the pan is covered
# In hue order: neighbours are the look-alikes of level 3. No name is part of another.
COLOURS = {
    "red": (212, 46, 44),
    "orange": (242, 138, 30),
    "yellow": (238, 204, 44),
    "green": (52, 160, 70),
    "teal": (28, 150, 150),
    "blue": (44, 88, 212),
    "purple": (130, 64, 182),
    "pink": (234, 108, 168),
}
KINDS = ("mug", "book", "ball", "box", "phone", "plate", "toy car")
TABLES = ((176, 136, 98), (150, 154, 160), (188, 174, 150), (120, 110, 104))
EXTENT = 1.45  # farthest point of any object from its centre, in radii
Part = tuple[list[tuple[float, float]], tuple[int, ...], "tuple[int, ...] | None"]


class Item(NamedTuple):
    """An object on the table: its name, look, and its centre in each frame (None: absent)."""

    name: str
    kind: str
    rgb: tuple[int, int, int]
    radius: float
    angle: float
    centres: list[tuple[float, float] | None]


def generate(seed: int, index: int, difficulty: int = 1) -> TaskRecord:
    """Item ``index`` of the suite: a pure function of (seed, index, difficulty)."""
    rng = item_rng("multiview", seed, index, difficulty)
    level = LEVELS[difficulty]
    kind = "moved" if rng.random() < 0.5 else "order"
    frames = max(level.frames, 3) if kind == "order" else level.frames
    cameras = _cameras(rng, level, frames)
    looks = _looks(rng, level, int(rng.integers(*level.objects, endpoint=True)))
    items, truth = _layout(rng, level, kind, cameras, looks)
    drawn = [
        {it.name: _placed(it, it.centres[f], camera) for it in items if it.centres[f]}
        for f, camera in enumerate(cameras)
    ]
    boxes = [{name: _box(parts) for name, parts in frame.items()} for frame in drawn]
    if kind == "moved":
        mover = truth["moved"]["name"]
        # Uniform among the others: picking look-alikes of the mover would make it the option
        # most like all the rest. The scene itself supplies the look-alikes at higher levels.
        others = [it.name for it in items if it.name != mover]
        wrong = [others[i] for i in rng.choice(len(others), size=3, replace=False)]
        options, answer = shuffled_options(rng, mover, wrong)
        question = (
            f"The {frames} images are frames of a video of a table, in time order; the camera "
            "moves a little between frames. Which object moved between the first and the last "
            "frame?"
        )
        relevant = [(mover, f) for f in range(frames)]
    else:
        order = truth["order"]
        perms = [p for p in itertools.permutations(order) if list(p) != order]
        picks = rng.choice(len(perms), size=3, replace=False)
        options, answer = shuffled_options(
            rng, ", then ".join(order), [", then ".join(perms[i]) for i in picks]
        )
        listed = [order[i] for i in rng.permutation(len(order))]
        question = (
            f"The {frames} images are frames of a video, in time order, while objects are put on "
            f"a table. In what order did the {', the '.join(listed[:-1])} and the {listed[-1]} "
            "first appear?"
        )
        relevant = [(name, min(f for f in range(frames) if name in drawn[f])) for name in order]
    frame_objects = [[{"name": n, "box": b} for n, b in frame.items()] for frame in boxes]
    return TaskRecord(
        id=f"multiview-{seed}-{difficulty}-{index}",
        images=_render(rng, drawn, cameras),
        question=question,
        answer_type="multiple_choice",
        answer=answer,
        options=options,
        metadata={
            "suite": "multiview",
            "difficulty": difficulty,
            "seed": seed,
            "index": index,
            "question_kind": kind,
            "objects": [dict(o) for o in frame_objects[0]],
            "frames": frame_objects,
            "cameras": [{"scale": s, "offset": [ox, oy]} for s, ox, oy in cameras],
            "colours": {it.name: list(it.rgb) for it in items},
            **truth,
            "key_drawings": [
                {"kind": "box", "index": f + 1, "bbox": boxes[f][name], "label": f"{name} f{f + 1}"}
                for name, f in relevant
            ],
        },
    )


def _cameras(rng: np.random.Generator, level: Level, frames: int) -> list[tuple[float, ...]]:
    """A smooth hand-held camera path: (scale, offset x, offset y) per frame, mapping table
    coordinates to frame pixels, zooming about the view's centre."""
    ends = [
        (1 + rng.uniform(-level.zoom, level.zoom), *rng.uniform(-level.pan, level.pan, size=2))
        for _ in range(2)
    ]
    path = []
    for f in range(frames):
        t = f / (frames - 1)
        zoom, px, py = ((1 - t) * a + t * b for a, b in zip(*ends))
        offset_x, offset_y = (1 - zoom) * WIDTH / 2 + px, (1 - zoom) * HEIGHT / 2 + py
        path.append((round(float(zoom), 4), round(float(offset_x), 2), round(float(offset_y), 2)))
    return path


def _looks(rng: np.random.Generator, level: Level, count: int) -> list[tuple[str, str]]:
    """``count`` distinct (colour, kind) pairs, as alike as the level asks."""
    if level.shades:  # a few kinds in neighbouring hues: look-alikes everywhere
        start, names = int(rng.integers(len(COLOURS))), list(COLOURS)
        colours = [names[(start + i) % len(names)] for i in range(level.shades)]
        kinds = [KINDS[i] for i in rng.permutation(len(KINDS))[: level.kinds]]
        pairs = [(c, k) for c in colours for k in kinds]
        return [pairs[i] for i in rng.permutation(len(pairs))[:count]]
    colours = [str(c) for c in rng.permutation(list(COLOURS))[:count]]
    if level.kinds:  # every colour differs, kinds repeat
        pool = [str(k) for k in rng.permutation(KINDS)[: level.kinds]]
        return [(c, pool[int(rng.integers(len(pool)))]) for c in colours]
    return list(zip(colours, (str(k) for k in rng.permutation(KINDS)[:count])))


def _layout(
    rng: np.random.Generator,
    level: Level,
    kind: str,
    cameras: list[tuple[float, ...]],
    looks: list[tuple[str, str]],
) -> tuple[list[Item], dict]:
    """Place the objects apart and inside every frame, with the move or the arrivals. Returns
    the objects and the question's ground truth (``moved`` or ``order``)."""
    frames = len(cameras)
    taken: list[tuple[float, float, float]] = []  # every place any object ever holds

    def fits(x: float, y: float, radius: float) -> bool:
        reach = EXTENT * radius
        inside = all(
            s * (x - reach) + ox >= 14
            and s * (x + reach) + ox <= WIDTH - 14
            and s * (y - reach) + oy >= 14
            and s * (y + reach) + oy <= HEIGHT - 14
            for s, ox, oy in cameras
        )
        return inside and all(
            math.dist((x, y), (u, v)) > EXTENT * (radius + q) + 16 for u, v, q in taken
        )

    def spot(radius: float) -> tuple[float, float]:
        for _ in range(500):
            x, y = float(rng.uniform(0, WIDTH)), float(rng.uniform(0, HEIGHT))
            if fits(x, y, radius):
                taken.append((x, y, radius))
                return x, y
        raise RuntimeError("no room on the table")  # not reached with these sizes

    radii = [float(rng.uniform(18, 23)) for _ in looks]
    names = [f"{colour} {kind_name}" for colour, kind_name in looks]
    centres: list[list[tuple[float, float] | None]] = []
    if kind == "moved":  # the mover's two places first, while the table is empty
        mover, frame = int(rng.integers(len(looks))), int(rng.integers(1, frames))
        while True:
            start = float(rng.uniform(0, WIDTH)), float(rng.uniform(0, HEIGHT))
            turn, reach = rng.uniform(0, 2 * math.pi), rng.uniform(*level.shift)
            shift = [round(float(reach * math.cos(turn))), round(float(reach * math.sin(turn)))]
            end = start[0] + shift[0], start[1] + shift[1]
            if fits(*start, radii[mover]) and fits(*end, radii[mover]):
                break
        taken += [(*start, radii[mover]), (*end, radii[mover])]
        path = [start] * frame + [end] * (frames - frame)
        centres = [path if i == mover else [spot(r)] * frames for i, r in enumerate(radii)]
        truth = {"moved": {"name": names[mover], "shift": shift, "frame": frame + 1}}
    else:  # one new object in each frame after the first
        new = [int(i) for i in rng.permutation(len(looks))[: frames - 1]]
        first = [new.index(i) + 1 if i in new else 0 for i in range(len(looks))]
        centres = [[None] * first[i] + [spot(r)] * (frames - first[i]) for i, r in enumerate(radii)]
        already = [i for i in range(len(looks)) if i not in new]
        truth = {"order": [names[i] for i in [int(rng.choice(already)), *new]]}
    angles = rng.uniform(-0.5, 0.5, size=len(looks))
    items = [
        Item(name, look[1], COLOURS[look[0]], radius, float(angle), where)
        for name, look, radius, angle, where in zip(names, looks, radii, angles, centres)
    ]
    return items, truth


def _parts(kind: str, rgb: tuple[int, int, int]) -> list[Part]:
    """An object's look, back to front: (polygon in radii about its centre, fill, rim or None)."""
    rim, dark, glass = tuple(int(0.6 * v) for v in rgb), (34, 32, 36), (64, 74, 94)
    light = tuple(int(v + 0.5 * (255 - v)) for v in rgb)

    def rect(x1: float, y1: float, x2: float, y2: float) -> list[tuple[float, float]]:
        return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]

    def disc(x: float, y: float, r: float) -> list[tuple[float, float]]:
        return [
            (x + r * math.cos(a), y + r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 33)[:-1]
        ]

    if kind == "ball":
        return [(disc(0, 0, 1.0), rgb, rim), (disc(-0.35, -0.35, 0.25), light, None)]
    if kind == "mug":
        coffee = (72, 46, 30)
        return [
            (rect(0.6, -0.2, 1.4, 0.2), rgb, rim),
            (disc(0, 0, 0.95), rgb, rim),
            (disc(0, 0, 0.68), coffee, None),
        ]
    if kind == "plate":
        return [(disc(0, 0, 1.2), rgb, rim), (disc(0, 0, 0.8), light, None)]
    if kind == "book":
        pages = (238, 232, 214)
        return [
            (rect(-0.85, -1.15, 0.85, 1.15), rgb, rim),
            (rect(0.6, -1.05, 0.78, 1.05), pages, None),
            (rect(-0.85, -1.15, -0.62, 1.15), rim, None),
        ]
    if kind == "box":
        return [
            (rect(-0.95, -0.95, 0.95, 0.95), rgb, rim),
            (rect(-0.12, -0.95, 0.12, 0.95), light, None),
            (rect(-0.95, -0.12, 0.95, 0.12), light, None),
        ]
    if kind == "phone":
        return [
            (rect(-0.62, -1.15, 0.62, 1.15), rgb, rim),
            (rect(-0.44, -0.9, 0.44, 0.9), dark, None),
        ]
    wheels = [
        (rect(x - 0.16, y - 0.26, x + 0.16, y + 0.26), dark, None)
        for x in (-0.66, 0.66)
        for y in (-0.62, 0.62)
    ]
    return [
        *wheels,
        (rect(-0.6, -1.15, 0.6, 1.15), rgb, rim),
        (rect(-0.44, -0.5, 0.44, -0.18), glass, None),
        (rect(-0.44, 0.42, 0.44, 0.64), glass, None),
    ]


def _placed(item: Item, centre: tuple[float, float], camera: tuple[float, ...]) -> list[Part]:
    """The parts of ``item`` at ``centre`` on the table, turned and mapped into frame pixels."""
    s, ox, oy = camera
    cos, sin = math.cos(item.angle), math.sin(item.angle)
    turn = item.radius * np.array([[cos, sin], [-sin, cos]])  # for row vectors
    return [
        ((s * (np.asarray(points) @ turn + centre) + (ox, oy)).tolist(), fill, rim)
        for points, fill, rim in _parts(item.kind, item.rgb)
    ]


def _box(parts: list[Part]) -> list[float]:
    """The tight box around placed parts."""
    xs = [x for points, *_ in parts for x, _ in points]
    ys = [y for points, *_ in parts for _, y in points]
    return [round(min(xs), 1), round(min(ys), 1), round(max(xs), 1), round(max(ys), 1)]


def _render(
    rng: np.random.Generator, drawn: list[dict[str, list[Part]]], cameras: list[tuple[float, ...]]
) -> tuple[np.ndarray, ...]:
    """The table's texture once; then each frame: the camera's view of it, plank seams and a mat,
    soft shadows, the objects (``drawn``: per frame, each object's placed parts), a lighting
    drift and sensor noise."""
    tint = TABLES[int(rng.integers(len(TABLES)))]
    side_w, side_h = WIDTH + 2 * MARGIN, HEIGHT + 2 * MARGIN
    texture = textured_background(rng, side_w, side_h, tint)
    # wood grain: light and dark bands along the planks, gently wavy
    bands = np.convolve(rng.normal(0, 1, side_h + 8), np.ones(3) / 3, mode="same")
    wave = 4 * np.sin(np.arange(side_w) / rng.uniform(40, 80) + rng.uniform(0, 6))
    rows = (np.arange(side_h)[:, None] + wave[None, :]).astype(int) % side_h
    grain = 9 * bands[rows]
    # Channel planes throughout: the same float sums as broadcasting over HxWx3, several times
    # faster.
    sums = ((_plane(texture, c, np.float32) + grain).astype(np.float32) for c in range(3))
    world = Image.fromarray(_merged(sums))  # rounded to float32 as the in-place sum was
    seam, shade = tuple(int(0.8 * v) for v in tint), rng.choice([0.8, 1.15])
    mat_colour = tuple(int(min(255, v * shade)) for v in tint)
    seams = [
        (float(y), float(y + rng.uniform(-6, 6)))
        for y in np.arange(rng.uniform(-MARGIN, 0), HEIGHT + MARGIN, rng.uniform(60, 90))
    ]
    x, y = rng.uniform(0, WIDTH - 200), rng.uniform(0, HEIGHT - 140)
    mat = (x, y, x + rng.uniform(160, 240), y + rng.uniform(110, 160))
    images = []
    for frame, (s, ox, oy) in zip(drawn, cameras):
        view = world.transform(
            (WIDTH, HEIGHT),
            Image.Transform.AFFINE,
            (1 / s, 0, MARGIN - ox / s, 0, 1 / s, MARGIN - oy / s),
            resample=Image.Resampling.BILINEAR,
        )
        shadow = Image.new("L", (WIDTH, HEIGHT))
        for parts in frame.values():
            x1, y1, x2, y2 = _box(parts)
            ImageDraw.Draw(shadow).ellipse((x1 + 3, y1 + 4, x2 + 3, y2 + 4), fill=255)
        dark = np.asarray(shadow.filter(ImageFilter.GaussianBlur(4)), dtype=np.float32)
        shade = 1 - 0.0014 * dark
        view_pixels = np.asarray(view)
        shaded = [_plane(view_pixels, c, np.float32) * shade for c in range(3)]
        painter = Painter(cv2.merge([plane.astype(np.uint8) for plane in shaded]), scale=2)
        for left, right in seams:
            ends = [(-MARGIN, left), (WIDTH + MARGIN, right)]
            painter.line([(s * a + ox, s * b + oy) for a, b in ends], fill=seam, width=1.5)
        corners = [s * mat[0] + ox, s * mat[1] + oy, s * mat[2] + ox, s * mat[3] + oy]
        painter.rectangle(corners, mat_colour, radius=10 * s)
        for parts in frame.values():
            for points, fill, rim in parts:
                painter.polygon(points, fill=fill, outline=rim, width=1.2)
        light = rng.uniform(0.95, 1.05) + rng.choice([-1, 1]) * np.linspace(
            -0.03, 0.03, WIDTH, dtype=np.float32
        )
        painted = painter.result()
        noise = rng.integers(-4, 5, size=(HEIGHT, WIDTH)).astype(np.float32)  # grain
        cast = rng.integers(-4, 5, size=3).astype(np.float32)  # colour cast
        planes = ((_plane(painted, c, np.float32) * light + noise) + cast[c] for c in range(3))
        images.append(_merged(planes))
    return tuple(images)


def _plane(image: np.ndarray, channel: int, dtype: type) -> np.ndarray:
    """One channel of an HxWx3 array as a contiguous ``dtype`` plane."""
    return np.ascontiguousarray(image[:, :, channel], dtype=dtype)


def _merged(planes) -> np.ndarray:
    """Float channel planes clipped to 0..255 and truncated to one HxWx3 uint8 array."""
    return cv2.merge([np.clip(plane, 0, 255).astype(np.uint8) for plane in planes])
