"""Parsing and rewards: model turns parsed per second, MRA and SNRA over a million pairs.

Parsing: a seeded corpus of realistic model turns for each protocol (drawing turns of 1 to 8
operations after a reasoning paragraph, answer turns, and the usual mistakes: single-quoted
items, an unclosed fence, a missing ``</think>``, numbers as strings, half-written JSON) is
parsed with ``Protocol.parse``. Baseline in the same run: what a minimal extractor does, a regular
expression for the fenced block or tool call and ``json.loads`` of it, with no validation.

Rewards: ``mra`` and ``snra`` (vectorised over numpy arrays) on ``--pairs`` predictions and
truths. Baselines in the same run: the relative error ``|p - y| / y`` alone (one numpy pass, the
least any vectorised metric does) and the scalar API called once per pair (timed on 10,000 pairs
and scaled up).

Run ``python benchmarks/bench_parse_rewards.py`` (seconds on 2 CPU cores); bigger runs with
``--turns 20000 --pairs 10000000``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable

import numpy as np

from drawenv import Answer, Box, Draw, Line
from drawenv.protocol import get_protocol
from drawenv.rewards import mra, snra

VOCABULARY = (
    "the sofa is left of the lamp so I should mark both and compare their distance to the door "
    "then trace a path along the corridor because the hallway bends twice near the kitchen"
)
LABELS = ("sofa", "lamp", "door", "chair 1", "chair 2", "path", "route to exit", "table")


def reasoning(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(VOCABULARY.split(" "), int(rng.integers(30, 120))))


def operation(rng: np.random.Generator) -> Box | Line:
    x = sorted(int(v) for v in rng.integers(0, 448, 2))
    y = sorted(int(v) for v in rng.integers(0, 448, 2))
    label = str(rng.choice(LABELS))
    if rng.random() < 0.6:
        return Box(int(rng.integers(1, 4)), (x[0], y[0], x[1] + 1, y[1] + 1), label)
    return Line(int(rng.integers(1, 4)), (x[0], y[0]), (x[1] + 1, y[1]), label)


def corpus(protocol_name: str, size: int, seed: int) -> list[str]:
    """``size`` turns: 60% drawing, 25% answers, 15% malformed in one of five common ways."""
    rng = np.random.default_rng(seed)
    protocol = get_protocol(protocol_name)
    turns = []
    for _ in range(size):
        roll = rng.random()
        if roll < 0.25:
            answer = str(rng.choice(["A", "B", "C", "3", "about 4.5 m"]))
            turns.append(protocol.format(Answer(answer, thought=reasoning(rng))))
            continue
        ops = [operation(rng) for _ in range(int(rng.integers(1, 9)))]
        text = protocol.format(Draw(ops, thought=reasoning(rng)))
        if roll >= 0.85:
            mistake = int(rng.integers(5))
            if mistake == 0:
                text = text.replace('"', "'")  # Python-literal items
            elif mistake == 1:
                text = text.rstrip("`\n")  # unclosed fence or call
            elif mistake == 2:
                text = text.replace("</think>", "", 1)
            elif mistake == 3:
                text = re.sub(r"(\d+)\]", r'"\1"]', text, count=1)  # a number as a string
            else:
                text = text[: len(text) * 3 // 4]  # cut off mid-JSON
        turns.append(text)
    return turns


_BLOCK = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


def minimal_extract(text: str) -> object:
    """The baseline: the first fenced block or tool call, decoded, no checks."""
    found = _BLOCK.search(text) or _CALL.search(text)
    if found is None:
        return None
    try:
        return json.loads(found.group(1))
    except ValueError:
        return None


def best_seconds(
    call: Callable[[], object], repeats: int, before: Callable[[], object] | None = None
) -> float:
    """The best of ``repeats`` timings (the least disturbed by other processes); ``before`` runs
    untimed ahead of each."""
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=2000, help="corpus size per protocol")
    parser.add_argument("--pairs", type=int, default=1_000_000, help="pairs for MRA and SNRA")
    parser.add_argument("--repeats", type=int, default=5, help="timings per row (best is kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    title = f"parsing ({args.turns} turns)"
    print(f"{title:<34} {'turns/s':>10} {'us/turn':>9} {'x baseline':>11}")
    print("-" * 67)
    for name in ("vilasr", "tool_call"):
        turns = corpus(name, args.turns, args.seed)
        protocol = get_protocol(name)
        chars = statistics.mean(len(t) for t in turns)
        base = best_seconds(lambda: [minimal_extract(t) for t in turns], args.repeats)  # noqa: B023
        full = best_seconds(lambda: [protocol.parse(t) for t in turns], args.repeats)  # noqa: B023
        for label, seconds in (
            (f"{name}: regex + json.loads (base)", base),
            (f"{name}: parse", full),
        ):
            print(
                f"{label:<34} {args.turns / seconds:>10.0f} {1e6 * seconds / args.turns:>9.1f} "
                f"{seconds / base:>11.2f}"
            )
        print(f"{'':<2}(mean turn length {chars:.0f} characters)")

    rng = np.random.default_rng(args.seed)
    truth = rng.uniform(0.5, 50.0, args.pairs)
    pred = truth * rng.lognormal(0.0, 0.3, args.pairs)
    pred[rng.random(args.pairs) < 0.01] = np.nan  # unparseable answers
    sample = 10_000
    scalar_pairs = list(zip(pred[:sample].tolist(), truth[:sample].tolist(), strict=True))
    relative = best_seconds(lambda: np.abs(pred - truth) / truth, args.repeats)
    rows = [("|p - y| / y (baseline)", relative)]
    for name, metric in (("mra", mra), ("snra", snra)):
        rows.append(
            (f"{name} (arrays)", best_seconds(lambda m=metric: m(pred, truth), args.repeats))
        )
        loop = best_seconds(lambda m=metric: [m(p, y) for p, y in scalar_pairs], 1)
        rows.append((f"{name} (scalar calls, scaled)", loop * args.pairs / sample))
    title = f"rewards ({args.pairs:,} pairs)"
    print(f"\n{title:<34} {'seconds':>10} {'pairs/s':>12} {'x baseline':>11}")
    print("-" * 70)
    for label, seconds in rows:
        rate = args.pairs / seconds
        print(f"{label:<34} {seconds:>10.4f} {rate:>12.3g} {seconds / relative:>11.2f}")


if __name__ == "__main__":
    main()
