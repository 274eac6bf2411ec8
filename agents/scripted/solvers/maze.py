"""Shortest-route questions about grid mazes, from pixels and question text.

A maze is a pale paper board on a table, with dark wall strokes along the lines of a square grid
(the outer border always closed), a green disc marked S in the start cell and a red disc marked G
in the goal cell. The solver:

1. finds the board (the large bright region) and the dark strokes on it, leaving out the discs;
2. keeps the long vertical and the long horizontal strokes (morphological openings), whose
   projection profiles peak at the grid lines; the outermost peaks are the border, and the grid
   size is the smallest count of equal steps that puts every peak on a grid line;
3. takes a passage between neighbouring cells as open when no wall stroke crosses the middle of
   their shared edge, and runs a breadth-first search from S to G;
4. answers the number of turns, the number of moves, or the option whose move list equals the
   route (else the option that walks from S to G without crossing a wall, else the nearest one).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

from agents.scripted import vision
from agents.scripted.solvers import guarded_solve
from agents.scripted.vision import BoxXYXY, Solution
from drawenv.actions import Box, Line
from drawenv.prompts import QuestionPrompt
from drawenv.tasks.record import LETTERS

Cell = tuple[int, int]
MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
MAX_LEGS = 30  # two boxes plus one line per leg fit in one drawing turn
MAX_SIDE = 40  # the most cells a grid side may have
# Answers from the question alone (the median of each kind), used when the pixels fail.
GUESS = {"turns": "3", "length": "14"}

_TURNS = re.compile(r"\bturns?\b|change direction", re.I)
_LENGTH = re.compile(r"\bmoves?\b|\bsteps?\b|how long", re.I)
_MAZE = re.compile(r"\bmaze\b|\bS\b.*\bG\b", re.S)
_LEG = re.compile(r"(up|down|left|right)\s+(\d+)")


@dataclass(frozen=True)
class Grid:
    """A square grid: ``rows`` x ``cols`` cells of ``cell`` px, top-left corner at ``origin``."""

    rows: int
    cols: int
    cell: float
    origin: tuple[float, float]

    def centre(self, rc: Cell) -> tuple[float, float]:
        """The pixel centre of cell ``(row, col)``."""
        return (
            self.origin[0] + (rc[1] + 0.5) * self.cell,
            self.origin[1] + (rc[0] + 0.5) * self.cell,
        )

    def cell_at(self, point: tuple[float, float]) -> Cell:
        """The cell under a pixel point, clamped to the grid."""
        col = int((point[0] - self.origin[0]) // self.cell)
        row = int((point[1] - self.origin[1]) // self.cell)
        return (min(max(row, 0), self.rows - 1), min(max(col, 0), self.cols - 1))


@dataclass(frozen=True)
class Maze:
    """What the pixels show: the grid, the open passages and the S and G discs."""

    grid: Grid
    passages: dict[Cell, tuple[Cell, ...]]
    start: BoxXYXY
    goal: BoxXYXY


# -- the question -------------------------------------------------------------------------------


def question_kind(prompt: QuestionPrompt) -> str | None:
    """``"moves"``, ``"turns"`` or ``"length"`` for a maze route question; None otherwise."""
    text = " ".join(prompt.question.split())
    if not _MAZE.search(text) or not re.search(r"shortest|route|path|moves", text, re.I):
        return None
    if prompt.options:
        if prompt.answer_type == "multiple_choice" and all(parse_route(o) for o in prompt.options):
            return "moves"
        return None
    if prompt.answer_type not in ("count", "numeric"):
        return None
    if _TURNS.search(text):
        return "turns"
    if _LENGTH.search(text):
        return "length"
    return None


def matches(prompt: QuestionPrompt) -> bool:
    """Whether the question asks about the shortest route through a maze from S to G."""
    return question_kind(prompt) is not None


def parse_route(text: str) -> list[tuple[str, int]] | None:
    """``"right 2, down 1"`` as ``[("right", 2), ("down", 1)]``; None if it is not a move list."""
    parts = [p.strip().lower() for p in text.split(",")]
    legs = [_LEG.fullmatch(p) for p in parts]
    if not parts or not all(legs):
        return None
    return [(m[1], int(m[2])) for m in legs if m]


def route_text(legs: Sequence[tuple[str, int]]) -> str:
    """The move list of ``legs`` as the options write it."""
    return ", ".join(f"{d} {n}" for d, n in legs)


# -- the picture --------------------------------------------------------------------------------


def board_box(image: np.ndarray) -> BoxXYXY:
    """The paper board: the box around the large bright regions (the cells and the margin
    around the border, which wall shadows may cut apart); the whole image when there are none."""
    bright = vision.open_mask(vision.gray(image) > 185, 3)
    found = vision.components(bright, min_area=150)
    if not found:
        height, width = image.shape[:2]
        return (0.0, 0.0, float(width), float(height))
    boxes = np.array([c.box for c in found])
    return (*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist())


def disc_masks(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of the green (start) and red (goal) discs: fill, outline and letter halo."""
    hues, sat, val = vision.hue(image), vision.saturation(image), vision.value(image)
    strong = (sat > 0.55) & (val > 50)
    green = strong & (hues > 90) & (hues < 170)
    red = strong & ((hues < 14) | (hues > 340))
    return green, red


