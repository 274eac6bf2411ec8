"""Text protocols: how a model's output text maps to typed actions and back.

Two protocols ship: ``vilasr`` (the default, the released ViLaSR model's format) and ``tool_call``
(Qwen2.5 / Hermes-style function calls). Both are pure: ``parse`` never raises on any string.

Parsing decisions beyond the rules in docs/environment.md (Text protocols):

- ``format_ok`` is true exactly when ``errors`` is empty; at most ``MAX_ERRORS`` messages are kept.
- an ``<answer>`` without ``</answer>`` gives no answer and an error; with several answers the
  first is taken and the turn is a format failure.
- a vilasr answer turn without ``Action: Answer`` keeps its answer but is a format failure.
- only fences tagged ``json`` or untagged count (```` ```python ```` is ignored); an empty block or
  an empty list of items is a format failure, since the turn then neither draws nor answers.
- unknown keys of an item are ignored; a missing ``</tool_call>`` or closing fence is tolerated.
- the work per turn is bounded whatever the text: only the first ``MAX_TURN_CHARS`` characters
  are read, only the first ``MAX_BLOCKS`` drawing blocks (fences or tool calls; more is an
  invalid drawing, as a turn may draw at most 32 operations anyway), only the first
  ``MAX_ITEMS`` items of all blocks together (likewise), and the literal-syntax fallback reads at
  most ``MAX_LITERAL_CHARS`` characters per turn in all, since Python's parser is slow and
  memory-hungry. Each limit hit is an error of the turn, never an exception.
"""

from __future__ import annotations

import ast
import copy
import itertools
import json
import numbers
import re
import reprlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from drawenv.actions import Action, Answer, Box, Draw, Line, Operation
from drawenv.errors import check_choice, check_number, invalid_argument

COORD_MODES = ("pixel", "norm1000")
MAX_ERRORS = 20
MAX_TURN_CHARS = 1_000_000
MAX_BLOCKS = 32
MAX_LITERAL_CHARS = 20_000
MAX_ITEMS = 256

_FENCE = "```"
_FENCE_TAG = re.compile(r"[ \t]*([\w+.-]*)")
_DRAW_ACTION = re.compile(r"(?:^|</think>)[ \t]*Action:[ \t]*(?:Object Mapper|Path Tracer)", re.M)
_CALL_OPEN, _CALL_CLOSE = "<tool_call>", "</tool_call>"
_TOOL_ITEMS = {"draw_boxes": ("boxes", "box"), "draw_lines": ("lines", "line")}
_ENCODER = json.JSONEncoder(ensure_ascii=False)  # one instance: json.dumps builds one per call
_show = reprlib.Repr()
_show.maxstring = _show.maxother = 40


@dataclass(frozen=True)
class ParsedTurn:
    """The outcome of parsing one model turn.

    Attributes:
        thought: the text inside ``<think>…</think>`` (stripped), or ``None`` when absent.
        operations: every structurally valid box/line item of the turn, in order.
        answer: the text inside the first ``<answer>…</answer>`` (stripped), or ``None``.
        drawing_attempted: the turn tried to draw (a json block, a tool call or a drawing
            ``Action:`` line), even if nothing in it parsed.
        format_ok: the turn follows the protocol's format rules (docs/environment.md, Text
            protocols).
        errors: one human-readable message per problem, naming the item and the reason.
        drawing_ok: every drawing block, call and item parsed into an operation. When it is
            false the env rejects the whole drawing; format-only problems (say, a missing
            ``<think>``) leave it true: the drawing executes and only the format reward is lost.
    """

    thought: str | None = None
    operations: tuple[Operation, ...] = ()
    answer: str | None = None
    drawing_attempted: bool = False
    format_ok: bool = False
    errors: tuple[str, ...] = ()
    drawing_ok: bool = True

    @property
    def action(self) -> Action | None:
        """The typed action this turn stands for (answer wins over drawing), or ``None``."""
        if self.answer is not None:
            return Answer(self.answer, thought=self.thought or "")
        if self.operations:
            return Draw(self.operations, thought=self.thought or "")
        return None


