"""Spaces for DrawSpatial-v0: variable-size RGB images and free model text.

Gymnasium's ``Box`` needs a fixed shape and ``Text`` a fixed charset; a VLM environment needs
neither. Both spaces here are plain :class:`gymnasium.spaces.Space` subclasses, so Gymnasium's
vector utilities batch them as tuples (``AsyncVectorEnv`` needs ``shared_memory=False``:
variable-size images cannot live in fixed shared buffers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from drawenv.actions import Answer, Box, Draw, Line


class ImageSpace(spaces.Space[np.ndarray]):
    """Any ``H x W x 3`` ``uint8`` array with ``H, W >= 1``."""

    def __init__(self, seed: int | np.random.Generator | None = None):
        super().__init__(shape=None, dtype=np.uint8, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def contains(self, x: Any) -> bool:
        return (
            isinstance(x, np.ndarray)
            and x.dtype == np.uint8
            and x.ndim == 3
            and x.shape[2] == 3
            and x.shape[0] > 0
            and x.shape[1] > 0
        )

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        height, width = (int(v) * 28 for v in self.np_random.integers(1, 9, size=2))
        return self.np_random.integers(0, 256, size=(height, width, 3), dtype=np.uint8)

    def __repr__(self) -> str:
        return "ImageSpace(HxWx3, uint8)"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ImageSpace)


class UnicodeText(spaces.Space[str]):
    """Any Python ``str`` (any length, any Unicode code point)."""

    def __init__(self, seed: int | np.random.Generator | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def contains(self, x: Any) -> bool:
        return isinstance(x, str)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        length = int(self.np_random.integers(0, 64))
        return "".join(chr(c) for c in self.np_random.integers(32, 0x2FFF, size=length))

    def __repr__(self) -> str:
        return "UnicodeText()"

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self)


_LABELS = ("sofa", "chair", "table", "lamp", "path", "door", "red circle", "route", "A", "B")


class ModelText(UnicodeText):
    """The action space: any model output text; typed actions are accepted too.

    ``sample()`` returns protocol text that mostly draws (60%), sometimes answers (20%) and
    sometimes is malformed (20%), so a random agent exercises drawing, not only parse errors. The
    env keeps ``image_sizes`` up to date so sampled coordinates land on the images.
    """

    def __init__(
        self,
        protocol: str = "vilasr",
        coords: str = "pixel",
        seed: int | np.random.Generator | None = None,
    ):
        super().__init__(seed=seed)
        self.protocol = protocol
        self.coords = coords
        self.image_sizes: tuple[tuple[int, int], ...] = ((448, 448),)

    def contains(self, x: Any) -> bool:
        return isinstance(x, (str, Draw, Answer))

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        from drawenv.protocol import get_protocol  # local: keeps this module import-light

        rng = self.np_random
        roll = rng.random()
        if roll < 0.2:
            junk = ("", "I am not sure.", "```json\n[{'index': 1, 'bbox_2d': [1, 2", "<think>")
            return junk[int(rng.integers(len(junk)))]
        if roll < 0.4:
            answer = str(rng.choice(["A", "B", "C", "D", str(int(rng.integers(0, 30)))]))
            return get_protocol(self.protocol).format(Answer(answer, thought="I will answer."))
        ops = [self._sample_operation(rng) for _ in range(int(rng.integers(1, 4)))]
        return get_protocol(self.protocol).format(Draw(ops, thought="Let me mark it."))

    def _sample_operation(self, rng: np.random.Generator) -> Box | Line:
        index = int(rng.integers(1, len(self.image_sizes) + 1))
        width, height = self.image_sizes[index - 1]
        if self.coords == "norm1000":
            width = height = 1000
        xs = np.sort(rng.integers(0, width + 1, size=2))
        ys = np.sort(rng.integers(0, height + 1, size=2))
        xs[1], ys[1] = max(xs[1], xs[0] + 1), max(ys[1], ys[0] + 1)
        label = str(rng.choice(_LABELS))
        if rng.random() < 0.5:
            return Box(index, (int(xs[0]), int(ys[0]), int(xs[1]), int(ys[1])), label)
        return Line(index, (int(xs[0]), int(ys[0])), (int(xs[1]), int(ys[1])), label)

    def __repr__(self) -> str:
        return f"ModelText(protocol={self.protocol!r}, coords={self.coords!r})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, ModelText)
            and other.protocol == self.protocol
            and other.coords == self.coords
        )


def observation_space() -> spaces.Dict:
    """The observation space: all images so far and the env's latest message."""
    return spaces.Dict(
        {"images": spaces.Sequence(ImageSpace(), stack=False), "text": UnicodeText()}
    )
