"""Per-turn parsing limits: a turn of any size or shape gets a defined outcome, with the limit it
hit named in ``errors`` (and in the env's ``info["errors"]``), never an exception.

How long such turns take is measured in benchmarks/bench_parse_worst.py, not here.
"""

from __future__ import annotations

import json

import pytest

from drawenv import Answer, Box, Draw
from drawenv.env import DrawSpatialEnv
from drawenv.protocol import (
    MAX_BLOCKS,
    MAX_ITEMS,
    MAX_LITERAL_CHARS,
    MAX_TURN_CHARS,
    ToolCallProtocol,
    VilasrProtocol,
    get_protocol,
)

ITEM = {"index": 1, "bbox_2d": [10, 20, 110, 220], "label": "chair"}
HEAD = "<think> mark it </think> Action: Object Mapper\n"
ANSWER = "<think> done </think> Action: Answer\n<answer> B </answer>"
LITERAL = repr([ITEM])  # single quotes: not JSON, so only the literal fallback reads it
TOO_LONG = f"only the first {MAX_TURN_CHARS:,} are read"
TOO_MANY_BLOCKS = f"more than {MAX_BLOCKS} fenced blocks"
TOO_MANY_CALLS = f"more than {MAX_BLOCKS} tool calls"
LITERAL_SPENT = f"fallback reads at most {MAX_LITERAL_CHARS:,} characters per turn"
TOO_MANY_ITEMS = f"more than {MAX_ITEMS} items"


def fence(body: str) -> str:
    return f"```\n{body}\n```\n"


def call(body: str) -> str:
    return f"<tool_call>{body}</tool_call>"


def literal_call(boxes: int = 1) -> str:
    arguments = {"index": 1, "boxes": [{"bbox_2d": [10, 20, 110, 220], "label": "c"}] * boxes}
    return call(repr({"name": "draw_boxes", "arguments": arguments}))


