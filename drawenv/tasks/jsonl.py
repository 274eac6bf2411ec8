"""Local datasets: a JSONL file of task records, validated at load time, images read lazily.

One record per line, following the :class:`~drawenv.tasks.record.TaskRecord` schema::

    {"id": "kitchen-3", "images": ["frames/kitchen_0.png"], "question": "How many chairs?",
     "answer_type": "count", "answer": 4, "metadata": {"scene": "kitchen"}}

``images`` are paths relative to the folder of the JSONL file (the folder as named by the path
given, after resolving symlinks). Absolute paths and paths that resolve outside that folder,
through ``..`` or a symlink, are rejected. Blank lines are skipped.

The whole file is validated once, streaming, when the source is built; every error names the
file, the line and the field. Only the byte offset of each record is kept: ``source[i]`` re-reads
its line, and the images are read from disk when the env calls ``record.load_images()``.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from array import array
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath
from typing import Any

from drawenv.errors import DrawEnvError, check_choice, invalid_argument
from drawenv.tasks.record import ANSWER_TYPES, LETTERS, TaskRecord, metadata_problem
from drawenv.tasks.source import TaskSource

FIELDS = ("id", "images", "question", "answer_type", "answer", "options", "metadata")
REQUIRED = FIELDS[:5]
_BOM = b"\xef\xbb\xbf"


class JsonlSource(TaskSource):
    """Task records from a local JSONL file (docs/tasks.md, Local datasets), validated up
    front, loaded lazily.

    Args:
        path: the ``.jsonl`` file. Image paths in it are relative to its folder.

    ``source[i]`` is the ``i``-th record (blank lines not counted) with absolute image paths;
    ``size`` is the number of records.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).absolute()
        if not self.path.is_file():
            raise invalid_argument(
                "path", str(path), "an existing JSONL file", "Check the path and the folder."
            )
        self.root = self.path.parent.resolve()
        offsets = array("q")
        first_line: dict[str, int] = {}
        with open(self.path, "rb") as file:
            offset = 0
            for number, raw in enumerate(file, start=1):
                start, offset = offset, offset + len(raw)
                if not raw.strip() or raw.strip() == _BOM:
                    continue
                record = check_record(
                    _parse_line(raw, self._where(number)), root=self.root, where=self._where(number)
                )
                if record["id"] in first_line:
                    raise DrawEnvError(
                        f"{self._where(number)}: invalid `id`: expected a unique id, got "
                        f"{record['id']!r}, already used on line {first_line[record['id']]}."
                    )
                first_line[record["id"]] = number
                offsets.append(start)
                offsets.append(number)
        if not offsets:
            raise DrawEnvError(
                f"{self.path}: expected at least one task record, got an empty file."
            )
        # (offset, line number) pairs; ids are not kept, so memory is 16 bytes per record.
        self._index = offsets
        self._stamp = _stamp(self.path)
        self.size = len(offsets) // 2

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> TaskRecord:
        if not -self.size <= index < self.size:
            raise IndexError(f"record index {index} out of range for {self.size} records")
        index %= self.size
        if _stamp(self.path) != self._stamp:
            raise DrawEnvError(
                f"{self.path} changed after it was loaded. Build a new JsonlSource to reload it."
            )
        offset, number = self._index[2 * index], self._index[2 * index + 1]
        with open(self.path, "rb") as file:
            file.seek(offset)
            raw = file.readline()
        where = self._where(number)
        # Checked again: a symlink swapped in since loading must not lead outside the folder.
        return TaskRecord(**check_record(_parse_line(raw, where), root=self.root, where=where))

    def __repr__(self) -> str:
        return f"JsonlSource({str(self.path)!r}, size={self.size})"

    def _where(self, number: int) -> str:
        return f"{self.path}, line {number}"


def load_jsonl(path: str | os.PathLike[str]) -> JsonlSource:
    """Load a local JSONL dataset (see :class:`JsonlSource`)."""
    return JsonlSource(path)


