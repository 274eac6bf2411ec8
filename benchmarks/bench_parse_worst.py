"""Worst-case turns: what one ``env.step`` costs on pathological model output.

Each row is one turn built to be expensive to parse: many fenced blocks of Python-literal text
(the slow ``ast.literal_eval`` fallback), turns of 10 MB, megabytes of ``<tool_call>`` tags, a
million characters of JSON items, fences or nesting. The parser bounds its work per turn
(``drawenv.protocol``: ``MAX_TURN_CHARS``, ``MAX_BLOCKS``, ``MAX_ITEMS``, ``MAX_LITERAL_CHARS``),
so every row should stay within about 0.2 s on one core, reporting the limit it hit in
``info["errors"]``.

Baseline in the same run: a normal drawing turn (three boxes after a short thought), parsed and
stepped the same way. ``parse`` times ``Protocol.parse`` alone; ``step`` times ``env.step`` after a
fresh ``reset`` (parsing, checks, drawing, the observation). Best of ``--repeats``.

Run ``python benchmarks/bench_parse_worst.py`` (about a minute on one core).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from bench_parse_rewards import best_seconds

from drawenv.env import DrawSpatialEnv
from drawenv.protocol import MAX_LITERAL_CHARS, MAX_TURN_CHARS
from drawenv.tasks import TaskRecord

ITEM = {"index": 1, "bbox_2d": [10, 20, 110, 220], "label": "chair"}
HEAD = "<think> mark the chairs </think> Action: Object Mapper\n"
ANSWER = "</think> Action: Answer\n<answer> 3 </answer>"
BUDGET_S = 0.2


def fence(body: str) -> str:
    return f"```\n{body}\n```\n"


def literal(chars: int) -> str:
    """A Python-literal (single-quoted) list of items of about ``chars`` characters."""
    return repr([ITEM] * (chars // (len(repr(ITEM)) + 2)))


def fill(unit: str, chars: int) -> str:
    return unit * (chars // len(unit))


def cases() -> list[tuple[str, str, str]]:
    """``(name, protocol, text)``; the first row is the baseline."""
    tool_literal = repr(
        {"name": "draw_boxes", "arguments": {"index": 1, "boxes": [ITEM] * 30}}
    ).replace("'index': 1, 'bbox_2d'", "'bbox_2d'")
    near_limit = MAX_TURN_CHARS - 200
    return [
        ("normal turn, 3 boxes (baseline)", "vilasr", HEAD + fence(json.dumps([ITEM] * 3))),
        ("50 literal blocks of 99 kB", "vilasr", HEAD + fence(literal(99_000)) * 50),
        ("32 literal blocks of 6 kB", "vilasr", HEAD + fence(literal(6_000)) * 32),
        ("10 MB reasoning, then answer", "vilasr", "<think>" + fill("word ", 10**7) + ANSWER),
        ("10 MB of small fences", "vilasr", HEAD + fill(fence("[1]"), 10**7)),
        ("10 MB of JSON items", "vilasr", HEAD + fence(json.dumps([ITEM] * 160_000))),
        ("10 MB of literal blocks", "vilasr", HEAD + fill(fence(literal(2_000)), 10**7)),
        ("1 MB of JSON ints", "vilasr", HEAD + fence("[" + fill("1,", near_limit)[:-1] + "]")),
        ("1 MB of empty items", "vilasr", HEAD + fence("[" + fill("{},", near_limit)[:-1] + "]")),
        ("1 MB of ignored fences", "vilasr", HEAD + fill("```python\n", near_limit)),
        (
            "1 MB of literal complex numbers",
            "vilasr",
            HEAD + fence("[" + fill("1+1j, ", near_limit) + "]"),
        ),
        ("1 MB of nesting", "vilasr", HEAD + fence("[" * near_limit)),
        (
            "20 kB of literal nested dicts",
            "vilasr",
            HEAD + fence("[" + fill("{'a': {'b': [1]}}, ", MAX_LITERAL_CHARS - 10) + "]"),
        ),
        (
            "5 MB of <tool_call> tags",
            "tool_call",
            "<think>x</think>" + fill("<tool_call>", 5 * 10**6),
        ),
        (
            "5 MB of literal tool calls",
            "tool_call",
            "<think>x</think>" + fill(f"<tool_call>{tool_literal}</tool_call>", 5 * 10**6),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timings per row (best is kept)")
    args = parser.parse_args()

    record = TaskRecord(
        id="bench-1",
        images=(np.full((336, 448, 3), 128, np.uint8),),
        question="How many chairs are there?",
        answer_type="count",
        answer=3,
    )
    envs = {name: DrawSpatialEnv(task=[record], protocol=name) for name in ("vilasr", "tool_call")}
    header = f"{'turn':<34} {'chars':>11} {'parse ms':>9} {'step ms':>9} {'x base':>8}  first error"
    print(header)
    print("-" * (len(header) + 30))
    base = None
    worst = 0.0
    for name, protocol, text in cases():
        env = envs[protocol]
        parse = best_seconds(lambda: env.protocol.parse(text), args.repeats)  # noqa: B023
        step = best_seconds(lambda: env.step(text), args.repeats, lambda: env.reset(seed=0))  # noqa: B023
        base = base or step
        if base is not step:
            worst = max(worst, step)
        env.reset(seed=0)
        errors = env.step(text)[-1]["errors"]
        first = (errors[0] if errors else "-")[:44]
        print(
            f"{name:<34} {len(text):>11,} {1e3 * parse:>9.2f} {1e3 * step:>9.2f} "
            f"{step / base:>8.1f}  {first}"
        )
    verdict = "within" if worst <= BUDGET_S else "OVER"
    print(
        f"\nslowest pathological step: {1e3 * worst:.1f} ms ({verdict} the {BUDGET_S:.1f} s budget)"
    )


if __name__ == "__main__":
    main()
