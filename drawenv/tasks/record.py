"""The task record: one question about one or more images, with its ground truth."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drawenv.actions import Box, Line
from drawenv.errors import DrawEnvError, check_choice

ANSWER_TYPES = ("multiple_choice", "numeric", "count", "text")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class TaskRecord:
    """A task (docs/tasks.md, The task record).

    Attributes:
        id: unique, stable identifier.
        images: the original images, as ``HxWx3`` uint8 arrays or image file paths.
        question: the question text (without options or answer instructions).
        answer_type: one of ``multiple_choice``, ``numeric``, ``count``, ``text``.
        answer: the option letter, the number, or the text.
        options: the option texts for ``multiple_choice`` (shown as "A. …", "B. …").
        metadata: suite, difficulty, seed and ground truth. ``metadata["objects"]`` lists
            ``{"name": str, "box": [x1, y1, x2, y2]}`` on image 1 in original pixels (and optionally
            ``"centre_3d"``); detection rewards and oracles use it. ``metadata["key_drawings"]``
            lists the drawings that help most (see :attr:`key_operations`);
            ``metadata["max_turns"]`` overrides the env's default turn limit.
    """

    id: str
    images: tuple[Any, ...]
    question: str
    answer_type: str
    answer: str | float | int
    options: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "options", tuple(self.options))
        where = f"task {self.id!r}"
        if not self.images:
            raise DrawEnvError(
                f"Invalid `images` in {where}: expected at least one image, got none."
            )
        check_choice(f"answer_type ({where})", self.answer_type, ANSWER_TYPES)
        if self.answer_type == "multiple_choice":
            letters = LETTERS[: len(self.options)]
            if len(self.options) < 2 or str(self.answer) not in letters or not letters:
                raise DrawEnvError(
                    f"Invalid `answer` in {where}: expected an option letter among {letters!r} "
                    f"with at least two options, got answer {self.answer!r} and "
                    f"{len(self.options)} options."
                )
        elif self.answer_type in ("numeric", "count"):
            value = self.answer
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and (value > 0 or self.answer_type == "count")
            ok = ok and (self.answer_type == "numeric" or value == int(value)) and value >= 0
            if not ok:
                raise DrawEnvError(
                    f"Invalid `answer` in {where}: expected a finite number > 0 for numeric "
                    f"(MRA divides by the truth) or an integer >= 0 for count, got {value!r}."
                )

    @property
    def objects(self) -> tuple[tuple[str, tuple[float, float, float, float]], ...]:
        """Ground-truth ``(name, xyxy)`` on image 1 in original pixels (may be empty)."""
        return tuple(
            (str(o["name"]), tuple(float(v) for v in o["box"]))
            for o in self.metadata.get("objects", ())
        )

    @property
    def key_operations(self) -> tuple[Box | Line, ...]:
        """The drawings that help most, as operations in original pixels of their image.

        Read from ``metadata["key_drawings"]``: ``{"kind": "box", "index": k, "bbox": [x1, y1,
        x2, y2], "label": ...}`` or ``{"kind": "line", "index": k, "start": [x, y], "end": [x, y],
        "label": ...}``, with ``k`` the 1-based index of an original image.
        """
        return tuple(
            Box(d["index"], d["bbox"], d["label"])
            if d["kind"] == "box"
            else Line(d["index"], d["start"], d["end"], d["label"])
            for d in self.metadata.get("key_drawings", ())
        )

    def load_images(self) -> list[np.ndarray]:
        """The original images as arrays (paths are read here, lazily). Never mutated by drawenv."""
        return [_load_image(image, self.id) for image in self.images]


def _load_image(image: Any, task_id: str) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, (str, Path)):
        from PIL import Image

        path = Path(image)
        if not path.is_file():
            raise DrawEnvError(f"Image file {str(path)!r} of task {task_id!r} does not exist.")
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as error:  # Pillow's UnidentifiedImageError included
            raise DrawEnvError(
                f"Image file {str(path)!r} of task {task_id!r} cannot be read as an image: {error}"
            ) from error
    raise DrawEnvError(
        f"Invalid image in task {task_id!r}: expected a numpy array or a file path, "
        f"got {type(image).__name__}."
    )