def data_error(where: str, field: str, expected: str, value: Any, hint: str = "") -> DrawEnvError:
    """The error for a bad field of a dataset record: where, field, "expected X, got Y", hint."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    message = f"{where}: invalid `{field}`: expected {expected}, got {shown}."
    return DrawEnvError(f"{message} {hint}" if hint else message)


def check_record(record: Any, *, root: Path, where: str) -> dict[str, Any]:
    """Validate one record of the schema; return its fields with absolute image paths.

    ``root`` is the resolved dataset folder that image paths are relative to and confined to;
    ``where`` names the record in error messages (e.g. ``"tasks.jsonl, line 3"``).
    """
    if not isinstance(record, Mapping):
        raise DrawEnvError(
            f"{where}: expected a JSON object with fields {list(REQUIRED)}, "
            f"got {type(record).__name__}."
        )
    for name in record:
        if name not in FIELDS:
            close = difflib.get_close_matches(str(name), FIELDS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DrawEnvError(
                f"{where}: unknown field `{name}`; expected only fields {list(FIELDS)}.{hint}"
            )
    for name in REQUIRED:
        if name not in record:
            raise DrawEnvError(
                f"{where}: missing field `{name}`; every record needs {list(REQUIRED)}."
            )
    task_id, question = record["id"], record["question"]
    if not isinstance(task_id, str) or not task_id:
        raise data_error(where, "id", "a non-empty string", task_id, 'Quote it: "12".')
    if not isinstance(question, str) or not question.strip():
        raise data_error(where, "question", "a non-empty string", question)
    try:
        answer_type = check_choice("answer_type", record["answer_type"], ANSWER_TYPES)
    except DrawEnvError as error:
        raise DrawEnvError(f"{where}: {str(error)[0].lower()}{str(error)[1:]}") from None
    options = _check_options(record.get("options", []), where)
    metadata = record.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise data_error(where, "metadata", "a JSON object", metadata)
    images = check_images(record["images"], root, where)
    problem = metadata_problem(metadata, len(images))
    if problem is not None:
        raise data_error(where, *problem)
    return {
        "id": task_id,
        "images": images,
        "question": question,
        "answer_type": answer_type,
        "answer": _check_answer(record["answer"], answer_type, options, where),
        "options": options,
        "metadata": dict(metadata),
    }


def _parse_line(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.removeprefix(_BOM).decode("utf-8"))
    except UnicodeDecodeError as error:
        raise DrawEnvError(f"{where}: invalid UTF-8 at byte {error.start}.") from None
    except json.JSONDecodeError as error:
        raise DrawEnvError(
            f"{where}: invalid JSON ({error.msg} at column {error.colno}). "
            "Each line must hold one complete JSON object."
        ) from None
    except RecursionError:
        raise DrawEnvError(f"{where}: invalid JSON (nested too deeply).") from None


def _check_options(options: Any, where: str) -> tuple[str, ...]:
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise data_error(where, "options", "a list of strings", options)
    if len(options) > len(LETTERS):
        raise data_error(where, "options", f"at most {len(LETTERS)} options", len(options))
    return tuple(options)


def check_images(images: Any, root: Path, where: str) -> tuple[str, ...]:
    if not isinstance(images, list) or not images:
        raise data_error(where, "images", "a non-empty list of relative image paths", images)
    paths = []
    for k, image in enumerate(images):
        field = f"images[{k}]"
        if not isinstance(image, str) or not image.strip():
            raise data_error(where, field, "a non-empty path string", image)
        if (
            Path(image).is_absolute()
            or image.startswith(("/", "\\"))
            or PureWindowsPath(image).drive
        ):
            raise data_error(
                where,
                field,
                "a path relative to the dataset folder",
                image,
                f"Write it relative to {str(root)!r}.",
            )
        try:
            resolved = (root / image).resolve()
        except (OSError, ValueError, RuntimeError) as error:
            raise data_error(where, field, "a usable file path", image, str(error)) from None
        if not resolved.is_relative_to(root):
            raise data_error(
                where,
                field,
                f"a path inside the dataset folder {str(root)!r}",
                image,
                f"It resolves to {str(resolved)!r}; move the image into the folder "
                "(a symlink must point inside it too).",
            )
        paths.append(str(resolved))
    return tuple(paths)


def _check_answer(
    answer: Any, answer_type: str, options: tuple[str, ...], where: str
) -> str | int | float:
    is_number = isinstance(answer, (int, float)) and not isinstance(answer, bool)
    if answer_type == "multiple_choice":
        letters = LETTERS[: len(options)]
        if len(options) < 2:
            raise data_error(
                where, "options", "at least two options for a multiple_choice record", options
            )
        if not isinstance(answer, str) or len(answer) != 1 or answer not in letters:
            hint = f"Use an option letter among {letters!r}."
            if isinstance(answer, str) and answer.strip() in options:
                hint = f"Use the letter {letters[options.index(answer.strip())]!r}."
            raise data_error(where, "answer", f"an option letter among {letters!r}", answer, hint)
        return answer
    if answer_type == "numeric":
        if not is_number or not math.isfinite(answer) or answer <= 0:
            raise data_error(
                where,
                "answer",
                "a finite number > 0 for numeric",
                answer,
                "Scores divide by the truth, so y <= 0 is a data error; use `text` for such "
                "answers.",
            )
        return answer
    if answer_type == "count":
        if not is_number or not isinstance(answer, int) or answer < 0:
            raise data_error(where, "answer", "an integer >= 0 for count", answer)
        return answer
    if not isinstance(answer, str) or not answer.strip():
        raise data_error(where, "answer", "a non-empty string for text", answer)
    return answer


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns
