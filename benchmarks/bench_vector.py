"""Vector envs: a random agent's episodes in one env, ``SyncVectorEnv`` and ``AsyncVectorEnv``;
the bytes a step moves; the memory one episode holds at the image budget.

Throughput: ``--steps`` env steps of a random agent (each env's own ``ModelText`` sampler, kept
in step with the image sizes it sees) on 16 tasks of the ``counting`` suite generated beforehand
(generating a scene costs more than an episode), episodes resetting as they end.
Rows: a plain loop over one env (the baseline), then Gymnasium's ``SyncVectorEnv`` and
``AsyncVectorEnv`` (``shared_memory=False``, one process per env) with 1 and 2 envs, with the
env's default ``copy_images=True`` and with ``copy_images=False``, then ``drawenv.make_vec`` with
its defaults (no copies; its async workers send new images only).

Live suite: the same random agent on the ``counting`` suite itself, each reset rendering a new
item (the suite's own cost), as training meets it: one plain env against ``drawenv.make_vec``
with its defaults, sync and async with 1 and 2 workers. Random episodes end at random turns, so
a vector env's workers rarely reset in the same step and each step waits for the slowest; the
scripted rows play 4-turn episodes (three boxes, then the answer) in every env in step, as a
GRPO rollout does, so that the workers render their next items at the same time.

Bytes per step, from the same random agent in one env: the observation's image bytes (what a
``SyncVectorEnv`` hands over by reference and copies once with Gymnasium's default
``copy=True``), the pickled size of the whole step result (what Gymnasium's ``AsyncVectorEnv``
worker sends through its pipe) and of the reply drawenv's worker sends (new images only).

Memory: one episode that draws on its latest image every turn until the ``max_images`` budget,
traced with ``tracemalloc``: the bytes of the distinct images against the memory still allocated
with the last observation held, and the peak during the episode.

Run ``python benchmarks/bench_vector.py`` (under a minute on 2 CPU cores); bigger runs with
``--steps 3000 --envs 1,2,4``.
"""

from __future__ import annotations

import argparse
import pickle
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

import drawenv
from drawenv import Box, Draw
from drawenv.env import DrawSpatialEnv
from drawenv.spaces import ModelText
from drawenv.vector import _NewImages

POOL: list = []  # counting tasks generated once, so the loop times the env, not the generator


def make_env(copy_images: bool = True) -> Callable[[], DrawSpatialEnv]:
    if not POOL:
        source = DrawSpatialEnv(task="counting").source
        POOL.extend(source[index] for index in range(16))
    tasks = list(POOL)
    return lambda: DrawSpatialEnv(task=tasks, copy_images=copy_images)


def samplers(count: int, seed: int) -> list[ModelText]:
    spaces = [ModelText() for _ in range(count)]
    for i, space in enumerate(spaces):
        space.seed(seed + i)
    return spaces


def actions(spaces: list[ModelText], images: tuple) -> tuple[str, ...]:
    """One sampled turn per env, with coordinates on the images that env shows."""
    for space, shown in zip(spaces, images, strict=True):
        space.image_sizes = tuple((image.shape[1], image.shape[0]) for image in shown)
    return tuple(space.sample() for space in spaces)


def single_env_rate(steps: int, seed: int, copy_images: bool) -> float:
    env = make_env(copy_images)()
    spaces = samplers(1, seed)
    obs, _ = env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(actions(spaces, (obs["images"],))[0])
        if terminated or truncated:
            obs, _ = env.reset()
    return steps / (time.perf_counter() - start)