class Protocol:
    """How turns are written: ``parse`` text into a :class:`ParsedTurn`, ``format`` actions back."""

    name = ""
    _box_name = _line_name = ""  # how the prompt names the two operations

    def parse(self, text: str) -> ParsedTurn:
        """Parse one model turn; never raises, problems end up in ``errors``."""
        if not isinstance(text, str):
            return ParsedTurn(errors=(f"expected the turn as text, got {type(text).__name__}",))
        errors: list[str] = []
        if len(text) > MAX_TURN_CHARS:
            errors.append(
                f"the turn is {len(text):,} characters long; only the first {MAX_TURN_CHARS:,} "
                "are read"
            )
            text = text[:MAX_TURN_CHARS]
        if not text.strip():
            return ParsedTurn(errors=(*errors, "the turn is empty"))
        thought, after = _thought(text, errors)
        answer = _answer(text, errors)
        drawing_errors: list[str] = []
        operations, attempted = self._drawing(text, _Budget(), drawing_errors)
        errors += drawing_errors
        if after is not None:
            self._check_layout(after.lstrip(), answer, errors)
        if answer is not None and attempted:
            errors.append("the turn both answers and draws; the answer is taken, drawing ignored")
        if answer is None and not attempted:
            errors.append("the turn neither draws nor answers")
        if len(errors) > MAX_ERRORS:
            errors[MAX_ERRORS:] = [f"… and {len(errors) - MAX_ERRORS} more errors"]
        return ParsedTurn(
            thought=thought,
            operations=tuple(operations),
            answer=answer,
            drawing_attempted=attempted,
            format_ok=not errors,
            errors=tuple(errors),
            drawing_ok=not drawing_errors,
        )

    def format(self, action: Action) -> str:
        """Write a typed action as this protocol's text; ``parse`` reads it back unchanged."""
        if isinstance(action, Answer):
            return self._format_answer(action)
        if isinstance(action, Draw):
            return self._format_draw(action)
        raise invalid_argument("action", action, "a Draw or an Answer")

    def system_prompt(self, *, width: int, height: int, coords: str) -> str:
        """The instructions for a model: task, both operations with examples, coordinates."""
        check_number("width", width, low=1, integer=True)
        check_number("height", height, low=1, integer=True)
        check_choice("coords", coords, COORD_MODES)
        size = f"image 1 is {width}x{height} pixels"
        if coords == "pixel":
            where = f"absolute pixel coordinates of the target image; {size}"
        else:
            where = (
                "relative coordinates from 0 to 1000 of the target image's width and height "
                f"({size})"
            )
        box = Box(1, _example((250, 300, 600, 800), width, height, coords), "chair")
        path = _example((100, 900, 700, 200), width, height, coords)
        line = Line(1, path[:2], path[2:], "path")
        box_turn = self.format(Draw((box,), "I should find the chair first."))
        line_turn = self.format(Draw((line,), "Tracing the path will show where it leads."))
        answer_turn = self.format(Answer("B", "The path ends at the door, so the answer is B."))
        parts = [
            "You answer questions about images. Reason step by step inside <think> and "
            "</think>. While reasoning you may draw on the images to help yourself see: "
            "mark objects with labelled boxes and trace paths or directions with labelled "
            "lines. When you are sure, give the final answer.",
            self._tools_section(),
            f"To draw boxes ({self._box_name}), give each box as [x1, y1, x2, y2], its "
            f"top-left and bottom-right corners, for example:\n{box_turn}",
            f"To draw lines ({self._line_name}), give each line's start [x, y] and end "
            f"[x, y], for example:\n{line_turn}",
            f"Boxes and lines may be drawn in the same turn. To answer:\n{answer_turn}",
            "How drawing works:\n"
            "- Images are numbered from 1 over all images so far, in the order shown: the "
            "original images first, then every image drawing has created. `index` picks the "
            "image to draw on.\n"
            "- Each turn that draws creates a new image for every image it draws on: a copy "
            "of it with your drawings added. New images take the next numbers and are shown "
            "to you in the next turn.\n"
            "- Drawing a box or line with the label of an existing box or line on that image "
            "replaces that label's drawing; reuse a label to correct a mistake.\n"
            f"- Coordinates are {where}.",
        ]
        return "\n\n".join(part for part in parts if part)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _drawing(
        self, text: str, budget: _Budget, errors: list[str]
    ) -> tuple[list[Operation], bool]:
        raise NotImplementedError

    def _check_layout(self, after: str, answer: str | None, errors: list[str]) -> None:
        raise NotImplementedError

    def _format_draw(self, action: Draw) -> str:
        raise NotImplementedError

    def _format_answer(self, action: Answer) -> str:
        raise NotImplementedError

    def _tools_section(self) -> str:
        return ""


