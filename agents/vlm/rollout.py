"""Batched multi-turn rollouts of a :class:`~agents.vlm.policy.VLMPolicy` in DrawSpatial-v0.

:func:`rollout` resets a list of envs (or a Gymnasium vector env), then loops: every active
episode writes its next turn in one batched :meth:`VLMPolicy.generate` call, the envs step (a
thread pool for a list; the vector env's own workers otherwise), and each episode that goes on
gets its observation turn appended to its token sequence. Finished episodes drop out of the batch.

Every episode becomes a :class:`Trajectory`: the full token ids, a mask that is 1 exactly on the
tokens the model sampled, their sampling log-probs, the images and processor tensors a forward
pass needs, and what the env said (reward, terms, termination, turns, operations).

Decisions:

- the end-of-turn token belongs to the model's turn when the model wrote it (mask 1). When a
  turn was cut (``max_new_tokens`` or a stop string) and the episode goes on, the template's
  closing (``<|im_end|>\\n``) is inserted as env tokens (mask 0), so the chat stays well formed.
- ``max_tokens`` bounds the whole sequence (prompt, images, turns and observations). A turn may
  use only the room left; a turn cut by the budget ends the episode without stepping the env,
  and so does an observation that would not fit (it is not appended). Either way the
  termination is ``max_tokens`` and the reward 0.
- sampling draws from one ``torch.Generator`` seeded with ``sampling_seed``: the same seeds and
  the same batch give the same trajectories.
- the batch's KV cache is kept from turn to turn (:class:`~agents.vlm.policy.TurnCache`): each
  turn prefills only what each episode gained since its last one (the token that turn ended on,
  then the observation and its new images); ended episodes leave the cache. ``reuse_cache=False``
  prefills every episode's whole sequence each turn instead (the baseline, and a check).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from agents.vlm.device import PhaseTimes
from agents.vlm.policy import GenerationSettings, TurnCache, TurnInput, VLMPolicy
from drawenv.env import DrawSpatialEnv


@dataclass
class Trajectory:
    """One episode as tokens and outcomes; everything a loss or a forward pass needs."""

    ids: torch.Tensor
    """(L,) int64: the whole chat, prompt to last model turn."""
    mask: torch.Tensor
    """(L,) int64: 1 on tokens the model sampled, 0 on template, env and image tokens."""
    logprobs: torch.Tensor
    """(L,) float32: sampling log-prob of each generated token (0 where ``mask`` is 0)."""
    images: list[np.ndarray]
    """Every image shown to the model, in placeholder order (originals, then drawn ones)."""
    pixel_values: torch.Tensor | None
    """The image processor's patches of ``images``, concatenated."""
    image_grid_thw: torch.Tensor | None
    """(n_images, 3): each image's (t, h, w) patch grid."""
    reward: float = 0.0
    reward_terms: dict[str, float] = field(default_factory=dict)
    termination: str = ""
    """The env's reason, or ``max_tokens`` when the token budget ended the episode."""
    turns: list[dict[str, Any]] = field(default_factory=list)
    """Per model turn: text, finish, operations, new_images, errors, message, reward."""
    env_index: int = 0
    seed: int | None = None
    task_id: str = ""
    system_prompt: str = ""
    prompt: str = ""
    prediction: str | None = None
    final_images: list[np.ndarray] = field(default_factory=list)
    """Images the env drew on the last turn, which the model never saw (for viewers)."""

    @property
    def n_turns(self) -> int:
        """Model turns written."""
        return len(self.turns)

    @property
    def n_operations(self) -> int:
        """Drawing operations the env executed or rejected, over all turns."""
        return sum(len(turn["operations"]) for turn in self.turns)

    @property
    def n_generated(self) -> int:
        """Tokens the model sampled."""
        return int(self.mask.sum())


