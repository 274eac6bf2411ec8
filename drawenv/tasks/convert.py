"""Converters from dataset layouts users have locally to drawenv's task record schema.

:func:`from_vilasr` and :func:`from_vsibench` turn one record into a task record dict (images kept
as the paths the record gives); :func:`convert_file` converts a whole file into a JSONL that
:class:`~drawenv.tasks.jsonl.JsonlSource` loads, rewriting image paths relative to the
destination's folder. Nothing is copied or downloaded.

Layouts assumed (from the public releases; fields not listed are kept in ``metadata["extra"]``):

ViLaSR RL data (``vilasr``): a JSONL file or a JSON list of items with
    - the question in ``problem`` or ``question``; it may hold ``<image>`` placeholders and the
      options inline, one per line ("A. chair", "(B) table", "C: lamp"), optionally after an
      "Options:" line;
    - the images in ``images``, ``image``, ``path`` or ``image_path`` (one path or a list; the
      released RL and evaluation files use ``image_path``), relative to the file's folder (or
      ``image_root``) unless absolute; relative paths may not climb out of that folder;
    - the answer in ``answer`` or ``solution``, possibly wrapped in ``<answer> … </answer>``;
    - the kind in ``problem_type`` or ``question_type``: "multiple choice", "numerical",
      "regression", "free-form" (and close spellings); optional ``options`` (a list); an id in
      ``id``, ``problem_id`` or ``question_id``; ``data_source`` and ``data_type`` as metadata.
    "regression" is ``numeric``; "numerical" is ``count`` when the answer is a whole number and
    ``numeric`` otherwise (both are scored by relative accuracy); "free-form" and "OCR" are
    ``text``. Without a kind, options make it multiple choice, a number makes it numeric.
    A numeric answer <= 0 (which ViLaSR's reward takes) is kept as ``text``. Maze items carry a
    ``grid_size``: it is kept, and ``metadata["max_turns"]`` becomes 20, ViLaSR's turn budget for
    them (10 model calls, 10 more for mazes). ``metadata["vilasr"]`` keeps the question, answer,
    question type, options, ``data_type`` and ``grid_size`` exactly as given, for
    ``DrawSpatial-ViLaSR-v0`` to prompt and score as ViLaSR does; ``original_question_type`` (the
    benchmark's own type in the evaluation files) is kept too.

VSI-Bench style exports (``vsibench``): items with ``question``, ``options`` (a list such as
    ``["A. chair", "B. table"]`` or null), ``ground_truth`` (a letter, an option's text or a
    number as a string), ``question_type`` (``object_counting`` is ``count``;
    ``object_abs_distance``, ``object_size_estimation``, ``room_size_estimation`` and
    ``abs_distance`` are ``numeric``; ``object_rel_direction_*``, ``object_rel_distance``,
    ``route_planning`` and ``obj_appearance_order`` are ``multiple_choice``; other types are
    inferred as for ViLaSR), ``scene_name``, ``dataset``, an ``id``, and the frames as a list of
    image paths in ``frames``, ``images`` or ``image_path``. VSI-Bench itself ships videos:
    extract frames first.

Answers are normalised: an option letter for multiple choice (from "B", "(b)", "B. table" or the
option's text), a number for numeric and count (the first number in the text, units dropped).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PureWindowsPath
from typing import Any

from drawenv.errors import DrawEnvError, check_choice, invalid_argument
from drawenv.tasks.jsonl import check_images, check_record, data_error
from drawenv.tasks.record import LETTERS

FORMATS = ("auto", "vilasr", "vsibench")
VILASR_MAZE_TURNS = 20  # ViLaSR's RL rollout: 10 model calls, 10 more for items with a grid_size
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".mpg", ".mpeg")

# "number": count when the answer is a whole number >= 0, numeric otherwise.
VILASR_TYPES = {
    "multiple choice": "multiple_choice",
    "multiple_choice": "multiple_choice",
    "multiple-choice": "multiple_choice",
    "numerical": "number",
    "numeric": "number",
    "regression": "numeric",
    "count": "count",
    "counting": "count",
    "free-form": "text",
    "free_form": "text",
    "freeform": "text",
    "open-ended": "text",
    "ocr": "text",
    "text": "text",
}
VSIBENCH_TYPES = {
    "object_counting": "count",
    "object_abs_distance": "numeric",
    "object_size_estimation": "numeric",
    "room_size_estimation": "numeric",
    "abs_distance": "numeric",
    "object_rel_direction": "multiple_choice",  # also _easy, _medium, _hard
    "object_rel_distance": "multiple_choice",
    "route_planning": "multiple_choice",
    "obj_appearance_order": "multiple_choice",
}

_OPTION = re.compile(r"^\s*\(?([A-Z])\s*[.):]\s*(.*?)\s*$")
_OPTIONS_HEADER = re.compile(r"\s*(options|choices)\s*:?\s*", re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_LETTER = re.compile(r"\(?([A-Za-z])\)?(?:\s*[.):]\s*(.*))?", re.DOTALL)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_PLACEHOLDER = re.compile(r"<image>|<video>")


def from_vilasr(item: Mapping[str, Any], *, index: int = 0, where: str = "") -> dict[str, Any]:
    """One ViLaSR RL-data item as a task record dict (image paths as the item gives them)."""
    where = where or f"record {index}"
    fields = _require(
        item,
        where,
        "ViLaSR",
        question=("problem", "question"),
        images=("images", "image", "path", "image_path"),
        answer=("answer", "solution"),
    )
    raw_type = _first(item, ("problem_type", "question_type"))
    kind = None
    if raw_type is not None:
        try:
            kind = VILASR_TYPES[check_choice("problem_type", str(raw_type).lower(), VILASR_TYPES)]
        except DrawEnvError as error:
            raise DrawEnvError(f"{where}: {str(error)[0].lower()}{str(error)[1:]}") from None
    ids = ("id", "problem_id", "question_id")
    used = {*fields.values(), "problem_type", "question_type", "options", *ids}
    metadata: dict[str, Any] = {"source_format": "vilasr", "question_type": raw_type}
    for name in ("data_source", "data_type", "original_question_type"):
        if name in item:
            metadata[name] = item[name]
            used.add(name)
    # What DrawSpatial-ViLaSR-v0 needs to prompt and score exactly as ViLaSR: the fields as given.
    metadata["vilasr"] = {
        "question": item[fields["question"]],
        "answer": item[fields["answer"]],
        "question_type": raw_type,
        "options": item.get("options"),
        "data_type": item.get("data_type"),
        "grid_size": item.get("grid_size"),
    }
    if item.get("grid_size") is not None:
        # ViLaSR gives maze items (those with a grid_size) ten model calls more: 20 in all.
        metadata["max_turns"] = VILASR_MAZE_TURNS
        used.add("grid_size")
    build = functools.partial(
        _build,
        item,
        where,
        task_id=_first(item, ids),
        default_id=f"vilasr-{index}",
        question=item[fields["question"]],
        images=item[fields["images"]],
        answer=item[fields["answer"]],
        options=item.get("options"),
        metadata=metadata,
        used=used,
    )
    try:
        record = build(kind=kind)
    except DrawEnvError as error:
        # ViLaSR's reward takes truths drawenv's schema cannot hold as a number (a negative
        # regression answer): such records are kept as text, and scored by MRA under
        # DrawSpatial-ViLaSR-v0, which reads metadata["vilasr"].
        if kind not in ("numeric", "number", "count") or "y <= 0" not in str(error):
            raise
        record = build(kind="text")
    return record


def from_vsibench(item: Mapping[str, Any], *, index: int = 0, where: str = "") -> dict[str, Any]:
    """One VSI-Bench-style item as a task record dict (image paths as the item gives them)."""
    where = where or f"record {index}"
    _require(
        item,
        where,
        "VSI-Bench",
        question=("question",),
        ground_truth=("ground_truth",),
        question_type=("question_type",),
    )
    frames = _first(item, ("frames", "images", "image_path"))
    if frames is None:
        video = _first(item, ("video", "video_path"))
        if video is None and "scene_name" in item:
            video = f"{item.get('dataset', '<dataset>')}/{item['scene_name']}.mp4"
        raise DrawEnvError(
            f"{where}: missing field `frames`: the record points at a video ({video!r}); "
            "video files are not supported. Extract frames first (e.g. `ffmpeg -i scene.mp4 "
            "-vf fps=1 frames/scene_%03d.png`) and list their paths under `frames`."
        )
    raw_type = str(item["question_type"]).strip()
    kind = VSIBENCH_TYPES.get(raw_type)
    if raw_type.startswith("object_rel_direction"):
        kind = "multiple_choice"
    metadata = {"source_format": "vsibench", "question_type": raw_type}
    for name in ("scene_name", "dataset"):
        if name in item:
            metadata[name] = item[name]
    used = {
        "question",
        "ground_truth",
        "question_type",
        "options",
        "frames",
        "images",
        "image_path",
        "id",
        "scene_name",
        "dataset",
    }
    return _build(
        item,
        where,
        task_id=item.get("id"),
        default_id=f"vsibench-{index}",
        question=item["question"],
        images=frames,
        answer=item["ground_truth"],
        options=item.get("options"),
        kind=kind,
        metadata=metadata,
        used=used,
    )


CONVERTERS = {"vilasr": from_vilasr, "vsibench": from_vsibench}


def convert_record(
    item: Any, fmt: str = "auto", *, index: int = 0, where: str = ""
) -> dict[str, Any]:
    """Convert one record; ``fmt`` is ``"vilasr"``, ``"vsibench"`` or ``"auto"`` (detect)."""
    fmt = check_choice("fmt", fmt, FORMATS)
    where = where or f"record {index}"
    if not isinstance(item, Mapping):
        raise DrawEnvError(f"{where}: expected a JSON object, got {type(item).__name__}.")
    if fmt == "auto":
        fmt = detect_format(item, where=where)
    return CONVERTERS[fmt](item, index=index, where=where)


def detect_format(item: Mapping[str, Any], *, where: str = "record") -> str:
    """``"vsibench"`` or ``"vilasr"`` from a record's fields; unknown layouts raise."""
    if "ground_truth" in item:
        return "vsibench"
    if any(k in item for k in ("problem", "question")) and any(
        k in item for k in ("solution", "answer")
    ):
        return "vilasr"
    raise DrawEnvError(
        f"{where}: unknown record layout with fields {sorted(map(str, item))}. Expected ViLaSR "
        "fields (problem or question, images/image/path, solution or answer) or VSI-Bench "
        "fields (question, ground_truth, question_type, frames or images)."
    )


