"""Env step cost: where the time of one ``env.step`` goes.

Run ``python benchmarks/bench_step.py``. Each row is the median time of one call over many
repetitions; the ratio column is against the first row (parsing the same drawing turn alone),
measured in the same run, so the table reads the same on any machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from drawenv import Answer, Box, Draw, Line
from drawenv.env import DrawSpatialEnv
from drawenv.protocol import get_protocol

REPEATS = 200
RECORD = {
    "id": "bench",
    "images": [np.full((448, 448, 3), 128, np.uint8)],
    "question": "How many?",
    "answer_type": "count",
    "answer": 3,
}


def ops(n: int) -> list[Box | Line]:
    """``n`` distinct operations on image 1, alternating boxes and lines."""
    return [
        Box(1, (10 + i, 10 + i, 200 + i, 150 + i), f"box {i}")
        if i % 2 == 0
        else Line(1, (5 + i, 400), (400, 5 + i), f"line {i}")
        for i in range(n)
    ]


def median_ms(setup: Callable[[], object], call: Callable[[object], object]) -> float:
    times = []
    for _ in range(REPEATS):
        state = setup()
        start = time.perf_counter()
        call(state)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def fresh_env(**kwargs) -> DrawSpatialEnv:
    env = DrawSpatialEnv(task=[RECORD], repeat_policy="off", **kwargs)
    env.reset(seed=0)
    return env


def main() -> None:
    protocol = get_protocol("vilasr")
    text = {n: protocol.format(Draw(ops(n), thought="mark them")) for n in (1, 8, 32)}
    rows = [
        ("parse 8-op turn (baseline)", median_ms(lambda: None, lambda _: protocol.parse(text[8]))),
        (
            "reset (448x448 task)",
            median_ms(lambda: DrawSpatialEnv(task=[RECORD]), lambda env: env.reset(seed=0)),
        ),
        ("step: answer", median_ms(fresh_env, lambda env: env.step(Answer("3")))),
    ]
    for n in (1, 8, 32):
        rows.append(
            (f"step: draw {n} ops", median_ms(fresh_env, lambda env, n=n: env.step(text[n])))
        )

    def tenth_image_env() -> DrawSpatialEnv:
        env = fresh_env()
        for i in range(9):
            env.step(Draw([Box(1 + i, (10, 10, 100 + i, 100), f"b{i}")]))
        return env

    rows.append(
        (
            "step: draw 8 ops, 10 images held",
            median_ms(tenth_image_env, lambda env: env.step(text[8])),
        )
    )
    baseline = rows[0][1]
    print(f"{'case':<34} {'ms/call':>9} {'x baseline':>11}")
    print("-" * 56)
    for name, ms in rows:
        print(f"{name:<34} {ms:>9.3f} {ms / baseline:>11.2f}")


if __name__ == "__main__":
    main()
