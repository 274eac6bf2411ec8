"""Top-down floor plans shared by the ``distance`` and ``direction`` suites.

A :class:`FloorPlan` is one or a few rooms seen from above: textured floors, thick walls with
doorways, furniture drawn as distinct filled shapes with a readable label next to each, optional
rugs and unlabelled clutter, and a scale bar ("2 m") in a corner of a legend strip. The scale (px
per metre) varies by item, so a metric answer needs the bar. Objects keep a gap of :data:`GAP`
pixels from each other, walls and labels, so every recorded box holds its shape and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drawenv.canvas import font
from drawenv.tasks.scene import Colour, Painter, textured_background

SIZES = ((448, 448), (504, 392), (532, 364), (392, 504))  # multiples of 28, <= 256*28*28 px
GAP = 7  # px kept free around every object: pixel checks look 2..5 px outside a box
WALL_WIDTH, STRIP, MARGIN = 6.0, 36, 10  # px: wall stroke, legend strip, outer margin
WALL, TEXT, HALO, OUTSIDE = (78, 70, 64), (32, 32, 36), (255, 255, 255), (234, 234, 230)
PLATE, BAR = (252, 252, 252), (20, 20, 20)  # the scale bar: a flat dark bar on a white plate
FLOORS = ((226, 202, 168), (222, 224, 222), (204, 212, 196), (214, 206, 222))
RUGS = ((206, 186, 176), (186, 196, 212), (202, 206, 182))
# kind: (width m, depth m, main colour). The main colour fills most of the shape's box.
KINDS: dict[str, tuple[float, float, Colour]] = {
    "sofa": (2.0, 0.9, (84, 112, 168)),
    "bed": (2.0, 1.6, (168, 84, 108)),
    "table": (1.4, 0.9, (176, 120, 66)),
    "chair": (0.5, 0.5, (214, 118, 34)),
    "lamp": (0.4, 0.4, (246, 208, 60)),
    "plant": (0.6, 0.6, (56, 140, 66)),
    "TV": (1.2, 0.3, (28, 34, 76)),
    "desk": (1.4, 0.7, (118, 78, 156)),
    "fridge": (0.7, 0.7, (112, 162, 176)),
    "bathtub": (1.7, 0.8, (86, 168, 222)),
    "wardrobe": (1.8, 0.6, (100, 60, 40)),
    "bookshelf": (1.0, 0.35, (150, 150, 60)),
    "piano": (1.5, 0.6, (36, 30, 30)),
    "stove": (0.6, 0.6, (150, 70, 50)),
}
SIDES = ("n", "e", "s", "w")  # where an object's back faces


@dataclass
class Item:
    """One placed object: its label ``name``, ``kind``, tight ``box`` and label box (pixels)."""

    name: str
    kind: str
    box: tuple[float, float, float, float]
    side: str
    label_box: tuple[float, float, float, float] = (0, 0, 0, 0)

    @property
    def centre(self) -> tuple[float, float]:
        """The box centre in pixels."""
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


def _hits(a, b, pad: float = 0.0) -> bool:
    """Whether boxes ``a`` and ``b`` come closer than ``pad`` px."""
    return not (
        a[2] + pad <= b[0] or b[2] + pad <= a[0] or a[3] + pad <= b[1] or b[3] + pad <= a[1]
    )


def _shade(colour: Colour, factor: float) -> Colour:
    return tuple(int(min(255, max(0, c * factor))) for c in colour)  # type: ignore[return-value]


class FloorPlan:
    """A randomised floor plan; place objects with :meth:`place`, then :meth:`render` it.

    ``scale`` is a ``(low, high)`` range of px per metre, ``walls`` the number of interior walls
    (0-2), ``label_size`` the label font size in px (>= 12).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        scale: tuple[float, float],
        walls: int,
        label_size: int = 13,
    ):
        self.rng, self.label_size = rng, label_size
        self.width, self.height = SIZES[int(rng.integers(len(SIZES)))]
        self.scale = round(float(rng.uniform(*scale)), 2)
        self.strip_top = bool(rng.random() < 0.3)
        top = MARGIN + (STRIP if self.strip_top else 0)
        bottom = self.height - MARGIN - (0 if self.strip_top else STRIP)
        self.building = (MARGIN, top, self.width - MARGIN, bottom)
        half = WALL_WIDTH / 2
        self.inner = (MARGIN + half, top + half, self.width - MARGIN - half, bottom - half)
        self.items: list[Item] = []
        self.blocked: list[tuple[float, float, float, float]] = []  # walls, doors, clutter
        self.labels: list[tuple[float, float, float, float]] = []
        self.walls: list[tuple[tuple[float, float], tuple[float, float]]] = []
        self.doors: list[tuple[float, float, float, str]] = []  # hinge x, y, leaf px, direction
        self.rooms = [self.inner]
        self.rug_boxes: list = []
        self.stools: list[tuple[float, float, float, float]] = []
        self._split_rooms(walls)
        self._entrance()
        self._choose_scale_bar()

    # -- layout ---------------------------------------------------------------------------------

    def _split_rooms(self, walls: int) -> None:
        for _ in range(walls):
            room = max(self.rooms, key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
            vertical = (room[2] - room[0]) >= (room[3] - room[1])
            lo, hi = (room[0], room[2]) if vertical else (room[1], room[3])
            at = float(self.rng.uniform(lo + 0.38 * (hi - lo), lo + 0.62 * (hi - lo)))
            span = (room[1], room[3]) if vertical else (room[0], room[2])
            door = max(24.0, 0.9 * self.scale)
            start = float(self.rng.uniform(span[0] + 10, span[1] - door - 10))
            for a, b in ((span[0], start), (start + door, span[1])):
                seg = ((at, a), (at, b)) if vertical else ((a, at), (b, at))
                self.walls.append(seg)
                (ax, ay), (bx, by) = seg
                self.blocked.append(
                    (min(ax, bx) - 3, min(ay, by) - 3, max(ax, bx) + 3, max(ay, by) + 3)
                )
            self.blocked.append(  # keep doorways free
                (at - door, start, at + door, start + door)
                if vertical
                else (start, at - door, start + door, at + door)
            )
            self.rooms.remove(room)
            if vertical:
                self.rooms += [(room[0], room[1], at, room[3]), (at, room[1], room[2], room[3])]
            else:
                self.rooms += [(room[0], room[1], room[2], at), (room[0], at, room[2], room[3])]

    def _entrance(self) -> None:
        x1, y1, x2, y2 = self.inner
        leaf = max(22.0, min(40.0, 0.9 * self.scale))
        side = SIDES[int(self.rng.integers(4))]
        if side in "ns":
            x = float(self.rng.uniform(x1 + 12, x2 - leaf - 12))
            y = y1 if side == "n" else y2
            swing = (x, y1, x + leaf, y1 + leaf) if side == "n" else (x, y2 - leaf, x + leaf, y2)
        else:
            y = float(self.rng.uniform(y1 + 12, y2 - leaf - 12))
            x = x1 if side == "w" else x2
            swing = (x1, y, x1 + leaf, y + leaf) if side == "w" else (x2 - leaf, y, x2, y + leaf)
        self.blocked.append((swing[0] - 4, swing[1] - 4, swing[2] + 4, swing[3] + 4))
        self.doors.append((x, y, leaf, side))

    def _choose_scale_bar(self) -> None:
        lengths = [m for m in (0.5, 1, 1.5, 2, 2.5, 3, 4, 5) if 45 <= m * self.scale <= 130]
        self.bar_m = float(lengths[int(self.rng.integers(len(lengths)))])
        self.bar_px = self.bar_m * self.scale
        right = bool(self.rng.random() < 0.5)
        y = 4 if self.strip_top else self.height - STRIP + 2
        x = self.width - MARGIN - 14 - self.bar_px if right else MARGIN + 14
        self.bar = (x, y + 20, x + self.bar_px, y + 25)  # the bar itself (ticks rise above)
        self.bar_text = f"{self.bar_m:g} m"
        self.plate = (x - 10, y, x + self.bar_px + 10, y + STRIP - 4)
        self.title_right = not right

    def size_px(self, kind: str) -> tuple[float, float]:
        """Width and depth in pixels of ``kind`` at this plan's scale (kept legible)."""
        w, d = KINDS[kind][:2]
        return (min(100.0, max(16.0, w * self.scale)), min(80.0, max(14.0, d * self.scale)))

    def place(self, kind: str, name: str, centre: tuple[float, float] | None = None) -> Item | None:
        """Put an object (random spot, or at ``centre``) where it and its label fit; None if not."""
        for _ in range(1 if centre else 60):
            side = SIDES[int(self.rng.integers(4))]
            w, d = self.size_px(kind)
            w, d = (w, d) if side in "ns" else (d, w)
            x1, y1, x2, y2 = self.inner
            cx, cy = centre or (
                float(self.rng.uniform(x1 + w / 2 + GAP, x2 - w / 2 - GAP)),
                float(self.rng.uniform(y1 + d / 2 + GAP, y2 - d / 2 - GAP)),
            )
            box = (cx - w / 2, cy - d / 2, cx + w / 2, cy + d / 2)
            if box[0] < x1 + GAP or box[1] < y1 + GAP or box[2] > x2 - GAP or box[3] > y2 - GAP:
                continue
            taken = self.blocked + [item.box for item in self.items]
            if any(_hits(box, other, GAP) for other in taken + self.labels):
                continue
            label = self._label_spot(name, box, [*taken, box])
            if label is not None:
                item = Item(name, kind, tuple(round(v, 1) for v in box), side, label)
                self.items.append(item)
                self.labels.append(label)
                return item
        return None

    def _label_spot(self, name, box, taken):
        left, top, right, bottom = font(self.label_size).getbbox(name)
        w, h = right - left + 4, bottom - top + 4
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        spots = [
            (cx - w / 2, box[3] + GAP, cx + w / 2, box[3] + GAP + h),
            (cx - w / 2, box[1] - GAP - h, cx + w / 2, box[1] - GAP),
            (box[2] + GAP, cy - h / 2, box[2] + GAP + w, cy + h / 2),
            (box[0] - GAP - w, cy - h / 2, box[0] - GAP, cy + h / 2),
        ]
        for spot in spots:
            inside = spot[0] >= 2 and spot[1] >= 2 and spot[2] <= self.width - 2
            inside = inside and spot[3] <= self.height - 2 and not _hits(spot, self.plate, 2)
            if inside and not any(_hits(spot, o, GAP - 1) for o in taken + self.labels):
                return spot
        return None

    def clutter(self, rugs: int, items: int) -> None:
        """Unlabelled rugs (under furniture) and small unlabelled items (blocking space)."""
        for _ in range(rugs):
            room = self.rooms[int(self.rng.integers(len(self.rooms)))]
            w, h = (float(self.rng.uniform(0.3, 0.6)) * (room[2 + k] - room[k]) for k in (0, 1))
            x = float(self.rng.uniform(room[0] + 12, room[2] - w - 12))
            y = float(self.rng.uniform(room[1] + 12, room[3] - h - 12))
            self.rug_boxes.append(((x, y, x + w, y + h), RUGS[int(self.rng.integers(len(RUGS)))]))
        for _ in range(items):
            for _ in range(20):
                r = float(self.rng.uniform(5, 9))
                x1, y1, x2, y2 = self.inner
                cx, cy = self.rng.uniform((x1 + 12, y1 + 12), (x2 - 12, y2 - 12))
                box = (cx - r, cy - r, cx + r, cy + r)
                taken = self.blocked + [i.box for i in self.items] + self.labels
                if not any(_hits(box, other, GAP) for other in taken):
                    self.blocked.append(box)
                    self.stools.append(box)
                    break

    # -- drawing --------------------------------------------------------------------------------

    def render(self) -> np.ndarray:
        """The plan as an ``height x width x 3`` uint8 image."""
        rng, w, h = self.rng, self.width, self.height
        image = textured_background(rng, w, h, OUTSIDE, grain=3.0)
        for room in self.rooms:
            tint = FLOORS[int(rng.integers(len(FLOORS)))]
            x1, y1, x2, y2 = (round(v) for v in room)
            image[y1:y2, x1:x2] = textured_background(rng, x2 - x1, y2 - y1, tint, grain=5.0)
        p = Painter(image, scale=2)
        for room in self.rooms:  # planks or tiles
            step = float(rng.uniform(14, 24))
            vertical = bool(rng.random() < 0.5)
            x1, y1, x2, y2 = room
            for v in np.arange((x1 if vertical else y1) + step, x2 if vertical else y2, step):
                colour = _shade(tuple(image[int(y1) + 2, int(x1) + 2]), 0.93)
                p.line([(v, y1), (v, y2)] if vertical else [(x1, v), (x2, v)], colour, width=0.8)
        for box, colour in self.rug_boxes:
            p.rectangle(box, colour, _shade(colour, 0.8), width=2.5, radius=3)
            p.rectangle([box[0] + 5, box[1] + 5, box[2] - 5, box[3] - 5], None, _shade(colour, 0.9))
        for box in self.stools:
            p.ellipse(box, (160, 160, 158), (120, 120, 118))
        p.rectangle(self.building, None, WALL, width=WALL_WIDTH)
        for seg in self.walls:
            p.line(list(seg), WALL, width=WALL_WIDTH - 1.5)
        for x, y, leaf, side in self.doors:
            self._door(p, x, y, leaf, side)
        for item in self.items:
            self._object(p, item)
        for item in self.items:
            lx1, ly1, lx2, ly2 = item.label_box
            p.text(((lx1 + lx2) / 2, (ly1 + ly2) / 2), item.name, self.label_size, TEXT, halo=HALO)
        self._legend(p)
        return p.result()

    def _door(self, p: Painter, x: float, y: float, leaf: float, side: str) -> None:
        sign = 1 if side in "nw" else -1
        if side in "ns":
            p.rectangle((x, y - 3.6, x + leaf, y + 3.6), OUTSIDE)
            p.line([(x, y), (x, y + sign * leaf)], WALL, width=2)
            arc = [
                (x + leaf * math.sin(t), y + sign * leaf * math.cos(t))
                for t in np.linspace(0, math.pi / 2, 12)
            ]
        else:
            p.rectangle((x - 3.6, y, x + 3.6, y + leaf), OUTSIDE)
            p.line([(x, y), (x + sign * leaf, y)], WALL, width=2)
            arc = [
                (x + sign * leaf * math.cos(t), y + leaf * math.sin(t))
                for t in np.linspace(0, math.pi / 2, 12)
            ]
        p.line(arc, _shade(WALL, 1.4), width=1)

    def _object(self, p: Painter, item: Item) -> None:
        colour = KINDS[item.kind][2]
        dark, light = _shade(colour, 0.7), _shade(colour, 1.35)
        x1, y1, x2, y2 = box = item.box
        w, h = x2 - x1, y2 - y1

        def band(frac: float, side: str = item.side, inset: float = 0.0):
            t = frac * (h if side in "ns" else w)
            return {
                "n": (x1 + inset, y1 + inset, x2 - inset, y1 + t),
                "s": (x1 + inset, y2 - t, x2 - inset, y2 - inset),
                "w": (x1 + inset, y1 + inset, x1 + t, y2 - inset),
                "e": (x2 - t, y1 + inset, x2 - inset, y2 - inset),
            }[side]

        kind = item.kind
        if kind in ("lamp", "plant"):
            p.ellipse(box, colour, dark)
            cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, w / 2
            inner = (cx - r / 2.5, cy - r / 2.5, cx + r / 2.5, cy + r / 2.5)
            if kind == "plant":
                for k in range(6):
                    a = k * math.pi / 3
                    tip = (cx + 0.8 * r * math.cos(a), cy + 0.8 * r * math.sin(a))
                    p.line([(cx, cy), tip], dark, width=1.5)
                p.ellipse(inner, (130, 88, 58))
            else:
                p.ellipse(inner, light, dark, width=1)
            return
        p.rectangle(box, colour, dark, width=1.5, radius=2 if kind != "bathtub" else min(w, h) / 3)
        if kind == "sofa":
            p.rectangle(band(0.3), dark)
            across = {"n": "w", "s": "e", "w": "n", "e": "s"}[item.side]
            opposite = {"n": "s", "s": "n", "w": "e", "e": "w"}[across]
            p.rectangle(band(0.12, across), dark)
            p.rectangle(band(0.12, opposite), dark)
        elif kind == "bed":
            head = band(0.24, inset=2)
            p.rectangle(head, (244, 242, 236), _shade(colour, 0.8), width=1)
            p.rectangle(band(0.4), None, light, width=1.5)
        elif kind in ("chair", "wardrobe", "desk", "TV", "bookshelf", "stove", "piano", "fridge"):
            p.rectangle(band(0.25 if kind != "piano" else 0.3), dark)
            if kind == "piano":
                keys = band(0.3, {"n": "s", "s": "n", "w": "e", "e": "w"}[item.side], inset=2)
                p.rectangle(keys, (244, 244, 240), (90, 90, 90), width=1)
            elif kind == "stove":
                r = min(w, h) / 8
                for fx, fy in ((0.33, 0.5), (0.67, 0.5), (0.33, 0.78), (0.67, 0.78)):
                    cx = x1 + fx * w if item.side in "ns" else x1 + fy * w
                    cy = y1 + fy * h if item.side in "ns" else y1 + fx * h
                    p.ellipse((cx - r, cy - r, cx + r, cy + r), (40, 30, 28))
        elif kind == "bathtub":
            inset = min(w, h) / 5
            p.rectangle((x1 + inset, y1 + inset, x2 - inset, y2 - inset), light, radius=inset)
        elif kind == "table":
            p.rectangle((x1 + 4, y1 + 4, x2 - 4, y2 - 4), None, light, width=1)

    def _legend(self, p: Painter) -> None:
        p.rectangle(self.plate, PLATE)
        x1, y1, x2, y2 = self.bar
        p.rectangle(self.bar, BAR)
        for x in (x1, x2 - 2):  # end ticks stay inside the bar's length
            p.rectangle((x, y1 - 4, x + 2, y2 + 3), BAR)
        self.bar_text_box = p.text(((x1 + x2) / 2, y1 - 10), self.bar_text, 13, TEXT)
        title = ("Ground floor", "Apartment plan", "Floor plan", "Level 1")[
            int(self.rng.integers(4))
        ]
        x = self.width - MARGIN - 6 if self.title_right else MARGIN + 6
        y = (self.plate[1] + self.plate[3]) / 2
        p.text((x, y), title, 12, (90, 90, 96), anchor="rm" if self.title_right else "lm")

    def scale_bar_box(self) -> list[float]:
        """Tight box of the scale bar, its ticks and its text (valid after :meth:`render`)."""
        x1, y1, x2, y2 = self.bar
        t = self.bar_text_box
        return [round(v, 1) for v in (min(x1, t[0]), t[1], max(x2, t[2]), y2 + 3)]

    def objects(self) -> list[dict]:
        """Metadata ``objects``: every labelled object, then the scale bar."""
        return [{"name": i.name, "box": [float(v) for v in i.box]} for i in self.items] + [
            {"name": "scale bar", "box": self.scale_bar_box()}
        ]

    def metres(self, xy: tuple[float, float]) -> list[float]:
        """A pixel position in metres from the image's top-left corner."""
        return [round(xy[0] / self.scale, 3), round(xy[1] / self.scale, 3)]


def pick_names(rng: np.random.Generator, count: int, repeats: int) -> list[tuple[str, str]]:
    """``count`` (kind, name) pairs; ``repeats`` kinds appear twice ("chair A", "chair B")."""
    kinds = [str(k) for k in rng.permutation(list(KINDS))]
    chosen = kinds[: count - repeats] + kinds[:repeats]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    names, seen = [], {k: 0 for k in chosen}
    for kind in chosen:
        suffix = f" {'ABC'[seen[kind]]}" if chosen.count(kind) > 1 else ""
        seen[kind] += 1
        names.append((kind, kind + suffix))
    return names


def furnish(plan: FloorPlan, names: list[tuple[str, str]]) -> list[Item]:
    """Place every ``(kind, name)`` that fits; returns the placed items in order."""
    placed = [plan.place(kind, name) for kind, name in names]
    return [item for item in placed if item is not None]


def box_drawing(name: str, box) -> dict:
    """A key box drawing on image 1."""
    return {"kind": "box", "index": 1, "bbox": [float(v) for v in box], "label": name}


def line_drawing(label: str, start, end) -> dict:
    """A key line drawing on image 1."""
    return {
        "kind": "line",
        "index": 1,
        "start": [round(float(v), 1) for v in start],
        "end": [round(float(v), 1) for v in end],
        "label": label,
    }