def _disc(mask: np.ndarray, inside: np.ndarray) -> BoxXYXY | None:
    """The box of the largest roundish blob of ``mask`` on the board."""
    found = [
        c
        for c in vision.components(vision.open_mask(mask & inside, 3), min_area=30)
        if 0.6 < c.width / max(c.height, 1.0) < 1.6
    ]
    return max(found, key=lambda c: c.area).box if found else None


def wall_masks(image: np.ndarray, board: BoxXYXY) -> tuple[np.ndarray, np.ndarray]:
    """(vertical strokes, horizontal strokes) on the board, the discs left out."""
    height, width = image.shape[:2]
    inside = np.zeros((height, width), bool)
    x1, y1, x2, y2 = (round(v) for v in board)
    inside[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] = True
    green, red = disc_masks(image)
    discs = vision.close_mask(green | red, 3)
    dark = (vision.gray(image) < 110) & inside & ~_dilate(discs, 2)
    # Longer than any stroke is thick, shorter than any wall is long.
    run = max(9, int(min(x2 - x1, y2 - y1) / 40))
    vertical = _open_line(dark, (run, 1))
    horizontal = _open_line(dark, (1, run))
    return vertical, horizontal


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _open_line(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    kernel = np.ones(shape, np.uint8)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)


def line_positions(profile: np.ndarray, floor: float) -> list[float]:
    """Centres (weighted) of the runs of ``profile`` above ``floor``: where strokes lie."""
    above = profile > floor
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    centres = []
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        weights = profile[a:b]
        centres.append(float((np.arange(a, b) * weights).sum() / weights.sum()) + 0.5)
    return centres


def fit_steps(lines: Sequence[float], *, tolerance: float = 0.18) -> int | None:
    """The smallest number of equal steps from the first to the last of ``lines`` that puts every
    line within ``tolerance`` of a step; None when none does."""
    if len(lines) < 2:
        return None
    first, span = lines[0], lines[-1] - lines[0]
    for steps in range(1, MAX_SIDE + 1):
        step = span / steps
        offsets = [(x - first) / step for x in lines]
        if all(abs(o - round(o)) <= tolerance for o in offsets):
            return steps
    return None


def estimate_grid(vertical: np.ndarray, horizontal: np.ndarray) -> Grid | None:
    """The grid whose lines the wall strokes lie on, from the projection profiles."""
    xs = line_positions(vertical.sum(axis=0).astype(np.float64), 0.5)
    ys = line_positions(horizontal.sum(axis=1).astype(np.float64), 0.5)
    # Stray marks give short profile peaks; the border's are the longest, so weak ones go first.
    xs = _strong(xs, vertical.sum(axis=0))
    ys = _strong(ys, horizontal.sum(axis=1))
    cols, rows = fit_steps(xs), fit_steps(ys)
    if not cols or not rows:
        return None
    width, height = xs[-1] - xs[0], ys[-1] - ys[0]
    if abs(width / cols - height / rows) > 0.12 * min(width / cols, height / rows):
        # Cells are square: re-fit the side whose step disagrees with the other's.
        cell = width / cols if len(xs) >= len(ys) else height / rows
        cols, rows = max(1, round(width / cell)), max(1, round(height / cell))
    cell = (width + height) / (cols + rows)
    return Grid(rows, cols, cell, (xs[0], ys[0]))