def read_records(path: str | os.PathLike[str]) -> Iterator[tuple[str, Any]]:
    """``(where, item)`` for each item of a JSON list or a JSONL file (blank lines skipped)."""
    path = Path(path)
    with open(path, encoding="utf-8-sig") as file:
        head = file.read(1)
        while head.isspace():
            head = file.read(1)
        file.seek(0)
        if head == "[":
            try:
                items = json.load(file)
            except json.JSONDecodeError as error:
                raise DrawEnvError(
                    f"{path}: invalid JSON ({error.msg} at line {error.lineno}, "
                    f"column {error.colno})."
                ) from None
            for k, item in enumerate(items):
                yield f"{path}, item {k}", item
            return
        number = 0
        try:
            for number, line in enumerate(file, start=1):
                if line.strip():
                    yield f"{path}, line {number}", json.loads(line)
        except UnicodeDecodeError:
            raise DrawEnvError(f"{path}, line {number + 1}: invalid UTF-8.") from None
        except json.JSONDecodeError as error:
            raise DrawEnvError(
                f"{path}, line {number}: invalid JSON ({error.msg} at column {error.colno})."
            ) from None


def convert_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    fmt: str = "auto",
    *,
    image_root: str | os.PathLike[str] | None = None,
) -> int:
    """Convert ``src`` (JSON list or JSONL) into the JSONL dataset ``dst``; return the count.

    Relative image paths in ``src`` are taken relative to ``image_root`` (default: ``src``'s
    folder) and written relative to ``dst``'s folder, which must contain every image (symlinks
    resolved). Every record is validated as :class:`JsonlSource` would; ``dst`` is written
    atomically, so a failed conversion leaves no partial file. Repeated ids get ``-<position>``
    appended (the original stays in ``metadata["source_id"]``).
    """
    fmt = check_choice("fmt", fmt, FORMATS)
    src, dst = Path(src).absolute(), Path(dst).absolute()
    if not src.is_file():
        raise invalid_argument("src", str(src), "an existing JSON or JSONL file")
    if dst.suffix != ".jsonl":
        raise invalid_argument("dst", str(dst), "a path ending in '.jsonl'")
    if dst.exists() and dst.resolve() == src.resolve():
        raise invalid_argument("dst", str(dst), "a file other than `src`")
    base = (Path(image_root).absolute() if image_root is not None else src.parent).resolve()
    root = dst.parent.resolve()
    seen: set[str] = set()
    lines = []
    for position, (where, item) in enumerate(read_records(src)):
        record = convert_record(item, fmt, index=position, where=where)
        # Relative paths may not climb out of the image root (the rule JsonlSource applies).
        relative = [image for image in record["images"] if not _is_absolute(image)]
        if relative:
            check_images(relative, base, where)
        record["images"] = [_relative(image, base, root, where) for image in record["images"]]
        if record["id"] in seen:
            record["metadata"]["source_id"] = record["id"]
            record["id"] = f"{record['id']}-{position}"
            if record["id"] in seen:
                raise data_error(where, "id", "a unique id", record["id"])
        seen.add(record["id"])
        check_record(record, root=root, where=where)
        lines.append(json.dumps(record, ensure_ascii=False))
    if not lines:
        raise DrawEnvError(f"{src}: expected at least one record, got none.")
    root.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=root, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
        os.replace(temporary, dst)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(lines)


