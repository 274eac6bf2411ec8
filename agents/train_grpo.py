"""Multi-turn GRPO in DrawSpatial-v0 (and Dr. GRPO, DAPO, AP-GRPO), on one device or many.

Read it top to bottom like CleanRL's ``ppo.py``. One training step:

1. **Prompts.** Draw ``prompts_per_step`` task indices from the env's task source with the
   trainer's seeded generator, and a reset seed for each. Under ``torchrun`` every rank draws the
   same list and keeps its contiguous share (rank ``r`` takes prompts ``r·P/W … (r+1)·P/W``).
2. **Rollouts.** ``group_size`` envs per prompt, reset with the same seed and task index (a GRPO
   group), play one batched :func:`agents.rollout.rollout`. Every episode samples from its own
   generator, seeded by its prompt's seed and its place in the group, so a trajectory does not
   depend on which rank played it or on what else was in the batch. With ``reward="snra"`` the
   envs get ``set_training_progress(step / steps)`` first.
3. **Advantages.** :func:`agents.losses.group_advantages` over the whole batch (the rewards of
   every rank are gathered first, so ``reward_scale="batch"`` sees them all).
4. **Optimisation.** ``ppo_epochs`` passes over the trajectories in micro-batches of
   ``micro_batch``; each pass accumulates the gradient of every micro-batch and makes one AdamW
   update (clipped gradient norm, warm-up then the LR schedule). Log-probs are recomputed with
   :meth:`VLMPolicy.token_logprobs`; π_old is the rollout policy, scored by that same forward
   pass in the first epoch, so the first ratio is exactly 1. With ``beta > 0`` a frozen copy of
   the starting model gives the reference log-probs of the KL term.
5. **Bookkeeping.** One line of ``train/``, ``loss/`` and ``rollout/`` metrics in
   ``metrics.jsonl``, a checkpoint every ``save_every`` steps (``agents.checkpoint``), the final
   model in ``output_dir/final`` and ``curves.png`` at the end.

Precision: parameters and AdamW states stay float32; on CUDA the forward passes run under
``torch.autocast`` with ``dtype`` (bf16 by default). On other devices everything runs in float32.

Several GPUs: ``torchrun --nproc_per_node N -m agents.train_grpo --config FILE`` wraps the model
in ``DistributedDataParallel`` (NCCL on CUDA, gloo on CPU), or shards it with FSDP2
(``fully_shard``) when the override ``fsdp=true`` is given. Gradients are averaged over ranks and
each micro-batch's loss is weighted so that the update equals the single-process one.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.utils.rnn import pad_sequence

from agents.checkpoint import (
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    read_optimizer_state,
    save_checkpoint,
    write_atomically,
)
from agents.config import GRPOConfig, config_help, config_to_toml, load_config
from agents.losses import group_advantages, policy_loss
from agents.metrics import (
    MetricsLogger,
    advantage_metrics,
    episode_summary,
    plot_metrics,
    rollout_metrics,
)
from agents.policy import DTYPES, GenerationSettings, VLMPolicy, sampling_probs
from agents.rollout import Trajectory, rollout
from agents.train_sft import (
    enable_activation_checkpointing,
    freeze_vision_tower,
    make_optimizer,
    make_scheduler,
    resolve_device,
)
from drawenv.env import DrawSpatialEnv
from drawenv.rewards import SharpnessSchedule, SNRAPresetReward

EXTRA_OPTIONS = {
    "resume": "true: continue from the latest checkpoint in output_dir; or a checkpoint folder.",
    "fsdp": "true: shard the model with FSDP2 (fully_shard) instead of DDP under torchrun.",
}
"""Trainer options read by :func:`main` beside the :class:`GRPOConfig` fields."""


# -- devices and processes --------------------------------------------------------------------


@dataclass(frozen=True)
class Ranks:
    """This process's place in a (possibly one-process) distributed run."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this process writes files and prints."""
        return self.rank == 0


