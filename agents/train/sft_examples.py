"""Chat episodes as training tokens: the SFT example builder and the streamed oracle episodes.

The data is what ``drawenv export-sft`` writes (:mod:`agents.train.sft_data`): one episode per line
as chat messages ``system, user(images + question), assistant, user(images + feedback), …,
assistant``, image paths relative to the JSONL's folder. Or :class:`OracleStream`: the same oracle
episodes played afresh for every example (in background worker processes).

Each episode is turned into token ids exactly as :func:`agents.vlm.rollout.rollout` lays them out
at sampling time, through the same builders: :meth:`VLMPolicy.prompt_segment` for the first prompt,
the assistant's text and its end-of-turn token (what the model writes, so the only tokens with
loss mask 1), then :meth:`VLMPolicy.observation_segment` for every following user turn.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.vlm.policy import VLMPolicy
from drawenv.tasks import SEED_RANGES

if TYPE_CHECKING:
    from agents.train.config import SFTConfig


@dataclass
class SFTExample:
    """One episode as training tokens; ``ids`` / ``pixel_values`` / ``image_grid_thw`` as in a
    :class:`~agents.vlm.rollout.Trajectory`, ``mask`` 1 exactly on the assistant's tokens."""

    ids: list[int]
    mask: list[int]
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    source: str = ""


# -- data ------------------------------------------------------------------------------------


def _load_image(root: Path, path: str) -> np.ndarray:
    """The image at ``path``, relative to ``root`` and confined to it (as in the JSONL task
    loader, :mod:`drawenv.tasks.jsonl`): a training file must not read files outside its
    folder."""
    from PIL import Image

    root = root.resolve()
    resolved = (root / path).resolve() if isinstance(path, str) and path else None
    if resolved is None or Path(path).is_absolute() or not resolved.is_relative_to(root):
        raise ValueError(
            f"Expected an image path inside the chat JSONL's folder {str(root)!r}, got "
            f"{path!r}. Write it relative to that folder and keep the image in it."
        )
    with Image.open(resolved) as image:
        return np.asarray(image.convert("RGB"))


def _user_parts(message: dict[str, Any], root: Path) -> tuple[str, list[np.ndarray]]:
    """A user message's text and images (images come first in the policy's layout)."""
    content = message["content"]
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content:
        if part.get("type") == "image":
            images.append(_load_image(root, part["image"]))
        elif part.get("type") == "text":
            texts.append(part["text"])
        else:
            raise ValueError(f"Expected content parts of type image or text, got {part!r}.")
    return "".join(texts), images


def _text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part.get("type") == "text")


def end_of_turn_token(policy: VLMPolicy) -> int | None:
    """The token a model writes to end its turn: the first token of the template's assistant
    closing when it is a stop token (``<|im_end|>`` for Qwen), else None."""
    closing = policy.tokenizer(policy.closing, add_special_tokens=False)["input_ids"]
    if closing and closing[0] in policy.stop_token_ids:
        return int(closing[0])
    return None