@dataclass
class _Episode:
    """A running episode: its growing sequence and what has happened so far."""

    index: int
    seed: int | None
    ids: list[int]
    mask: list[int]
    logprobs: list[float]
    images: list[np.ndarray]
    pixels: list[torch.Tensor]
    grids: list[torch.Tensor]
    info: dict[str, Any]
    prompt: str
    turns: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    reward: float = 0.0
    reward_terms: dict[str, float] = field(default_factory=dict)
    termination: str = ""
    prediction: str | None = None
    final_images: list[np.ndarray] = field(default_factory=list)
    joined: tuple[int, torch.Tensor | None, torch.Tensor | None] = (0, None, None)
    """``pixels`` and ``grids`` concatenated, with how many pieces (redone when images arrive)."""

    def append(self, segment: Any) -> None:
        self.ids += segment.ids
        self.mask += [0] * len(segment.ids)
        self.logprobs += [0.0] * len(segment.ids)
        if segment.pixel_values is not None:
            self.pixels.append(segment.pixel_values)
            self.grids.append(segment.image_grid_thw)

    def turn_input(self, budget: int) -> TurnInput:
        if self.pixels and self.joined[0] != len(self.pixels):
            self.joined = (len(self.pixels), torch.cat(self.pixels), torch.cat(self.grids))
        return TurnInput(
            ids=self.ids,
            pixel_values=self.joined[1],
            image_grid_thw=self.joined[2],
            max_new_tokens=budget,
            episode=self.index,
            turn=len(self.turns),
        )

    def finish(self, termination: str, reward: float = 0.0, info: dict | None = None) -> None:
        self.done = True
        self.termination = termination
        self.reward = float(reward)
        info = info or {}
        self.reward_terms = {k: float(v) for k, v in dict(info.get("reward_terms", {})).items()}
        self.prediction = info.get("prediction")

    def trajectory(self) -> Trajectory:
        return Trajectory(
            ids=torch.tensor(self.ids, dtype=torch.long),
            mask=torch.tensor(self.mask, dtype=torch.long),
            logprobs=torch.tensor(self.logprobs, dtype=torch.float32),
            images=self.images,
            pixel_values=torch.cat(self.pixels) if self.pixels else None,
            image_grid_thw=torch.cat(self.grids) if self.grids else None,
            reward=self.reward,
            reward_terms=self.reward_terms,
            termination=self.termination,
            turns=self.turns,
            env_index=self.index,
            seed=self.seed,
            task_id=str(self.info.get("task_id", "")),
            system_prompt=str(self.info.get("system_prompt", "")),
            prompt=self.prompt,
            prediction=self.prediction,
            final_images=self.final_images,
        )


class _EnvList:
    """A list of envs behind one interface; steps run on a thread pool."""

    def __init__(self, envs: Sequence[Any]):
        self.envs = list(envs)
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(len(self.envs), 16)))

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, seeds: list[int | None], options: list[dict | None]) -> list[tuple]:
        return list(
            self.pool.map(
                lambda i: self.envs[i].reset(seed=seeds[i], options=options[i]),
                range(len(self.envs)),
            )
        )

    def step(self, actions: dict[int, str]) -> dict[int, tuple]:
        results = self.pool.map(lambda i: self.envs[i].step(actions[i]), list(actions))
        return dict(zip(list(actions), results))

    def close(self) -> None:
        self.pool.shutdown()


class _VectorEnv:
    """A Gymnasium vector env behind the same interface. Every sub-env must step each call, so
    finished ones get an empty action and their results are ignored."""

    def __init__(self, envs: Any):
        self.envs = envs
        mode = getattr(getattr(envs, "metadata", {}), "get", lambda *_: None)("autoreset_mode")
        if mode is not None and getattr(mode, "name", str(mode)) == "DISABLED":
            raise ValueError(
                "Expected a vector env with autoreset (NEXT_STEP or SAME_STEP), got "
                "autoreset_mode=DISABLED. Make it with the default autoreset mode."
            )

    def __len__(self) -> int:
        return int(self.envs.num_envs)

    def reset(self, seeds: list[int | None], options: list[dict | None]) -> list[tuple]:
        if any(o != options[0] for o in options):
            raise ValueError(
                "Expected one options dict for all envs of a vector env, got different ones. "
                "Give a list of envs for per-episode options."
            )
        obs, infos = self.envs.reset(seed=seeds, options=options[0])
        return [(_unbatch(obs, i), _unbatch(infos, i)) for i in range(len(self))]

    def step(self, actions: dict[int, str]) -> dict[int, tuple]:
        obs, rewards, terms, truncs, infos = self.envs.step(
            tuple(actions.get(i, "") for i in range(len(self)))
        )
        results = {}
        for i in actions:
            info, observation = _unbatch(infos, i), _unbatch(obs, i)
            if "final_info" in info:  # SAME_STEP autoreset: the finished step's outcome
                observation = info.get("final_obs", observation)
                info = info["final_info"]
            done = (float(rewards[i]), bool(terms[i]), bool(truncs[i]))
            results[i] = (observation, *done, info)
        return results

    def close(self) -> None:
        """The caller owns the vector env."""


