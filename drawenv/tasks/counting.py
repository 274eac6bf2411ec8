"""``counting``: how many shapes of one colour and kind are in a cluttered scene?

Drawing helps: boxing each counted shape (one label per instance) keeps track of what was counted
among overlapping distractors of the same colour or the same kind.

Difficulty 1-3 raises the number of shapes, the overlap and the share of near-miss distractors.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from drawenv.tasks.record import TaskRecord

SIZE = 448  # a multiple of 28: shown to the model without resizing
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 20),
}
KINDS = ("circle", "square", "triangle")
LEVELS = {1: (6, 9, 0.0), 2: (10, 15, 0.15), 3: (16, 24, 0.3)}  # min, max shapes, overlap share


def generate(seed: int, index: int, difficulty: int = 1) -> TaskRecord:
    """Item ``index`` of the suite: a pure function of (seed, index, difficulty)."""
    rng = np.random.default_rng([seed, index, difficulty])
    low, high, overlap = LEVELS[difficulty]
    colour = str(rng.choice(list(COLOURS)))
    kind = str(rng.choice(KINDS))
    n_total = int(rng.integers(low, high + 1))
    n_target = int(rng.integers(1, max(2, n_total // 2) + 1))
    shapes = [(colour, kind)] * n_target
    for _ in range(n_total - n_target):  # distractors: half share the colour or the kind
        other_colour = str(rng.choice([c for c in COLOURS if c != colour]))
        other_kind = str(rng.choice([k for k in KINDS if k != kind]))
        roll = rng.random()
        shapes.append(
            (colour, other_kind)
            if roll < 0.25
            else (other_colour, kind)
            if roll < 0.5
            else (other_colour, other_kind)
        )
    order = rng.permutation(len(shapes))
    image, boxes = _render([shapes[i] for i in order], rng, overlap)
    objects = [
        {"name": f"{colour} {kind} {n + 1}", "box": box}
        for n, box in enumerate(b for i, b in zip(order, boxes) if i < n_target)
    ]
    return TaskRecord(
        id=f"counting-{seed}-{index}",
        images=(image,),
        question=f"How many {colour} {kind}s are there in the image?",
        answer_type="count",
        answer=n_target,
        metadata={
            "suite": "counting",
            "difficulty": difficulty,
            "seed": seed,
            "index": index,
            "target": f"{colour} {kind}",
            "objects": objects,
        },
    )


def _render(
    shapes: list[tuple[str, str]], rng: np.random.Generator, overlap: float
) -> tuple[np.ndarray, list[list[float]]]:
    """Draw at 2x and downsample, for anti-aliased edges on a noisy, shaded background."""
    scale = 2
    base = rng.integers(150, 230, size=3)
    ramp = np.linspace(0.85, 1.1, SIZE * scale)[:, None, None]
    noise = rng.normal(0, 10, size=(SIZE * scale, SIZE * scale, 1))
    canvas = np.clip(base[None, None, :] * ramp + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    boxes: list[list[float]] = []
    placed: list[tuple[float, float, float]] = []
    for colour, kind in shapes:
        r = float(rng.uniform(16, 30))
        for _ in range(50):  # keep most shapes apart; allow the level's share of overlaps
            cx, cy = rng.uniform(r + 4, SIZE - r - 4, size=2)
            free = all((cx - x) ** 2 + (cy - y) ** 2 > (r + q + 4) ** 2 for x, y, q in placed)
            if free or rng.random() < overlap:
                break
        placed.append((cx, cy, r))
        boxes.append([round(float(v), 1) for v in (cx - r, cy - r, cx + r, cy + r)])
        s = [v * scale for v in (cx - r, cy - r, cx + r, cy + r)]
        fill, outline = COLOURS[colour], (30, 30, 30)
        if kind == "circle":
            draw.ellipse(s, fill=fill, outline=outline, width=2 * scale)
        elif kind == "square":
            draw.rectangle(s, fill=fill, outline=outline, width=2 * scale)
        else:
            draw.polygon(
                [((s[0] + s[2]) / 2, s[1]), (s[2], s[3]), (s[0], s[3])],
                fill=fill,
                outline=outline,
                width=2 * scale,
            )
    img = img.filter(ImageFilter.GaussianBlur(0.6)).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return np.asarray(img).copy(), boxes