def build_example(policy: VLMPolicy, messages: Sequence[dict[str, Any]], root: Path) -> SFTExample:
    """Token ids and the assistant mask of one chat, laid out as a rollout would produce it.

    ``messages``: ``system, user, assistant, (user, assistant)*``; image parts hold paths
    relative to ``root``.
    """
    roles = [m.get("role") for m in messages]
    expected = ["system", "user"] + ["assistant", "user"] * ((len(roles) - 2) // 2)
    if len(roles) < 3 or roles[-1] != "assistant" or roles[:-1] != expected[: len(roles) - 1]:
        raise ValueError(
            f"Expected messages system, user, assistant, (user, assistant)*, got roles {roles}."
        )
    end = end_of_turn_token(policy)
    ids: list[int] = []
    mask: list[int] = []
    pixels: list[torch.Tensor] = []
    grids: list[torch.Tensor] = []

    def append(segment: Any, trained: int) -> None:
        ids.extend(segment.ids)
        mask.extend([trained] * len(segment.ids))
        if segment.pixel_values is not None:
            pixels.append(segment.pixel_values)
            grids.append(segment.image_grid_thw)

    text, images = _user_parts(messages[1], root)
    append(policy.prompt_segment(_text(messages[0]), text, images), 0)
    for message in messages[2:]:
        if message["role"] == "assistant":
            answer = policy.tokenizer(_text(message), add_special_tokens=False)["input_ids"]
            ids.extend([*answer, *([end] if end is not None else [])])
            mask.extend([1] * (len(answer) + (end is not None)))
        else:
            text, images = _user_parts(message, root)
            append(policy.observation_segment(text, images, last_token=end), 0)
    example = SFTExample(
        ids,
        mask,
        torch.cat(pixels) if pixels else None,
        torch.cat(grids) if grids else None,
    )
    policy.check_sync(example.ids, example.pixel_values, example.image_grid_thw)
    return example


def load_examples(
    policy: VLMPolicy, path: str | Path, *, max_length: int | None = None
) -> tuple[list[SFTExample], int]:
    """Every episode of the chat JSONL ``path`` as an :class:`SFTExample`; returns the examples
    and how many were skipped for being longer than ``max_length`` tokens."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected the chat JSONL written by `drawenv export-sft`, got {str(path)!r}."
        )
    examples, skipped = [], 0
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            try:
                example = build_example(policy, record["messages"], path.parent)
            except (KeyError, ValueError) as error:
                raise ValueError(f"{path}:{number}: {error}") from error
            example.source = str(record.get("id", f"{path.name}:{number}"))
            if max_length is not None and len(example.ids) > max_length:
                skipped += 1
                continue
            examples.append(example)
    if not examples:
        raise ValueError(
            f"Expected at least one example in {str(path)!r} within max_length={max_length}, "
            f"got none ({skipped} skipped). Raise max_length or check the file."
        )
    return examples, skipped


STREAM_SEED = SEED_RANGES["stream"].first
"""Streamed oracle episodes use env reset seeds from here up (``STREAM_SEED + seed * 10**7 + k``):
the ``stream`` range of :data:`drawenv.tasks.SEED_RANGES`, apart from the test and validation
seeds."""


class OracleStream(torch.utils.data.IterableDataset):
    """Endless SFT examples: oracle episodes of ``config.task`` played afresh, one per example.

    Worker ``w`` of ``n`` plays episodes ``k = w, w + n, w + 2n, …`` (from ``start[w]`` when
    resuming) with reset seed ``STREAM_SEED + config.seed * 10**7 + k``; a
    ``config.corrections`` share of them (spread evenly, as in ``drawenv export-sft``) carry an
    injected self-correction. Each episode goes through the same chat layout and
    :func:`build_example` as a JSONL line, its images through a scratch folder. Examples longer
    than ``config.max_length`` are skipped.
    """

    def __init__(self, policy: VLMPolicy, config: SFTConfig, start: Sequence[int] | None = None):
        super().__init__()
        self.policy, self.config, self.start = policy, config, start

    def __iter__(self) -> Iterator[SFTExample]:
        from agents.evaluate import play_episode
        from agents.scripted.baselines import OracleAgent
        from agents.train.sft_data import to_messages
        from agents.vlm.rollout import policy_env

        config = self.config
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        env = policy_env(
            self.policy,
            task=config.task,
            difficulty=config.difficulty,
            max_pixels=config.max_pixels,
        )
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            first = self.start[worker] if self.start is not None else worker
            for k in itertools.count(first, workers):
                share = config.corrections
                agent = OracleAgent(corrections=int((k + 1) * share) > int(k * share))
                seed = STREAM_SEED + config.seed * 10**7 + k
                record = play_episode(env, agent, seed=seed, image_dir=root / "images")
                example = build_example(self.policy, to_messages(record), root)
                if config.max_length is None or len(example.ids) <= config.max_length:
                    example.source = f"{config.task}:{seed}"
                    yield example


def as_list(examples: list[SFTExample]) -> list[SFTExample]:
    return examples


def batch_inputs(policy: VLMPolicy, examples: Sequence[SFTExample]) -> dict[str, torch.Tensor]:
    """Right-padded model inputs with the policy's own batching and positions."""
    input_ids, attention_mask, pixel_values, grid = policy.pad_batch(examples, left=False)
    mask = torch.zeros_like(input_ids)
    for row, example in enumerate(examples):
        mask[row, : len(example.mask)] = torch.as_tensor(example.mask)
    inputs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": policy.positions(input_ids, attention_mask, grid),
        "loss_mask": mask,
    }
    if pixel_values is not None:
        inputs |= {"pixel_values": pixel_values, "image_grid_thw": grid}
    return inputs


def stream_positions(
    done: list[int], group: list[list[SFTExample]], config: SFTConfig
) -> list[int]:
    """Each stream worker's next episode number once ``group`` is trained on (resume point)."""
    base = STREAM_SEED + config.seed * 10**7
    workers = max(1, config.workers)
    done = list(done)
    for example in itertools.chain.from_iterable(group):
        k = int(example.source.rsplit(":", 1)[1]) - base
        done[k % workers] = max(done[k % workers], k + workers)
    return done


__all__ = [
    "STREAM_SEED",
    "OracleStream",
    "SFTExample",
    "as_list",
    "batch_inputs",
    "build_example",
    "end_of_turn_token",
    "load_examples",
    "stream_positions",
]
