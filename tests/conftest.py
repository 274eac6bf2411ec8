"""Shared fixtures: small hand-made tasks whose answers and pixels are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drawenv.tasks import TaskRecord


def grey_image(width: int = 448, height: int = 336, value: int = 128) -> np.ndarray:
    """A flat grey image whose size is already a multiple of 28 (no resize)."""
    return np.full((height, width, 3), value, dtype=np.uint8)


@pytest.fixture
def mc_task() -> TaskRecord:
    """One 448x336 image, a multiple-choice question whose answer is B."""
    return TaskRecord(
        id="mc-1",
        images=(grey_image(),),
        question="Which object is closer to the door?",
        answer_type="multiple_choice",
        options=("the sofa", "the lamp", "the table"),
        answer="B",
    )


@pytest.fixture
def count_task() -> TaskRecord:
    """One 448x448 image with one ground-truth object, a count question whose answer is 3."""
    return TaskRecord(
        id="count-1",
        images=(grey_image(448, 448),),
        question="How many red circles are there?",
        answer_type="count",
        answer=3,
        metadata={"objects": [{"name": "red circle", "box": [100, 100, 140, 140]}]},
    )


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for the tiny test model: its matrices are too small to share among
    threads, which makes it many times slower (and pytest-xdist already runs a worker per core)."""
    import torch  # only the modules that use this fixture need torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def unpainted_pixels(monkeypatch):
    """Scenes come out black: ``Painter.result``, the last step of painting a scene, skips
    downsampling the supersampled canvas. It draws nothing from the item's generator, so every
    field of a record but its pixels stays the same; for tests of answers and metadata only."""
    from drawenv.tasks.scene import Painter

    def black(self, *, blur: float = 0.0) -> np.ndarray:
        return np.zeros((self.height, self.width, 3), np.uint8)

    monkeypatch.setattr(Painter, "result", black)


@pytest.fixture
def dot_tasks(tmp_path) -> Path:
    """A JSONL file of two 112x112 grey images, each asking how many dots (answer 3)."""
    (tmp_path / "img").mkdir()
    lines = []
    for k in range(2):
        Image.new("RGB", (112, 112), (90 + 40 * k,) * 3).save(tmp_path / "img" / f"{k}.png")
        lines.append(
            {
                "id": f"dots-{k}",
                "images": [f"img/{k}.png"],
                "question": "How many dots are there?",
                "answer_type": "count",
                "answer": 3,
            }
        )
    path = tmp_path / "dots.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path
