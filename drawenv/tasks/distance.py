"""``distance``: how far apart are two objects of a floor plan, or which is closest to one?

Two question kinds on a top-down floor plan with labelled furniture and a scale bar: "What is the
distance between the sofa and the bed, in metres?" (numeric, centre to centre, rounded to 0.1 m)
and "Which of these is closest to the lamp?" (multiple choice, the correct option at least 15 %
closer than every other one, so it can be settled by measuring).

Drawing helps: boxing the two objects fixes their centres, a line between the centres is the
distance to measure, and boxing the scale bar gives the ruler to compare it with; the scale
(px per metre) changes from item to item, so the bar has to be read every time.

Difficulty (:data:`LEVELS`): the number of objects, kinds that repeat with similar names
("chair A" / "chair B"), interior walls, rugs and unlabelled clutter, the range of scales, and the
number of options.
"""

from __future__ import annotations

import math

import numpy as np

from drawenv.tasks.floorplan import FloorPlan, box_drawing, furnish, line_drawing, pick_names
from drawenv.tasks.record import TaskRecord
from drawenv.tasks.scene import item_rng, shuffled_options

LEVELS = {
    # objects (low, high), repeated kinds, interior walls, rugs, stools, px per metre, options
    1: {"objects": (4, 5), "repeats": 0, "walls": 0, "rugs": 0, "stools": 0,
        "scale": (30, 46), "options": 3},
    2: {"objects": (6, 7), "repeats": 1, "walls": 1, "rugs": 1, "stools": 2,
        "scale": (24, 54), "options": 4},
    3: {"objects": (8, 10), "repeats": 2, "walls": 2, "rugs": 2, "stools": 5,
        "scale": (20, 60), "options": 4},
}  # fmt: skip
ATTEMPTS = 200  # layouts tried before giving up (never reached in practice)
MARGIN = 1.15  # the correct option is at least this many times closer than any other
NUMERIC_TEMPLATES = (
    "What is the distance between the {a} and the {b}, in metres (centre to centre)?",
    "How far apart are the {a} and the {b}, measured centre to centre, in metres?",
    "Using the scale bar, how many metres is it from the centre of the {a} to the centre of "
    "the {b}?",
)


def generate(seed: int, index: int, difficulty: int = 1) -> TaskRecord:
    """Item ``index`` of the suite: a pure function of (seed, index, difficulty)."""
    rng = item_rng("distance", seed, index, difficulty)
    level = LEVELS[difficulty]
    numeric = bool(rng.random() < 0.5)
    for _ in range(ATTEMPTS):  # a layout where the question works; almost always the first one
        plan = FloorPlan(rng, scale=level["scale"], walls=level["walls"])
        count = int(rng.integers(level["objects"][0], level["objects"][1] + 1))
        items = furnish(plan, pick_names(rng, count, level["repeats"]))
        plan.clutter(level["rugs"], level["stools"])
        if len(items) < level["objects"][0]:
            continue
        centres = {item.name: item.centre for item in items}
        metres = {
            (a, b): math.dist(centres[a], centres[b]) / plan.scale for a in centres for b in centres
        }
        asked = _numeric(rng, list(centres), metres) if numeric else None
        if not numeric:
            asked = _closest(rng, list(centres), metres, level["options"])
        if asked is not None:
            break
    else:
        raise RuntimeError(f"no distance layout for seed {seed}, index {index}")
    image = plan.render()
    objects = plan.objects()
    names = [o["name"] for o in objects]
    meta = {
        "suite": "distance",
        "difficulty": difficulty,
        "seed": seed,
        "index": index,
        "objects": objects,
        "scale_px_per_m": plan.scale,
        "scale_bar": plan.scale_bar_box(),
        "scale_bar_m": plan.bar_m,
        "centres_px": {n: [round(v, 2) for v in c] for n, c in centres.items()},
        "centres_m": {n: plan.metres(c) for n, c in centres.items()},
    }
    if numeric:
        a, b, question = asked
        answer: str | float = round(metres[a, b], 1)
        options: tuple[str, ...] = ()
        shown = sorted([a, b, "scale bar"], key=names.index)
        lines = [line_drawing(f"{a} to {b}", centres[a], centres[b])]
        meta.update(question_kind="numeric", pair=[a, b], distance_m=round(metres[a, b], 4))
    else:
        x, correct, wrong, question = asked
        options, answer = shuffled_options(rng, correct, wrong)
        shown = sorted([x, *options], key=names.index)
        lines = [line_drawing(f"{x} to {o}", centres[x], centres[o]) for o in options]
        meta.update(
            question_kind="closest",
            reference=x,
            correct=correct,
            option_distances_m={o: round(metres[x, o], 4) for o in options},
        )
    boxes = [box_drawing(n, objects[names.index(n)]["box"]) for n in shown]
    meta["key_drawings"] = boxes + lines
    return TaskRecord(
        id=f"distance-{seed}-{difficulty}-{index}",
        images=(image,),
        question=question,
        answer_type="numeric" if numeric else "multiple_choice",
        answer=answer,
        options=options,
        metadata=meta,
    )


def _numeric(rng: np.random.Generator, names: list[str], metres: dict):
    """A pair whose distance is near a log-uniform target in 0.5..12 m, so answers spread."""
    target = math.exp(rng.uniform(math.log(0.5), math.log(12.0)))
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    a, b = min(pairs, key=lambda pair: abs(math.log(metres[pair] / target)))
    if rng.random() < 0.5:
        a, b = b, a
    template = NUMERIC_TEMPLATES[int(rng.integers(len(NUMERIC_TEMPLATES)))]
    return a, b, template.format(a=a, b=b)


def _closest(rng: np.random.Generator, names: list[str], metres: dict, n_options: int):
    """(reference, correct, wrong options, question), or None when no choice is clear enough."""
    for x in (names[i] for i in rng.permutation(len(names))):
        others = [n for n in names if n != x]
        valid = []
        for y in others:
            farther = [z for z in others if metres[x, z] >= MARGIN * metres[x, y]]
            if len(farther) >= n_options - 1:
                valid.append((y, farther))
        if valid:
            y, farther = valid[int(rng.integers(len(valid)))]
            wrong = [farther[i] for i in rng.choice(len(farther), n_options - 1, replace=False)]
            question = f"Which of these objects is closest to the {x}, measured centre to centre?"
            return x, y, wrong, question
    return None
