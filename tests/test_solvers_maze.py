"""The maze solver of the heuristic agent: grid reading, the route, the answers, the drawings."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from agents.scripted.solvers import maze as maze_solver
from drawenv.actions import Answer, Box, Draw, Line
from drawenv.env import DrawSpatialEnv
from drawenv.prompts import QuestionPrompt, read_question_prompt
from drawenv.rewards import accuracy
from drawenv.tasks import SUITES
from drawenv.tasks.record import LETTERS

GRID_ITEMS = 20
ACCURACY_ITEMS = 30
LEVEL_ITEMS = 15
TEXT_ONLY = {"turns": "3", "length": "14"}


@functools.cache
def record(index: int, difficulty: int):
    return SUITES["maze"](0, index, difficulty)


@functools.cache
def episode(index: int, difficulty: int):
    """(prompt, solution, info after drawing, accuracy of the answer) through the env."""
    env = DrawSpatialEnv(task=[record(index, difficulty)])
    obs, _ = env.reset(seed=0)
    prompt = read_question_prompt(obs["text"])
    solution = maze_solver.solve(obs["images"], prompt)
    _, _, done, truncated, info = env.step(Draw(solution.operations))
    assert not (done or truncated)
    final = env.step(Answer(solution.answer))[-1]
    return prompt, solution, info, final["reward_terms"]["accuracy"]


def item(n: int) -> tuple[int, int]:
    """Item ``n`` of the measured sweep: index ``n``, difficulty cycling 1, 2, 3."""
    return n, 1 + n % 3


# -- pure pieces --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "legs"),
    [
        ("right 2, down 1", [("right", 2), ("down", 1)]),
        ("up 10", [("up", 10)]),
        ("Left 1, UP 3", [("left", 1), ("up", 3)]),
        ("right two", None),
        ("the sofa", None),
    ],
)
def test_parse_route(text: str, legs) -> None:
    assert maze_solver.parse_route(text) == legs


@pytest.mark.parametrize(
    ("lines", "steps"),
    [
        ([10.0, 30.0, 50.0, 70.0], 3),
        ([10.0, 50.0, 70.0], 3),  # a grid line with no wall on it
        ([0.0, 21.0, 40.0, 62.0, 80.0], 4),  # off by a pixel or two
        ([0.0, 100.0], 1),
        ([5.0], None),
    ],
)
def test_fit_steps(lines: list[float], steps: int | None) -> None:
    assert maze_solver.fit_steps(lines) == steps


def test_route_on_a_hand_made_graph() -> None:
    # 2 x 3 cells; the wall between (0, 0) and (0, 1) is closed, so the route goes down first.
    graph = {
        (0, 0): ((1, 0),),
        (1, 0): ((0, 0), (1, 1)),
        (1, 1): ((1, 0), (1, 2), (0, 1)),
        (1, 2): ((1, 1),),
        (0, 1): ((1, 1), (0, 2)),
        (0, 2): ((0, 1),),
    }
    path = maze_solver.shortest_route(graph, (0, 0), (0, 2))
    assert path == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2)]
    legs = maze_solver.legs_of(path)
    assert legs == [("down", 1), ("right", 1), ("up", 1), ("right", 1)]
    assert maze_solver.walks_to_goal(graph, (0, 0), (0, 2), legs)
    assert not maze_solver.walks_to_goal(graph, (0, 0), (0, 2), [("right", 2)])
    assert maze_solver.shortest_route(graph, (0, 0), (5, 5)) == []
    options = ["right 2", "down 1, right 1, up 1, right 1", "down 1, right 2, up 1"]
    assert maze_solver.choose_option(options, legs, graph, (0, 0), (0, 2)) == "B"
    # No option equals the route: the one that walks to the goal wins, else the nearest.
    assert maze_solver.choose_option(options, [("down", 9)], graph, (0, 0), (0, 2)) == "B"
    near = ["up 3", "down 1, right 1, up 2"]
    assert maze_solver.choose_option(near, legs, graph, (0, 0), (0, 2)) == "B"


def test_leg_corners_merge_the_tail() -> None:
    zigzag = [(k // 2, k // 2 + k % 2) for k in range(9)]  # right 1, down 1, right 1, ...
    assert maze_solver.leg_corners(zigzag) == zigzag
    assert maze_solver.leg_corners(zigzag, max_legs=3) == [*zigzag[:3], zigzag[-1]]
    straight = [(0, c) for c in range(5)]
    assert maze_solver.leg_corners(straight) == [(0, 0), (0, 4)]


def test_matches_only_maze_questions() -> None:
    for suite, generate in SUITES.items():
        for index in range(6):
            task = generate(0, index, 1 + index % 3)
            prompt = QuestionPrompt(task.question, task.options, task.answer_type, ())
            assert maze_solver.matches(prompt) == (suite == "maze"), (suite, task.question)


def test_unreadable_pictures_get_the_prior_guess() -> None:
    prompt = QuestionPrompt(record(1, 2).question, (), "count", ())
    for image in (np.zeros((40, 40, 3), np.uint8), np.full((448, 448, 3), 230, np.uint8)):
        solution = maze_solver.solve((image,), prompt)
        assert solution.answer in maze_solver.GUESS.values()
    choice = QuestionPrompt(record(0, 1).question, record(0, 1).options, "multiple_choice", ())
    assert maze_solver.solve((np.zeros((5, 5, 3), np.uint8),), choice).answer == "A"
    assert maze_solver.solve((), choice).answer == "A"


# -- generated mazes ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(GRID_ITEMS))
def test_grid_and_route_match_the_generator(n: int) -> None:
    task = record(*item(n))
    meta = task.metadata
    maze = maze_solver.read_maze(task.images[0])
    assert maze is not None
    grid = maze.grid
    assert [grid.rows, grid.cols] == meta["grid"]
    assert grid.cell == pytest.approx(meta["cell_size"], abs=1.0)
    assert grid.origin == pytest.approx(meta["origin"], abs=2.0)
    start = grid.cell_at(maze_solver.vision.centre(maze.start))
    goal = grid.cell_at(maze_solver.vision.centre(maze.goal))
    assert [list(start), list(goal)] == [meta["start"], meta["goal"]]
    path = maze_solver.shortest_route(maze.passages, start, goal)
    assert [list(rc) for rc in path] == meta["path_cells"]


def test_accuracy_beats_random_and_text_only() -> None:
    heuristic, random, text_only = [], [], []
    for n in range(ACCURACY_ITEMS):
        task = record(*item(n))
        heuristic.append(episode(*item(n))[3])

        def score(answer: str, task=task) -> float:
            return accuracy(answer, task.answer, task.answer_type, options=task.options)

        if task.options:
            random.append(np.mean([score(letter) for letter in LETTERS[: len(task.options)]]))
            text_only.append(score("A"))
        else:
            random.append(np.mean([score(str(v)) for v in range(31)]))
            text_only.append(score(TEXT_ONLY[task.metadata["question_kind"]]))
    assert np.mean(heuristic) > 0.9
    assert np.mean(heuristic) > max(np.mean(random), np.mean(text_only)) + 0.4


@pytest.mark.parametrize("difficulty", (1, 2, 3))
def test_drawings_execute_without_errors(difficulty: int) -> None:
    for index in range(LEVEL_ITEMS):
        prompt, solution, info, _ = episode(index, difficulty)
        assert info["errors"] == []
        boxes = {op.label for op in solution.operations if isinstance(op, Box)}
        legs = [op for op in solution.operations if isinstance(op, Line)]
        assert boxes == {"start", "goal"}
        assert 1 <= len(legs) <= maze_solver.MAX_LEGS
        kind = maze_solver.question_kind(prompt)
        if kind == "turns":
            assert solution.answer == str(len(legs) - 1)
        # Consecutive legs join up into one polyline from S to G.
        for a, b in itertools.pairwise(legs):
            assert a.end == b.start