def setup_ranks(device: str) -> Ranks:
    """Pick the device; under ``torchrun`` (``WORLD_SIZE > 1``) join the process group: NCCL on
    CUDA with one GPU per local rank, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    target = torch.device(resolve_device(device))
    if target.type == "cuda" and target.index is None:
        target = torch.device("cuda", local if world > 1 else torch.cuda.current_device())
    if world == 1:
        return Ranks(0, 1, target)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), target)


def _all_mean(values: list[float], ranks: Ranks) -> list[float]:
    """Element-wise mean of ``values`` over ranks."""
    if ranks.world == 1 or not values:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device(ranks))
    dist.all_reduce(tensor)
    return (tensor / ranks.world).tolist()


def _all_sum(value: float, ranks: Ranks) -> float:
    if ranks.world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_comm_device(ranks))
    dist.all_reduce(tensor)
    return float(tensor.item())


def _all_gather_list(items: list[Any], ranks: Ranks) -> list[Any]:
    """Every rank's ``items``, concatenated in rank order."""
    if ranks.world == 1:
        return list(items)
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, items)
    return [item for part in out for item in part]


def _comm_device(ranks: Ranks) -> torch.device:
    return ranks.device if ranks.device.type == "cuda" else torch.device("cpu")


# -- model -----------------------------------------------------------------------------------


class GroupSampledPolicy(VLMPolicy):
    """A :class:`VLMPolicy` whose episodes each sample from their own generator.

    :meth:`seed_episodes` gives episode ``e`` of the next rollout the seed ``seeds[e]``. Its
    tokens then depend on nothing but that seed and its own sequence: not on the batch it was
    played in, nor on the rank. That is what makes a world-size-2 step equal a world-size-1 step.
    """

    episode_seeds: Sequence[int] | None = None

    def seed_episodes(self, seeds: Sequence[int] | None) -> None:
        """Use one generator per episode index for the next rollouts (``None``: the shared one)."""
        self.episode_seeds = None if seeds is None else list(seeds)
        self._generators: dict[int, torch.Generator] = {}

    def _generator(self, episode: int) -> torch.Generator:
        if episode not in self._generators:
            generator = torch.Generator()  # on the CPU: one cheap draw per row and token
            generator.manual_seed(int(self.episode_seeds[episode]))
            self._generators[episode] = generator
        return self._generators[episode]

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        """Sample every row by inverse CDF from one uniform draw of its episode's generator
        (see :meth:`seed_episodes`), all rows in one batched search."""
        if self.episode_seeds is None or settings.temperature == 0:
            return super().choose_tokens(
                scores,
                generator=generator,
                settings=settings,
                episodes=episodes,
                turns=turns,
                generated=generated,
            )
        draws = [torch.rand(1, generator=self._generator(e), dtype=torch.float64) for e in episodes]
        cdf = sampling_probs(scores, settings.top_p).double().cumsum(-1)
        targets = torch.cat(draws).to(cdf.device)[:, None] * cdf[:, -1:]
        # right=True: the first token whose cumulative weight exceeds the target, so a token of
        # weight 0 is never chosen.
        tokens = torch.searchsorted(cdf, targets, right=True).squeeze(-1)
        return tokens.clamp_(max=cdf.shape[-1] - 1)


class _DDP(torch.nn.parallel.DistributedDataParallel):
    """DDP that still answers ``dtype``, which :meth:`VLMPolicy.token_logprobs` reads."""

    @property
    def dtype(self) -> torch.dtype:
        return self.module.dtype


def _fsdp_modules(model: torch.nn.Module) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def shard_model(model: torch.nn.Module) -> None:
    """FSDP2: shard every transformer block (text decoder layers, vision blocks), then the rest."""
    from torch.distributed.fsdp import fully_shard

    for module in list(model.modules()):
        if type(module).__name__.endswith(("DecoderLayer", "VisionBlock")):
            fully_shard(module)
    fully_shard(model)


