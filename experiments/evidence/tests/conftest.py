"""Fixtures of the evidence experiment's tests: its scripts imported as modules, and the
product tests' ``one_thread``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import one_thread  # noqa: F401 (a fixture: pytest looks for it here)

EVIDENCE = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``experiments/evidence/NAME.py`` as the module ``evidence_NAME`` (imported once)."""
    module_name = f"evidence_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, EVIDENCE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.fixture
def report() -> ModuleType:
    """``report.py``: the notebook's tables and plots."""
    return load_script("report")


@pytest.fixture
def vision_probe() -> ModuleType:
    """``vision_probe.py``: the answer-only probe and the image-swap check."""
    return load_script("vision_probe")