def split_inline_options(text: str) -> tuple[str, tuple[str, ...]]:
    """Split "question\\nA. x\\nB. y" into the question and the options ("x", "y").

    Options are a run of at least two lines lettered A, B, C… in order (``A.``, ``A)``,
    ``(A)``, ``A:``); an "Options:" line right before them goes too. Without such a run the text
    comes back unchanged (stripped) with no options.
    """
    lines = text.splitlines()
    found = None
    i = 0
    while i < len(lines):
        options: list[str] = []
        j = i
        while j < len(lines) and len(options) < len(LETTERS):
            match = _OPTION.match(lines[j])
            if not match or match.group(1) != LETTERS[len(options)] or not match.group(2):
                break
            options.append(match.group(2))
            j += 1
        if len(options) >= 2:
            found = (i, j, tuple(options))
        i = max(j, i + 1)
    if found is None:
        return text.strip(), ()
    start, end, options = found
    if start > 0 and _OPTIONS_HEADER.fullmatch(lines[start - 1]):
        start -= 1
    return "\n".join(lines[:start] + lines[end:]).strip(), options


def strip_option_letters(options: list[str]) -> tuple[str, ...]:
    """``["A. chair", "B. table"]`` → ``("chair", "table")``; unlettered lists are kept."""
    matches = [_OPTION.match(o) for o in options]
    lettered = all(
        m is not None and m.group(1) == LETTERS[k] and m.group(2) for k, m in enumerate(matches)
    )
    return tuple(m.group(2) for m in matches) if lettered else tuple(o.strip() for o in options)


