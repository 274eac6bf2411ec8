"""The ``drawenv`` command line, run as a user would: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRAWENV = Path(sys.executable).with_name("drawenv")


# Torch on one thread in the command, as the ``one_thread`` fixture does in process: the tiny
# model's matrices are too small to share among threads, and a worker per core already runs.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DRAWENV), *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600
    )


def test_help_lists_every_command():
    done = run("--help")
    assert done.returncode == 0
    for command in ("demo", "eval", "view", "show", "export-sft"):
        assert command in done.stdout


def test_eval_writes_results_and_viewer_then_view_rebuilds_it(tmp_path):
    done = run("eval", "--agent", "oracle", "--task", "counting", "-n", "2", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "oracle" in done.stdout and "counting" in done.stdout
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in results] == [1.0, 1.0]
    assert all((tmp_path / path).is_file() for r in results for path in r["images"])
    page = tmp_path / "index.html"
    assert page.is_file()
    page.unlink()
    done = run("view", str(tmp_path / "results.jsonl"))
    assert done.returncode == 0 and page.is_file() and str(page) in done.stdout


def test_eval_in_tool_call_protocol_and_norm1000(tmp_path):
    done = run(
        "eval",
        "--agent",
        "oracle",
        "--task",
        "distance",
        "-n",
        "2",
        "--protocol",
        "tool_call",
        "--coords",
        "norm1000",
    )
    assert done.returncode == 0, done.stderr
    assert " 1.000 " in done.stdout  # accuracy


def test_show_writes_the_images_and_prints_the_prompt(tmp_path):
    done = run("show", "--task", "multiview", "--index", "3", "--out", str(tmp_path / "mv.png"))
    assert done.returncode == 0, done.stderr
    assert "The index of the given image is 2" in done.stdout and "answer:" in done.stdout
    assert (tmp_path / "mv-1.png").is_file() and (tmp_path / "mv-2.png").is_file()


def test_export_sft(tmp_path):
    out = tmp_path / "sft.jsonl"
    done = run("export-sft", "--task", "counting,depth", "-n", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 4 and "with self-corrections" in done.stdout


def test_demo_runs_every_agent_on_every_suite(tmp_path):
    from agents.cli import AGENTS
    from drawenv.tasks import SUITES

    done = run("demo", "-n", "1", "--out", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr
    rows = [line.split()[:2] for line in done.stdout.splitlines() if line.split()[:1]]
    for agent in AGENTS:
        for suite in SUITES:
            assert [agent, suite] in rows
    assert (tmp_path / "demo" / "index.html").is_file()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["eval", "--agent", "oracel", "--task", "maze"], ["--agent", "did you mean 'oracle'"]),
        (["eval", "--agent", "oracle", "--task", "mazes"], ["--task", "did you mean 'maze'"]),
        (["view", "missing/results.jsonl"], ["No results file", "drawenv view runs/demo"]),
        (["show", "--task", "nope"], ["--task", "counting"]),
        (["export-sft", "--task", "counting"], ["--out"]),
        ([], ["COMMAND"]),
        (
            ["eval", "--agent", "oracle", "--task", "maze", "--coords", "norm"],
            ["coords", "norm1000"],
        ),
        (
            ["eval", "--agent", "vlm", "--model", "m", "--temperature", "-1"],
            ["--temperature", ">= 0", "0.7"],
        ),
    ],
)
def test_bad_arguments_say_what_to_type(args, words):
    done = run(*args)
    assert done.returncode == 2
    for word in words:
        assert word.lower() in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_eval_a_local_vlm_with_pass_at_k(tmp_path):
    from agents.vlm.testing import save_tiny_model

    model = tmp_path / "tiny-qwen"
    save_tiny_model(model)
    out = tmp_path / "vlm"
    done = run(
        "eval",
        "--agent",
        "vlm",
        "--model",
        str(model),
        "--task",
        "counting",
        "-n",
        "2",
        "--k",
        "2",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "pass@1" in done.stdout and "pass@2" in done.stdout
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) == 4 and (out / "index.html").is_file()


def test_eval_vlm_temperature_samples_and_zero_is_greedy(tmp_path):
    from agents.vlm.testing import save_tiny_model

    model = tmp_path / "tiny-qwen"
    save_tiny_model(model)

    def texts(*extra: str) -> list[list[str]]:
        out = tmp_path / "-".join(extra or ("default",))
        args = ["--model", str(model), "--task", "counting", "-n", "3", "--out", str(out)]
        done = run("eval", "--agent", "vlm", *args, *extra)
        assert done.returncode == 0, done.stderr
        lines = (out / "results.jsonl").read_text().splitlines()
        return [[turn["text"] for turn in json.loads(line)["turns"]] for line in lines]

    greedy = texts()
    assert texts("--temperature", "0") == greedy  # --k 1 is greedy; 0 says so explicitly
    # at temperature 3 the random model samples near-uniformly from ~1,000 tokens: 3 episodes of
    # up to 512 tokens a turn cannot all repeat the greedy text
    assert texts("--temperature", "3") != greedy


def test_eval_vlm_without_a_model_says_what_to_type():
    done = run("eval", "--agent", "vlm", "--task", "maze")
    assert done.returncode == 2 and "--model PATH" in done.stderr