def _unbatch(batched: Any, i: int) -> Any:
    """Item ``i`` of a vector env's batched observation or info dict."""
    if isinstance(batched, dict):
        return {
            key: _unbatch(value, i)
            for key, value in batched.items()
            if not key.startswith("_") and bool(batched.get(f"_{key}", [True] * (i + 1))[i])
        }
    value = batched[i]
    return value.item() if isinstance(value, np.generic) else value


def _as_envs(envs: Any) -> _EnvList | _VectorEnv:
    if hasattr(envs, "num_envs") and hasattr(envs, "single_observation_space"):
        return _VectorEnv(envs)
    if isinstance(envs, (list, tuple)) and envs:
        return _EnvList(envs)
    raise ValueError(
        f"Expected a non-empty list of envs or a Gymnasium vector env, got {type(envs).__name__}."
    )


def policy_env(
    policy: VLMPolicy,
    *,
    coords: str | None = None,
    max_pixels: int | None = None,
    **env_kwargs: Any,
) -> DrawSpatialEnv:
    """A ``DrawSpatialEnv`` matched to ``policy``: the coordinate mode its model family writes
    (unless ``coords`` is given), the patch factor its processor takes unresized, and
    ``max_pixels`` when set (else the env's default). Every trainer and evaluation builds its envs
    here."""
    env_kwargs.setdefault("patch_factor", policy.patch_factor)
    if max_pixels is not None:
        env_kwargs["max_pixels"] = max_pixels
    return DrawSpatialEnv(coords=coords or policy.coords, **env_kwargs)


def rollout(
    policy: VLMPolicy,
    envs: Any,
    *,
    seed: int | Sequence[int | None] | None = 0,
    options: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
    settings: GenerationSettings | None = None,
    max_tokens: int | None = None,
    sampling_seed: int | None = None,
    check: bool = True,
    reuse_cache: bool = True,
    read_every: int | None = None,
    times: PhaseTimes | None = None,
) -> list[Trajectory]:
    """Play one episode in every env with ``policy``; returns the trajectories in env order.

    Args:
        policy: the model that writes the turns.
        envs: a list of ``DrawSpatial-v0`` envs or a Gymnasium vector env of them.
        seed: reset seed(s): an int gives env ``i`` the seed ``seed + i``; a list gives each its
            own (equal seeds give equal tasks: a GRPO group).
        options: reset options for all envs, or one per env (e.g. ``{"index": 3}``).
        settings: generation settings (default: the policy's).
        max_tokens: token budget of each episode's whole sequence; ``None`` for no budget.
        sampling_seed: seed of the sampling generator (default: the first env seed, or 0).
        check: run :meth:`VLMPolicy.check_sync` on every trajectory (cheap; on by default).
        reuse_cache: keep the batch's KV cache between turns and prefill only what is new;
            ``False`` prefills each episode's whole sequence every turn.
        read_every: decoding steps between reads of the tokens back to the host (see
            :meth:`VLMPolicy.generate`; default :data:`~agents.vlm.policy.READ_EVERY`, or 1 for
            a policy that overrides ``choose_tokens``).
        times: gets the seconds of each phase added: ``render`` (resets and first prompts),
            ``prefill``, ``decode``, ``env`` (steps and observation turns).
    """
    times = times or PhaseTimes()
    settings = settings or policy.settings
    adapter = _as_envs(envs)
    n = len(adapter)
    seeds = _per_env(seed, n, "seed")
    if isinstance(seed, int):
        seeds = [seed + i for i in range(n)]
    option_list = _per_env(options, n, "options")
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(f"Expected max_tokens >= 2 or None, got {max_tokens!r}.")
    first = next((s for s in seeds if s is not None), 0)
    generator = torch.Generator(device=policy.device)
    generator.manual_seed(first if sampling_seed is None else sampling_seed)
    cache = TurnCache() if reuse_cache else None
    try:
        with times.phase("render"):
            episodes = [
                _start(policy, i, seeds[i], obs, info)
                for i, (obs, info) in enumerate(adapter.reset(seeds, option_list))
            ]
        budget = max_tokens if max_tokens is not None else float("inf")
        while True:
            active = [e for e in episodes if not e.done]
            for episode in active:
                if len(episode.ids) >= budget:
                    episode.finish("max_tokens")
            active = [e for e in active if not e.done]
            if not active:
                break
            inputs = [
                e.turn_input(int(min(settings.max_new_tokens, budget - len(e.ids)))) for e in active
            ]
            outputs = policy.generate(
                inputs,
                generator=generator,
                settings=settings,
                cache=cache,
                read_every=read_every,
                times=times,
            )
            actions = {}
            for episode, out in zip(active, outputs):
                cut = out.finish == "length" and len(out.ids) < settings.max_new_tokens
                out.finish = "budget" if cut else out.finish
                episode.ids += out.ids
                episode.mask += [1] * len(out.ids)
                episode.logprobs += out.logprobs
                episode.turns.append(_turn_record(out))
                if out.finish == "budget":
                    episode.turns[-1]["errors"] = ["the episode ran out of its token budget"]
                    episode.finish("max_tokens")
                else:
                    actions[episode.index] = out.text
            with times.phase("env"):
                results = adapter.step(actions) if actions else {}
                for index, (obs, reward, terminated, truncated, info) in results.items():
                    done = terminated or truncated
                    _observe(policy, episodes[index], obs, reward, done, info, budget)
    finally:
        adapter.close()
        if cache is not None:
            cache.clear()
    trajectories = [e.trajectory() for e in episodes]
    if check:
        for t in trajectories:
            policy.check_sync(t.ids, t.pixel_values, t.image_grid_thw, t.images)
    return trajectories


