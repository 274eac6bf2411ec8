"""``maze``: a grid maze with a start mark S and a goal mark G; questions about the shortest route.

Each item asks one of three questions, chosen by the item's generator: how many turns the shortest
route from S to G makes (count), how many cell-to-cell moves it takes (count), or which sequence of
moves such as "right 2, down 3, left 1" leads from S to G (multiple choice; the wrong options are
perturbations of the true route with the same number of legs and the same total length: swapped or
flipped legs, moved steps, mirrored routes).

Drawing helps: tracing the route leg by leg with auxiliary lines turns a search held in working
memory into one visible polyline whose turns and lengths can be read off, and a wrong guess shows up
as a line crossing a wall.

Ground truth comes from a breadth-first search over the grid. The shortest route is always unique
(items whose S-G pair has two shortest routes are re-drawn), so turns and the move sequence are
well defined even in mazes with loops.

Metadata beyond the common keys: ``grid`` [rows, cols], ``cell_size`` and ``origin`` (top-left
corner of the grid) in pixels, ``start`` / ``goal`` [row, col], ``walls`` (``"right"``: one string
per row, character c is "1" if a wall separates (row, c) from (row, c + 1); ``"down"``: one string
per row but the last, character c is "1" if a wall separates (row, c) from (row + 1, c); the outer
border is always closed), ``path_cells``, ``path`` (the route through cell centres in image
pixels, turning points and ends only), ``route`` (the move sequence), ``turns``, ``length``
(moves), ``loops`` (extra openings), ``generator`` and ``question_kind``.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise

import numpy as np

from drawenv.tasks.record import TaskRecord
from drawenv.tasks.scene import Painter, item_rng, shuffled_options, textured_background

# Difficulty knobs: grid sides to draw from, extra wall openings (loops) and the shortest S-G route
# in moves. Harder levels have larger grids, more loops and longer routes.
LEVELS = {
    1: {"sides": (5, 6), "loops": (0, 0), "min_length": 4},
    2: {"sides": (8, 9), "loops": (2, 4), "min_length": 8},
    3: {"sides": (11, 12), "loops": (5, 9), "min_length": 12},
}
MAX_LEGS = 30  # key drawings: 2 boxes + one line per leg, within the env's 32 operations
MC_LEGS = {1: (3, 6), 2: (3, 8), 3: (4, 10)}  # option texts stay readable
CANVASES = ((448, 448), (504, 392), (392, 504))  # sides multiples of 28, area <= 200704
MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
TABLES = ((150, 118, 88), (96, 104, 114), (168, 158, 140), (120, 132, 118))
BOARDS = ((238, 232, 214), (226, 232, 236), (240, 236, 226), (234, 228, 238))
INKS = ((34, 34, 44), (52, 36, 26), (28, 44, 56))
QUESTIONS = {
    "turns": (
        "Follow the shortest route through the maze from the green S to the red G. "
        "How many turns (changes of direction) does it make?",
        "How many times does the shortest path from S to G change direction?",
    ),
    "length": (
        "How many moves from one cell to a neighbouring cell does the shortest route from the "
        "green S to the red G take?",
        "Counting one step per cell entered, how long is the shortest path from S to G?",
    ),
    "moves": (
        "Which sequence of moves leads from the green S to the red G without crossing a wall? "
        '("right 2" means two cells to the right.)',
        "Starting at S, which list of moves reaches G through the open corridors? "
        '("down 3" means three cells down.)',
    ),
}


def generate(seed: int, index: int, difficulty: int = 1) -> TaskRecord:
    """Item ``index`` of the suite: a pure function of (seed, index, difficulty)."""
    rng = item_rng("maze", seed, index, difficulty)
    level = LEVELS[difficulty]
    kind = str(rng.choice(list(QUESTIONS)))
    legs_range = MC_LEGS[difficulty] if kind == "moves" else (2, MAX_LEGS)
    rows, cols = (int(v) for v in rng.integers(*level["sides"], endpoint=True, size=2))
    # the longer side of the grid along the longer side of the image
    width, height = CANVASES[0 if rows == cols else 1 if cols > rows else 2]
    found = None
    while found is None:  # re-draw until an S-G pair has one shortest route of a fitting shape
        generator = str(rng.choice(["dfs", "kruskal"]))
        right, down = _carve(rng, rows, cols, generator)
        loops = int(rng.integers(*level["loops"], endpoint=True))
        _open_loops(rng, right, down, loops)
        found = _pick_route(rng, right, down, level["min_length"], legs_range)
    start, goal, path = found
    legs = _legs(path)
    image, geometry = _render(rng, width, height, right, down, start, goal)
    cell, (x0, y0), objects = geometry

    def centre(rc: tuple[int, int]) -> list[float]:
        return [x0 + (rc[1] + 0.5) * cell, y0 + (rc[0] + 0.5) * cell]

    corners = [path[0]] + [path[end] for _, _, end in legs]
    polyline = [centre(rc) for rc in corners]
    route = _route_text([(d, n) for d, n, _ in legs])
    question = QUESTIONS[kind][int(rng.integers(len(QUESTIONS[kind])))]
    options: tuple[str, ...] = ()
    if kind == "moves":
        wrong = _wrong_routes(rng, [(d, n) for d, n, _ in legs])
        options, answer = shuffled_options(rng, route, wrong)
    else:
        answer = len(legs) - 1 if kind == "turns" else len(path) - 1
    key = [{"kind": "box", "index": 1, "bbox": o["box"], "label": o["name"]} for o in objects] + [
        {"kind": "line", "index": 1, "start": a, "end": b, "label": f"leg {n + 1}"}
        for n, (a, b) in enumerate(pairwise(polyline))
    ]
    return TaskRecord(
        id=f"maze-{seed}-{difficulty}-{index}",
        images=(image,),
        question=question,
        answer_type="multiple_choice" if kind == "moves" else "count",
        answer=answer,
        options=options,
        metadata={
            "suite": "maze",
            "difficulty": difficulty,
            "seed": seed,
            "index": index,
            "question_kind": kind,
            "grid": [rows, cols],
            "cell_size": cell,
            "origin": [x0, y0],
            "start": list(start),
            "goal": list(goal),
            "walls": {
                "right": ["".join("1" if w else "0" for w in row) for row in right],
                "down": ["".join("1" if w else "0" for w in row) for row in down],
            },
            "generator": generator,
            "loops": loops,
            "path_cells": [list(rc) for rc in path],
            "path": polyline,
            "route": route,
            "turns": len(legs) - 1,
            "length": len(path) - 1,
            "max_turns": 20,
            "objects": objects,
            "key_drawings": key,
        },
    )


def _carve(rng: np.random.Generator, rows: int, cols: int, generator: str):
    """A perfect maze: ``right[r][c]`` / ``down[r][c]`` are True where a wall stands."""
    right = np.ones((rows, cols - 1), dtype=bool)
    down = np.ones((rows - 1, cols), dtype=bool)
    if generator == "dfs":  # randomised depth-first search: long winding corridors
        stack = [(int(rng.integers(rows)), int(rng.integers(cols)))]
        seen = {stack[0]}
        while stack:
            r, c = stack[-1]
            nxt = [(r + dr, c + dc) for dr, dc in MOVES.values()]
            nxt = [p for p in nxt if 0 <= p[0] < rows and 0 <= p[1] < cols and p not in seen]
            if not nxt:
                stack.pop()
                continue
            p = nxt[int(rng.integers(len(nxt)))]
            _open_wall(right, down, (r, c), p)
            seen.add(p)
            stack.append(p)
    else:  # randomised Kruskal: many short dead ends
        parent = list(range(rows * cols))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        edges = [((r, c), (r, c + 1)) for r in range(rows) for c in range(cols - 1)]
        edges += [((r, c), (r + 1, c)) for r in range(rows - 1) for c in range(cols)]
        for k in rng.permutation(len(edges)):
            a, b = edges[k]
            ra, rb = root(a[0] * cols + a[1]), root(b[0] * cols + b[1])
            if ra != rb:
                parent[ra] = rb
                _open_wall(right, down, a, b)
    return right, down


def _open_wall(right, down, a, b) -> None:
    """Remove the wall between neighbouring cells ``a`` and ``b``."""
    (r1, c1), (r2, _) = sorted([a, b])
    (right if r1 == r2 else down)[r1, c1] = False


def _open_loops(rng: np.random.Generator, right, down, count: int) -> None:
    """Knock out ``count`` interior walls, so the maze has loops and BFS must pick the shortest."""
    walls = [("r", r, c) for r, c in zip(*np.nonzero(right))]
    walls += [("d", r, c) for r, c in zip(*np.nonzero(down))]
    for k in rng.permutation(len(walls))[:count]:
        grid, r, c = walls[k]
        (right if grid == "r" else down)[r, c] = False


def _neighbours(right, down, r: int, c: int):
    rows, cols = down.shape[0] + 1, right.shape[1] + 1
    if c + 1 < cols and not right[r, c]:
        yield r, c + 1
    if c > 0 and not right[r, c - 1]:
        yield r, c - 1
    if r + 1 < rows and not down[r, c]:
        yield r + 1, c
    if r > 0 and not down[r - 1, c]:
        yield r - 1, c


def _pick_route(rng: np.random.Generator, right, down, min_length: int, legs_range):
    """A start, a goal and their unique shortest route, or None after a few tries."""
    rows, cols = down.shape[0] + 1, right.shape[1] + 1
    for _ in range(20):
        start = (int(rng.integers(rows)), int(rng.integers(cols)))
        dist, ways, queue = {start: 0}, {start: 1}, deque([start])
        while queue:  # breadth-first search, counting shortest routes to each cell
            cell = queue.popleft()
            for nxt in _neighbours(right, down, *cell):
                if nxt not in dist:
                    dist[nxt], ways[nxt] = dist[cell] + 1, 0
                    queue.append(nxt)
                if dist[nxt] == dist[cell] + 1:
                    ways[nxt] += ways[cell]
        goals = sorted(p for p, d in dist.items() if d >= min_length and ways[p] == 1)
        if not goals:
            continue
        goal = goals[int(rng.integers(len(goals)))]
        path = [goal]
        while path[-1] != start:  # walk back along decreasing distance (unique by ways == 1)
            here = path[-1]
            path.append(
                next(p for p in _neighbours(right, down, *here) if dist[p] == dist[here] - 1)
            )
        path.reverse()
        if legs_range[0] <= len(_legs(path)) <= legs_range[1]:
            return start, goal, path
    return None


def _legs(path) -> list[tuple[str, int, int]]:
    """Straight runs of ``path`` as (direction, cells, index of the run's last cell)."""
    legs: list[tuple[str, int, int]] = []
    for i in range(1, len(path)):
        step = (path[i][0] - path[i - 1][0], path[i][1] - path[i - 1][1])
        name = next(d for d, v in MOVES.items() if v == step)
        if legs and legs[-1][0] == name:
            legs[-1] = (name, legs[-1][1] + 1, i)
        else:
            legs.append((name, 1, i))
    return legs


def _route_text(legs) -> str:
    return ", ".join(f"{d} {n}" for d, n in legs)


def _wrong_routes(rng: np.random.Generator, legs) -> list[str]:
    """Three wrong move lists with the same number of legs and the same total length as the true
    one. A hidden pivot is one edit away from the truth and each wrong option one edit away from
    the pivot, so the truth is not the option "in the middle" of the others. The true route is the
    only shortest one, so no other list of the same length reaches G."""
    truth = _route_text(legs)
    pivot = next(p for p in iter(lambda: _edit(rng, legs), None) if p != legs)
    found: list[str] = []
    while len(found) < 3:
        text = _route_text(_edit(rng, pivot))
        if text not in (truth, _route_text(pivot), *found):
            found.append(text)
    return found


def _edit(rng: np.random.Generator, legs):
    """One plausible edit of a route: swapped counts, a flipped leg, steps moved between legs, a
    mirrored route, or the directions of two legs on one axis swapped. Unchanged if it would put
    two parallel legs side by side."""
    new = list(legs)
    i, j = (int(v) for v in rng.choice(len(new), size=2, replace=False))
    (di, ni), (dj, nj) = new[i], new[j]
    op = int(rng.integers(5))
    if op == 0:
        new[i], new[j] = (di, nj), (dj, ni)
    elif op == 1:
        new[i] = (OPPOSITE[di], ni)
    elif op == 2 and ni > 1:
        k = int(rng.integers(1, ni))
        new[i], new[j] = (di, ni - k), (dj, nj + k)
    elif op == 3:
        axis = (("left", "right"), ("up", "down"))[int(rng.integers(2))]
        new = [(OPPOSITE[d] if d in axis else d, n) for d, n in new]
    elif op == 4 and i + 2 < len(new):
        new[i], new[i + 2] = (new[i + 2][0], ni), (di, new[i + 2][1])
    chained = all(OPPOSITE[a] != b and a != b for (a, _), (b, _) in pairwise(new))
    return new if chained else list(legs)


def _render(rng: np.random.Generator, width: int, height: int, right, down, start, goal):
    """The maze on a paper board lying on a table; returns the image and (cell, origin, objects)."""
    rows, cols = down.shape[0] + 1, right.shape[1] + 1
    margin = int(rng.integers(24, 36))
    cell = int(min((width - 2 * margin) / cols, (height - 2 * margin) / rows))
    x0, y0 = (width - cols * cell) // 2, (height - rows * cell) // 2
    pad = max(8, cell // 4)
    table = TABLES[int(rng.integers(len(TABLES)))]
    board = BOARDS[int(rng.integers(len(BOARDS)))]
    pixels = textured_background(rng, width, height, table, grain=10.0)
    bx1, by1, bx2, by2 = x0 - pad, y0 - pad, x0 + cols * cell + pad, y0 + rows * cell + pad
    pixels[by1 + 4 : by2 + 4, bx1 + 4 : bx2 + 4] //= 2  # the board's shadow
    paper = textured_background(rng, bx2 - bx1, by2 - by1, board, grain=5.0).astype(np.int16)
    if rng.random() < 0.6:  # faint floor tiles
        rr, cc = np.indices(paper.shape[:2])
        tiles = ((rr - pad) // cell + (cc - pad) // cell) % 2 == 1
        paper[tiles] -= int(rng.integers(6, 14))
    pixels[by1:by2, bx1:bx2] = np.clip(paper, 0, 255).astype(np.uint8)
    painter = Painter(pixels)
    ink = INKS[int(rng.integers(len(INKS)))]
    stroke = max(3.0, cell / 10)
    strokes = _wall_strokes(right, down)
    for shade, offset in (((150, 140, 130), stroke * 0.6), (ink, 0.0)):
        for (ra, ca), (rb, cb) in strokes:  # square ends: extend by half a stroke
            ex, ey = (stroke / 2, 0) if ra == rb else (0, stroke / 2)
            a = (x0 + ca * cell - ex + offset, y0 + ra * cell - ey + offset)
            b = (x0 + cb * cell + ex + offset, y0 + rb * cell + ey + offset)
            painter.line([a, b], fill=shade, width=stroke)
    objects = []
    radius = cell * 0.36
    for name, (r, c), fill, dark, letter in (
        ("start", start, (46, 164, 72), (18, 96, 38), "S"),
        ("goal", goal, (214, 46, 46), (124, 22, 22), "G"),
    ):
        cx, cy = x0 + (c + 0.5) * cell, y0 + (r + 0.5) * cell
        box = [cx - radius, cy - radius, cx + radius, cy + radius]
        painter.ellipse(box, fill=fill, outline=dark, width=max(1.0, cell / 30))
        painter.text((cx, cy), letter, max(12.0, radius * 1.25), (255, 255, 255), halo=dark)
        objects.append({"name": name, "box": [round(v, 1) for v in box]})
    return painter.result(blur=0.3), (cell, (x0, y0), objects)


def _wall_strokes(right, down) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Walls merged into straight strokes between grid corners (row, col), border included."""
    rows, cols = down.shape[0] + 1, right.shape[1] + 1
    horizontal = np.ones((rows + 1, cols), dtype=bool)  # the edge above cell (r, c)
    horizontal[1:rows] = down
    vertical = np.ones((cols + 1, rows), dtype=bool)  # the edge left of cell (r, c), as [c, r]
    vertical[1:cols] = right.T
    strokes = []
    for flags, flip in ((horizontal, False), (vertical, True)):
        for line, row in enumerate(flags):
            edges = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                ends = ((line, int(a)), (line, int(b)))
                strokes.append(tuple(e[::-1] for e in ends) if flip else ends)
    return strokes
