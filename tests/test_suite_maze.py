"""The maze suite: determinism, answer balance, ground truth checked against the pixels (walls,
shortest route, S and G marks), maximum reward for the recorded answer, and difficulty levels."""

from __future__ import annotations

import json
from collections import Counter, deque
from itertools import pairwise

import numpy as np
import pytest

from drawenv.tasks import maze
from drawenv.tasks.record import LETTERS, TaskRecord

STEPS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def centre(meta: dict, cell: tuple[int, int]) -> tuple[float, float]:
    size, (x0, y0) = meta["cell_size"], meta["origin"]
    return x0 + (cell[1] + 0.5) * size, y0 + (cell[0] + 0.5) * size


def pixel_graph(record: TaskRecord) -> dict[tuple[int, int], set[tuple[int, int]]]:
    """Open passages read from the image alone: two neighbouring cells are connected when the
    middle of the segment between their centres holds no dark (wall) pixel."""
    meta = record.metadata
    luma = record.images[0].astype(float) @ [0.299, 0.587, 0.114]
    rows, cols = meta["grid"]
    graph: dict[tuple[int, int], set[tuple[int, int]]] = {
        (r, c): set() for r in range(rows) for c in range(cols)
    }
    for r, c in graph:
        for nxt in ((r, c + 1), (r + 1, c)):
            if nxt not in graph:
                continue
            (xa, ya), (xb, yb) = centre(meta, (r, c)), centre(meta, nxt)
            ts = np.linspace(0.42, 0.58, 12)
            xs = np.round(xa + ts * (xb - xa)).astype(int)
            ys = np.round(ya + ts * (yb - ya)).astype(int)
            if luma[ys, xs].min() > 100:
                graph[(r, c)].add(nxt)
                graph[nxt].add((r, c))
    return graph


def shortest(graph, start, goal) -> tuple[int, int]:
    """(distance, number of shortest routes) from ``start`` to ``goal`` by breadth-first search."""
    dist, ways, queue = {start: 0}, {start: 1}, deque([start])
    while queue:
        here = queue.popleft()
        for nxt in sorted(graph[here]):
            if nxt not in dist:
                dist[nxt], ways[nxt] = dist[here] + 1, 0
                queue.append(nxt)
            if dist[nxt] == dist[here] + 1:
                ways[nxt] += ways[here]
    return dist[goal], ways[goal]


def walk(graph, start, text: str):
    """Follow a move list such as "right 2, down 1"; None if it crosses a wall."""
    here = start
    for part in text.split(", "):
        name, count = part.split(" ")
        for _ in range(int(count)):
            dr, dc = STEPS[name]
            nxt = (here[0] + dr, here[1] + dc)
            if nxt not in graph.get(here, ()):
                return None
            here = nxt
    return here


def legs_apart(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a.split(", "), b.split(", ")))


def colour_mask(image: np.ndarray, which: str) -> np.ndarray:
    rgb = image.astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (g - np.maximum(r, b) > 50) if which == "green" else (r - np.maximum(g, b) > 80)


ITEMS = [maze.generate(11, i, 1 + i % 3) for i in range(60)]


def test_answers_are_balanced_and_spread(unpainted_pixels):
    records = [maze.generate(2, i, 1 + i % 3) for i in range(500)]
    kinds = Counter(r.metadata["question_kind"] for r in records)
    assert set(kinds) == {"turns", "length", "moves"} and min(kinds.values()) > 100
    choice = [r for r in records if r.answer_type == "multiple_choice"]
    assert {len(r.options) for r in choice} == {4}
    letters = Counter(r.answer for r in choice)
    assert max(letters.values()) <= 1.5 * len(choice) / 4, letters
    # the wording does not give the answer away: the correct option is not the longest text
    longest = sum(
        len(r.options[LETTERS.index(r.answer)]) == max(map(len, r.options)) for r in choice
    )
    assert longest <= 1.5 * len(choice) / 4 + 10
    # nor is it the option "in the middle" of the others (fewest legs differing from them)
    central = 0.0
    for r in choice:
        spread = [sum(legs_apart(o, p) for p in r.options) for o in r.options]
        middle = [k for k, v in enumerate(spread) if v == min(spread)]
        central += (LETTERS.index(r.answer) in middle) / len(middle)
    assert central <= 1.5 * len(choice) / 4
    for r in choice:
        legs = {len(o.split(", ")) for o in r.options}
        assert len(legs) == 1 and len(set(r.options)) == 4
    for kind, low, high in (("turns", 2, 10), ("length", 6, 30)):
        values = [r.answer for r in records if r.metadata["question_kind"] == kind]
        assert min(values) <= low and max(values) >= high and len(set(values)) >= 10