def answer_letter(answer: Any, options: tuple[str, ...]) -> str | None:
    """The option letter an answer names ("B", "(b)", "B. table" or an option's text), or None."""
    text = _unwrap(answer)
    letters = LETTERS[: len(options)]
    match = _LETTER.fullmatch(text)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    folded = [o.strip().casefold() for o in options]
    if text.casefold() in folded:
        return letters[folded.index(text.casefold())]
    return None


def answer_number(answer: Any) -> float | None:
    """The first number in an answer ("<answer> 3.5 m </answer>" → 3.5), or None."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, (int, float)):
        return float(answer) if math.isfinite(answer) else None
    match = _NUMBER.search(_unwrap(answer).replace(",", ""))
    if match is None:
        return None
    value = float(match.group())
    return value if math.isfinite(value) else None


# -- helpers -------------------------------------------------------------------------------------


def _build(
    item: Mapping[str, Any],
    where: str,
    *,
    task_id: Any,
    default_id: str,
    question: Any,
    images: Any,
    answer: Any,
    options: Any,
    kind: str | None,
    metadata: dict[str, Any],
    used: set[str],
) -> dict[str, Any]:
    if not isinstance(question, str):
        raise data_error(where, "question", "a string", question)
    question, inline = split_inline_options(_PLACEHOLDER.sub("", question))
    question = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in question.split("\n")))
    if options is None or options == []:
        options = inline
    elif isinstance(options, list) and all(isinstance(o, str) for o in options):
        options = strip_option_letters(options)
    else:
        raise data_error(where, "options", "a list of strings or null", options)
    if kind is None:
        kind = (
            "multiple_choice"
            if options
            else "number"
            if _NUMBER.fullmatch(_unwrap(answer).strip())
            else "text"
        )
    value: Any
    if kind == "multiple_choice":
        if len(options) < 2:
            raise data_error(
                where,
                "options",
                "at least two options for a multiple choice question (a list, or lines "
                "'A. …' in the question)",
                list(options),
            )
        value = answer_letter(answer, options)
        if value is None:
            raise data_error(
                where,
                "answer",
                f"an option letter among {LETTERS[: len(options)]!r} or an option's text",
                answer,
            )
    elif kind in ("number", "numeric", "count"):
        value = answer_number(answer)
        if value is None:
            raise data_error(where, "answer", "a number", answer)
        if kind == "number":
            kind = "count" if value >= 0 and value == int(value) else "numeric"
        if kind == "count":
            if value < 0 or value != int(value):
                raise data_error(where, "answer", "a whole number >= 0 for a count", answer)
            value = int(value)
        elif value <= 0:
            raise data_error(
                where,
                "answer",
                "a number > 0 for a numeric answer",
                answer,
                "Scores divide by the truth, so y <= 0 is a data error.",
            )
    else:
        value = _unwrap(answer).strip()
        if not value:
            raise data_error(where, "answer", "a non-empty answer", answer)
    extra = {k: v for k, v in item.items() if k not in used}
    if extra:
        metadata["extra"] = extra
    return {
        "id": default_id if task_id is None else str(task_id),
        "images": _image_list(images, where),
        "question": question,
        "answer_type": kind,
        "answer": value,
        "options": list(options),
        "metadata": metadata,
    }


def _image_list(images: Any, where: str) -> list[str]:
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
        raise data_error(where, "images", "an image path or a non-empty list of paths", images)
    for image in images:
        if image.lower().endswith(VIDEO_SUFFIXES):
            raise data_error(
                where,
                "images",
                "image files",
                image,
                "Video files are not supported: extract frames first (e.g. `ffmpeg -i "
                "scene.mp4 -vf fps=1 frames/scene_%03d.png`) and list the frame paths.",
            )
    return images


def _is_absolute(image: str) -> bool:
    return (
        Path(image).is_absolute()
        or image.startswith(("/", "\\"))
        or bool(PureWindowsPath(image).drive)
    )


def _relative(image: str, base: Path, root: Path, where: str) -> str:
    resolved = (base / image).resolve()  # an absolute `image` replaces `base`
    if not resolved.is_relative_to(root):
        raise data_error(
            where,
            "images",
            f"an image inside the destination's folder {str(root)!r}",
            image,
            f"It resolves to {str(resolved)!r}. Write `dst` into a folder that contains the "
            "images (e.g. the dataset's root); nothing is copied.",
        )
    return resolved.relative_to(root).as_posix()


def _require(
    item: Mapping[str, Any], where: str, layout: str, **fields: tuple[str, ...]
) -> dict[str, str]:
    """The key present for each field (first alternative found); raise naming the missing ones."""
    found, missing = {}, []
    for name, keys in fields.items():
        key = next((k for k in keys if k in item and item[k] is not None), None)
        if key is None:
            missing.append(" or ".join(f"`{k}`" for k in keys))
        else:
            found[name] = key
    if missing:
        raise DrawEnvError(
            f"{where}: not a {layout} record: missing {', '.join(missing)} "
            f"(fields present: {sorted(map(str, item))})."
        )
    return found


def _first(item: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((item[k] for k in keys if item.get(k) is not None), None)


def _unwrap(answer: Any) -> str:
    text = str(answer)
    match = _ANSWER_TAG.search(text)
    return (match.group(1) if match else text).strip()
