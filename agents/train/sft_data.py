"""Cold-start SFT data: oracle trajectories as chat-message JSONL, images saved beside the file.

Each line is one episode::

    {"id": "maze-0-1-3", "suite": "maze", "reflective": true, "reward": 1.0,
     "images": ["sft_images/ep3_img1.png", ...],
     "messages": [
        {"role": "system", "content": "<the protocol's instructions>"},
        {"role": "user", "content": [{"type": "image", "image": "sft_images/ep3_img1.png"},
                                     {"type": "text", "text": "<question prompt>"}]},
        {"role": "assistant", "content": "<think> … </think> Action: Object Mapper …"},
        {"role": "user", "content": [{"type": "image", "image": "…"},
                                     {"type": "text", "text": "<feedback>"}]},
        …,
        {"role": "assistant", "content": "<think> … </think> Action: Answer …"}]}

Image paths are relative to the JSONL file's folder. A share of the episodes carries an injected
self-correction: each key box is first drawn off its object, the resulting image is observed, and
the same label is re-drawn in the right place (the replaced layer disappears from the image).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.evaluate import is_reflective, play_episode
from agents.scripted.baselines import OracleAgent
from drawenv.env import DrawSpatialEnv


def to_messages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A played episode (``play_episode``'s record, images saved) as chat messages."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": record["system_prompt"]},
        _user(record["images"], record["prompt"]),
    ]
    for number, turn in enumerate(record["turns"], start=1):
        messages.append({"role": "assistant", "content": turn["text"]})
        if number < len(record["turns"]):
            messages.append(_user(turn["new_image_paths"], turn["message"]))
    return messages


def sft_line(record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One JSONL line of the SFT schema from a played episode's record (images saved)."""
    return {
        "id": record["task_id"],
        "suite": record["suite"],
        "reflective": is_reflective(record),
        "reward": record["reward"],
        **extra,
        "images": record["images"]
        + [p for turn in record["turns"] for p in turn["new_image_paths"]],
        "messages": to_messages(record),
    }


def _user(images: Sequence[str], text: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "image", "image": path} for path in images]
    return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}


def export_sft(
    suites: Sequence[str],
    *,
    episodes: int,
    out: str | Path,
    seed: int = 0,
    corrections: float = 0.5,
    protocol: str = "vilasr",
    coords: str = "pixel",
    difficulty: int = 1,
    max_pixels: int | None = None,
) -> tuple[Path, dict[str, int]]:
    """Write ``episodes`` oracle trajectories per suite to ``out``; a ``corrections`` share of
    them (spread evenly) with an injected self-correction. Returns the path and counts.

    Episode ``i`` of a suite is the env reset with seed ``seed + i`` at ``difficulty``;
    ``max_pixels`` (None: the env's default) is the env's image budget, which sets the image
    size the model sees and so the pixel coordinates it learns to write."""
    out = Path(out)
    image_dir = out.parent / f"{out.stem}_images"
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = {"episodes": 0, "reflective": 0}
    with open(out, "w", encoding="utf-8") as file:
        for suite in suites:
            env = DrawSpatialEnv(
                task=suite,
                protocol=protocol,
                coords=coords,
                difficulty=difficulty,
                **({"max_pixels": max_pixels} if max_pixels is not None else {}),
            )
            for i in range(episodes):
                corrected = int((i + 1) * corrections) > int(i * corrections)
                record = play_episode(
                    env,
                    OracleAgent(corrections=corrected),
                    seed=seed + i,
                    image_dir=image_dir,
                    episode=stats["episodes"],
                )
                line = sft_line(record)
                file.write(json.dumps(line, ensure_ascii=False) + "\n")
                stats["episodes"] += 1
                stats["reflective"] += line["reflective"]
    return out, stats
