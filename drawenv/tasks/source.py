"""Task sources: what the env draws its tasks from.

A source is random access: ``source[i]`` is a pure function of ``i`` (and the source's own seed),
so items are reproducible and shardable. ``size`` is the number of items, or ``None`` for an endless
procedural generator; the env samples an index with its own seeded ``np_random``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from drawenv.errors import DrawEnvError
from drawenv.tasks.record import TaskRecord

# Endless sources are sampled in [0, ENDLESS) so that indices stay plain int64-safe.
ENDLESS = 2**31 - 1


class TaskSource:
    """Base class: implement ``__getitem__`` and set ``size`` (``None`` = endless).

    ``source[i]`` must be a pure function of ``i``: the env picks ``i`` with its seeded
    ``np_random`` (:meth:`sample_index`), so episodes are reproducible and sources shardable.
    """

    size: int | None = None

    def __getitem__(self, index: int) -> TaskRecord:
        raise NotImplementedError

    def __len__(self) -> int:
        if self.size is None:
            raise TypeError(f"{type(self).__name__} is endless: it has no length (size is None)")
        return self.size

    def __bool__(self) -> bool:
        return True  # an endless source is not empty, though it has no length

    def sample_index(self, rng: np.random.Generator) -> int:
        """A uniformly random index, drawn from the caller's generator."""
        return int(rng.integers(0, self.size if self.size is not None else ENDLESS))


class RecordSource(TaskSource):
    """A fixed list of task records (``TaskRecord`` objects or dicts with its fields)."""

    def __init__(self, records: Iterable[TaskRecord | Mapping[str, Any]]):
        self.records = [r if isinstance(r, TaskRecord) else _record_from_dict(r) for r in records]
        if not self.records:
            raise DrawEnvError(
                "Invalid `task`: expected at least one task record, got an empty list."
            )
        self.size = len(self.records)

    def __getitem__(self, index: int) -> TaskRecord:
        return self.records[index]


RENDER_CACHE_SIZE = 64
"""Rendered items kept per process, shared by every source of the process (see
:class:`GeneratedSource`)."""


@functools.lru_cache(maxsize=RENDER_CACHE_SIZE)
def _rendered(
    generate: Callable[[int, int, int], TaskRecord], seed: int, index: int, difficulty: int
) -> TaskRecord:
    record = generate(seed, index, difficulty)
    for image in record.images:
        if isinstance(image, np.ndarray):
            image.flags.writeable = False  # shared by every env that draws this item
    return record


class GeneratedSource(TaskSource):
    """An endless procedural suite: item ``i`` is ``generate(seed, i, difficulty)``.

    Items are pure functions of ``(seed, i, difficulty)``, so the last :data:`RENDER_CACHE_SIZE`
    rendered in a process are kept and shared: the envs of a GRPO group, reset on the same item,
    render it once. Their images are read-only arrays (the env never writes to an original).
    """

    def __init__(
        self,
        generate: Callable[[int, int, int], TaskRecord],
        *,
        seed: int = 0,
        difficulty: int = 1,
    ):
        self.generate, self.seed, self.difficulty = generate, seed, difficulty

    def __getitem__(self, index: int) -> TaskRecord:
        try:
            return _rendered(self.generate, self.seed, int(index), self.difficulty)
        except TypeError:  # an unhashable generator: render every time
            return self.generate(self.seed, int(index), self.difficulty)


class MixedSource(TaskSource):
    """Interleaves sources: item ``i`` is item ``i // n`` of source ``i % n``, wrapping around a
    finite source (``(i // n) % size``) when it is mixed with endless ones."""

    def __init__(self, sources: Sequence[TaskSource]):
        self.sources = list(sources)
        sizes = [s.size for s in self.sources]
        self.size = None if None in sizes else len(sizes) * min(sizes)

    def __getitem__(self, index: int) -> TaskRecord:
        n = len(self.sources)
        source = self.sources[index % n]
        item = index // n
        return source[item % source.size if source.size is not None else item]


def _record_from_dict(record: Mapping[str, Any]) -> TaskRecord:
    fields = ("id", "images", "question", "answer_type", "answer", "options", "metadata")
    unknown = sorted(set(record) - set(fields))
    missing = [f for f in fields[:5] if f not in record]
    if unknown or missing:
        raise DrawEnvError(
            f"Invalid task record {record.get('id', '?')!r}: missing fields {missing}, "
            f"unknown fields {unknown}; expected fields {list(fields)}."
        )
    return TaskRecord(**record)