def big_literal(chars: int) -> str:
    """A Python-literal list of items, at most and about ``chars`` characters long (long labels,
    so that a whole budget's worth stays under MAX_ITEMS items)."""
    item = {**ITEM, "label": "a wooden chair by the window"}
    return repr([item] * (chars // (len(repr(item)) + 2)))


# (protocol, text, error fragment, drawing_ok, answer) per pathological turn
CASES = {
    "50-literal-blocks-of-99k": (
        "vilasr",
        HEAD + fence(big_literal(99_000)) * 50,
        TOO_LONG,
        False,
        None,
    ),
    "literal-budget-spent": (
        "vilasr",
        HEAD + fence(big_literal(MAX_LITERAL_CHARS // 2)) * 3,
        LITERAL_SPENT,
        False,
        None,
    ),
    "one-literal-block-over-budget": (
        "vilasr",
        HEAD + fence(big_literal(MAX_LITERAL_CHARS + 100)),
        LITERAL_SPENT,
        False,
        None,
    ),
    "too-many-blocks": (
        "vilasr",
        HEAD + fence(json.dumps([ITEM])) * 40,
        TOO_MANY_BLOCKS,
        False,
        None,
    ),
    "too-many-items": (
        "vilasr",
        HEAD + fence(json.dumps([ITEM] * (MAX_ITEMS + 1))),
        TOO_MANY_ITEMS,
        False,
        None,
    ),
    "items-over-blocks": (
        "vilasr",
        HEAD + fence(json.dumps([ITEM] * (MAX_ITEMS // 2 + 1))) * 2,
        TOO_MANY_ITEMS,
        False,
        None,
    ),
    "10MB-reasoning": (
        "vilasr",
        "<think>" + "word " * 2_000_000 + "</think> Action: Answer\n<answer> B </answer>",
        TOO_LONG,
        True,
        None,
    ),
    "10MB-fences": ("vilasr", HEAD + fence("[1]") * 800_000, TOO_LONG, False, None),
    "10MB-json-items": (
        "vilasr",
        HEAD + fence(json.dumps([ITEM] * 160_000)),
        TOO_LONG,
        False,
        None,
    ),
    "10MB-after-answer": ("vilasr", ANSWER + " " + "x" * 10_000_000, TOO_LONG, True, "B"),
    "5MB-tool-call-tags": (
        "tool_call",
        "<think>x</think>" + "<tool_call>" * 450_000,
        TOO_LONG,
        False,
        None,
    ),
    "too-many-tool-calls": (
        "tool_call",
        "<think>x</think>" + literal_call() * 40,
        TOO_MANY_CALLS,
        False,
        None,
    ),
    "tool-call-literal-budget": (
        "tool_call",
        "<think>x</think>" + literal_call(MAX_LITERAL_CHARS // 100) * 3,
        LITERAL_SPENT,
        False,
        None,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_pathological_turn_reports_the_limit(name):
    protocol, text, fragment, drawing_ok, answer = CASES[name]
    parsed = get_protocol(protocol).parse(text)
    assert not parsed.format_ok
    assert any(fragment in error for error in parsed.errors), parsed.errors[:3]
    assert parsed.drawing_ok is drawing_ok
    assert parsed.answer == answer
    assert len(parsed.operations) <= MAX_ITEMS


def test_limits_at_the_boundary_are_still_fine():
    """Exactly MAX_BLOCKS blocks, MAX_ITEMS items, a literal block of the whole budget, a turn of
    exactly MAX_TURN_CHARS characters: every one parses without error."""
    blocks = HEAD + fence(json.dumps([ITEM])) * MAX_BLOCKS
    assert VilasrProtocol().parse(blocks).format_ok
    items = HEAD + fence(json.dumps([ITEM] * MAX_ITEMS))
    assert len(VilasrProtocol().parse(items).operations) == MAX_ITEMS
    literal = big_literal(MAX_LITERAL_CHARS - 100)
    assert (
        len(literal) <= MAX_LITERAL_CHARS
        and VilasrProtocol().parse(HEAD + fence(literal)).format_ok
    )
    padded = ANSWER + " " * (MAX_TURN_CHARS - len(ANSWER))
    assert len(padded) == MAX_TURN_CHARS and VilasrProtocol().parse(padded).format_ok
    calls = "<think>x</think>" + literal_call() * MAX_BLOCKS
    assert ToolCallProtocol().parse(calls).format_ok


def test_an_oversized_blank_turn_is_empty_and_too_long():
    parsed = VilasrProtocol().parse(" " * (MAX_TURN_CHARS + 1))
    assert parsed.errors == (
        f"the turn is {MAX_TURN_CHARS + 1:,} characters long; only the first "
        f"{MAX_TURN_CHARS:,} are read",
        "the turn is empty",
    )


@pytest.fixture
def env(mc_task):
    return DrawSpatialEnv(task=[mc_task])


def test_env_rejects_a_drawing_over_the_block_limit_and_says_why(env):
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(HEAD + fence(json.dumps([ITEM])) * 40)
    assert (terminated, truncated, info["new_image_indices"]) == (False, False, [])
    assert any(TOO_MANY_BLOCKS in error for error in info["errors"])
    assert TOO_MANY_BLOCKS in obs["text"]
    # the episode goes on and has lost its format reward
    *_, info = env.step(ANSWER)
    assert info["termination"] == "answer" and info["reward_terms"]["format"] == 0.0


def test_env_ends_a_huge_turn_without_an_answer_as_no_action(env):
    env.reset(seed=0)
    turn = "<think>" + "word " * 2_000_000 + "</think> Action: Answer\n<answer> B </answer>"
    _, reward, terminated, _, info = env.step(turn)
    assert terminated and info["termination"] == "no_action" and reward == 0.0
    assert any(TOO_LONG in error for error in info["errors"])


def test_env_terminates_on_the_literal_budget_under_invalid_policy_terminate(mc_task):
    env = DrawSpatialEnv(task=[mc_task], invalid_policy="terminate")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(HEAD + fence(big_literal(MAX_LITERAL_CHARS + 100)))
    assert terminated and info["termination"] == "invalid_action"
    assert any(LITERAL_SPENT in error for error in info["errors"])


def test_typed_actions_stay_far_below_the_limits(env):
    env.reset(seed=0)
    boxes = [Box(1, (k, k, k + 20, k + 20), f"o{k}") for k in range(32)]
    _, _, _, _, info = env.step(Draw(boxes, thought="many boxes"))
    assert info["errors"] == [] and len(info["new_image_indices"]) == 1
    *_, info = env.step(Answer("B"))
    assert info["reward_terms"]["format"] == 1.0
