"""Cold-start supervised fine-tuning of a :class:`~agents.vlm.policy.VLMPolicy` on chat episodes.

The examples come from :mod:`agents.train.sft_examples`: the chat JSONL that ``drawenv
export-sft`` writes, or with ``task=SUITE`` the same oracle episodes played afresh for every
example (:class:`~agents.train.sft_examples.OracleStream`). The loss is
:func:`agents.train.losses.sft_loss`: cross-entropy over the assistant's tokens, normalised by
their count over the whole optimiser step (all micro-batches of a gradient accumulation together).

Outputs in ``output_dir``, laid out as the GRPO trainer's: ``config.toml``, ``metrics.jsonl``
(one line per logged step, namespaced keys ``train/…``), a checkpoint every ``save_every``
steps (:func:`agents.train.checkpoint.save_checkpoint`: weights, optimiser, random states), and
``final/``: the model (safetensors weights, config, tokenizer, image processor) for
``VLMPolicy.from_pretrained``. Every folder is written to a temporary sibling and renamed into
place.

    python -m agents.train.sft --config sft.toml model=models/Qwen2.5-VL-3B data=data/sft.jsonl
"""

from __future__ import annotations

import itertools
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import torch

from agents.train.checkpoint import (
    MODEL_DIR,
    checkpoint_dir,
    load_checkpoint,
    prune_checkpoints,
    remove_stale,
    resolve_resume,
    save_checkpoint,
    save_final,
)
from agents.train.config import SFTConfig, config_to_toml, run_stage
from agents.train.losses import sft_loss
from agents.train.metrics import MetricsLogger
from agents.train.optim import (
    enable_activation_checkpointing,
    freeze_vision_tower,
    make_optimizer,
    make_scheduler,
)
from agents.train.sft_examples import (
    OracleStream,
    SFTExample,
    as_list,
    batch_inputs,
    load_examples,
    stream_positions,
)
from agents.vlm.device import autocast, resolve_device
from agents.vlm.policy import VLMPolicy

Steps = Iterator[tuple[int, list[list[SFTExample]]]]
"""``(epoch, micro-batches)`` of each optimiser step."""


def validate(policy: VLMPolicy, config: SFTConfig, device: torch.device) -> dict[str, float]:
    """Play ``config.eval_episodes`` held-out episodes greedily (reset seeds from
    ``config.eval_seed``) with the model as it is now; returns their ``eval/`` metrics."""
    from agents.train.metrics import eval_metrics
    from agents.vlm.evaluate import evaluate_vlm

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
            max_pixels=config.max_pixels,
        )
    policy.model.train()
    return eval_metrics(results)


# -- the data's steps ------------------------------------------------------------------------


def total_steps(n_examples: int, config: SFTConfig) -> int:
    """Optimiser steps of a run over ``n_examples`` loaded examples: every epoch, or ``steps``."""
    per_epoch = math.ceil(math.ceil(n_examples / config.batch_size) / config.grad_accum)
    total = per_epoch * config.epochs
    return min(total, config.steps) if config.steps is not None else total


def _micro_batches(n: int, config: SFTConfig, epoch: int) -> list[list[int]]:
    order = list(range(n))
    if config.shuffle:
        random.Random(config.seed * 100_003 + epoch).shuffle(order)
    return [order[i : i + config.batch_size] for i in range(0, n, config.batch_size)]


def file_steps(examples: list[SFTExample], config: SFTConfig, total: int) -> Steps:
    """Every optimiser step over the loaded examples, epoch after epoch, ``total`` in all."""
    step = 0
    for epoch in range(config.epochs):
        batches = _micro_batches(len(examples), config, epoch)
        for first in range(0, len(batches), config.grad_accum):
            if step >= total:
                return
            yield (
                epoch,
                [[examples[i] for i in b] for b in batches[first : first + config.grad_accum]],
            )
            step += 1


def stream_steps(
    policy: VLMPolicy, config: SFTConfig, steps: int, start: Sequence[int] | None
) -> Steps:
    """``steps`` optimiser steps of an :class:`OracleStream` (epoch 0), its workers starting at
    the episodes ``start``."""
    loader = torch.utils.data.DataLoader(
        OracleStream(policy, config, start),
        batch_size=config.batch_size,
        num_workers=config.workers,
        collate_fn=as_list,
        prefetch_factor=4 if config.workers else None,
    )
    # The workers fork with OpenCV on one thread, as torch sets itself in them: OpenCV's pool
    # would otherwise size itself to every core in each worker. Set in a forked child, the
    # pool it inherits deadlocks; so it is set here around the fork and restored after.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        batches = iter(loader)
    finally:
        cv2.setNumThreads(threads)
    for _ in range(steps):
        yield 0, [next(batches) for _ in range(config.grad_accum)]


