"""Multi-turn GRPO in DrawSpatial-v0 (and Dr. GRPO, DAPO, AP-GRPO), on one device or many.

Read it top to bottom like CleanRL's ``ppo.py``. One training step:

1. **Prompts.** Draw ``prompts_per_step`` task indices from the env's task source with the
   trainer's seeded generator, and a reset seed for each. Under ``torchrun`` every rank draws the
   same list and keeps its contiguous share (rank ``r`` takes prompts ``r·P/W … (r+1)·P/W``).
2. **Rollouts.** ``group_size`` envs per prompt, reset with the same seed and task index (a GRPO
   group), play one batched :func:`agents.vlm.rollout.rollout`. Every episode samples from its own
   generator, seeded by its prompt's seed and its place in the group, so a trajectory does not
   depend on which rank played it or on what else was in the batch. Every env gets
   ``set_training_progress(step / steps)`` first, so any scheduled reward (``snra``, or a
   custom one reading ``episode.progress``) follows training.
3. **Advantages.** :func:`agents.train.losses.group_advantages` over the whole batch (the rewards of
   every rank are gathered first, so ``reward_scale="batch"`` sees them all).
4. **Optimisation.** ``ppo_epochs`` passes over the trajectories in micro-batches of
   ``micro_batch``; each pass accumulates the gradient of every micro-batch and makes one AdamW
   update (clipped gradient norm, warm-up then the LR schedule). Log-probs are recomputed with
   :meth:`VLMPolicy.token_logprobs`; π_old is the rollout policy, scored by that same forward
   pass in the first epoch, so the first ratio is exactly 1. With ``beta > 0`` a frozen copy of
   the starting model gives the reference log-probs of the KL term.
5. **Bookkeeping.** One line of ``train/``, ``loss/`` and ``rollout/`` metrics in
   ``metrics.jsonl``, a checkpoint every ``save_every`` steps (:mod:`agents.train.checkpoint`),
   the final model in ``output_dir/final`` and ``curves.png`` at the end.

Precision: parameters and AdamW states stay float32; on CUDA the forward passes run under
``torch.autocast`` with ``dtype`` (bf16 by default). On other devices everything runs in float32.

Several GPUs: ``torchrun --nproc_per_node N -m agents.train.grpo --config FILE`` wraps the model
in ``DistributedDataParallel`` (NCCL on CUDA, gloo on CPU), or shards it with FSDP2
(``fully_shard``) with ``fsdp=true``. Gradients are averaged over ranks and
each micro-batch's loss is weighted so that the update equals the single-process one.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.utils.rnn import pad_sequence

from agents.train.checkpoint import (
    checkpoint_dir,
    load_checkpoint,
    prune_checkpoints,
    read_optimizer_state,
    remove_stale,
    resolve_resume,
    save_checkpoint,
    save_final,
)
from agents.train.config import GRPOConfig, config_to_toml, run_stage
from agents.train.distributed import (
    Ranks,
    all_gather_list,
    all_mean,
    all_sum,
    barrier,
    full_model_state,
    full_optimizer_state,
    full_parameters,
    gradient_sync,
    load_full_optimizer_state,
    setup_ranks,
    wrap_model,
)
from agents.train.losses import group_advantages, policy_loss
from agents.train.metrics import (
    MetricsLogger,
    advantage_metrics,
    episode_summary,
    plot_metrics,
    rollout_metrics,
    rollout_records,
)
from agents.train.optim import (
    enable_activation_checkpointing,
    freeze_vision_tower,
    make_optimizer,
    make_scheduler,
)
from agents.vlm.device import PhaseTimes, autocast
from agents.vlm.policy import VLMPolicy, sampling_probs
from agents.vlm.rollout import Trajectory, policy_env, rollout
from drawenv.env import DrawSpatialEnv
from drawenv.rewards import get_reward

# -- sampling --------------------------------------------------------------------------------


def _signed(value: int) -> int:
    """A 64-bit constant as the int64 that has its bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN, _MIX1, _MIX2 = (
    _signed(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
)


def _shift(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 tensors (products wrap around, as in C)."""
    x = x + _GOLDEN
    x = (x ^ _shift(x, 30)) * _MIX1
    x = (x ^ _shift(x, 27)) * _MIX2
    return x ^ _shift(x, 31)


def counter_uniform(seeds: torch.Tensor, turns: torch.Tensor, step: int) -> torch.Tensor:
    """One uniform in [0, 1) (float64) per row, a function of the row's seed, turn and step alone:
    ``mix(mix(mix(seed) ^ turn) ^ step)``'s top 53 bits. Nothing is kept from call to call."""
    x = _mix(_mix(_mix(seeds) ^ turns) ^ step)
    return _shift(x, 11).double() * 2.0**-53


class GroupSampledPolicy(VLMPolicy):
    """A :class:`VLMPolicy` whose episodes each sample from draws of their own.

    :meth:`seed_episodes` gives episode ``e`` of the next rollouts the seed ``seeds[e]``. The draw
    for its token at step ``k`` of turn ``t`` is :func:`counter_uniform` of (seed, t, k), made on
    the device: its tokens depend on nothing but that seed and its own sequence, not on the batch
    it was played in, nor on the rank (what makes a world-size-2 step equal a world-size-1 step),
    and decoding needs no read back to the host per token.
    """

    stateless_choice = True
    episode_seeds: Sequence[int] | None = None

    def seed_episodes(self, seeds: Sequence[int] | None) -> None:
        """Use one stream of draws per episode index for the next rollouts (``None``: the
        shared generator)."""
        self.episode_seeds = None if seeds is None else list(seeds)
        self._rows: tuple[Sequence[int], torch.Tensor, torch.Tensor] | None = None

    def _row_counters(self, episodes: Sequence[int], turns: Sequence[int], device: torch.device):
        """The device tensors of the rows' seeds and turns, made once per turn of the batch
        (:meth:`VLMPolicy.generate` hands the same ``episodes`` list at every step of a turn)."""
        if self._rows is None or self._rows[0] is not episodes:
            seeds = [int(self.episode_seeds[e]) for e in episodes]
            self._rows = (
                episodes,
                torch.tensor(seeds, dtype=torch.long, device=device),
                torch.tensor(list(turns), dtype=torch.long, device=device),
            )
        return self._rows[1], self._rows[2]

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        """Sample every row by inverse CDF from its episode's draw for this turn and step (see
        :meth:`seed_episodes`), all rows in one batched search."""
        if self.episode_seeds is None or settings.temperature == 0:
            return super().choose_tokens(
                scores,
                generator=generator,
                settings=settings,
                episodes=episodes,
                turns=turns,
                generated=generated,
            )
        seeds, turn_ids = self._row_counters(episodes, turns, scores.device)
        cdf = sampling_probs(scores, settings.top_p).double().cumsum(-1)
        targets = counter_uniform(seeds, turn_ids, generated.step)[:, None] * cdf[:, -1:]
        # right=True: the first token whose cumulative weight exceeds the target, so a token of
        # weight 0 is never chosen.
        tokens = torch.searchsorted(cdf, targets, right=True).squeeze(-1)
        return tokens.clamp_(max=cdf.shape[-1] - 1)


# -- environments and prompts ----------------------------------------------------------------


def make_envs(
    config: GRPOConfig, policy: VLMPolicy, n: int, reward: Any = None, **env_kwargs: Any
) -> list[DrawSpatialEnv]:
    """``n`` envs for the config's tasks and reward, matched to the policy
    (:func:`agents.vlm.rollout.policy_env`); ``reward`` replaces the config's preset."""
    if reward is None:
        reward = get_reward(config.reward, **config.reward_kwargs)
    kwargs = {**config.env_kwargs(), "reward": reward, **env_kwargs}
    return [policy_env(policy, **kwargs) for _ in range(n)]


def sample_prompts(rng: np.random.Generator, source: Any, n: int) -> list[tuple[int, int]]:
    """``n`` prompts as ``(task index, reset seed)``, drawn from ``rng``."""
    prompts = []
    for _ in range(n):
        index = source.sample_index(rng)
        prompts.append((index, int(rng.integers(0, 2**31 - 1))))
    return prompts


def episode_seed(prompt_seed: int, sample: int) -> int:
    """The sampling seed of trajectory ``sample`` of the group of a prompt."""
    return int(np.random.SeedSequence([prompt_seed, sample]).generate_state(1)[0])


# -- one optimisation pass -------------------------------------------------------------------


def config_advantages(config: GRPOConfig, rewards: Sequence[float]) -> torch.Tensor:
    """:func:`agents.train.losses.group_advantages` of a batch's rewards (in prompt order, groups
    of ``group_size``) with the config's ``advantage``, ``alpha`` and ``reward_scale``."""
    return group_advantages(
        torch.as_tensor(rewards, dtype=torch.float32),
        config.group_size,
        kind=config.advantage,
        alpha=config.alpha,
        scale=config.reward_scale,
    )


def _padded(rows: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    return pad_sequence([r.to(device) for r in rows], batch_first=True)


@dataclass
class Models:
    """What a GRPO run trains: the policy, the module its gradients flow through (the policy's
    model, or its DDP wrapper), the optimiser and schedule, and the frozen reference (``beta``)."""

    policy: GroupSampledPolicy
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    reference: VLMPolicy | None
    fsdp: bool

    @property
    def model(self) -> torch.nn.Module:
        """The policy's own (unwrapped) model."""
        return self.policy.model


def micro_batch_weight(
    config: GRPOConfig,
    batch: Sequence[int],
    tokens: Sequence[int],
    global_tokens: float,
    world: int,
) -> float:
    """The factor on a micro-batch's loss so that the summed gradient is the whole batch's loss
    (sequence mean, or token mean for ``dapo``) and the rank average the global one."""
    if config.loss_type == "dapo":
        return sum(tokens[i] for i in batch) * world / max(global_tokens, 1.0)
    return len(batch) / len(tokens)


def optimise(
    config: GRPOConfig,
    models: Models,
    trajectories: Sequence[Trajectory],
    advantages: torch.Tensor,
    ranks: Ranks,
) -> dict[str, float]:
    """``ppo_epochs`` passes of clipped policy-gradient updates over this rank's trajectories.

    Returns the ``loss/`` and ``train/`` metrics, averaged over micro-batches (and ranks):
    ``loss/policy``, ``loss/clip_fraction``, ``loss/approx_kl``, ``loss/ratio_mean`` (and
    ``loss/kl`` with a reference), the same per epoch (``loss/clip_fraction_epoch1``, …),
    ``train/grad_norm`` (of the last epoch, before clipping), ``train/lr`` and
    ``rollout/logprob_mismatch`` (mean |recomputed − sampling| log-prob of generated tokens).
    """
    device = models.policy.device
    scorer = copy.copy(models.policy)
    scorer.model = models.train_model
    n = len(trajectories)
    size = min(config.micro_batch, n)
    batches = [list(range(i, min(n, i + size))) for i in range(0, n, size)]
    tokens = [int(t.n_generated) for t in trajectories]
    global_tokens = all_sum(float(sum(tokens)), ranks)
    olds: list[torch.Tensor | None] = [None] * len(batches)
    refs: list[torch.Tensor | None] = [None] * len(batches)
    params = [p for p in models.train_model.parameters() if p.requires_grad]
    records: dict[str, list[float]] = {}
    mismatch = []
    grad_norm = 0.0
    models.train_model.train()
    for epoch in range(1, config.ppo_epochs + 1):
        for b, batch in enumerate(batches):
            chunk = [trajectories[i] for i in batch]
            mask = _padded([t.mask for t in chunk], device)
            last = b == len(batches) - 1
            with gradient_sync(models.train_model, ranks, models.fsdp, last):
                with autocast(device, config.dtype):
                    new = _padded(scorer.token_logprobs(chunk, batch_size=len(chunk)), device)
                if olds[b] is None:
                    # The weights have not moved since the rollout: this pass scores π_old.
                    olds[b] = new.detach()
                    sampled = _padded([t.logprobs for t in chunk], device)
                    on = mask.bool()
                    mismatch.append(
                        float((new.detach() - sampled)[on].abs().mean()) if on.any() else 0.0
                    )
                if config.beta > 0 and refs[b] is None:
                    with torch.no_grad(), autocast(device, config.dtype):
                        refs[b] = _padded(
                            models.reference.token_logprobs(chunk, batch_size=len(chunk)), device
                        )
                loss, stats = policy_loss(
                    new,
                    olds[b],
                    advantages[batch].to(device),
                    mask,
                    loss_type=config.loss_type,
                    eps_low=config.eps_low,
                    eps_high=config.eps_high,
                    ref_logprobs=refs[b],
                    beta=config.beta,
                    max_tokens=config.max_tokens,
                )
                weight = micro_batch_weight(config, batch, tokens, global_tokens, ranks.world)
                (loss * weight).backward()
            records.setdefault("loss/policy", []).append(loss.item() * weight * len(batches))
            for key, value in stats.items():
                records.setdefault(f"loss/{key}", []).append(float(value))
                records.setdefault(f"loss/{key}_epoch{epoch}", []).append(float(value))
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        grad_norm = float(grad_norm)
        models.optimizer.step()
        models.scheduler.step()
        models.optimizer.zero_grad(set_to_none=True)
    keys = sorted(records)
    metrics = dict(zip(keys, all_mean([sum(records[k]) / len(records[k]) for k in keys], ranks)))
    metrics["train/grad_norm"] = grad_norm
    metrics["train/lr"] = models.optimizer.param_groups[0]["lr"]
    metrics["rollout/logprob_mismatch"] = all_mean([sum(mismatch) / max(len(mismatch), 1)], ranks)[
        0
    ]
    return metrics


# -- the trainer's steps ---------------------------------------------------------------------


def load_models(config: GRPOConfig, ranks: Ranks, start: Path | None) -> Models:
    """Step 1: the policy (from ``config.model``, or the checkpoint ``start``) in float32, frozen
    and checkpointed as configured, wrapped for several processes; AdamW and its schedule; the
    reference model when ``beta > 0``."""
    model_dir = start / "model" if start is not None else Path(config.model)
    policy = GroupSampledPolicy.from_pretrained(
        model_dir,
        device=ranks.device,
        dtype="float32",
        settings=config.generation(),
        decode=config.decode,
    )
    if config.freeze_vision:
        freeze_vision_tower(policy.model)
    if config.gradient_checkpointing:
        enable_activation_checkpointing(policy.model)
    reference = None
    if config.beta > 0:
        weights = "float32" if ranks.device.type != "cuda" else config.dtype
        reference = VLMPolicy.from_pretrained(
            config.model, device=ranks.device, dtype=weights, settings=config.generation()
        )
        reference.model.requires_grad_(False)
    fsdp = config.fsdp and ranks.world > 1
    train_model = wrap_model(policy.model, ranks, fsdp)
    optimizer = make_optimizer(policy.model, config.lr, config.weight_decay)
    scheduler = make_scheduler(optimizer, config, config.steps * config.ppo_epochs)
    return Models(policy, train_model, optimizer, scheduler, reference, fsdp)


def restore(models: Models, start: Path, sampler: np.random.Generator, ranks: Ranks) -> int:
    """Step 2, when resuming: the optimiser, schedule, random states and task sampler of the
    checkpoint ``start``; returns the step it had reached."""
    state = load_checkpoint(
        start,
        optimizer=None if models.fsdp else models.optimizer,
        scheduler=models.scheduler,
    )
    if models.fsdp:
        load_full_optimizer_state(models.model, models.optimizer, read_optimizer_state(start))
    sampler.bit_generator.state = state.sampler_state
    if ranks.main:
        print(f"resumed from {start} at step {state.step}")
    return state.step


def collect_rollouts(
    config: GRPOConfig,
    models: Models,
    envs: Sequence[DrawSpatialEnv],
    prompts: Sequence[tuple[int, int]],
    ranks: Ranks,
    step: int,
    times: PhaseTimes | None = None,
) -> list[Trajectory]:
    """Step 3: this rank's share of ``prompts``, each expanded once into its group of
    ``group_size`` episodes (same task index and reset seed, own sampling seed), played in
    chunks of ``rollout_prompts`` groups (bf16 logits depend on the batch shape); ``times``
    gets the seconds of each rollout phase."""
    group = config.group_size
    mine = ranks.share(list(prompts))
    seeds = [seed for _, seed in mine for _ in range(group)]
    options = [{"index": index} for index, _ in mine for _ in range(group)]
    sampling = [episode_seed(seed, j) for _, seed in mine for j in range(group)]
    for env in envs:
        env.set_training_progress(step / config.steps)
    chunk = group * (config.rollout_prompts or len(mine))
    models.model.eval()
    trajectories: list[Trajectory] = []
    with (
        torch.no_grad(),
        full_parameters(models.model, models.fsdp),
        autocast(ranks.device, config.dtype),
    ):
        for first in range(0, len(envs), chunk):
            part = slice(first, first + chunk)
            models.policy.seed_episodes(sampling[part])
            trajectories += rollout(
                models.policy,
                envs[part],
                seed=seeds[part],
                options=options[part],
                max_tokens=config.max_tokens,
                times=times,
            )
    return trajectories


def save(path: Path, models: Models, step: int, sampler: np.random.Generator, ranks: Ranks):
    """A checkpoint of the run at ``step`` (every rank takes part in gathering FSDP states)."""
    model_state = full_model_state(models.model, models.fsdp)
    optimizer_state = full_optimizer_state(models.model, models.optimizer, models.fsdp)
    if ranks.main:
        save_checkpoint(
            path,
            model=models.model,
            processor=models.policy.processor,
            optimizer=models.optimizer,
            scheduler=models.scheduler,
            step=step,
            sampler=sampler,
            model_state=model_state,
            optimizer_state=optimizer_state,
        )
    barrier(ranks)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_grpo(
    config: GRPOConfig,
    *,
    reward: Callable[..., Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Train ``config.model`` with GRPO in DrawSpatial-v0; returns the final model folder.

    Args:
        config: the run's :class:`~agents.train.config.GRPOConfig` (``resume`` and ``fsdp``
            included).
        reward: a reward callable ``(episode) -> (reward, terms)`` used instead of
            ``config.reward`` (for scripted experiments and tests).
        env_kwargs: more ``DrawSpatialEnv`` arguments (e.g. ``max_pixels``).
    """
    ranks = setup_ranks(config.device)
    output_dir = Path(config.output_dir)
    start = resolve_resume(config.resume, output_dir)
    _seed_everything(config.seed)
    # 1. models
    models = load_models(config, ranks, start)
    if config.prompts_per_step % ranks.world:
        raise ValueError(
            f"Expected prompts_per_step divisible by the number of processes ({ranks.world}), "
            f"got {config.prompts_per_step}. Pick a multiple of {ranks.world}."
        )
    n_envs = config.prompts_per_step // ranks.world * config.group_size
    envs = make_envs(config, models.policy, n_envs, reward, **(env_kwargs or {}))
    sampler = np.random.default_rng(config.seed)
    # 2. restore
    first_step = restore(models, start, sampler, ranks) if start is not None else 0
    logger = rollout_log = None
    if ranks.main:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale(output_dir)
        (output_dir / "config.toml").write_text(config_to_toml(config), encoding="utf-8")
        keep = first_step if start else None
        logger = MetricsLogger(output_dir, tensorboard=config.tensorboard, keep_before=keep)
        if config.log_rollouts:
            rollout_log = MetricsLogger(output_dir, keep_before=keep, name="rollouts.jsonl")
    for step in range(first_step, config.steps):
        started, times = time.perf_counter(), PhaseTimes()
        # 3. rollouts: the same prompt list on every rank, each playing its own share
        prompts = sample_prompts(sampler, envs[0].source, config.prompts_per_step)
        trajectories = collect_rollouts(config, models, envs, prompts, ranks, step, times)
        rollout_time = time.perf_counter() - started
        # 4. advantages over the whole batch, in global prompt order, then optimisation
        rewards = all_gather_list([t.reward for t in trajectories], ranks)
        all_advantages = config_advantages(config, rewards)
        advantages = ranks.share(all_advantages)
        with times.phase("optimise", ranks.device):
            metrics = optimise(config, models, trajectories, advantages, ranks)
        # 5. bookkeeping
        summaries = all_gather_list([episode_summary(t) for t in trajectories], ranks)
        metrics |= step_metrics(config, summaries, all_advantages, started, rollout_time, step)
        metrics |= {f"time/{phase}": seconds for phase, seconds in times.seconds.items()}
        done = step + 1
        if rollout_log is not None:
            for record in rollout_records(
                prompts, summaries, all_advantages.tolist(), config.group_size
            ):
                rollout_log.log(done, record)
        if logger is not None and (done % config.log_every == 0 or done == config.steps):
            logger.log(done, metrics)
            print(
                f"step {done}/{config.steps}  reward {metrics['rollout/reward_mean']:.3f}  "
                f"loss {metrics['loss/policy']:+.4f}  clip {metrics['loss/clip_fraction']:.3f}  "
                f"{metrics['train/tokens_per_s']:.0f} tok/s",
                flush=True,
            )
        if config.save_every and done % config.save_every == 0:
            saved = checkpoint_dir(output_dir, done)
            save(saved, models, done, sampler, ranks)
            if ranks.main:
                prune_checkpoints(output_dir, config.keep_last, keep=(saved, start))
    final = output_dir / "final"
    state_dict = full_model_state(models.model, models.fsdp)
    if ranks.main:
        save_final(final, models.model, models.policy.processor, state_dict)
        logger.close()
        plot_metrics(logger.path, output_dir)
        print(f"final model: {final}")
    barrier(ranks)
    for env in envs:
        env.close()
    return final


def step_metrics(
    config: GRPOConfig,
    summaries: Sequence[dict[str, Any]],
    advantages: torch.Tensor,
    started: float,
    rollout_time: float,
    step: int,
) -> dict[str, float]:
    """The ``rollout/`` metrics of a step's episodes, its advantages' statistics and timings."""
    elapsed = time.perf_counter() - started
    generated = sum(s["generated"] for s in summaries)
    return {
        **rollout_metrics(summaries, config.group_size),
        **advantage_metrics(advantages.tolist()),
        "train/step_time": elapsed,
        "train/rollout_time": rollout_time,
        "train/tokens_per_s": generated / elapsed,
        "train/rollout_tokens_per_s": generated / max(rollout_time, 1e-9),
        "train/progress": (step + 1) / config.steps,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``python -m agents.train.grpo`` or ``torchrun … -m agents.train.grpo``."""
    description = "Multi-turn GRPO in DrawSpatial-v0 (see docs/training.md)."
    try:
        run_stage(GRPOConfig, train_grpo, argv, prog="drawenv train grpo", description=description)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


__all__ = [
    "GroupSampledPolicy",
    "Models",
    "collect_rollouts",
    "config_advantages",
    "episode_seed",
    "load_models",
    "main",
    "make_envs",
    "micro_batch_weight",
    "optimise",
    "restore",
    "sample_prompts",
    "save",
    "step_metrics",
    "train_grpo",
]

if __name__ == "__main__":
    main()
