"""Tasks: the record schema, task sources and the built-in procedural suites."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from drawenv.errors import check_choice, invalid_argument
from drawenv.tasks import counting, depth, direction, distance, maze, multiview
from drawenv.tasks.jsonl import JsonlSource, load_jsonl
from drawenv.tasks.record import ANSWER_TYPES, TaskRecord
from drawenv.tasks.seeds import SEED_RANGES, SeedRange
from drawenv.tasks.source import GeneratedSource, MixedSource, RecordSource, TaskSource

SUITES = {
    "maze": maze.generate,
    "counting": counting.generate,
    "distance": distance.generate,
    "direction": direction.generate,
    "depth": depth.generate,
    "multiview": multiview.generate,
}

__all__ = [
    "ANSWER_TYPES",
    "SEED_RANGES",
    "SUITES",
    "GeneratedSource",
    "JsonlSource",
    "MixedSource",
    "RecordSource",
    "SeedRange",
    "TaskRecord",
    "TaskSource",
    "load_jsonl",
    "make_source",
]


def make_source(task: Any, *, seed: int = 0, difficulty: int = 1) -> TaskSource:
    """Turn the env's ``task`` argument into a :class:`TaskSource`.

    ``task`` may be a suite name, ``"mixed"`` (every built-in suite), a list of suite names, a
    path to a ``.jsonl`` dataset, a :class:`TaskSource`, or a list of :class:`TaskRecord` /
    record dicts.
    """
    if isinstance(task, TaskSource):
        return task
    if isinstance(task, (str, os.PathLike)) and os.fspath(task).endswith(".jsonl"):
        return JsonlSource(task)
    if isinstance(task, str):
        if task == "mixed":
            return make_source(list(SUITES), seed=seed, difficulty=difficulty)
        name = check_choice("task", task, [*SUITES, "mixed"])
        return GeneratedSource(SUITES[name], seed=seed, difficulty=difficulty)
    if isinstance(task, (TaskRecord, Mapping)):
        return RecordSource([task])
    if isinstance(task, Sequence) and task and all(isinstance(t, str) for t in task):
        return MixedSource([make_source(t, seed=seed, difficulty=difficulty) for t in task])
    if isinstance(task, Sequence) and task:
        return RecordSource(task)
    raise invalid_argument(
        "task",
        task,
        f"a suite name ({', '.join(map(repr, SUITES))}, 'mixed'), a list of suite names, "
        "a path to a .jsonl file, a TaskSource, or a non-empty list of TaskRecord / record dicts",
    )