@contextlib.contextmanager
def full_parameters(model: torch.nn.Module, fsdp: bool):
    """With FSDP2, keep every parameter gathered (ranks may run different numbers of forward
    passes while generating, so no collective may happen inside); a no-op otherwise."""
    if not fsdp:
        yield
        return
    modules = _fsdp_modules(model)
    for module in modules:
        module.set_reshard_after_forward(False, recurse=False)
        module.unshard()
    try:
        yield
    finally:
        for module in modules:
            module.reshard()
            module.set_reshard_after_forward(True, recurse=False)


# -- environments and prompts ----------------------------------------------------------------


def make_reward(config: GRPOConfig) -> Any:
    """The env ``reward`` argument: the preset name, or the SNRA preset with its schedule."""
    if config.reward == "snra":
        schedule = SharpnessSchedule(
            k_min=config.snra_k_min, k_max=config.snra_k_max, kind=config.snra_schedule
        )
        return SNRAPresetReward(schedule)
    return config.reward


def make_envs(
    config: GRPOConfig, policy: VLMPolicy, n: int, reward: Any = None, **env_kwargs: Any
) -> list[DrawSpatialEnv]:
    """``n`` envs for the config's tasks, in the model's coordinate mode and patch size."""
    kwargs = {
        "task": config.task,
        "protocol": config.protocol,
        "coords": config.coords or policy.coords,
        "patch_factor": policy.patch_factor,
        "difficulty": config.difficulty,
        "reward": make_reward(config) if reward is None else reward,
        "max_turns": config.max_turns,
        **({"max_pixels": config.max_pixels} if config.max_pixels is not None else {}),
        **env_kwargs,
    }
    return [DrawSpatialEnv(**kwargs) for _ in range(n)]


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


