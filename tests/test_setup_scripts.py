"""The set-up scripts rebuild a virtual environment made by another Python instead of reusing it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_venv(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "make_venv.sh"), str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    ).stdout


def test_a_venv_of_another_python_is_rebuilt_and_a_good_one_kept(tmp_path):
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    stale = venv / "bin" / "python"
    stale.write_text("#!/bin/sh\necho 2.7.18\n")
    stale.chmod(0o755)
    (venv / "marker").write_text("old")
    done = make_venv(venv)
    assert done.returncode == 0, done.stderr
    assert "made by another Python (2.7.18)" in done.stderr
    assert not (venv / "marker").exists()
    python3 = subprocess.run(
        ["python3", "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    ).stdout
    assert version(venv / "bin" / "python") == python3
    # Made by this python3: kept as it is.
    (venv / "marker").write_text("new")
    again = make_venv(venv)
    assert again.returncode == 0 and again.stderr == ""
    assert (venv / "marker").read_text() == "new"


def test_a_venv_whose_interpreter_is_gone_is_rebuilt(tmp_path):
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "no-such-python")
    done = make_venv(venv)
    assert done.returncode == 0, done.stderr
    assert "none that runs" in done.stderr
    assert version(venv / "bin" / "python")
