"""The named ranges of env reset seeds that held-out and generated data are drawn from.

Seeds below 1,000,000 are free for training and RL sampling; every range here starts above them
and no two overlap, so an evaluation item is never a training item. See ``docs/tasks.md`` (Seed
ranges).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from drawenv.errors import invalid_argument


@dataclass(frozen=True)
class SeedRange:
    """The reset seeds ``first, first + 1, …, first + size - 1``, set aside for one use."""

    first: int  # the range's first seed
    size: int  # how many seeds the range holds
    use: str  # what the seeds are for, in one line

    def seed(self, k: int) -> int:
        """The ``k``-th seed of the range, ``first + k``, for ``k`` in ``0 .. size - 1``."""
        if not (isinstance(k, numbers.Integral) and not isinstance(k, bool) and 0 <= k < self.size):
            raise invalid_argument(
                "k",
                k,
                f"an integer in [0, {self.size - 1}]",
                f"The range for {self.use} holds {self.size:,} seeds from {self.first:,}.",
            )
        return self.first + int(k)


SEED_RANGES: dict[str, SeedRange] = {
    "test": SeedRange(1_000_000, 1_000_000, "held-out test items"),
    "validation": SeedRange(2_000_000, 1_000_000, "validation episodes during training"),
    "probe": SeedRange(3_000_000, 1_000_000, "image-swap probes"),
    # Run seed r streams episodes first + r * 10**7 + k, so this holds run seeds 0..99.
    "stream": SeedRange(10_000_000, 10**9, "streamed oracle SFT episodes"),
}
"""Name -> seed range. Seeds below ``SEED_RANGES["test"].first`` are free for training."""

__all__ = ["SEED_RANGES", "SeedRange"]