def _padded(rows: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    return pad_sequence([r.to(device) for r in rows], batch_first=True)


def _autocast(config: GRPOConfig, device: torch.device):
    if device.type == "cuda" and config.dtype != "float32":
        return torch.autocast("cuda", dtype=DTYPES[config.dtype])
    return contextlib.nullcontext()


def optimise(
    config: GRPOConfig,
    *,
    policy: VLMPolicy,
    train_model: torch.nn.Module,
    trajectories: Sequence[Trajectory],
    advantages: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    ranks: Ranks,
    reference: VLMPolicy | None = None,
    fsdp: bool = False,
) -> dict[str, float]:
    """``ppo_epochs`` passes of clipped policy-gradient updates over this rank's trajectories.

    Returns the ``loss/`` and ``train/`` metrics, averaged over micro-batches (and ranks):
    ``loss/policy``, ``loss/clip_fraction``, ``loss/approx_kl``, ``loss/ratio_mean`` (and
    ``loss/kl`` with a reference), the same per epoch (``loss/clip_fraction_epoch1``, …),
    ``train/grad_norm`` (of the last epoch, before clipping), ``train/lr`` and
    ``rollout/logprob_mismatch`` (mean |recomputed − sampling| log-prob of generated tokens).
    """
    device = policy.device
    scorer = copy.copy(policy)
    scorer.model = train_model
    n = len(trajectories)
    size = min(config.micro_batch, n)
    batches = [list(range(i, min(n, i + size))) for i in range(0, n, size)]
    tokens = [int(trajectories[i].n_generated) for i in range(n)]
    global_tokens = _all_sum(float(sum(tokens)), ranks)
    olds: list[torch.Tensor | None] = [None] * len(batches)
    refs: list[torch.Tensor | None] = [None] * len(batches)
    params = [p for p in train_model.parameters() if p.requires_grad]
    records: dict[str, list[float]] = {}
    mismatch = []
    grad_norm = 0.0

    def note(key: str, value: float) -> None:
        records.setdefault(key, []).append(float(value))

    train_model.train()
    for epoch in range(1, config.ppo_epochs + 1):
        for b, batch in enumerate(batches):
            chunk = [trajectories[i] for i in batch]
            mask = _padded([t.mask for t in chunk], device)
            last = b == len(batches) - 1
            if fsdp:
                train_model.set_requires_gradient_sync(last)
                sync = contextlib.nullcontext()
            elif ranks.world > 1 and not last:
                sync = train_model.no_sync()
            else:
                sync = contextlib.nullcontext()
            with sync:
                with _autocast(config, device):
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
                    with torch.no_grad(), _autocast(config, device):
                        refs[b] = _padded(
                            reference.token_logprobs(chunk, batch_size=len(chunk)), device
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
                # Weight each micro-batch so the summed gradient is the whole batch's loss
                # (sequence mean, or token mean for dapo) and the rank average the global one.
                if config.loss_type == "dapo":
                    weight = sum(tokens[i] for i in batch) * ranks.world / max(global_tokens, 1.0)
                else:
                    weight = len(batch) / n
                (loss * weight).backward()
            note("loss/policy", loss.item() * weight * len(batches))
            for key, value in stats.items():
                note(f"loss/{key}", value)
                note(f"loss/{key}_epoch{epoch}", value)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        grad_norm = float(grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    keys = sorted(records)
    means = _all_mean([sum(records[k]) / len(records[k]) for k in keys], ranks)
    metrics = dict(zip(keys, means))
    metrics["train/grad_norm"] = grad_norm
    metrics["train/lr"] = optimizer.param_groups[0]["lr"]
    metrics["rollout/logprob_mismatch"] = _all_mean([sum(mismatch) / max(len(mismatch), 1)], ranks)[
        0
    ]
    return metrics


# -- the trainer -----------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _resolve_resume(resume: Any, output_dir: Path) -> Path | None:
    if resume in (None, False, "", "false", "False", "none"):
        return None
    if resume in (True, "true", "True", "latest"):
        found = latest_checkpoint(output_dir)
        if found is None:
            print(f"resume: no checkpoint-STEP folder in {output_dir}; starting at step 0.")
        return found
    return Path(resume)


def train_grpo(
    config: GRPOConfig,
    *,
    resume: bool | str | Path | None = None,
    fsdp: bool = False,
    reward: Callable[..., Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Train ``config.model`` with GRPO in DrawSpatial-v0; returns the final model folder.

    Args:
        config: the run's :class:`~agents.config.GRPOConfig`.
        resume: ``True`` continues from the latest checkpoint in ``output_dir``; a path continues
            from that checkpoint folder. The run then goes on exactly as if never stopped.
        fsdp: under ``torchrun``, shard the model with FSDP2 instead of replicating it (DDP).
        reward: a reward callable ``(episode) -> (reward, terms)`` used instead of
            ``config.reward`` (for scripted experiments and tests).
        env_kwargs: more ``DrawSpatialEnv`` arguments (e.g. ``max_pixels``).
    """
    ranks = setup_ranks(config.device)
    output_dir = Path(config.output_dir)
    start = _resolve_resume(resume, output_dir)
    _seed_everything(config.seed)
    settings = GenerationSettings(
        temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_new_tokens
    )
    model_dir = start / "model" if start is not None else Path(config.model)
    policy = GroupSampledPolicy.from_pretrained(
        model_dir, device=ranks.device, dtype="float32", settings=settings
    )
    model = policy.model
    if config.freeze_vision:
        freeze_vision_tower(model)
    if config.gradient_checkpointing:
        enable_activation_checkpointing(model)
    reference = None
    if config.beta > 0:
        weights = "float32" if ranks.device.type != "cuda" else config.dtype
        reference = VLMPolicy.from_pretrained(
            config.model, device=ranks.device, dtype=weights, settings=settings
        )
        reference.model.requires_grad_(False)
    train_model: torch.nn.Module = model
    fsdp = fsdp and ranks.world > 1
    if fsdp:
        shard_model(model)
    elif ranks.world > 1:
        train_model = _DDP(
            model, device_ids=[ranks.device.index] if ranks.device.type == "cuda" else None
        )
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    scheduler = make_scheduler(optimizer, config, config.steps * config.ppo_epochs)

    if config.prompts_per_step % ranks.world:
        raise ValueError(
            f"Expected prompts_per_step divisible by the number of processes ({ranks.world}), "
            f"got {config.prompts_per_step}. Pick a multiple of {ranks.world}."
        )
    local_prompts = config.prompts_per_step // ranks.world
    group = config.group_size
    envs = make_envs(config, policy, local_prompts * group, reward, **(env_kwargs or {}))
    sampler = np.random.default_rng(config.seed)
    first_step = 0
    if start is not None:
        state = load_checkpoint(start, optimizer=None if fsdp else optimizer, scheduler=scheduler)
        if fsdp:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_optimizer_state_dict,
            )

            set_optimizer_state_dict(
                model,
                optimizer,
                read_optimizer_state(start),
                options=StateDictOptions(full_state_dict=True),
            )
        sampler.bit_generator.state = state.sampler_state
        first_step = state.step
        if ranks.main:
            print(f"resumed from {start} at step {first_step}")
    logger = None
    if ranks.main:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.toml").write_text(config_to_toml(config), encoding="utf-8")
        logger = MetricsLogger(
            output_dir, tensorboard=config.tensorboard, keep_before=first_step if start else None
        )

    for step in range(first_step, config.steps):
        started = time.perf_counter()
        # 1. prompts: the same list on every rank, each rank playing its own contiguous share
        prompts = sample_prompts(sampler, envs[0].source, config.prompts_per_step)
        mine = prompts[ranks.rank * local_prompts : (ranks.rank + 1) * local_prompts]
        seeds = [seed for _, seed in mine for _ in range(group)]
        options = [{"index": index} for index, _ in mine for _ in range(group)]
        if config.reward == "snra":
            for env in envs:
                env.set_training_progress(step / config.steps)
        # 2. rollouts, in chunks of `rollout_prompts` groups (bf16 logits depend on batch shape)
        chunk = group * (config.rollout_prompts or local_prompts)
        episode_seeds = [episode_seed(seed, j) for _, seed in mine for j in range(group)]
        model.eval()
        trajectories = []
        with torch.no_grad(), full_parameters(model, fsdp), _autocast(config, ranks.device):
            for start in range(0, len(envs), chunk):
                part = slice(start, start + chunk)
                policy.seed_episodes(episode_seeds[part])
                trajectories += rollout(
                    policy,
                    envs[part],
                    seed=seeds[part],
                    options=options[part],
                    max_tokens=config.max_tokens,
                )
        rollout_time = time.perf_counter() - started
        # 3. advantages over the whole batch, in global prompt order
        rewards = torch.tensor(
            _all_gather_list([t.reward for t in trajectories], ranks), dtype=torch.float32
        )
        all_advantages = group_advantages(
            rewards, group, kind=config.advantage, alpha=config.alpha, scale=config.reward_scale
        )
        n_local = len(trajectories)
        advantages = all_advantages[ranks.rank * n_local : (ranks.rank + 1) * n_local]
        # 4. optimisation
        metrics = optimise(
            config,
            policy=policy,
            train_model=train_model,
            trajectories=trajectories,
            advantages=advantages,
            optimizer=optimizer,
            scheduler=scheduler,
            ranks=ranks,
            reference=reference,
            fsdp=fsdp,
        )
        # 5. bookkeeping
        summaries = _all_gather_list([episode_summary(t) for t in trajectories], ranks)
        elapsed = time.perf_counter() - started
        generated = sum(s["generated"] for s in summaries)
        metrics.update(rollout_metrics(summaries, group))
        metrics.update(advantage_metrics(all_advantages.tolist()))
        metrics.update(
            {
                "train/step_time": elapsed,
                "train/rollout_time": rollout_time,
                "train/tokens_per_s": generated / elapsed,
                "train/rollout_tokens_per_s": generated / max(rollout_time, 1e-9),
                "train/progress": (step + 1) / config.steps,
            }
        )
        done = step + 1
        if logger is not None and (done % config.log_every == 0 or done == config.steps):
            logger.log(done, metrics)
            print(
                f"step {done}/{config.steps}  reward {metrics['rollout/reward_mean']:.3f}  "
                f"loss {metrics['loss/policy']:+.4f}  clip {metrics['loss/clip_fraction']:.3f}  "
                f"{metrics['train/tokens_per_s']:.0f} tok/s",
                flush=True,
            )
        if config.save_every and done % config.save_every == 0:
            _save(
                checkpoint_dir(output_dir, done),
                policy,
                optimizer,
                scheduler,
                done,
                sampler,
                ranks,
                fsdp,
            )

    final = output_dir / "final"
    state_dict = _full_model_state(model, fsdp)
    if ranks.main:

        def fill(tmp: Path) -> None:
            model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            policy.processor.save_pretrained(tmp)

        write_atomically(final, fill)
        if logger is not None:
            logger.close()
            plot_metrics(logger.path, output_dir)
        print(f"final model: {final}")
    if ranks.world > 1:
        dist.barrier()
    for env in envs:
        env.close()
    return final


def _full_model_state(model: torch.nn.Module, fsdp: bool) -> dict[str, torch.Tensor] | None:
    if not fsdp:
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def _save(
    path: Path,
    policy: VLMPolicy,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
    sampler: np.random.Generator,
    ranks: Ranks,
    fsdp: bool,
) -> None:
    model_state = _full_model_state(policy.model, fsdp)
    optimizer_state = None
    if fsdp:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        optimizer_state = get_optimizer_state_dict(
            policy.model,
            optimizer,
            options=StateDictOptions(full_state_dict=True, cpu_offload=True),
        )
    if ranks.main:
        save_checkpoint(
            path,
            model=policy.model,
            processor=policy.processor,
            optimizer=optimizer,
            scheduler=scheduler,
            step=step,
            sampler=sampler,
            model_state=model_state,
            optimizer_state=optimizer_state,
        )
    if ranks.world > 1:
        dist.barrier()


# -- command line ----------------------------------------------------------------------------


def split_options(overrides: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Separate the trainer options of :data:`EXTRA_OPTIONS` from the config overrides."""
    rest, extra = [], {}
    for item in overrides:
        key = item.partition("=")[0].strip().replace("-", "_")
        if key in EXTRA_OPTIONS and "=" in item:
            extra[key] = item.partition("=")[2].strip()
        else:
            rest.append(item)
    return rest, extra


def _flag(value: str | None) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def run_from_args(config_path: str | None, overrides: Sequence[str], resume: str | None) -> Path:
    """Build the config from a TOML file and ``key=value`` overrides, then train."""
    rest, extra = split_options(overrides)
    config = load_config(GRPOConfig, config_path, rest)
    resume = resume if resume is not None else extra.get("resume")
    if resume is not None and resume.lower() in ("1", "true", "yes", "on", "latest", ""):
        resume = True
    return train_grpo(config, resume=resume, fsdp=_flag(extra.get("fsdp")))


def build_parser() -> argparse.ArgumentParser:
    """``python -m agents.train_grpo --config FILE [key=value …]``."""
    extra = "\n".join(f"  {k:<22}  {v}" for k, v in EXTRA_OPTIONS.items())
    parser = argparse.ArgumentParser(
        prog="drawenv train grpo",
        description="Multi-turn GRPO in DrawSpatial-v0 (see docs/training.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"config keys (TOML file or key=value):\n{config_help(GRPOConfig)}\n\n"
        f"trainer options (key=value):\n{extra}",
    )
    parser.add_argument("--config", help="flat TOML file of GRPOConfig keys")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="true",
        default=None,
        help="continue from the latest checkpoint in output_dir, or from the folder given",
    )
    parser.add_argument("overrides", nargs="*", help="key=value settings over the file's")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``python -m agents.train_grpo`` or ``torchrun … -m agents.train_grpo``."""
    args = build_parser().parse_args(argv)
    try:
        run_from_args(args.config, args.overrides, args.resume)
    except ValueError as error:
        print(f"drawenv train grpo: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


__all__ = [
    "EXTRA_OPTIONS",
    "GroupSampledPolicy",
    "Ranks",
    "episode_seed",
    "main",
    "make_envs",
    "optimise",
    "sample_prompts",
    "setup_ranks",
    "train_grpo",
]

if __name__ == "__main__":
    main()
