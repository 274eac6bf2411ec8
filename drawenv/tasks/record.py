"""The task record: one question about one or more images, with its ground truth."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drawenv.actions import Box, Line
from drawenv.errors import DrawEnvError, check_choice, check_number
from drawenv.geometry import MAX_ASPECT_RATIO

ANSWER_TYPES = ("multiple_choice", "numeric", "count", "text")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_IMAGE_PIXELS = 64_000_000
"""Default cap on an original image's width x height, checked before it is decoded."""


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
        if not isinstance(self.id, str) or not self.id:
            raise DrawEnvError(
                f"Invalid `id` in {where}: expected a non-empty string, got {self.id!r}. "
                'Quote it: "12".'
            )
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
        if not isinstance(self.metadata, Mapping):
            raise DrawEnvError(
                f"Invalid `metadata` in {where}: expected a mapping, got "
                f"{type(self.metadata).__name__}."
            )
        problem = metadata_problem(self.metadata, len(self.images))
        if problem is not None:
            name, expected, value, hint = problem
            raise DrawEnvError(
                f"Invalid `{name}` in {where}: expected {expected}, got {_shown(value)}. {hint}"
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

    def load_images(self, *, max_image_pixels: int = MAX_IMAGE_PIXELS) -> list[np.ndarray]:
        """The original images as arrays (paths are read here, lazily). Never mutated by drawenv.

        An image wider than ``MAX_ASPECT_RATIO`` or with more than ``max_image_pixels`` pixels
        raises :class:`DrawEnvError` naming it and the task; a file's size is read from its
        header, before anything is decoded.
        """
        check_number("max_image_pixels", max_image_pixels, low=1, integer=True)
        return [
            _load_image(image, f"image {k} of task {self.id!r}", max_image_pixels)
            for k, image in enumerate(self.images, 1)
        ]


_MISSING = type("Missing", (), {"__repr__": lambda self: "nothing (the key is missing)"})()
_OBJECT = '{"name": str, "box": [x1, y1, x2, y2]}'
_OBJECTS_HINT = (
    f"`metadata.objects` lists {_OBJECT} on image 1, in its original pixels; fix or drop the entry."
)
_DRAWINGS_HINT = (
    '`metadata.key_drawings` lists {"kind": "box", "index": k, "bbox": [x1, y1, x2, y2], '
    '"label": str} or {"kind": "line", "index": k, "start": [x, y], "end": [x, y], '
    '"label": str}, with k the 1-based number of an original image; fix or drop the entry.'
)


def metadata_problem(
    metadata: Mapping[str, Any], n_images: int
) -> tuple[str, str, Any, str] | None:
    """The first malformed field among those drawenv reads (``max_turns``, ``objects``,
    ``key_drawings``) as ``(field, expected, value, hint)``, or ``None`` when all are usable.

    Checked when a record is built, so that a bad record fails when a dataset is loaded, naming
    the record, and not at the end of some episode of a training run.
    """
    if "max_turns" in metadata:
        turns = metadata["max_turns"]
        if not _is_integer(turns) or turns < 1:
            return (
                "metadata.max_turns",
                "an integer >= 1",
                turns,
                "It overrides the env's turn limit for this task; drop it to use the env's.",
            )
    objects = metadata.get("objects", [])
    if not isinstance(objects, (list, tuple)):
        return "metadata.objects", f"a list of {_OBJECT}", objects, _OBJECTS_HINT
    for k, item in enumerate(objects):
        where = f"metadata.objects[{k}]"
        if not isinstance(item, Mapping):
            return where, f"an object {_OBJECT}", item, _OBJECTS_HINT
        if not isinstance(item.get("name"), str):
            return f"{where}.name", "a string", item.get("name", _MISSING), _OBJECTS_HINT
        if not _is_point(item.get("box"), 4):
            return f"{where}.box", "4 finite numbers", item.get("box", _MISSING), _OBJECTS_HINT
    drawings = metadata.get("key_drawings", [])
    if not isinstance(drawings, (list, tuple)):
        return "metadata.key_drawings", "a list of drawings", drawings, _DRAWINGS_HINT
    for k, item in enumerate(drawings):
        where = f"metadata.key_drawings[{k}]"
        if not isinstance(item, Mapping):
            return where, "an object", item, _DRAWINGS_HINT
        kind = item.get("kind", _MISSING)
        if kind not in ("box", "line"):
            return f"{where}.kind", "'box' or 'line'", kind, _DRAWINGS_HINT
        index = item.get("index", _MISSING)
        if not _is_integer(index) or not 1 <= index <= n_images:
            expected = f"an image number in 1..{n_images}"
            return f"{where}.index", expected, index, _DRAWINGS_HINT
        if not isinstance(item.get("label"), str):
            return f"{where}.label", "a string", item.get("label", _MISSING), _DRAWINGS_HINT
        points = {"bbox": 4} if kind == "box" else {"start": 2, "end": 2}
        for key, size in points.items():
            if not _is_point(item.get(key), size):
                value = item.get(key, _MISSING)
                return f"{where}.{key}", f"{size} finite numbers", value, _DRAWINGS_HINT
    return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_point(value: Any, size: int) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == size
        and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
    )


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _load_image(image: Any, where: str, max_pixels: int) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim >= 2:
            _check_size(image.shape[1], image.shape[0], where, max_pixels)
        return image
    if isinstance(image, (str, Path)):
        from PIL import Image

        path = Path(image)
        where = f"image file {str(path)!r} ({where})"
        if not path.is_file():
            raise DrawEnvError(f"The {where} does not exist.")
        try:
            # Image.open reads only the header: the size is checked before any pixel is decoded.
            # Pillow's decompression-bomb warning is silenced: `max_pixels` is the limit here.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(path)
            with img:
                _check_size(*img.size, where, max_pixels)
                return np.asarray(img.convert("RGB"))
        except Image.DecompressionBombError as error:  # beyond Pillow's own limit
            raise DrawEnvError(
                f"The {where} is too large to decode: {error} Downscale it; drawenv reads images "
                f"of at most max_image_pixels={max_pixels:,} pixels."
            ) from None
        except OSError as error:  # Pillow's UnidentifiedImageError included
            raise DrawEnvError(f"The {where} cannot be read as an image: {error}") from error
    raise DrawEnvError(
        f"Invalid {where}: expected a numpy array or a file path, got {type(image).__name__}."
    )


def _check_size(width: int, height: int, where: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise DrawEnvError(
            f"Invalid {where}: expected at most max_image_pixels={max_pixels:,} pixels, got "
            f"{width}x{height} = {width * height:,}. Downscale the image, or raise the env's "
            "`max_image_pixels` (decoding costs memory and time in proportion)."
        )
    if min(width, height) < 1 or max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise DrawEnvError(
            f"Invalid {where}: expected an aspect ratio of at most {MAX_ASPECT_RATIO}, got "
            f"{width}x{height}. Crop or pad the image."
        )
