"""experiments/evidence/report.py: the paired difference and the RL table by hand, then the
whole report on real evaluation records written by `drawenv eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EVIDENCE = Path(__file__).resolve().parents[1]


def records(accuracies: list[float], first_seed: int = 100) -> list[dict]:
    return [{"seed": first_seed + i, "accuracy": a} for i, a in enumerate(accuracies)]


def test_paired_difference_by_hand(report):
    # Item differences 1, 0, 0: mean 1/3. A resampled mean is 0 with probability (2/3)^3 = 0.30
    # and 1 with probability (1/3)^3 = 0.037, both more than 2.5%: the interval is [0, 1].
    mean, low, high = report.paired_difference(records([1, 0.5, 1]), records([0, 0.5, 1]))
    assert mean == pytest.approx(1 / 3)
    assert (low, high) == (0.0, 1.0)
    # Items are matched by seed, not by position.
    shuffled = records([1, 0.5, 1])[::-1]
    assert report.paired_difference(shuffled, records([0, 0.5, 1]))[0] == pytest.approx(1 / 3)
    # The same difference on every item: no spread at all.
    assert report.paired_difference(records([0.5, 1.0]), records([0.25, 0.75])) == (0.25,) * 3


def test_paired_difference_refuses_different_items(report):
    with pytest.raises(ValueError, match="same items"):
        report.paired_difference(records([1, 1]), records([1, 1], first_seed=7))


def test_constant_answers_are_scored_with_mra(report):
    results = [
        {"seed": 1, "answer": "4", "accuracy": 1.0},
        {"seed": 2, "answer": "8", "accuracy": 0.5},
    ]
    # MRA(4, 8): relative error 0.5 passes no threshold. MRA(6, 8): 0.25 passes θ = 0.50-0.70,
    # 5 of 10. MRA(6, 4): 0.5 passes none.
    assert report.constant_answer(results, 4) == [
        {"seed": 1, "accuracy": 1.0},
        {"seed": 2, "accuracy": 0.0},
    ]
    assert [r["accuracy"] for r in report.constant_answer(results, 6)] == [0.0, 0.5]
    table = report.constant_table({"m": results}, [4, 6]).splitlines()
    assert table[0] == "| run | always 4 | always 6 |"
    # differences: against 4, 0 and +0.5 (mean 0.25); against 6, +1 and 0 (mean 0.5)
    assert table[2].startswith("| m | +0.250 [")
    assert "| +0.500 [" in table[2]


def drew(seed: int, *bboxes: list[int]) -> dict:
    """A record of an episode that drew these boxes, one a turn, then answered."""
    turns = [{"operations": [{"kind": "box", "index": 1, "bbox": b, "label": "x"}]} for b in bboxes]
    return {"seed": seed, "turns": [*turns, {"operations": []}]}


def test_box_placement_by_hand(report):
    targets = [drew(1, [0, 0, 10, 10], [20, 20, 30, 30]), drew(2, [0, 0, 4, 4])]
    results = [
        drew(
            1, [2, 2, 8, 8], [40, 40, 50, 50], [18, 18, 32, 32]
        ),  # centres (5, 5), (45, 45), (25, 25)
        drew(2, [3, 3, 9, 9]),  # centre (6, 6): outside (0, 0, 4, 4)
    ]
    # 4 boxes, 2 centres inside a target; 2 of the 3 targets hold a centre.
    drawn, inside, hit = report.box_placement(results, targets)
    assert (drawn, inside, hit) == (4, 0.5, pytest.approx(2 / 3))
    table = report.placement_table({"a: m": results, "a: oracle": targets}, "oracle")
    assert table.splitlines()[2:] == ["| a: m | 4 | 0.500 | 0.667 |"]
    with pytest.raises(ValueError, match="same items"):
        report.box_placement([drew(3, [0, 0, 1, 1])], targets)
    table = report.placement_table({"m": [drew(3, [0, 0, 1, 1])], "oracle": targets}, "oracle")
    assert table.splitlines()[2:] == ["| m | items other than oracle's | | |"]


def rl_step(step: int, reward: float, zero_std: float, answered: int) -> dict:
    return {
        "step": step,
        "rollout/episodes": 4.0,
        "rollout/reward_mean": reward,
        "rollout/zero_std_groups": zero_std,
        "rollout/termination/answer": float(answered),
        "rollout/termination/max_turns": float(4 - answered),
    }


RL_LINES = [
    rl_step(1, 0.1, 0.0, 4),
    rl_step(2, 0.3, 0.5, 4),
    rl_step(3, 0.5, 0.5, 2),
    rl_step(4, 0.5, 0.0, 2),
    rl_step(5, 0.6, 0.5, 3),
    rl_step(6, 0.8, 1.0, 1),
]


def test_rl_row_and_table_by_hand(report):
    row = report.rl_row("grpo-s1", report.with_answer_share([dict(x) for x in RL_LINES]), 2)
    assert row["steps"] == 6
    assert row["rollout/reward_mean"] == pytest.approx((0.2, 0.7))
    assert row["rollout/zero_std_groups"] == pytest.approx((0.25, 0.75))
    assert row["rollout/answer_share"] == pytest.approx((1.0, 0.5))  # (4+4)/8 and (3+1)/8
    assert row["terminations"] == {"answer": 16, "max_turns": 8}
    table = report.rl_table([row], 2)
    assert table.splitlines()[-1] == (
        "| grpo-s1 | 6 | 0.200 → 0.700 | 0.250 → 0.750 | 1.000 → 0.500 | answer 16, max_turns 8 |"
    )


@pytest.mark.parametrize(
    ("name", "arm"),
    [("grpo_snra-s12", "grpo_snra"), ("ap_grpo-s1", "ap_grpo"), ("sft_E1_lr3e-4", "sft_E1_lr3e-4")],
)
def test_arm_of(report, name, arm):
    assert report.arm_of(name) == arm


def test_report_on_real_evaluations(tmp_path):
    pytest.importorskip("matplotlib")
    runs = tmp_path / "runs"
    # valid-oracle plays other items (seeds 9..11): it gets no difference from the start
    for agent, name, seed in [
        ("oracle", "oracle", 5),
        ("answer_only", "answer_only", 5),
        ("oracle", "valid-oracle", 9),
    ]:
        subprocess.run(
            [sys.executable, "-m", "agents.cli", "eval", "--agent", agent, "--task", "counting",
             "--difficulty", "1", "-n", "3", "--seed", str(seed),
             "--out", str(runs / "eval" / name)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    (runs / "grpo-s1").mkdir()
    (runs / "grpo-s1" / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in RL_LINES))
    out = subprocess.run(
        [sys.executable, str(EVIDENCE / "report.py"), f"a={runs}", "--start", "oracle",
         "--window", "2", "--targets", "oracle", "--plots", str(tmp_path / "plots")],
        check=True, capture_output=True, text=True, timeout=300,
    ).stdout  # fmt: skip
    lines = out.splitlines()
    oracle = next(line for line in lines if line.startswith("| a: oracle |"))
    assert oracle.startswith("| a: oracle | 3 | 1.000 | +0.000 [+0.000, +0.000] | 1.000 | 1.00 |")
    assert "| a: valid-oracle | 3 | 1.000 | | 1.000 | 1.00 |" in out
    answer_only = [
        json.loads(line)
        for line in (runs / "eval" / "answer_only" / "results.jsonl").read_text().splitlines()
    ]
    mean = sum(r["accuracy"] for r in answer_only) / 3
    row = next(line for line in lines if line.startswith("| a: answer_only |"))
    assert row.split(" | ")[3].startswith(f"{mean - 1:+.3f} [")
    assert "| a: grpo-s1 | 6 | 0.200 → 0.700 | 0.250 → 0.750 | 1.000 → 0.500 |" in out
    assert "| a: answer_only | 0 | 0.000 | 0.000 |" in lines  # it draws nothing
    for name in ("reward", "zero_std", "answer"):
        assert (tmp_path / "plots" / f"results_rl_{name}.png").stat().st_size > 1000