class VilasrProtocol(Protocol):
    """The ViLaSR format: ``<think>…</think> Action: Object Mapper`` then a fenced json list."""

    name = "vilasr"
    _box_name, _line_name = "Action: Object Mapper", "Action: Path Tracer"

    def _drawing(
        self, text: str, budget: _Budget, errors: list[str]
    ) -> tuple[list[Operation], bool]:
        operations: list[Operation] = []
        blocks = _first_blocks(_fenced_blocks(text), "fenced blocks", errors)
        for number, body in enumerate(blocks, 1):
            operations += _block_operations(body, f"block {number}", budget, errors)
        action_line = _DRAW_ACTION.search(text) is not None
        if action_line and not blocks:
            errors.append("the drawing `Action:` line has no json block after it")
        return operations, bool(blocks) or action_line

    def _check_layout(self, after: str, answer: str | None, errors: list[str]) -> None:
        if not after.startswith("Action:"):
            errors.append("expected `Action: …` right after </think>")
            return
        name = after[7:].partition("\n")[0].partition(_FENCE)[0].partition("<")[0].strip()
        if name == "Answer":
            if answer is None and "<answer>" not in after:
                errors.append("`Action: Answer` has no <answer>…</answer>")
        elif name not in ("Object Mapper", "Path Tracer"):
            errors.append(
                f"unknown action {_show.repr(name)}; expected Object Mapper, Path Tracer or Answer"
            )

    def _format_draw(self, action: Draw) -> str:
        items = [
            {"index": op.index, **_geometry(op), "label": op.label} for op in action.operations
        ]
        first = action.operations[0] if action.operations else None
        heading = "Path Tracer" if isinstance(first, Line) else "Object Mapper"
        body = ",\n".join(_dumps(item) for item in items)
        return f"<think> {action.thought} </think> Action: {heading}\n```json\n[\n{body}\n]\n```"

    def _format_answer(self, action: Answer) -> str:
        return f"<think> {action.thought} </think> Action: Answer\n<answer> {action.text} </answer>"


class ToolCallProtocol(Protocol):
    """Hermes / Qwen2.5 function calls: ``<tool_call>{"name": "draw_boxes", …}</tool_call>``."""

    name = "tool_call"
    _box_name, _line_name = "the draw_boxes function", "the draw_lines function"

    @property
    def tools(self) -> list[dict]:
        """The JSON schemas of ``draw_boxes`` and ``draw_lines`` (OpenAI function format)."""
        return copy.deepcopy(_TOOLS)

    def _drawing(
        self, text: str, budget: _Budget, errors: list[str]
    ) -> tuple[list[Operation], bool]:
        operations: list[Operation] = []
        calls = _first_blocks(_tool_call_bodies(text), "tool calls", errors)
        for number, body in enumerate(calls, 1):
            operations += _call_operations(body, f"tool call {number}", budget, errors)
        return operations, bool(calls)

    def _check_layout(self, after: str, answer: str | None, errors: list[str]) -> None:
        if not after.startswith((_CALL_OPEN, "<answer>")):
            errors.append("expected <tool_call> or <answer> right after </think>")

    def _format_draw(self, action: Draw) -> str:
        calls = [f"<think> {action.thought} </think>"]
        runs = itertools.groupby(action.operations, key=lambda op: (type(op), op.index))
        for (kind, index), ops in runs:
            name = "draw_lines" if kind is Line else "draw_boxes"
            items = [{**_geometry(op), "label": op.label} for op in ops]
            arguments = {"index": index, _TOOL_ITEMS[name][0]: items}
            calls.append(
                f"{_CALL_OPEN}{_dumps({'name': name, 'arguments': arguments})}{_CALL_CLOSE}"
            )
        return "\n".join(calls)

    def _format_answer(self, action: Answer) -> str:
        return f"<think> {action.thought} </think>\n<answer> {action.text} </answer>"

    def _tools_section(self) -> str:
        schemas = "\n".join(json.dumps(tool) for tool in _TOOLS)
        return (
            "You can call these functions:\n<tools>\n"
            f"{schemas}\n</tools>\n"
            "To call one, write a JSON object with its name and arguments between <tool_call> "
            "and </tool_call> after your reasoning. One turn may hold several calls."
        )


