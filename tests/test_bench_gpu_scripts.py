"""The GPU benchmark scripts on the tiny model (CPU): the naive baseline does the same work as
the batched rollout, every micro-batch size of the GRPO benchmark gives the same gradient, and
both scripts run end to end. Nothing here looks at the times."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_thread")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(BENCHMARKS / name), "--device", "cpu", "--tiny"]
    return subprocess.run(
        [*command, "--threads", "1", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_greedy_naive_loop_writes_the_batched_rollouts_tokens(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_rollout import make_env, naive_episode
    from random_vlm import build_policy

    from agents.vlm.rollout import rollout

    policy = build_policy(tiny=True, device="cpu", dtype="float32", max_new_tokens=16)
    policy.settings = dataclasses.replace(policy.settings, temperature=0.0)
    for seed in (0, 3):
        naive = naive_episode(policy, make_env(policy, "counting"), seed)
        batched = rollout(policy, [make_env(policy, "counting")], seed=seed)[0]
        assert naive["turns"] == batched.n_turns == 2
        assert naive["generated"] == batched.n_generated == 32
        assert naive["ids"] == batched.ids.tolist()


def test_rollout_benchmark_reports_naive_and_batched_rows(tmp_path):
    out = tmp_path / "rollout.json"
    # 56 tokens a turn: the scripted drawing (48 tokens of the tiny tokenizer) fits, so the env
    # draws and every episode has two turns.
    args = ("--sizes", "1,2", "--naive-episodes", "2", "--max-new-tokens", "56", "--out", str(out))
    done = run_script("bench_rollout.py", *args)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["loop"], r["batch"], r["episodes"]) for r in rows] == [
        ("naive", 1, 2),
        ("batched", 1, 1),
        ("batched", 2, 2),
    ]
    assert [r["generated_tokens"] for r in rows] == [2 * 112, 112, 2 * 112]


def test_grpo_benchmark_optimises_the_same_batch_at_each_micro_batch(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_grpo

    # The tiny model never answers, so every reward is the same and every GRPO advantage 0: the
    # gradient would be 0 whatever the batch. With these advantages it is the advantage-weighted
    # sum over all four trajectories, which only the same trajectories reproduce.
    advantages = torch.tensor([1.0, -1.0, 0.5, -2.0])
    monkeypatch.setattr(bench_grpo, "config_advantages", lambda config, rewards: advantages)
    out = tmp_path / "grpo.json"
    args = ["--episodes", "4", "--group-size", "2", "--micro-batches", "2,4"]
    args += ["--device", "cpu", "--tiny", "--max-new-tokens", "56", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["bench_grpo.py", *args])
    bench_grpo.main()
    rows = json.loads(out.read_text())["rows"]
    assert [(r["micro_batch"], r["forwards"]) for r in rows] == [(1, 4), (2, 2), (4, 1)]
    assert {r["generated_tokens"] for r in rows} == {4 * 2 * 56}
    assert len({r["sequence_tokens"] for r in rows}) == 1
    assert not any(r["out_of_memory"] for r in rows)
    # The same gradient at each micro-batch. The AdamW steps of the rows before (lr 1e-6) move
    # the weights a row starts from, so its norm drifts by 1e-5 to 3e-5 (relative) a step, under
    # 1e-4 by the last row. Another batch is far further off: the first two trajectories alone
    # give a norm 1e-1 away, the four with their advantages reversed 1e-2 away.
    norms = [r["grad_norm"] for r in rows]
    assert norms[0] > 0
    assert norms == pytest.approx([norms[0]] * 3, rel=1e-3), norms
