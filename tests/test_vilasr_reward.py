"""``vilasr_exact`` against ViLaSR's own reward code, case by case.

``tests/data/vilasr_reward_reference.jsonl`` holds 194 episodes written for this test (multiple
choice, number extraction, MRA boundaries, the format rule over one to six turns, malformed
turns and blocks, reflection, truths drawenv's records cannot hold). Each line has the turns, the
truth, drawenv's answer type and the ViLaSR question type it maps to, and under ``vilasr`` the
values that ViLaSR's ``gcot_compute_score`` (``verl/utils/reward_score/gcot.py``, repository
AntResearchNLP/ViLaSR at commit 61669c0, run with torch 2.13 on CPU) returned for them: overall,
format, accuracy and reflection. The dialog handed to it was the chat-template serialisation
``system, user (image, question), assistant, user (image, feedback), assistant, …``, as their
rollout decodes it. Four inputs make that code raise; they are recorded as ``raises``. (Each
line's ``rollout`` holds what ViLaSR's rollout made of the same turns: tests/test_vilasr_env.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drawenv.rewards import (
    VILASR_QUESTION_TYPES,
    Episode,
    get_reward,
    vilasr_accuracy,
    vilasr_answer,
    vilasr_format,
    vilasr_number,
)

REFERENCE = Path(__file__).parent / "data" / "vilasr_reward_reference.jsonl"
CASES = [json.loads(line) for line in REFERENCE.read_text(encoding="utf-8").splitlines()]
SCORED = [case for case in CASES if "raises" not in case["vilasr"]]
RAISING = [case for case in CASES if "raises" in case["vilasr"]]


def _episode(case: dict, termination: str = "answer") -> Episode:
    return Episode(
        answer=None,
        truth=case["truth"],
        answer_type=case["answer_type"],
        outputs=tuple(case["turns"]),
        termination=termination,
    )


def test_the_reference_covers_what_it_claims():
    assert len(CASES) >= 120 and len(SCORED) == 190 and len(RAISING) == 4
    assert len({case["id"] for case in CASES}) == len(CASES)
    for case in CASES:
        assert VILASR_QUESTION_TYPES[case["answer_type"]] == case["question_type"]
    assert max(len(case["turns"]) for case in CASES) == 8
    assert {c["vilasr"]["format"] for c in SCORED} == {0.0, 1.0}
    assert {c["vilasr"]["reflection"] for c in SCORED} == {0.0, 1.0}


@pytest.mark.parametrize("case", SCORED, ids=[case["id"] for case in SCORED])
def test_every_reward_and_term_matches_vilasr(case):
    reward, terms = get_reward("vilasr_exact")(_episode(case))
    expected = case["vilasr"]
    assert reward == pytest.approx(expected["overall"], abs=1e-6)
    for name in ("accuracy", "format", "reflection"):
        assert terms[name] == pytest.approx(expected[name], abs=1e-6), name


def test_zero_mismatches_over_the_whole_reference():
    reward_fn = get_reward("vilasr_exact")
    mismatches = []
    for case in SCORED:
        reward, terms = reward_fn(_episode(case))
        got = {"overall": reward, **{k: terms[k] for k in ("accuracy", "format", "reflection")}}
        if any(abs(got[k] - case["vilasr"][k]) > 1e-6 for k in got):
            mismatches.append(case["id"])
    assert mismatches == []


@pytest.mark.parametrize("case", RAISING, ids=[case["id"] for case in RAISING])
def test_where_vilasr_raises_the_format_fails(case):
    reward, terms = get_reward("vilasr_exact")(_episode(case))
    assert terms["format"] == 0.0 and terms["reflection"] == 0.0
    assert terms["accuracy"] == 1.0 and reward == 0.5  # each answers B correctly


def test_no_ending_zeroes_the_reward():
    case = next(c for c in CASES if c["id"] == "fmt-last-no-answer-num")
    for termination in ("answer", "max_turns", "invalid_action", "max_images"):
        reward, terms = get_reward("vilasr_exact")(_episode(case, termination))
        assert reward == 0.5 and terms["accuracy"] == 1.0
        assert terms["answered"] == float(termination == "answer")


def test_rules_by_hand():
    assert vilasr_answer("<think>x</think> <answer>\n B \n</answer><answer>C</answer>") == "B"
    assert vilasr_answer("  no tag ") == "no tag"
    assert vilasr_number("between 3 to 4") == 3.0
    assert vilasr_number("\\boxed{-.5}") == -0.5
    assert vilasr_number("1,234") == 1.0
    assert vilasr_number("three") is None
    assert vilasr_accuracy("<answer>(B)</answer>", "B", "multiple_choice") == 0.0
    assert vilasr_accuracy("<answer>5</answer>", "4", "count") == 0.5
    assert vilasr_accuracy("<answer>yes</answer>", "yes", "text") == 0.0
    block = "[{'bbox_2d': [1, 2, 3, 4], 'label': 'c'}]"
    ok = f"<think>a</think> Action: Object Mapper\n```json\n{block}\n```"
    moved = ok.replace("[1, 2, 3, 4]", "[1, 2, 3, 5]")
    answer = "<think>b</think> Action: Answer\n<answer>B</answer>"
    assert vilasr_format([ok, answer]) == (1.0, 0.0)
    assert vilasr_format([ok, moved, answer]) == (1.0, 1.0)
    assert vilasr_format([ok]) == (0.0, 0.0)  # the last turn must answer
    assert vilasr_format([answer, answer]) == (0.0, 0.0)  # only the last one may


def test_a_huge_unclosed_block_is_bounded():
    turn = "<think>t</think> Action: Object Mapper\n```json\n" + "[" * 2_000_000
    assert vilasr_format([turn + "\n<answer>B</answer>"]) == (0.0, 0.0)
    many = "<think>t</think> Action: Answer\n" + "```json\n" * 50_000 + "<answer>B</answer>"
    assert vilasr_format([many]) == (0.0, 0.0)
