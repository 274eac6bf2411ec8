"""The static-decode probe decodes on the CPU, in float32, the same greedy tokens from its
static cache and fixed mask buffer as from the growing dynamic cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_static_cache_decodes_the_dynamic_cache_tokens(tmp_path):
    out = tmp_path / "probe.json"
    env = os.environ | {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'benchmarks'}"}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments/static_decode/probe.py"),
            "--device",
            "cpu",
            "--model-size",
            "tiny",
            "--batch",
            "1",
            "3",
            "--prompt",
            "24",
            "--steps",
            "6",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["path"], r["batch"]) for r in rows] == [
        ("eager, dynamic cache", 1),
        ("eager, static cache", 1),
        ("eager, dynamic cache", 3),
        ("eager, static cache", 3),
    ]
    assert all(r["same_tokens"] for r in rows)