def _per_env(value: Any, n: int, name: str) -> list[Any]:
    if value is None or isinstance(value, (int, dict)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"Expected {n} values of `{name}` (one per env), got {len(value)}.")
    return value


def _start(policy: VLMPolicy, index: int, seed: int | None, obs: dict, info: dict) -> _Episode:
    images = list(obs["images"])
    episode = _Episode(
        index=index,
        seed=seed,
        ids=[],
        mask=[],
        logprobs=[],
        images=images,
        pixels=[],
        grids=[],
        info=dict(info),
        prompt=str(obs["text"]),
    )
    episode.append(policy.prompt_segment(str(info["system_prompt"]), str(obs["text"]), images))
    return episode


def _turn_record(out: Any) -> dict[str, Any]:
    return {
        "text": out.text,
        "finish": out.finish,
        "n_tokens": len(out.ids),
        "operations": [],
        "new_images": [],
        "errors": [],
        "message": "",
        "reward": 0.0,
    }


def _observe(
    policy: VLMPolicy,
    episode: _Episode,
    obs: dict,
    reward: float,
    done: bool,
    info: dict,
    budget: float,
) -> None:
    """Record the env's answer to a turn; append the observation turn if the episode goes on."""
    turn = episode.turns[-1]
    new = [int(k) for k in info.get("new_image_indices", [])]
    turn.update(
        operations=[{"kind": op.kind, **asdict(op)} for op in info.get("operations", [])],
        new_images=new,
        errors=list(info.get("errors", [])),
        message=str(obs["text"]),
        reward=float(reward),
    )
    images = list(obs["images"])
    fresh = images[len(episode.images) :]
    if done:
        episode.final_images = fresh
        episode.finish(str(info.get("termination", "")), reward, info)
        return
    if [len(episode.images) + k for k in range(1, len(fresh) + 1)] != new:
        raise RuntimeError(
            f"Expected the new images {new} at the end of the observation, got "
            f"{len(images)} images after {len(episode.images)}."
        )
    last = _last_token(episode)
    segment = policy.observation_segment(str(obs["text"]), fresh, last_token=last)
    if len(episode.ids) + len(segment.ids) > budget:
        episode.final_images = fresh
        episode.finish("max_tokens")
        return
    episode.images += fresh
    episode.append(segment)


def _last_token(episode: _Episode) -> int | None:
    """The model's last token if its turn ended on a stop token (the closing is then shorter)."""
    return episode.ids[-1] if episode.turns[-1]["finish"] == "stop" else None


__all__ = ["Trajectory", "policy_env", "rollout"]
