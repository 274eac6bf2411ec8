"""Tests of drawenv.protocol: parsing tables per protocol, round trips, fuzzing and prompts."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drawenv.actions import Answer, Box, Draw, Line
from drawenv.errors import DrawEnvError
from drawenv.protocol import (
    COORD_MODES,
    MAX_ERRORS,
    MAX_ITEMS,
    MAX_TURN_CHARS,
    PROTOCOLS,
    ToolCallProtocol,
    VilasrProtocol,
    get_protocol,
)

BOX = '{"index": 1, "bbox_2d": [10, 20, 30, 40], "label": "sofa"}'
LINE = '{"index": 2, "start_point_2d": [1, 2], "end_point_2d": [3.5, 4], "label": "path"}'
SOFA = Box(1, (10, 20, 30, 40), "sofa")
PATH = Line(2, (1, 2), (3.5, 4), "path")
JUNK = bytes(range(256)).decode("latin-1")
BIG_THOUGHT = "spatial reasoning " * 50_000  # 900 kB, under MAX_TURN_CHARS
MANY = [Box(k, (k, k, k + 1, k + 1), f"o{k}") for k in range(1, MAX_ITEMS + 1)]


def vilasr(body: str, action: str = "Object Mapper", fence: str = "```json") -> str:
    """A vilasr drawing turn around one fenced ``body``."""
    return f"<think> look </think> Action: {action}\n{fence}\n{body}\n```"


def item(**fields) -> str:
    """One box item with ``fields`` overriding the valid defaults (``None`` drops a key)."""
    base = {"index": 1, "bbox_2d": [10, 20, 30, 40], "label": "sofa"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def call(name: str = "draw_boxes", **arguments) -> str:
    """One ``<tool_call>`` with ``arguments`` (a string ``raw`` replaces the whole body)."""
    raw = arguments.pop("raw", None)
    body = raw if raw is not None else json.dumps({"name": name, "arguments": arguments})
    return f"<tool_call>{body}</tool_call>"


def tool(*calls: str, thought: str = "look") -> str:
    """A tool_call turn: a thought then ``calls``."""
    return f"<think> {thought} </think>\n" + "\n".join(calls)


BOXES = {"index": 1, "boxes": [{"bbox_2d": [10, 20, 30, 40], "label": "sofa"}]}
LINES = {
    "index": 2,
    "lines": [{"start_point_2d": [1, 2], "end_point_2d": [3.5, 4], "label": "path"}],
}
NAN, INF = float("nan"), float("inf")


def case(name, text, ops=(), answer=None, ok=False, drew=True, error=None):
    """One parse expectation: operations, answer, format_ok, drawing_attempted, error fragment."""
    return pytest.param(text, ops, answer, ok, drew, error, id=name)


SINGLE_QUOTED = "[{'index': 1, 'bbox_2d': [10, 20, 30, 40], 'label': 'sofa'}]"
ANSWER = "<think> sure </think> Action: Answer\n<answer> B </answer>"
MANY_JSON = [{"index": b.index, "bbox_2d": b.bbox, "label": b.label} for b in MANY]
TOO_MANY_JSON = [*MANY_JSON, MANY_JSON[0]]
ITEMS_ERROR = f"more than {MAX_ITEMS} items"

VILASR_CASES = [
    case("box", vilasr(f"[{BOX}]"), [SOFA], ok=True),
    case("line", vilasr(f"[{LINE}]", "Path Tracer"), [PATH], ok=True),
    case("mixed", vilasr(f"[{BOX}, {LINE}]"), [SOFA, PATH], ok=True),
    case("line-under-mapper", vilasr(f"[{LINE}]"), [PATH], ok=True),
    case("two-blocks", vilasr(f"[{LINE}]") + f"\n```json\n[{BOX}]\n```", [PATH, SOFA], ok=True),
    case("plain-fence", vilasr(f"[{BOX}]", fence="```"), [SOFA], ok=True),
    case("JSON-fence", vilasr(f"[{BOX}]", fence="```JSON"), [SOFA], ok=True),
    case("inline-fence", f"<think>a</think> Action: Object Mapper ```[{BOX}]```", [SOFA], ok=True),
    case("single-object", vilasr(BOX), [SOFA], ok=True),
    case(
        "unclosed-fence",
        f"<think>a</think> Action: Object Mapper\n```json\n[{BOX}]",
        [SOFA],
        ok=True,
    ),
    case("single-quotes", vilasr(SINGLE_QUOTED), [SOFA], ok=True),
    case(
        "python-tuple",
        vilasr(SINGLE_QUOTED.replace("[10", "(10").replace("40]", "40,)")),
        [SOFA],
        ok=True,
    ),
    case(
        "nan-kept", vilasr(item(bbox_2d=[NAN, 0, 1, 2])), [Box(1, (NAN, 0, 1, 2), "sofa")], ok=True
    ),
    case(
        "inf-kept",
        vilasr(item(bbox_2d=[0, -INF, INF, 2])),
        [Box(1, (0, -INF, INF, 2), "sofa")],
        ok=True,
    ),
    case(
        "1e308",
        vilasr(item(bbox_2d=[0, 0, 1e308, -1e308])),
        [Box(1, (0, 0, 1e308, -1e308), "sofa")],
        ok=True,
    ),
    case("neg-index", vilasr(item(index=-3)), [Box(-3, SOFA.bbox, "sofa")], ok=True),
    case("huge-index", vilasr(item(index=10**30)), [Box(10**30, SOFA.bbox, "sofa")], ok=True),
    case("index-1.0", vilasr(item(index=1.0)), [SOFA], ok=True),
    case("index-1.5", vilasr(item(index=1.5)), error="index must be an integer, got 1.5"),
    case("index-str", vilasr(item(index="1")), error="index must be an integer, got '1'"),
    case("index-bool", vilasr(item(index=True)), error="index must be an integer, got True"),
    case("no-index", vilasr(item(index=None)), error="item 1 in block 1: missing index"),
    case(
        "arity-box",
        vilasr(f"[{BOX}, {item(bbox_2d=[1, 2, 3])}]"),
        [SOFA],
        error="item 2 in block 1: bbox_2d must hold 4 numbers, got 3",
    ),
    case(
        "arity-point",
        vilasr('{"index": 1, "start_point_2d": [1, 2, 3], "end_point_2d": [3, 4], "label": "p"}'),
        error="start_point_2d must hold 2 numbers, got 3",
    ),
    case(
        "half-line",
        vilasr('{"index": 1, "start_point_2d": [1, 2], "label": "p"}'),
        error="missing end_point_2d",
    ),
    case(
        "bbox-str",
        vilasr(item(bbox_2d="10,20,30,40")),
        error="bbox_2d must hold 4 numbers, got '10",
    ),
    case("str-number", vilasr(item(bbox_2d=["10", 20, 30, 40])), error="must hold only numbers"),
    case("bool-number", vilasr(item(bbox_2d=[True, 20, 30, 40])), error="must hold only numbers"),
    case(
        "null-number",
        vilasr(item(bbox_2d=[0, 1, 2, 3]).replace("0", "null", 1)),
        error="only numbers",
    ),
    case("no-label", vilasr(item(label=None)), error="missing label"),
    case("int-label", vilasr(item(label=5)), error="label must be a string, got 5"),
    case("empty-label", vilasr(item(label="")), [Box(1, SOFA.bbox, "")], ok=True),
    case("unicode-label", vilasr(item(label=" 沙发 🛋️ ")), [Box(1, SOFA.bbox, "沙发 🛋️")], ok=True),
    case(
        "escapes-label",
        vilasr(item(label='"hi"\\ \n ok')),
        [Box(1, SOFA.bbox, '"hi"\\ \n ok')],
        ok=True,
    ),
    case("extra-keys", vilasr(item(colour="red", score=0.9)), [SOFA], ok=True),
    case(
        "box-and-line", vilasr(item(start_point_2d=[1, 2])), error="has both bbox_2d and start/end"
    ),
    case("no-geometry", vilasr('[{"index": 1, "label": "x"}]'), error="has neither bbox_2d"),
    case("number-items", vilasr("[1, 2]"), error="item 1 in block 1: expected an object, got 1"),
    case(
        "nested-garbage",
        vilasr('[[[{"a": [1, {"b": [[]]}]}]], {"": null}]'),
        error="expected an object",
    ),
    case("block-number", vilasr("42"), error="block 1: expected a list of objects, got 42"),
    case("block-null", vilasr("null"), error="expected a list of objects, got None"),
    case("empty-list", vilasr("[]"), error="block 1 holds no items"),
    case("empty-block", vilasr(""), error="block 1 is empty"),
    case("half-json", vilasr('[{"index": 1, "bbox_2d": [1, 2'), error="block 1 is not valid JSON"),
    case("too-many-digits", vilasr("1" * 5000), error="not valid JSON"),
    case("deep-nesting", vilasr("[" * 100_000), error="not valid JSON"),
    case("no-eval", vilasr("__import__('os').getcwd()"), error="not valid JSON"),
    case("answer", ANSWER, answer="B", ok=True, drew=False),
    case("spaces", f"\n\t {ANSWER} \n\n", answer="B", ok=True, drew=False),
    case(
        "answer-no-action",
        "<think>a</think> <answer>B</answer>",
        answer="B",
        drew=False,
        error="`Action:",
    ),
    case(
        "answer-under-tracer",
        "<think> a </think> Action: Path Tracer\n<answer> B </answer>",
        answer="B",
        error="no json block",
    ),
    case("answer-missing", "<think>a</think> Action: Answer", drew=False, error="has no <answer>"),
    case(
        "answer-unclosed",
        "<think>a</think> Action: Answer <answer> B",
        drew=False,
        error="never closed",
    ),
    case(
        "two-answers", ANSWER + "<answer>C</answer>", answer="B", drew=False, error="more than one"
    ),
    case(
        "answer-and-draw",
        vilasr(f"[{BOX}]") + "<answer>B</answer>",
        [SOFA],
        "B",
        error="drawing ignored",
    ),
    case("no-block", "<think> a </think> Action: Object Mapper", error="no json block"),
    case("no-think", f"Action: Object Mapper\n```json\n[{BOX}]\n```", [SOFA], error="<think>"),
    case("text-before-think", "hi " + vilasr(f"[{BOX}]"), [SOFA], error="text before it"),
    case("unknown-action", vilasr(f"[{BOX}]", "Zoom In"), [SOFA], error="unknown action 'Zoom In'"),
    case("python-fence", ANSWER + f"\n```python\n[{BOX}]\n```", answer="B", ok=True, drew=False),
    case("empty", "", drew=False, error="empty"),
    case("whitespace", " \n\t ", drew=False, error="empty"),
    case("binary-junk", JUNK, drew=False, error="neither draws nor answers"),
    case("thought-only", "<think> only thinking </think>", drew=False, error="neither draws"),
    case("max-items", vilasr(json.dumps(MANY_JSON)), MANY, ok=True),
    case("too-many-items", vilasr(json.dumps(TOO_MANY_JSON)), MANY, error=ITEMS_ERROR),
    case(
        "900kB-thought",
        f"<think>{BIG_THOUGHT}</think> Action: Object Mapper\n```\n[{BOX}]\n```",
        [SOFA],
        ok=True,
    ),
]

SINGLE_QUOTED_CALL = (
    f"{{'name': 'draw_boxes', 'arguments': {{'index': 1, 'boxes': {SINGLE_QUOTED}}}}}"
)
UNCLOSED = call(**BOXES).removesuffix("</tool_call>")


def boxes(*numbers, label="x", index=1) -> str:
    """A draw_boxes call with one box of ``numbers``."""
    return call(index=index, boxes=[{"bbox_2d": list(numbers), "label": label}])


TOOL_CASES = [
    case("boxes", tool(call(**BOXES)), [SOFA], ok=True),
    case("lines", tool(call("draw_lines", **LINES)), [PATH], ok=True),
    case("two-calls", tool(call(**BOXES), call("draw_lines", **LINES)), [SOFA, PATH], ok=True),
    case(
        "arguments-string",
        tool(call(raw=json.dumps({"name": "draw_boxes", "arguments": json.dumps(BOXES)}))),
        [SOFA],
        ok=True,
    ),
    case("unclosed", tool(UNCLOSED), [SOFA], ok=True),
    case("unclosed-then-call", tool(UNCLOSED, call("draw_lines", **LINES)), [SOFA, PATH], ok=True),
    case("single-quotes", tool(call(raw=SINGLE_QUOTED_CALL)), [SOFA], ok=True),
    case("unknown-tool", tool(call("zoom", index=1)), error="unknown tool 'zoom'"),
    case(
        "name-list", tool(call(raw='{"name": ["draw_boxes"]}')), error="unknown tool ['draw_boxes']"
    ),
    case(
        "not-json", tool(call(raw="draw_boxes(1, [10, 20])")), error="tool call 1 is not valid JSON"
    ),
    case("body-list", tool(call(raw="[1, 2]")), error="expected an object with name and arguments"),
    case("empty-body", tool(call(raw="")), error="tool call 1 is empty"),
    case(
        "no-arguments",
        tool(call(raw='{"name": "draw_boxes"}')),
        error="arguments must be an object",
    ),
    case(
        "bad-arguments-string",
        tool(call(raw='{"name": "draw_boxes", "arguments": "{index: 1"}')),
        error="arguments is not valid JSON",
    ),
    case("no-boxes", tool(call(index=1)), error="arguments have no boxes"),
    case("empty-boxes", tool(call(index=1, boxes=[])), error="tool call 1 holds no items"),
    case("single-box", tool(call(index=1, boxes=BOXES["boxes"][0])), [SOFA], ok=True),
    case("boxes-number", tool(call(index=1, boxes=7)), error="expected a list of objects, got 7"),
    case(
        "line-in-boxes", tool(call(index=2, boxes=LINES["lines"])), error="a box item needs bbox_2d"
    ),
    case(
        "box-in-lines",
        tool(call("draw_lines", index=1, lines=BOXES["boxes"])),
        error="a line item needs start/end points",
    ),
    case(
        "no-index", tool(call(boxes=BOXES["boxes"])), error="item 1 in tool call 1: missing index"
    ),
    case(
        "item-index-wins",
        tool(boxes(10, 20, 30, 40).replace('"bbox', '"index": 3, "bbox')),
        [Box(3, SOFA.bbox, "x")],
        ok=True,
    ),
    case("index-1.0", tool(call(**{**BOXES, "index": 1.0})), [SOFA], ok=True),
    case(
        "index-1.5",
        tool(call(**{**BOXES, "index": 1.5})),
        error="index must be an integer, got 1.5",
    ),
    case(
        "index-bool",
        tool(call(**{**BOXES, "index": False})),
        error="index must be an integer, got False",
    ),
    case(
        "index-str",
        tool(call(**{**BOXES, "index": "2"})),
        error="index must be an integer, got '2'",
    ),
    case("neg-index", tool(boxes(10, 20, 30, 40, index=-1)), [Box(-1, SOFA.bbox, "x")], ok=True),
    case(
        "huge-index",
        tool(boxes(10, 20, 30, 40, index=2**70)),
        [Box(2**70, SOFA.bbox, "x")],
        ok=True,
    ),
    case(
        "nan-1e308",
        tool(boxes(NAN, 1e308, -1e308, INF)),
        [Box(1, (NAN, 1e308, -1e308, INF), "x")],
        ok=True,
    ),
    case(
        "arity",
        tool(boxes(1, 2, 3, 4, 5)),
        error="item 1 in tool call 1: bbox_2d must hold 4 numbers, got 5",
    ),
    case("str-number", tool(boxes(1, "2", 3, 4)), error="must hold only numbers"),
    case("bool-number", tool(boxes(1, 2, 3, False)), error="must hold only numbers"),
    case(
        "point-number",
        tool(
            call(
                "draw_lines",
                index=1,
                lines=[{"start_point_2d": [1, 2], "end_point_2d": 3, "label": "x"}],
            )
        ),
        error="end_point_2d must hold 2 numbers, got 3",
    ),
    case(
        "unicode-label",
        tool(boxes(10, 20, 30, 40, label="🐈‍⬛ «ü»")),
        [Box(1, SOFA.bbox, "🐈‍⬛ «ü»")],
        ok=True,
    ),
    case(
        "no-label",
        tool(call(index=1, boxes=[{"bbox_2d": [10, 20, 30, 40]}])),
        error="missing label",
    ),
    case("extra-keys", tool(call(**BOXES, colour="red")), [SOFA], ok=True),
    case(
        "nested-garbage",
        tool(call(index=1, boxes=[[{"x": [[]]}], None, {"label": {"a": []}}])),
        error="item 3 in tool call 1: has neither",
    ),
    case("deep-nesting", tool(call(raw="[" * 100_000)), error="not valid JSON"),
    case("answer", tool("<answer> B </answer>"), answer="B", ok=True, drew=False),
    case(
        "fence-not-drawing",
        tool("<answer>B</answer>", f"```json\n[{BOX}]\n```"),
        answer="B",
        ok=True,
        drew=False,
    ),
    case(
        "fence-only", tool(f"```json\n[{BOX}]\n```"), drew=False, error="neither draws nor answers"
    ),
    case(
        "vilasr-action",
        tool("Action: Object Mapper"),
        drew=False,
        error="expected <tool_call> or <answer>",
    ),
    case(
        "answer-and-call",
        tool(call(**BOXES), "<answer>B</answer>"),
        [SOFA],
        "B",
        error="drawing ignored",
    ),
    case("answer-unclosed", tool("<answer> B"), drew=False, error="never closed"),
    case(
        "two-answers",
        tool("<answer>A</answer> <answer>B</answer>"),
        answer="A",
        drew=False,
        error="more than",
    ),
    case("no-think", call(**BOXES), [SOFA], error="must start with <think>"),
    case(
        "text-first",
        tool("I will draw.", call(**BOXES)),
        [SOFA],
        error="expected <tool_call> or <answer>",
    ),
    case("empty", "", drew=False, error="empty"),
    case("whitespace", "\n \r\n", drew=False, error="empty"),
    case("binary-junk", JUNK, drew=False, error="neither draws nor answers"),
    case("max-items", tool(call(index=1, boxes=MANY_JSON)), MANY, ok=True),
    case("too-many-items", tool(call(index=1, boxes=TOO_MANY_JSON)), MANY, error=ITEMS_ERROR),
    case("900kB-thought", tool(call(**BOXES), thought=BIG_THOUGHT), [SOFA], ok=True),
    case(
        "over-max-chars",
        tool(call(**BOXES), thought="x" * MAX_TURN_CHARS),
        drew=False,
        error=f"only the first {MAX_TURN_CHARS:,} are read",
    ),
]


def check(protocol, text, operations, answer, format_ok, attempted, error):
    parsed = protocol.parse(text)
    # repr compares NaN and int-vs-float exactly, which == would not
    assert repr(parsed.operations) == repr(tuple(operations))
    assert parsed.answer == answer
    assert parsed.drawing_attempted is attempted
    assert parsed.format_ok is format_ok
    assert parsed.format_ok == (not parsed.errors)
    if error is not None:
        assert any(error in message for message in parsed.errors), parsed.errors


@pytest.mark.parametrize("text, operations, answer, format_ok, attempted, error", VILASR_CASES)
def test_vilasr_parse(text, operations, answer, format_ok, attempted, error):
    check(VilasrProtocol(), text, operations, answer, format_ok, attempted, error)


@pytest.mark.parametrize("text, operations, answer, format_ok, attempted, error", TOOL_CASES)
def test_tool_call_parse(text, operations, answer, format_ok, attempted, error):
    check(ToolCallProtocol(), text, operations, answer, format_ok, attempted, error)


def test_thought_is_stripped_and_missing_thought_is_none():
    assert (
        VilasrProtocol().parse("<think>\n a b \n</think> Action: Answer <answer>x</answer>").thought
        == "a b"
    )
    assert ToolCallProtocol().parse("<answer>x</answer>").thought is None


@pytest.mark.parametrize("protocol", list(PROTOCOLS.values()))
@pytest.mark.parametrize(
    "text",
    [
        "<think>" * 100_000,
        "```" * 100_000,
        "[" * 100_000,
        "{" * 100_000,
        "<tool_call>" * 100_000,
        "<answer>" * 100_000,
        "Action: " * 100_000,
        "```json\n" + "[1," * 300_000,
        "x" * 1_000_000,
    ],
)
def test_pathological_inputs_give_capped_errors(protocol, text):
    parsed = protocol().parse(text)
    assert not parsed.format_ok
    assert 0 < len(parsed.errors) <= MAX_ERRORS + 1


def test_non_text_input_is_an_error_not_a_crash():
    for value in (None, b"<think>", 3):
        assert VilasrProtocol().parse(value).errors


# Round trip: labels are any stripped non-empty text; thoughts and answers avoid the tags.
TAGS = ("<think>", "</think>", "<answer>", "</answer>", "<tool_call>", "</tool_call>", "```")
free_text = st.text().map(str.strip).filter(lambda s: not any(tag in s for tag in TAGS))
labels = st.text(min_size=1).map(str.strip).filter(bool)
numbers = st.one_of(
    st.integers(-(10**30), 10**30), st.floats(allow_nan=False, allow_infinity=False)
)
indices = st.integers(-(10**30), 10**30)
boxes = st.builds(Box, indices, st.tuples(numbers, numbers, numbers, numbers), labels)
lines = st.builds(Line, indices, st.tuples(numbers, numbers), st.tuples(numbers, numbers), labels)
operations = st.lists(
    st.one_of(boxes, lines, st.sampled_from([SOFA, PATH])), min_size=1, max_size=8
)
actions = st.one_of(
    st.builds(Draw, operations.map(tuple), free_text), st.builds(Answer, free_text, free_text)
)


@pytest.mark.parametrize("protocol", list(PROTOCOLS.values()))
@settings(max_examples=300, deadline=None)
@given(action=actions)
def test_format_parse_round_trip(protocol, action):
    parsed = protocol().parse(protocol().format(action))
    assert parsed.action == action
    assert repr(parsed.action) == repr(action)
    assert parsed.format_ok, parsed.errors


TOKENS = [*TAGS, "```json", "\n", " ", "Action: Object Mapper", "Action: Answer", '{"index": 1',
          '"bbox_2d": [', '"label": "a"', '"name": "draw_boxes"', '"arguments": {', "1.5", "NaN",
          "[", "]", "{", "}", ",", "'", '"', "1e999", "true", "null"]  # fmt: skip


@pytest.mark.parametrize("protocol", list(PROTOCOLS.values()))
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), st.lists(st.sampled_from(TOKENS)).map("".join)))
def test_parse_never_raises(protocol, text):
    parsed = protocol().parse(text)
    assert parsed.format_ok == (not parsed.errors)
    assert all(isinstance(op, (Box, Line)) for op in parsed.operations)
    assert parsed.answer is None or isinstance(parsed.answer, str)
    parsed.action  # noqa: B018 - building the action must not raise either


def test_vilasr_format_heading_and_order():
    protocol = VilasrProtocol()
    text = protocol.format(Draw((PATH, SOFA), "  why  "))
    assert text.startswith("<think> why </think> Action: Path Tracer\n```json\n")
    assert text.count("```") == 2
    assert "Action: Object Mapper" in protocol.format(Draw((SOFA, PATH)))
    assert (
        protocol.format(Answer(" B ", "t"))
        == "<think> t </think> Action: Answer\n<answer> B </answer>"
    )


def test_tool_call_format_one_call_per_run():
    ops = (
        SOFA,
        Box(1, (0, 0, 1, 1), "b"),
        PATH,
        Line(2, (0, 0), (1, 1), "q"),
        Box(2, (0, 0, 1, 1), "c"),
        SOFA,
    )
    text = ToolCallProtocol().format(Draw(ops, "t"))
    calls = [json.loads(c.split("</tool_call>")[0]) for c in text.split("<tool_call>")[1:]]
    assert [(c["name"], c["arguments"]["index"]) for c in calls] == [
        ("draw_boxes", 1), ("draw_lines", 2), ("draw_boxes", 2), ("draw_boxes", 1)
    ]  # fmt: skip
    assert len(calls[0]["arguments"]["boxes"]) == 2
    assert ToolCallProtocol().format(Answer("B", "t")) == "<think> t </think>\n<answer> B </answer>"


def test_labels_with_tags_and_fences_survive_format():
    ops = (Box(1, (1, 2, 3, 4), "</answer> ``` </tool_call> </think>"),)
    for protocol in PROTOCOLS.values():
        assert protocol().parse(protocol().format(Draw(ops))).operations == ops


@pytest.mark.parametrize("protocol", list(PROTOCOLS.values()))
@pytest.mark.parametrize("action", ["<answer>B</answer>", None, SOFA, Draw((SOFA, "box"))])
def test_format_rejects_non_actions(protocol, action):
    with pytest.raises(DrawEnvError):
        protocol().format(action)


@pytest.mark.parametrize("protocol", list(PROTOCOLS.values()))
@pytest.mark.parametrize("coords", COORD_MODES)
def test_system_prompt_mentions_size_and_coordinates(protocol, coords):
    prompt = protocol().system_prompt(width=640, height=480, coords=coords)
    assert "640" in prompt and "480" in prompt
    wording = {
        "pixel": "absolute pixel coordinates of the target image; image 1 is 640x480 pixels",
        "norm1000": "relative coordinates from 0 to 1000 of the target image's width and height",
    }
    assert wording[coords] in prompt
    for topic in (
        "<think>",
        "<answer>",
        "bbox_2d",
        "start_point_2d",
        "replaces",
        "next turn",
        "from 1",
    ):
        assert topic in prompt


def test_system_prompt_examples_use_the_protocol_syntax():
    vilasr = VilasrProtocol().system_prompt(width=100, height=50, coords="pixel")
    assert "Action: Object Mapper\n```json" in vilasr and "Action: Path Tracer" in vilasr
    assert '"bbox_2d": [25, 15, 60, 40]' in vilasr
    tool_prompt = ToolCallProtocol().system_prompt(width=100, height=50, coords="norm1000")
    assert '<tool_call>{"name": "draw_boxes"' in tool_prompt
    assert '"bbox_2d": [250, 300, 600, 800]' in tool_prompt


@pytest.mark.parametrize("protocol", list(PROTOCOLS.values()))
def test_system_prompt_rejects_bad_arguments(protocol):
    with pytest.raises(DrawEnvError, match="Did you mean 'pixel'"):
        protocol().system_prompt(width=10, height=10, coords="pixels")
    with pytest.raises(DrawEnvError, match="width"):
        protocol().system_prompt(width=0, height=10, coords="pixel")


def test_tool_schemas_are_published_in_the_prompt():
    protocol = ToolCallProtocol()
    prompt = protocol.system_prompt(width=64, height=64, coords="pixel")
    section = prompt.split("<tools>\n")[1].split("\n</tools>")[0]
    published = [json.loads(line) for line in section.splitlines()]
    assert published == protocol.tools
    assert [t["function"]["name"] for t in protocol.tools] == ["draw_boxes", "draw_lines"]
    for schema in protocol.tools:
        assert schema["type"] == "function"
        assert schema["function"]["parameters"]["required"][0] == "index"
    protocol.tools.clear()  # a copy: callers cannot corrupt the published schemas
    assert len(protocol.tools) == 2


def test_registry_and_pickling():
    assert set(PROTOCOLS) == {"vilasr", "tool_call"}
    for name, cls in PROTOCOLS.items():
        protocol = get_protocol(name)
        assert type(protocol) is cls and protocol.name == name
        copy = pickle.loads(pickle.dumps(protocol))
        assert copy.parse(protocol.format(Draw((SOFA,)))).operations == (SOFA,)
    with pytest.raises(DrawEnvError, match="Did you mean 'tool_call'"):
        get_protocol("toolcall")
