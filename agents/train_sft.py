"""Cold-start supervised fine-tuning of a :class:`~agents.policy.VLMPolicy` on chat JSONL.

The data is what ``drawenv export-sft`` writes (:mod:`agents.sft_data`): one episode per line as
chat messages ``system, user(images + question), assistant, user(images + feedback), …,
assistant``, image paths relative to the JSONL's folder. Or, with ``task=SUITE``, the same
oracle episodes played afresh for every example (:class:`OracleStream`, in background worker
processes): unlimited distinct items, nothing loaded up front.

Each episode is turned into token ids exactly as :func:`agents.rollout.rollout` lays them out at
sampling time, through the same builders: :meth:`VLMPolicy.prompt_segment` for the first prompt,
the assistant's text and its end-of-turn token (what the model writes, so the only tokens with
loss mask 1), then :meth:`VLMPolicy.observation_segment` for every following user turn. The loss
is :func:`agents.losses.sft_loss`: cross-entropy over the assistant's tokens, normalised by their
count over the whole optimiser step (all micro-batches of a gradient accumulation together).

Outputs in ``output_dir``, laid out as the GRPO trainer's: ``config.toml``, ``metrics.jsonl``
(one line per logged step, namespaced keys ``train/…``), a checkpoint every ``save_every``
steps (:func:`agents.checkpoint.save_checkpoint`: weights, optimiser, random states), and
``final/``: the model (safetensors weights, config, tokenizer, image processor) for
``VLMPolicy.from_pretrained``. Every folder is written to a temporary sibling and renamed into
place.

    python -m agents.train_sft --config sft.toml model=models/Qwen2.5-VL-3B data=data/sft.jsonl
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.checkpoint import (
    MODEL_DIR,
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    write_atomically,
)
from agents.config import SFTConfig, config_to_toml, parse_config
from agents.losses import sft_loss
from agents.metrics import MetricsLogger
from agents.policy import DTYPES, VLMPolicy

VISION_MODULES = ("visual", "vision_tower", "vision_model")
"""Attribute names of the vision encoder in transformers' VLMs (Qwen-VL: ``model.visual``)."""


@dataclass
class SFTExample:
    """One episode as training tokens; ``ids`` / ``pixel_values`` / ``image_grid_thw`` as in a
    :class:`~agents.rollout.Trajectory`, ``mask`` 1 exactly on the assistant's tokens."""

    ids: list[int]
    mask: list[int]
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    source: str = ""


# -- data ------------------------------------------------------------------------------------