def _strong(lines: list[float], profile: np.ndarray) -> list[float]:
    """``lines`` whose profile peak is at least a fifth of the tallest one's."""
    if not lines:
        return lines
    peaks = [float(profile[max(0, int(x) - 2) : int(x) + 3].max()) for x in lines]
    top = max(peaks)
    return [x for x, p in zip(lines, peaks, strict=True) if p >= 0.2 * top]


def passages(grid: Grid, vertical: np.ndarray, horizontal: np.ndarray) -> dict[Cell, tuple]:
    """Each cell's open neighbours: no wall stroke crosses the middle half of the shared edge."""
    x0, y0 = grid.origin
    c = grid.cell
    half = max(2, round(c * 0.12))
    reach = max(2, round(c * 0.2))
    open_to: dict[Cell, list[Cell]] = {
        (r, k): [] for r in range(grid.rows) for k in range(grid.cols)
    }

    def wall(mask: np.ndarray, x: float, y: float, along_y: bool) -> bool:
        xi, yi = round(x), round(y)
        if along_y:
            patch = mask[yi - reach : yi + reach + 1, max(0, xi - half) : xi + half + 1]
        else:
            patch = mask[max(0, yi - half) : yi + half + 1, xi - reach : xi + reach + 1]
        if patch.size == 0:
            return True
        # A wall stroke fills the patch's middle across its whole length.
        along = patch.any(axis=1) if along_y else patch.any(axis=0)
        return along.mean() > 0.5

    for r in range(grid.rows):
        for k in range(grid.cols):
            if k + 1 < grid.cols:
                x, y = x0 + (k + 1) * c, y0 + (r + 0.5) * c
                if not wall(vertical, x, y, along_y=True):
                    open_to[(r, k)].append((r, k + 1))
                    open_to[(r, k + 1)].append((r, k))
            if r + 1 < grid.rows:
                x, y = x0 + (k + 0.5) * c, y0 + (r + 1) * c
                if not wall(horizontal, x, y, along_y=False):
                    open_to[(r, k)].append((r + 1, k))
                    open_to[(r + 1, k)].append((r, k))
    return {cell: tuple(n) for cell, n in open_to.items()}


def read_maze(image: np.ndarray) -> Maze | None:
    """The maze in ``image``: grid, passages and discs; None when it cannot be read."""
    board = board_box(image)
    vertical, horizontal = wall_masks(image, board)
    grid = estimate_grid(vertical, horizontal)
    if grid is None:
        return None
    inside = np.zeros(image.shape[:2], bool)
    x1, y1, x2, y2 = (round(v) for v in board)
    inside[y1:y2, x1:x2] = True
    green, red = disc_masks(image)
    start, goal = _disc(green, inside), _disc(red, inside)
    if start is None or goal is None:
        return None
    return Maze(grid, passages(grid, vertical, horizontal), start, goal)


# -- the route ----------------------------------------------------------------------------------