PROTOCOLS: dict[str, type[Protocol]] = {"vilasr": VilasrProtocol, "tool_call": ToolCallProtocol}


def get_protocol(name: str) -> Protocol:
    """A fresh instance of the protocol registered as ``name`` (see ``PROTOCOLS``)."""
    return PROTOCOLS[check_choice("protocol", name, PROTOCOLS)]()


def _thought(text: str, errors: list[str]) -> tuple[str | None, str | None]:
    """The stripped thought and the text after ``</think>`` (both ``None`` when missing)."""
    start = text.find("<think>")
    end = text.find("</think>", start) if start >= 0 else -1
    if end < 0:
        errors.append("the turn must start with <think>…</think>")
        return None, None
    if text[:start].strip():
        errors.append("the turn must start with <think>, found text before it")
    return text[start + 7 : end].strip(), text[end + 8 :]


def _answer(text: str, errors: list[str]) -> str | None:
    """The stripped text of the first ``<answer>…</answer>``, or ``None``."""
    start = text.find("<answer>")
    if start < 0:
        return None
    end = text.find("</answer>", start)
    if end < 0:
        errors.append("<answer> is never closed with </answer>, so no answer is taken")
        return None
    if text.find("<answer>", end) >= 0:
        errors.append("the turn holds more than one <answer>; the first is taken")
    return text[start + 8 : end].strip()


def _fenced_blocks(text: str):
    """The bodies of the ```` ```json ```` or untagged fences; an unclosed one runs to the end."""
    start = text.find(_FENCE)
    while start >= 0:
        tag = _FENCE_TAG.match(text, start + 3)
        end = text.find(_FENCE, tag.end())
        end = len(text) if end < 0 else end
        if tag.group(1).lower() in ("", "json"):
            yield text[tag.end() : end]
        start = text.find(_FENCE, end + 3)


def _tool_call_bodies(text: str):
    """The bodies of ``<tool_call>`` tags, each ending at its close, the next call or the end."""
    start, close = text.find(_CALL_OPEN), -1
    while start >= 0:
        body = start + len(_CALL_OPEN)
        if close < body:  # found once per close tag, so a missing one costs one scan, not many
            close = text.find(_CALL_CLOSE, body)
            close = len(text) if close < 0 else close
        start = text.find(_CALL_OPEN, body)
        yield text[body : close if start < 0 else min(close, start)]


class _Budget:
    """What is left of one turn's allowances: characters for the literal-syntax fallback, and
    drawing items to validate."""

    def __init__(self) -> None:
        self.literal_chars = MAX_LITERAL_CHARS
        self.items = MAX_ITEMS
        self.items_exceeded = False

    def take_literal(self, chars: int) -> bool:
        """Spend ``chars`` literal characters if that many are left; ``False`` (nothing spent)
        otherwise."""
        if chars > self.literal_chars:
            return False
        self.literal_chars -= chars
        return True


def _first_blocks(blocks: Iterator[str], what: str, errors: list[str]) -> list[str]:
    """The first ``MAX_BLOCKS`` of ``blocks``, with an error when there are more."""
    first = list(itertools.islice(blocks, MAX_BLOCKS + 1))
    if len(first) > MAX_BLOCKS:
        errors.append(
            f"the turn holds more than {MAX_BLOCKS} {what}; at most {MAX_BLOCKS} are read"
        )
        del first[MAX_BLOCKS:]
    return first