@pytest.mark.parametrize("record", ITEMS, ids=lambda r: r.id)
def test_recorded_route_is_the_unique_shortest_route_on_the_pixels(record):
    meta = record.metadata
    graph = pixel_graph(record)
    rows, cols = meta["grid"]
    # the pixels and the wall encoding agree on every passage
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols:
                assert ((r, c + 1) in graph[(r, c)]) == (meta["walls"]["right"][r][c] == "0")
            if r + 1 < rows:
                assert ((r + 1, c) in graph[(r, c)]) == (meta["walls"]["down"][r][c] == "0")
    cells = [tuple(p) for p in meta["path_cells"]]
    start, goal = tuple(meta["start"]), tuple(meta["goal"])
    assert cells[0] == start and cells[-1] == goal
    assert all(b in graph[a] for a, b in pairwise(cells))
    assert shortest(graph, start, goal) == (len(cells) - 1, 1)
    steps = [(b[0] - a[0], b[1] - a[1]) for a, b in pairwise(cells)]
    turns = sum(s != t for s, t in pairwise(steps))
    assert meta["length"] == len(cells) - 1 and meta["turns"] == turns
    corners = [cells[0]] + [cells[i] for i in range(1, len(cells) - 1) if steps[i - 1] != steps[i]]
    corners.append(cells[-1])
    assert np.allclose(meta["path"], [centre(meta, p) for p in corners])
    lines = [d for d in meta["key_drawings"] if d["kind"] == "line"]
    assert [d["label"] for d in lines] == [f"leg {n + 1}" for n in range(turns + 1)]
    assert len(lines) <= 30 and len(meta["key_drawings"]) <= 32
    assert [[d["start"], d["end"]] for d in lines] == [list(p) for p in pairwise(meta["path"])]
    assert walk(graph, start, meta["route"]) == goal
    if record.answer_type == "multiple_choice":
        reaching = [
            LETTERS[k] for k, o in enumerate(record.options) if walk(graph, start, o) == goal
        ]
        assert reaching == [record.answer]
    else:
        assert record.answer == meta[meta["question_kind"]]
    assert meta["max_turns"] == 20


@pytest.mark.parametrize("record", ITEMS[:30], ids=lambda r: r.id)
def test_start_and_goal_marks_sit_in_their_cells_and_boxes_are_tight(record):
    meta = record.metadata
    image = record.images[0]
    assert [o["name"] for o in meta["objects"]] == ["start", "goal"]
    boxes = [d for d in meta["key_drawings"] if d["kind"] == "box"]
    assert [(d["label"], d["bbox"]) for d in boxes] == [
        (o["name"], o["box"]) for o in meta["objects"]
    ]
    for obj, colour, cell in zip(meta["objects"], ("green", "red"), (meta["start"], meta["goal"])):
        mask = colour_mask(image, colour)
        ys, xs = np.nonzero(mask)
        cx, cy = centre(meta, cell)
        assert (
            abs(xs.mean() - cx) < 0.1 * meta["cell_size"]
            and abs(ys.mean() - cy) < 0.1 * meta["cell_size"]
        )
        x1, y1, x2, y2 = obj["box"]
        inside = mask[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))].sum()
        outer = mask[int(y1) - 3 : int(y2) + 4, int(x1) - 3 : int(x2) + 4].sum()
        assert inside > 0.5 * (x2 - x1) * (y2 - y1) and outer - inside < 0.03 * inside


def test_harder_levels_have_larger_grids_more_loops_and_longer_routes(unpainted_pixels):
    stats = {}
    for level in (1, 2, 3):
        records = [maze.generate(4, i, level) for i in range(40)]
        for r in records:
            h, w = r.images[0].shape[:2]
            assert h % 28 == 0 and w % 28 == 0 and h * w <= 256 * 28 * 28
            assert r.id == f"maze-4-{level}-{r.metadata['index']}"
            json.dumps(r.metadata)
        stats[level] = [
            np.mean([np.prod(r.metadata["grid"]) for r in records]),
            np.mean([r.metadata["loops"] for r in records]),
            np.mean([r.metadata["length"] for r in records]),
        ]
    for knob in range(3):
        assert stats[1][knob] <= stats[2][knob] < stats[3][knob], stats
    assert stats[1][1] == 0 and stats[3][1] > 0
    assert set(maze.LEVELS) == {1, 2, 3}