def shortest_route(graph: dict[Cell, tuple[Cell, ...]], start: Cell, goal: Cell) -> list[Cell]:
    """The cells of a shortest route from ``start`` to ``goal`` (empty when none exists)."""
    before: dict[Cell, Cell | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        if here == goal:
            break
        for nxt in graph.get(here, ()):
            if nxt not in before:
                before[nxt] = here
                queue.append(nxt)
    if goal not in before:
        return []
    path = [goal]
    while (prev := before[path[-1]]) is not None:
        path.append(prev)
    return path[::-1]


def legs_of(path: Sequence[Cell]) -> list[tuple[str, int]]:
    """The straight runs of a route as ``(direction, cells)``."""
    legs: list[tuple[str, int]] = []
    for a, b in pairwise(path):
        step = (b[0] - a[0], b[1] - a[1])
        name = next(d for d, v in MOVES.items() if v == step)
        if legs and legs[-1][0] == name:
            legs[-1] = (name, legs[-1][1] + 1)
        else:
            legs.append((name, 1))
    return legs


def leg_corners(path: Sequence[Cell], max_legs: int = MAX_LEGS) -> list[Cell]:
    """The route's ends and turning cells, at most ``max_legs + 1``: past that many legs, the
    last line runs straight from the last kept corner to the goal."""
    ends = np.cumsum([0] + [n for _, n in legs_of(path)])
    corners = [path[int(k)] for k in ends]
    if len(corners) - 1 > max_legs:
        corners = [*corners[:max_legs], corners[-1]]
    return corners


def walks_to_goal(
    graph: dict[Cell, tuple[Cell, ...]], start: Cell, goal: Cell, legs: Sequence[tuple[str, int]]
) -> bool:
    """Whether following ``legs`` from ``start`` stays in open corridors and ends on ``goal``."""
    here = start
    for direction, count in legs:
        dr, dc = MOVES[direction]
        for _ in range(count):
            nxt = (here[0] + dr, here[1] + dc)
            if nxt not in graph.get(here, ()):
                return False
            here = nxt
    return here == goal


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _steps(legs: Sequence[tuple[str, int]]) -> str:
    """One letter per move (u, d, l, r)."""
    return "".join(d[0] * n for d, n in legs)


def choose_option(
    options: Sequence[str],
    legs: Sequence[tuple[str, int]],
    graph: dict[Cell, tuple[Cell, ...]],
    start: Cell,
    goal: Cell,
) -> str:
    """The letter of the option equal to ``legs``; else of one that walks to the goal; else of
    the one nearest ``legs`` by edit distance over single moves."""
    parsed = [parse_route(o) or [] for o in options]
    wanted = route_text(legs)
    for k, option in enumerate(parsed):
        if route_text(option) == wanted:
            return LETTERS[k]
    walking = [k for k, option in enumerate(parsed) if walks_to_goal(graph, start, goal, option)]
    if walking:
        return LETTERS[min(walking, key=lambda k: sum(n for _, n in parsed[k]))]
    steps = _steps(legs)
    return LETTERS[min(range(len(parsed)), key=lambda k: _edit_distance(_steps(parsed[k]), steps))]


# -- answers ------------------------------------------------------------------------------------


def parse(prompt: QuestionPrompt) -> tuple[str] | None:
    """The question's kind as a 1-tuple (see :func:`question_kind`), or None."""
    kind = question_kind(prompt)
    return None if kind is None else (kind,)


def _solve(images: Sequence[np.ndarray], prompt: QuestionPrompt, kind: str) -> Solution:
    """Read the maze in ``images[0]``, find the shortest route from S to G and answer."""
    image = images[0]
    height, width = image.shape[:2]
    maze = read_maze(image)
    if maze is None:
        return _guess(prompt, kind)
    ops: list[Box | Line] = [
        Box(1, vision.clip_box(maze.start, width, height), "start"),
        Box(1, vision.clip_box(maze.goal, width, height), "goal"),
    ]
    start = maze.grid.cell_at(vision.centre(maze.start))
    goal = maze.grid.cell_at(vision.centre(maze.goal))
    path = shortest_route(maze.passages, start, goal)
    if len(path) < 2:
        return Solution(tuple(ops), _guess(prompt, kind).answer)
    legs = legs_of(path)
    corners = leg_corners(path)
    for n, (a, b) in enumerate(pairwise(corners), start=1):
        ops.append(
            Line(
                1,
                vision.clip_point(maze.grid.centre(a), width, height),
                vision.clip_point(maze.grid.centre(b), width, height),
                f"leg {n}",
            )
        )
    if kind == "turns":
        answer = str(len(legs) - 1)
    elif kind == "length":
        answer = str(len(path) - 1)
    else:
        answer = choose_option(prompt.options, legs, maze.passages, start, goal)
    return Solution(vision.unique_operations(ops), answer)


def _guess(prompt: QuestionPrompt, kind: str | None = None) -> Solution:
    """The answer without pixels: the first option, or the typical count of the kind."""
    kind = kind or question_kind(prompt)
    if prompt.options:
        return Solution((), LETTERS[0])
    return Solution((), GUESS.get(kind or "", "3"))


solve = guarded_solve(parse, _solve, _guess)