def _load(source: str, budget: _Budget) -> tuple[bool, Any, str]:
    """``(ok, value, problem)``: JSON first, then Python literal syntax within the turn's
    ``budget``; never raises."""
    if not source.strip():
        return False, None, "is empty"
    try:
        return True, json.loads(source), ""
    except Exception as exc:  # deep nesting, huge numbers, bad syntax: all the model's mistake
        problem = f"is not valid JSON ({_show.repr(str(exc))})"
    literal = source.strip()
    if not budget.take_literal(len(literal)):
        limit = (
            f"the Python-literal fallback reads at most {MAX_LITERAL_CHARS:,} characters per turn"
        )
        return False, None, f"{problem}, and {limit}"
    try:
        return True, ast.literal_eval(literal), ""
    except Exception:
        return False, None, problem


def _block_operations(body: str, where: str, budget: _Budget, errors: list[str]) -> list[Operation]:
    """The valid operations of one fenced block (a list of items or a single item)."""
    ok, value, problem = _load(body, budget)
    if not ok:
        errors.append(f"{where} {problem}")
        return []
    return _items_operations(value, where, {}, None, budget, errors)


def _call_operations(body: str, where: str, budget: _Budget, errors: list[str]) -> list[Operation]:
    """The valid operations of one ``<tool_call>`` body."""
    ok, call, problem = _load(body, budget)
    if not ok:
        errors.append(f"{where} {problem}")
        return []
    if not isinstance(call, dict):
        errors.append(
            f"{where}: expected an object with name and arguments, got {_show.repr(call)}"
        )
        return []
    name, arguments = call.get("name"), call.get("arguments")
    if not (isinstance(name, str) and name in _TOOL_ITEMS):
        errors.append(
            f"{where}: unknown tool {_show.repr(name)}; expected draw_boxes or draw_lines"
        )
        return []
    if isinstance(arguments, str):
        ok, arguments, problem = _load(arguments, budget)
        if not ok:
            errors.append(f"{where}: arguments {problem}")
            return []
    if not isinstance(arguments, dict):
        errors.append(f"{where}: arguments must be an object, got {_show.repr(arguments)}")
        return []
    key, kind = _TOOL_ITEMS[name]
    if key not in arguments:
        errors.append(f"{where}: arguments have no {key}")
        return []
    defaults = {"index": arguments["index"]} if "index" in arguments else {}
    return _items_operations(arguments[key], where, defaults, kind, budget, errors)


def _items_operations(
    value, where, defaults: dict, kind: str | None, budget: _Budget, errors
) -> list[Operation]:
    """Validate a list (or a single object) of items; ``defaults`` fills keys an item lacks."""
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, (list, tuple)):
        errors.append(f"{where}: expected a list of objects, got {_show.repr(value)}")
        return []
    if not items:
        errors.append(f"{where} holds no items")
        return []
    if len(items) > budget.items:
        if not budget.items_exceeded:
            errors.append(
                f"the turn holds more than {MAX_ITEMS} items; at most {MAX_ITEMS} are read"
            )
            budget.items_exceeded = True
        items = items[: budget.items]
    budget.items -= len(items)
    operations = []
    for number, item in enumerate(items, 1):
        if isinstance(item, dict):
            item = {**defaults, **item}
        problems: list[str] = []
        operation = _operation(item, kind, problems)
        errors += [f"item {number} in {where}: {problem}" for problem in problems]
        if operation is not None:
            operations.append(operation)
    return operations