def vector_rate(kind: str, count: int, steps: int, seed: int, copy_images: bool) -> float:
    if kind.startswith("drawenv-"):  # make_vec's defaults: no copies, new images only
        make_env()  # the task pool
        envs = drawenv.make_vec(count, kind.removeprefix("drawenv-"), task=list(POOL))
    else:
        fns = [make_env(copy_images) for _ in range(count)]
        envs = SyncVectorEnv(fns) if kind == "sync" else AsyncVectorEnv(fns, shared_memory=False)
    spaces = samplers(count, seed)
    obs, _ = envs.reset(seed=[seed + i for i in range(count)])
    start = time.perf_counter()
    for _ in range(steps // count):
        obs, *_ = envs.step(actions(spaces, obs["images"]))
    rate = (steps // count) * count / (time.perf_counter() - start)
    envs.close()
    return rate


def live_rates(steps: int, seed: int, envs: list[int]) -> list[tuple[str, float]]:
    """Steps/s on the live counting suite: one plain env, then ``make_vec`` with its defaults.
    Every env of every row starts from its own seed, so no row replays items that an earlier
    row rendered (the render cache would make them nearly free)."""
    seeds = (seed + 10_000 * (row + 1) for row in range(100))
    env = DrawSpatialEnv(task="counting")
    spaces = samplers(1, seed)
    obs, _ = env.reset(seed=next(seeds))
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(actions(spaces, (obs["images"],))[0])
        if terminated or truncated:
            obs, _ = env.reset()
    rows = [("one env, plain loop (baseline)", steps / (time.perf_counter() - start))]
    for mode in ("sync", "async"):
        for count in envs:
            vec = drawenv.make_vec(count, mode, task="counting")
            spaces = samplers(count, seed)
            obs, _ = vec.reset(seed=[next(seeds) for _ in range(count)])
            start = time.perf_counter()
            for _ in range(steps // count):
                obs, *_ = vec.step(actions(spaces, obs["images"]))
            rate = (steps // count) * count / (time.perf_counter() - start)
            vec.close()
            rows.append((f"drawenv.make_vec({count}, {mode!r}), defaults", rate))
    return rows


EPISODE = 4  # turns of a scripted episode: three drawings, then the answer


def scripted_turn(protocol, turn: int) -> str:
    """Turn ``turn`` (0-based) of a scripted episode: a box on the newest image, then an answer."""
    if turn < EPISODE - 1:
        box = Box(turn + 1, (20 + 9 * turn, 20, 200 + 9 * turn, 180), f"box {turn}")
        return protocol.format(Draw([box], thought="mark it"))
    return protocol.format(drawenv.Answer("3", thought="done"))


def lockstep_rates(episodes: int, seed: int, envs: list[int]) -> list[tuple[str, float]]:
    """Env steps/s of scripted 4-turn episodes on the live counting suite, every env in step (as
    in a GRPO rollout), so that the envs of a vector env reset together: one plain env, then
    ``make_vec`` with its defaults. Every env starts from a seed of its own."""
    seeds = (seed + 20_000 + 10_000 * row for row in range(100))
    env = DrawSpatialEnv(task="counting")
    env.reset(seed=next(seeds))
    texts = [scripted_turn(env.protocol, turn) for turn in range(EPISODE)]
    start = time.perf_counter()
    for _ in range(episodes):
        env.reset()
        for text in texts:
            env.step(text)
    rows = [("one env, plain loop (baseline)", episodes * EPISODE / (time.perf_counter() - start))]
    for mode in ("sync", "async"):
        for count in envs:
            vec = drawenv.make_vec(count, mode, task="counting")
            vec.reset(seed=[next(seeds) for _ in range(count)])
            rounds = max(episodes // count, 1)
            start = time.perf_counter()
            for _ in range(rounds):
                for text in texts:
                    vec.step((text,) * count)
                vec.step(("",) * count)  # the next-step autoreset: a new episode in every env
            rate = rounds * count * EPISODE / (time.perf_counter() - start)
            vec.close()
            rows.append((f"drawenv.make_vec({count}, {mode!r}), defaults", rate))
    return rows


def bytes_per_step(steps: int, seed: int) -> tuple[float, float, float, float]:
    """Mean image bytes of an observation, mean pickled step result (whole, and as drawenv's
    async worker sends it: new images only), mean images held."""
    env = make_env(copy_images=False)()
    spaces = samplers(1, seed)
    obs, _ = env.reset(seed=seed)
    image_bytes, pickled, sent, held = [], [], [], []
    for _ in range(steps):
        shown = obs
        result = env.step(actions(spaces, (obs["images"],))[0])
        obs = result[0]
        image_bytes.append(sum(image.nbytes for image in obs["images"]))
        pickled.append(len(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)))
        reply = (_NewImages.of(shown, obs), *result[1:])
        sent.append(len(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)))
        held.append(len(obs["images"]))
        if result[2] or result[3]:
            obs, _ = env.reset()
    means = (image_bytes, pickled, sent, held)
    return tuple(float(np.mean(values)) for values in means)


def episode_memory(copy_images: bool, max_images: int) -> tuple[int, int, int, int]:
    """(image count, bytes of those images, bytes allocated while the last observation is held,
    peak bytes) for one episode drawing until the image budget; env setup not counted."""
    record = {
        "id": "budget",
        "images": [np.random.default_rng(0).integers(0, 256, (448, 448, 3), dtype=np.uint8)],
        "question": "How many?",
        "answer_type": "count",
        "answer": 3,
    }
    env = DrawSpatialEnv(
        task=[record], max_images=max_images, max_turns=max_images, copy_images=copy_images
    )
    env.reset(seed=0)  # warm caches (fonts, tags) outside the trace
    tracemalloc.start()
    obs, _ = env.reset(seed=0)
    for turn in range(1, max_images):
        box = Box(turn, (10 + turn, 10, 200 + turn, 150), f"object {turn}")
        obs, *_ = env.step(Draw([box]))
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return len(obs["images"]), sum(image.nbytes for image in obs["images"]), current, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="env steps per throughput row")
    parser.add_argument("--envs", default="1,2", help="vector env sizes")
    parser.add_argument("--max-images", type=int, default=42, help="image budget of the episode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    single_env_rate(args.steps // 10, args.seed, True)  # warm-up: task pool, fonts, caches
    rows = [("one env, plain loop (baseline)", single_env_rate(args.steps, args.seed, True))]
    for copy_images in (True, False):
        for kind in ("sync", "async"):
            for count in (int(v) for v in args.envs.split(",")):
                rate = vector_rate(kind, count, args.steps, args.seed, copy_images)
                name = f"{kind.capitalize()}VectorEnv x{count}, copy_images={copy_images}"
                rows.append((name, rate))
    for kind in ("sync", "async"):
        for count in (int(v) for v in args.envs.split(",")):
            rate = vector_rate(f"drawenv-{kind}", count, args.steps, args.seed, False)
            rows.append((f"drawenv.make_vec({count}, {kind!r}), defaults", rate))
    print(f"{'random agent, counting suite':<46} {'steps/s':>9} {'x baseline':>11}")
    print("-" * 68)
    for name, rate in rows:
        print(f"{name:<46} {rate:>9.0f} {rate / rows[0][1]:>11.2f}")

    print(f"\n{'random agent, live counting suite':<46} {'steps/s':>9} {'x baseline':>11}")
    print("-" * 68)
    live = live_rates(args.steps // 4, args.seed, [int(v) for v in args.envs.split(",")])
    for name, rate in live:
        print(f"{name:<46} {rate:>9.0f} {rate / live[0][1]:>11.2f}")

    print(
        f"\n{'scripted 4-turn episodes, live counting suite':<46} {'steps/s':>9} {'x baseline':>11}"
    )
    print("-" * 68)
    lockstep = lockstep_rates(
        max(args.steps // 40, 4), args.seed, [int(v) for v in args.envs.split(",")]
    )
    for name, rate in lockstep:
        print(f"{name:<46} {rate:>9.0f} {rate / lockstep[0][1]:>11.2f}")

    image_bytes, pickled, sent, held = bytes_per_step(args.steps, args.seed)
    print(f"\nper env step (mean over {args.steps} steps, {held:.1f} images per observation)")
    print(f"  observation image bytes (Sync):      {image_bytes:>12,.0f}")
    print(f"  pickled step result (whole):         {pickled:>12,.0f}  x{pickled / image_bytes:.3f}")
    print(f"  pickled new images only (drawenv):   {sent:>12,.0f}  x{sent / image_bytes:.3f}")

    print(
        f"\n{'one episode at the image budget':<34} {'images':>7} {'image MB':>9} {'held MB':>8} "
        f"{'x images':>9} {'peak MB':>8} {'x images':>9}"
    )
    print("-" * 90)
    for copy_images in (True, False):
        count, images, current, peak = episode_memory(copy_images, args.max_images)
        print(
            f"{f'copy_images={copy_images}':<34} {count:>7} {images / 2**20:>9.1f} "
            f"{current / 2**20:>8.1f} {current / images:>9.2f} {peak / 2**20:>8.1f} "
            f"{peak / images:>9.2f}"
        )


if __name__ == "__main__":
    main()
