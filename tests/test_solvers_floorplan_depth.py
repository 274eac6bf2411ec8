"""The floor-plan and depth solvers of the heuristic agent, and the pixel helpers they share."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from agents.scripted import vision
from agents.scripted.solvers import depth as depth_solver
from agents.scripted.solvers import floorplan as floorplan_solver
from drawenv.actions import Answer, Box, Draw, Line
from drawenv.env import DrawSpatialEnv
from drawenv.prompts import QuestionPrompt, read_question_prompt
from drawenv.tasks import SUITES

SOLVERS = {"distance": floorplan_solver, "direction": floorplan_solver, "depth": depth_solver}
NUMERIC_RANGE = {"distance": (0.5, 12.0), "depth": (1.5, 30.0)}
MEDIAN_GUESS = {"distance": "3", "depth": "10"}
LEVEL_ITEMS = 20  # items per difficulty level run through the env
ACCURACY_ITEMS = 10  # of those, items per level scored against the baselines


@functools.cache
def episode(suite: str, index: int, difficulty: int):
    """(record, prompt, solution, info after drawing) for one generated item."""
    record = SUITES[suite](0, index, difficulty)
    env = DrawSpatialEnv(task=[record])
    obs, _ = env.reset(seed=0)
    prompt = read_question_prompt(obs["text"])
    solution = SOLVERS[suite].solve(obs["images"], prompt)
    info = {"errors": []}
    if solution.operations:
        _, _, done, truncated, info = env.step(Draw(solution.operations))
        assert not (done or truncated)
    return record, prompt, solution, info


def accuracy(record, answer: str) -> float:
    """The env's accuracy term for answering ``answer`` straight away."""
    env = DrawSpatialEnv(task=[record])
    env.reset(seed=0)
    return env.step(Answer(answer))[-1]["reward_terms"]["accuracy"]


# -- pixel helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(6))
def test_find_label_sits_next_to_its_object(index: int) -> None:
    record = SUITES["distance"](0, index, 1 + index % 3)
    image = record.images[0]
    objects = dict(record.objects)
    for name, box in objects.items():
        if name == "scale bar":
            continue
        label = vision.find_label(image, name, polarity="dark")
        assert label is not None, name
        assert vision.box_gap(label, box) < 12, (name, label, box)
        nearest = min(objects, key=lambda n: vision.box_gap(label, objects[n]))
        assert vision.box_gap(label, objects[nearest]) == pytest.approx(vision.box_gap(label, box))
    text = f"{record.metadata['scale_bar_m']:g} m"
    found = vision.find_label(image, text, polarity="dark")
    bar = record.metadata["scale_bar"]
    assert found is not None
    assert bar[0] - 2 <= found[0] and found[2] <= bar[2] + 2 and bar[1] - 2 <= found[1]


@pytest.mark.parametrize("index", range(4))
def test_find_label_on_photos(index: int) -> None:
    record = SUITES["depth"](0, index, 1 + index % 3)
    for name, box in record.objects:
        label = vision.find_label(record.images[0], name, polarity="light")
        assert label is not None, name
        assert vision.box_gap(label, box) < 20, (name, label, box)


def test_find_label_absent_text_and_helpers() -> None:
    blank = np.full((60, 120, 3), 200, np.uint8)
    assert vision.find_label(blank, "sofa") is None
    assert vision.find_label(blank, "   ") is None
    with pytest.raises(ValueError, match="polarity"):
        vision.label_candidates(blank, "sofa", polarity="bright")
    assert vision.iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert vision.box_gap((0, 0, 1, 1), (4, 5, 6, 6)) == pytest.approx(5.0)
    assert vision.clip_box((-5, 3, 500, 3), 100, 50) == (0.0, 3.0, 100.0, 5.0)
    ops = (Box(1, (0, 0, 5, 5), "a"), Box(1, (1, 1, 5, 5), "a"), Line(1, (0, 0), (0, 0), "b"))
    assert vision.unique_operations(ops) == ops[:1]


# -- pure geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("centres", "answer"),
    [
        ({"a": (0, 0), "b": (10, 0), "c": (5, 5)}, "B"),  # ahead, and below = right when facing +x
        ({"a": (0, 0), "b": (10, 0), "c": (5, -5)}, "A"),
        ({"a": (0, 0), "b": (10, 0), "c": (-5, -5)}, "C"),
        ({"a": (0, 0), "b": (0, -10), "c": (-5, 5)}, "C"),  # facing up the image: left is -x
        ({"a": (0, 0), "b": (0, -10), "c": (5, 5)}, "D"),
    ],
)
def test_direction_quadrants(centres: dict, answer: str) -> None:
    got = floorplan_solver.relative_direction(centres, ("a", "b", "c"), floorplan_solver.DIRECTIONS)
    assert got == answer


def test_ground_projection_by_hand() -> None:
    # Level camera (horizon at the centre row), f = 100 px, 2 m high: a ground point 10 m ahead
    # is 20 px below the centre row; 3 m to the right it is 30 px right of the centre column.
    ground = depth_solver.Ground(horizon=50, focal=100, cx=60, cy=50, height=2)
    x, z = ground.to_ground(90, 70)
    assert (x, z) == (pytest.approx(3.0), pytest.approx(10.0))
    assert ground.metres_per_px(70) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("question", "answer_type", "options", "module"),
    [
        ("How far apart are the sofa and the chair A, measured centre to centre, in metres?",
         "numeric", (), floorplan_solver),
        ("Imagine standing at the bed and facing the TV. In which direction is the lamp?",
         "multiple_choice", floorplan_solver.DIRECTIONS, floorplan_solver),
        ("Which of these objects is closest to the camera?", "multiple_choice", ("a", "b"),
         depth_solver),
        ("How many red circles are there?", "count", (), None),
    ],
)  # fmt: skip
def test_matches_reads_the_question(question, answer_type, options, module) -> None:
    prompt = QuestionPrompt(question, tuple(options), answer_type, ((448, 448),))
    for solver in (floorplan_solver, depth_solver):
        assert solver.matches(prompt) == (solver is module)
        assert isinstance(solver.solve([np.zeros((448, 448, 3), np.uint8)], prompt).answer, str)


# -- the suites ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", list(SOLVERS))
@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_solvers_draw_without_errors(suite: str, difficulty: int) -> None:
    for index in range(LEVEL_ITEMS):
        _, prompt, solution, info = episode(suite, index, difficulty)
        assert SOLVERS[suite].matches(prompt)
        assert solution.operations and len(solution.operations) <= vision.MAX_OPERATIONS
        assert info["errors"] == []


@pytest.mark.parametrize("suite", list(SOLVERS))
def test_solvers_beat_random_and_text_only(suite: str) -> None:
    rng = np.random.default_rng(0)
    scores = []
    for difficulty in (1, 2, 3):
        for index in range(ACCURACY_ITEMS):
            record, prompt, solution, _ = episode(suite, index, difficulty)
            if prompt.options:
                random_answer = "ABCD"[int(rng.integers(len(prompt.options)))]
                text_answer = "A"
            else:
                random_answer = f"{rng.uniform(*NUMERIC_RANGE[suite]):.2f}"
                text_answer = MEDIAN_GUESS[suite]
            scores.append(
                [accuracy(record, a) for a in (solution.answer, random_answer, text_answer)]
            )
    heuristic, random_, text_only = np.mean(scores, axis=0)
    assert heuristic >= 0.8, (heuristic, random_, text_only)
    assert heuristic > max(random_, text_only) + 0.3, (heuristic, random_, text_only)
    assert not math.isnan(heuristic)