def _operation(item: Any, kind: str | None, problems: list[str]) -> Operation | None:
    """A ``Box`` or ``Line`` from one item (kind read from its keys), or ``None`` with problems."""
    if not isinstance(item, dict):
        problems.append(f"expected an object, got {_show.repr(item)}")
        return None
    is_box, is_line = "bbox_2d" in item, "start_point_2d" in item or "end_point_2d" in item
    if is_box == is_line:
        what = (
            "both bbox_2d and start/end points" if is_box else "neither bbox_2d nor start_point_2d"
        )
        problems.append(f"has {what}")
        return None
    if kind is not None and kind != ("box" if is_box else "line"):
        problems.append(f"a {kind} item needs {'bbox_2d' if kind == 'box' else 'start/end points'}")
        return None
    index = _index(item, problems)
    label = item.get("label")
    if not isinstance(label, str):
        problems.append(
            "missing label"
            if "label" not in item
            else f"label must be a string, got {_show.repr(label)}"
        )
    if is_box:
        bbox = _numbers(item, "bbox_2d", 4, problems)
        return None if problems else Box(index, bbox, label)
    start = _numbers(item, "start_point_2d", 2, problems)
    end = _numbers(item, "end_point_2d", 2, problems)
    return None if problems else Line(index, start, end, label)


def _index(item: dict, problems: list[str]) -> int | None:
    """The item's image index: an int, or a float with an integral value."""
    if "index" not in item:
        problems.append("missing index")
        return None
    value = item["index"]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    problems.append(f"index must be an integer, got {_show.repr(value)}")
    return None


def _numbers(item: dict, key: str, arity: int, problems: list[str]) -> tuple | None:
    """``item[key]`` as a tuple of ``arity`` int/float numbers (no bools, no numeric strings)."""
    value = item.get(key)
    if key not in item:
        problems.append(f"missing {key}")
    elif not isinstance(value, (list, tuple)):
        problems.append(f"{key} must hold {arity} numbers, got {_show.repr(value)}")
    elif len(value) != arity:
        problems.append(f"{key} must hold {arity} numbers, got {len(value)}")
    elif not all(type(v) in (int, float) for v in value):  # JSON and literals: no subclasses
        problems.append(f"{key} must hold only numbers, got {_show.repr(value)}")
    else:
        return tuple(value)
    return None


def _geometry(op: Operation) -> dict:
    """The protocol keys of an operation's geometry, as plain JSON numbers."""
    if isinstance(op, Box):
        return {"bbox_2d": [_number(v) for v in op.bbox]}
    if isinstance(op, Line):
        return {
            "start_point_2d": [_number(v) for v in op.start],
            "end_point_2d": [_number(v) for v in op.end],
        }
    raise invalid_argument("operation", op, "a Box or a Line")


def _number(value: Any) -> int | float:
    if type(value) in (int, float):  # the common case, without the slower abstract checks
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise invalid_argument("coordinate", value, "a number")


def _dumps(value: Any) -> str:
    # "<" and "`" only occur inside JSON strings; escaping them keeps a label such as "</answer>"
    # or "```" from ending the tag or fence around the JSON.
    text = _ENCODER.encode(value)
    return text.replace("<", "\\u003c").replace("`", "\\u0060")


def _example(values: tuple, width: int, height: int, coords: str) -> tuple:
    """Example ``(x, y, x, y)`` coordinates given in 0..1000, scaled to pixels in ``pixel`` mode."""
    if coords == "norm1000":
        return values
    return tuple(round(v * (height if i % 2 else width) / 1000) for i, v in enumerate(values))


def _schema(name: str, key: str, description: str, geometry: dict) -> dict:
    item = {"type": "object", "properties": {**geometry, "label": {"type": "string"}}}
    item["required"] = [*geometry, "label"]
    index = {"type": "integer", "description": "1-based number of the image to draw on"}
    parameters = {
        "type": "object",
        "properties": {"index": index, key: {"type": "array", "items": item, "minItems": 1}},
        "required": ["index", key],
    }
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _point(size: int, description: str) -> dict:
    number = {"type": "number"}
    return {
        "type": "array",
        "items": number,
        "minItems": size,
        "maxItems": size,
        "description": description,
    }


_TOOLS = [
    _schema(
        "draw_boxes",
        "boxes",
        "Draw labelled bounding boxes on an image; the result is shown as a new image.",
        {"bbox_2d": _point(4, "[x1, y1, x2, y2]: top-left and bottom-right corners")},
    ),
    _schema(
        "draw_lines",
        "lines",
        "Draw labelled lines on an image; the result is shown as a new image.",
        {"start_point_2d": _point(2, "[x, y] start"), "end_point_2d": _point(2, "[x, y] end")},
    ),
]
