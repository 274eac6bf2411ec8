"""``direction``: standing at one object of a floor plan and facing another, where is a third?

The map is a top-down floor plan with labelled furniture. "Imagine standing at the sofa and
facing the TV. In which direction is the lamp?" The four options are always, in this order,
front-left, front-right, back-left, back-right. The target lies well inside its quadrant: its angle
from the facing axis stays at least :data:`LEVELS` ``margin`` degrees away from straight ahead,
behind, left and right, so the answer never hinges on a few pixels.

Drawing helps: a line from the standing point to the faced object is the viewer's axis, and a
line from the standing point to the target shows on which side of it, and ahead of or behind the
perpendicular, the target lies; the axis is usually oblique, which is hard to judge by eye.

Difficulty (:data:`LEVELS`): the number of objects, kinds that repeat with similar names
("chair A" / "chair B"), interior walls, rugs and unlabelled clutter, and a smaller angle margin.
"""

from __future__ import annotations

import math

from drawenv.tasks.floorplan import FloorPlan, box_drawing, furnish, line_drawing, pick_names
from drawenv.tasks.record import TaskRecord
from drawenv.tasks.scene import fixed_options, item_rng

LEVELS = {
    # objects (low, high), repeated kinds, interior walls, rugs, stools, px per metre, and the
    # least angle (degrees) between the target and a quadrant boundary
    1: {"objects": (4, 5), "repeats": 0, "walls": 0, "rugs": 0, "stools": 0,
        "scale": (28, 48), "margin": 30.0},
    2: {"objects": (6, 7), "repeats": 1, "walls": 1, "rugs": 1, "stools": 2,
        "scale": (24, 54), "margin": 25.0},
    3: {"objects": (8, 10), "repeats": 2, "walls": 2, "rugs": 2, "stools": 5,
        "scale": (20, 60), "margin": 20.0},
}  # fmt: skip
ATTEMPTS = 200  # layouts tried before giving up (never reached in practice)
OPTIONS = ("front-left", "front-right", "back-left", "back-right")
# Signed angle range of each option, degrees from the facing axis, positive = to the right
# (clockwise on the image, whose y axis points down).
RANGES = {"front-left": (-90, 0), "front-right": (0, 90), "back-left": (-180, -90),
          "back-right": (90, 180)}  # fmt: skip
TEMPLATES = (
    "Imagine standing at the {a} and facing the {b}. In which direction is the {c}?",
    "You stand at the {a}, looking towards the {b}. Where is the {c} relative to you?",
    "Seen from the {a} while facing the {b}, in which direction does the {c} lie?",
)


def generate(seed: int, index: int, difficulty: int = 1) -> TaskRecord:
    """Item ``index`` of the suite: a pure function of (seed, index, difficulty)."""
    rng = item_rng("direction", seed, index, difficulty)
    level = LEVELS[difficulty]
    position, options, letter = fixed_options(rng, OPTIONS)
    low, high = RANGES[OPTIONS[position]]
    for _ in range(ATTEMPTS):  # a layout with room for the target in its quadrant; usually the 1st
        plan = FloorPlan(rng, scale=level["scale"], walls=level["walls"])
        count = int(rng.integers(level["objects"][0], level["objects"][1] + 1))
        names = pick_names(rng, count, level["repeats"])
        placed = _place_triple(rng, plan, names[:3], low + level["margin"], high - level["margin"])
        if placed is None:
            continue
        others = furnish(plan, names[3:])
        plan.clutter(level["rugs"], level["stools"])
        if len(others) + 3 >= level["objects"][0]:
            break
    else:
        raise RuntimeError(f"no direction layout for seed {seed}, index {index}")
    a, b, c = placed
    (ax, ay), (bx, by), (cx, cy) = a.centre, b.centre, c.centre
    facing = [round(bx - ax, 2), round(by - ay, 2)]
    angle = math.degrees(math.atan2(facing[0] * (cy - ay) - facing[1] * (cx - ax),
                                    facing[0] * (cx - ax) + facing[1] * (cy - ay)))  # fmt: skip
    image = plan.render()
    objects = plan.objects()
    order = [o["name"] for o in objects]
    boxes = [box_drawing(i.name, i.box) for i in sorted(placed, key=lambda i: order.index(i.name))]
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    return TaskRecord(
        id=f"direction-{seed}-{difficulty}-{index}",
        images=(image,),
        question=template.format(a=a.name, b=b.name, c=c.name),
        answer_type="multiple_choice",
        answer=letter,
        options=options,
        metadata={
            "suite": "direction",
            "difficulty": difficulty,
            "seed": seed,
            "index": index,
            "objects": objects,
            "standing": a.name,
            "facing_object": b.name,
            "target": c.name,
            "positions": {i.name: [round(v, 2) for v in i.centre] for i in placed},
            "facing": facing,
            "signed_angle_deg": round(angle, 2),
            "quadrant": OPTIONS[position],
            "scale_px_per_m": plan.scale,
            "scale_bar": plan.scale_bar_box(),
            "scale_bar_m": plan.bar_m,
            "key_drawings": [
                *boxes,
                line_drawing("facing", a.centre, b.centre),
                line_drawing(f"to {c.name}", a.centre, c.centre),
            ],
        },
    )


def _place_triple(rng, plan: FloorPlan, names, low: float, high: float):
    """Place the standing object, the faced one, then the target at an angle in [low, high]."""
    (ka, na), (kb, nb), (kc, nc) = names
    a = plan.place(ka, na)
    if a is None:
        return None
    for _ in range(40):
        b = plan.place(kb, nb, centre=tuple(rng.uniform(plan.inner[:2], plan.inner[2:])))
        if b is not None and math.dist(a.centre, b.centre) < 70:
            plan.items.pop()
            plan.labels.pop()
            b = None
        if b is not None:
            break
    if b is None:
        return None
    heading = math.atan2(b.centre[1] - a.centre[1], b.centre[0] - a.centre[0])
    for _ in range(80):
        turn = math.radians(rng.uniform(low, high))
        reach = rng.uniform(60, 220)
        centre = (a.centre[0] + reach * math.cos(heading + turn),
                  a.centre[1] + reach * math.sin(heading + turn))  # fmt: skip
        c = plan.place(kc, nc, centre=centre)
        if c is not None:
            return a, b, c
    return None