def _load_image(root: Path, path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(root / path) as image:
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
    closing = policy.tokenizer(policy._closing, add_special_tokens=False)["input_ids"]
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


STREAM_SEED = 10_000_000
"""Streamed oracle episodes use env reset seeds from here up (``STREAM_SEED + seed * 10**7 + k``),
above the seeds ``docs/results.md`` holds out for evaluation (1,000,000 and 2,000,000 up)."""


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
        from agents.scripted import OracleAgent
        from agents.sft_data import to_messages
        from drawenv.env import DrawSpatialEnv

        config = self.config
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        env = DrawSpatialEnv(
            task=config.task,
            difficulty=config.difficulty,
            coords=self.policy.coords,
            patch_factor=self.policy.patch_factor,
            **({"max_pixels": config.max_pixels} if config.max_pixels is not None else {}),
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


def _as_list(examples: list[SFTExample]) -> list[SFTExample]:
    return examples


def validate(policy: VLMPolicy, config: SFTConfig, device: torch.device) -> dict[str, float]:
    """Play ``config.eval_episodes`` held-out episodes greedily (reset seeds from
    ``config.eval_seed``) with the model as it is now; returns their ``eval/`` metrics."""
    from agents.metrics import eval_metrics
    from agents.vlm_eval import evaluate_vlm

    env_kwargs = {"max_pixels": config.max_pixels} if config.max_pixels is not None else {}
    policy.model.eval()
    with torch.no_grad(), autocast(device, config.dtype):
        results = evaluate_vlm(
            policy,
            task=config.eval_task or config.task,
            episodes=config.eval_episodes,
            seed=config.eval_seed,
            batch_size=config.eval_episodes,
            difficulty=config.difficulty,
            max_turns=config.eval_max_turns,
            **env_kwargs,
        )
    policy.model.train()
    return eval_metrics(results)


# -- model and optimiser ---------------------------------------------------------------------


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when available, else ``cpu``; anything else is kept."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """Mixed precision in ``dtype`` on CUDA (weights stay float32); nothing elsewhere."""
    if device.type == "cuda" and dtype != "float32":
        return torch.autocast("cuda", dtype=DTYPES[dtype])
    return contextlib.nullcontext()


def vision_tower(model: Any) -> torch.nn.Module | None:
    """The vision encoder (with its patch merger) of a transformers VLM, or None."""
    for owner in (model, getattr(model, "model", None)):
        for name in VISION_MODULES:
            module = getattr(owner, name, None)
            if isinstance(module, torch.nn.Module):
                return module
    return None


def freeze_vision_tower(model: Any) -> int:
    """Stop gradients through the vision encoder's weights; returns how many were frozen."""
    tower = vision_tower(model)
    if tower is None:
        raise ValueError(
            f"Expected a vision tower ({', '.join(VISION_MODULES)}) in {type(model).__name__}, "
            "found none. Set freeze_vision=false for this model."
        )
    frozen = 0
    for parameter in tower.parameters():
        parameter.requires_grad_(False)
        frozen += parameter.numel()
    return frozen


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass (non-reentrant checkpoints); transformers
    renamed ``gradient_checkpointing_enable`` to ``activation_checkpointing_enable``."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then with
    ``p = (step - warmup_steps) / (total_steps - warmup_steps)`` in [0, 1): ``constant`` 1,
    ``linear`` ``1 - p``, ``cosine`` ``(1 + cos(pi p)) / 2``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "constant":
        return 1.0
    elif schedule == "linear":
        return max(0.0, 1.0 - progress)
    elif schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    else:
        raise ValueError(f"Unknown lr schedule: {schedule!r}.")


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases and norm weights (1-D)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def make_scheduler(optimizer: torch.optim.Optimizer, config: Any, total_steps: int) -> Any:
    """The config's warm-up and ``lr_schedule`` over ``total_steps`` optimiser steps."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(
            step,
            warmup_steps=config.warmup_steps,
            total_steps=total_steps,
            schedule=config.lr_schedule,
        ),
    )


# -- training --------------------------------------------------------------------------------


def _batch(policy: VLMPolicy, examples: Sequence[SFTExample]) -> dict[str, torch.Tensor]:
    """Right-padded model inputs with the policy's own batching and positions."""
    input_ids, attention_mask, pixel_values, grid = policy._batch(examples, left=False)
    mask = torch.zeros_like(input_ids)
    for row, example in enumerate(examples):
        mask[row, : len(example.mask)] = torch.as_tensor(example.mask)
    inputs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": policy._positions(input_ids, attention_mask, grid),
        "loss_mask": mask,
    }
    if pixel_values is not None:
        inputs |= {"pixel_values": pixel_values, "image_grid_thw": grid}
    return inputs


def _steps(n_examples: int, config: SFTConfig) -> int:
    per_epoch = math.ceil(math.ceil(n_examples / config.batch_size) / config.grad_accum)
    total = per_epoch * config.epochs
    return min(total, config.max_steps) if config.max_steps is not None else total


def _micro_batches(n: int, config: SFTConfig, epoch: int) -> list[list[int]]:
    order = list(range(n))
    if config.shuffle:
        random.Random(config.seed * 100_003 + epoch).shuffle(order)
    return [order[i : i + config.batch_size] for i in range(0, n, config.batch_size)]


def _file_steps(
    examples: list[SFTExample], config: SFTConfig, total_steps: int
) -> Iterator[tuple[int, list[list[SFTExample]]]]:
    """``(epoch, micro-batches)`` of every optimiser step over the loaded examples."""
    step = 0
    for epoch in range(config.epochs):
        batches = _micro_batches(len(examples), config, epoch)
        for first in range(0, len(batches), config.grad_accum):
            if step >= total_steps:
                return
            yield (
                epoch,
                [[examples[i] for i in b] for b in batches[first : first + config.grad_accum]],
            )
            step += 1


def _stream_steps(
    policy: VLMPolicy, config: SFTConfig, steps: int, start: Sequence[int] | None
) -> Iterator[tuple[int, list[list[SFTExample]]]]:
    """``(0, micro-batches)`` of ``steps`` optimiser steps, from an :class:`OracleStream`."""
    loader = torch.utils.data.DataLoader(
        OracleStream(policy, config, start),
        batch_size=config.batch_size,
        num_workers=config.workers,
        collate_fn=_as_list,
        prefetch_factor=4 if config.workers else None,
    )
    batches = iter(loader)
    for _ in range(steps):
        yield 0, [next(batches) for _ in range(config.grad_accum)]


def _stream_next(done: list[int], group: list[list[SFTExample]], config: SFTConfig) -> list[int]:
    """Each stream worker's next episode number once ``group`` is trained on (resume point)."""
    base = STREAM_SEED + config.seed * 10**7
    workers = max(1, config.workers)
    done = list(done)
    for example in itertools.chain.from_iterable(group):
        k = int(example.source.rsplit(":", 1)[1]) - base
        done[k % workers] = max(done[k % workers], k + workers)
    return done


def train_sft(config: SFTConfig) -> Path:
    """Fine-tune ``config.model`` on ``config.data``; returns the folder of the final model."""
    torch.manual_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.toml").write_text(config_to_toml(config), encoding="utf-8")
    device = torch.device(resolve_device(config.device))
    resume_from = latest_checkpoint(output_dir) if config.resume else None
    if config.resume and resume_from is None:
        print(f"resume: no checkpoint-STEP folder in {output_dir}; starting at step 0.")
    # float32 master weights and optimiser state; the forward pass runs under autocast.
    policy = VLMPolicy.from_pretrained(
        resume_from / MODEL_DIR if resume_from is not None else config.model,
        device=device,
        dtype="float32",
        attn_implementation=config.attn_implementation,
    )
    model = policy.model
    if config.freeze_vision:
        freeze_vision_tower(model)
    if config.gradient_checkpointing:
        enable_activation_checkpointing(model)
    model.train()
    if config.task:
        data = {"data/stream": config.task}
        total_steps = config.max_steps
    else:
        examples, skipped = load_examples(policy, config.data, max_length=config.max_length)
        data = {"data/examples": len(examples), "data/skipped_too_long": skipped}
        total_steps = _steps(len(examples), config)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    scheduler = make_scheduler(optimizer, config, total_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    step, seen_tokens, stream_next = 0, 0, list(range(max(1, config.workers)))
    if resume_from is not None:
        state = load_checkpoint(resume_from, optimizer=optimizer, scheduler=scheduler)
        step = state.step
        seen_tokens = state.extra.get("tokens_seen", 0)
        stream_next = state.extra.get("stream_next", stream_next)
        print(f"resumed from {resume_from} at step {step}")
    if config.task:
        steps = _stream_steps(policy, config, total_steps - step, stream_next)
    else:
        steps = itertools.islice(_file_steps(examples, config, total_steps), step, None)
    log = MetricsLogger(
        output_dir,
        tensorboard=config.tensorboard,
        keep_before=step if resume_from is not None else None,
    )
    if resume_from is None:
        log.log(
            0,
            {
                **data,
                "model/trainable_params": sum(p.numel() for p in trainable),
                "model/params": sum(p.numel() for p in model.parameters()),
                "train/total_steps": total_steps,
            },
        )
    start = time.perf_counter()
    try:
        for epoch, group in steps:
            # Normalise by the assistant tokens of the whole step, not per micro-batch.
            counts = [sum(sum(e.mask[1:]) for e in b) for b in group]
            step_tokens = max(1, sum(counts))
            step_loss = 0.0
            for micro, count in zip(group, counts):
                inputs = _batch(policy, micro)
                loss_mask = inputs.pop("loss_mask")
                with autocast(device, config.dtype):
                    logits = model(**inputs, use_cache=False).logits
                loss = sft_loss(logits, inputs["input_ids"], loss_mask) * (count / step_tokens)
                loss.backward()
                step_loss += float(loss.detach())
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen_tokens += sum(counts)
            if config.task:
                stream_next = _stream_next(stream_next, group, config)
            if step % config.log_every == 0 or step == total_steps:
                log.log(
                    step,
                    {
                        "train/epoch": epoch,
                        "train/loss": step_loss,
                        "train/lr": lr,
                        "train/grad_norm": float(grad_norm),
                        "train/tokens": sum(counts),
                        "train/tokens_seen": seen_tokens,
                        "train/examples": sum(len(b) for b in group),
                        "time/elapsed_s": time.perf_counter() - start,
                    },
                )
            if config.eval_every and (step % config.eval_every == 0 or step == total_steps):
                log.log(step, validate(policy, config, device))
            if config.save_every and step % config.save_every == 0 and step < total_steps:
                save_checkpoint(
                    checkpoint_dir(output_dir, step),
                    model=model,
                    processor=policy.processor,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    step=step,
                    extra={"tokens_seen": seen_tokens, "stream_next": stream_next},
                )
        model.eval()

        def fill(tmp: Path) -> None:
            model.save_pretrained(tmp, safe_serialization=True)
            policy.processor.save_pretrained(tmp)

        return write_atomically(output_dir / "final", fill)
    finally:
        log.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``[--config FILE] [key=value ...]``; ``--help`` lists every setting."""
    config = parse_config(
        SFTConfig,
        argv,
        prog="drawenv sft",
        description="Cold-start SFT on chat JSONL from `drawenv export-sft`, or on oracle "
        "trajectories streamed from a suite (task=SUITE).",
    )
    path = train_sft(config)
    print(f"saved {path}")
    return 0


__all__ = [
    "STREAM_SEED",
    "OracleStream",
    "SFTExample",
    "autocast",
    "build_example",
    "enable_activation_checkpointing",
    "end_of_turn_token",
    "freeze_vision_tower",
    "load_examples",
    "lr_factor",
    "main",
    "make_optimizer",
    "make_scheduler",
    "resolve_device",
    "train_sft",
    "validate",
    "vision_tower",
]


if __name__ == "__main__":
    sys.exit(main())