def optimiser_step(
    policy: VLMPolicy,
    config: SFTConfig,
    group: list[list[SFTExample]],
    optimizer: torch.optim.Optimizer,
    scheduler: object,
) -> dict[str, float]:
    """One optimiser step over the micro-batches ``group``; returns its ``train/`` metrics."""
    trainable = [p for p in policy.model.parameters() if p.requires_grad]
    # Normalise by the assistant tokens of the whole step, not per micro-batch.
    counts = [sum(sum(e.mask[1:]) for e in b) for b in group]
    step_tokens = max(1, sum(counts))
    step_loss = 0.0
    for micro, count in zip(group, counts):
        inputs = batch_inputs(policy, micro)
        loss_mask = inputs.pop("loss_mask")
        with autocast(policy.device, config.dtype):
            logits = policy.model(**inputs, use_cache=False).logits
        loss = sft_loss(logits, inputs["input_ids"], loss_mask) * (count / step_tokens)
        loss.backward()
        step_loss += float(loss.detach())
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return {
        "train/loss": step_loss,
        "train/lr": lr,
        "train/grad_norm": float(grad_norm),
        "train/tokens": sum(counts),
        "train/examples": sum(len(b) for b in group),
    }


# -- the trainer -----------------------------------------------------------------------------


def train_sft(config: SFTConfig) -> Path:
    """Fine-tune ``config.model`` on ``config.data`` (or ``config.task``'s stream); returns the
    folder of the final model."""
    torch.manual_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(output_dir)
    (output_dir / "config.toml").write_text(config_to_toml(config), encoding="utf-8")
    device = torch.device(resolve_device(config.device))
    start = resolve_resume(config.resume, output_dir)
    # float32 master weights and optimiser state; the forward pass runs under autocast.
    policy = VLMPolicy.from_pretrained(
        start / MODEL_DIR if start is not None else config.model,
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
        data, total = {"data/stream": config.task}, config.steps
    else:
        examples, skipped = load_examples(policy, config.data, max_length=config.max_length)
        data = {"data/examples": len(examples), "data/skipped_too_long": skipped}
        total = total_steps(len(examples), config)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    scheduler = make_scheduler(optimizer, config, total)
    step, seen_tokens, stream_next = 0, 0, list(range(max(1, config.workers)))
    if start is not None:
        state = load_checkpoint(start, optimizer=optimizer, scheduler=scheduler)
        step = state.step
        seen_tokens = state.extra.get("tokens_seen", 0)
        stream_next = state.extra.get("stream_next", stream_next)
        print(f"resumed from {start} at step {step}")
    if config.task:
        steps = stream_steps(policy, config, total - step, stream_next)
    else:
        steps = itertools.islice(file_steps(examples, config, total), step, None)
    log = MetricsLogger(
        output_dir, tensorboard=config.tensorboard, keep_before=step if start else None
    )
    if start is None:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        params = sum(p.numel() for p in model.parameters())
        log.log(
            0,
            {**data, "model/trainable_params": trainable, "model/params": params}
            | {"train/total_steps": total},
        )
    began = time.perf_counter()
    try:
        for epoch, group in steps:
            metrics = optimiser_step(policy, config, group, optimizer, scheduler)
            step += 1
            seen_tokens += metrics["train/tokens"]
            if config.task:
                stream_next = stream_positions(stream_next, group, config)
            if step % config.log_every == 0 or step == total:
                elapsed = time.perf_counter() - began
                log.log(
                    step,
                    {"train/epoch": epoch, **metrics, "train/tokens_seen": seen_tokens}
                    | {"time/elapsed_s": elapsed},
                )
            if config.eval_every and (step % config.eval_every == 0 or step == total):
                log.log(step, validate(policy, config, device))
            if config.save_every and step % config.save_every == 0 and step < total:
                saved = save_checkpoint(
                    checkpoint_dir(output_dir, step),
                    model=model,
                    processor=policy.processor,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    step=step,
                    extra={"tokens_seen": seen_tokens, "stream_next": stream_next},
                )
                prune_checkpoints(output_dir, config.keep_last, keep=(saved, start))
        model.eval()
        return save_final(output_dir / "final", model, policy.processor)
    finally:
        log.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``[--config FILE] [key=value ...]``; ``--help`` lists every setting."""
    description = (
        "Cold-start SFT on chat JSONL from `drawenv export-sft`, or on oracle trajectories "
        "streamed from a suite (task=SUITE)."
    )
    path = run_stage(SFTConfig, train_sft, argv, prog="drawenv train sft", description=description)
    print(f"saved {path}")
    return 0


__all__ = [
    "file_steps",
    "main",
    "optimiser_step",
    "stream_steps",
    "total_steps",
    "train_sft",
    "validate",
]


if __name__ == "__main__":
    sys.exit(main())
