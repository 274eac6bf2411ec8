"""One conformance test per registered id (and key configurations): Gymnasium's checker, seeding,
pickling and vector envs.

``DrawSpatial-v0`` (every suite) runs under each configuration and both vector envs; the per-suite
ids, which differ from it only in ``task``, run under the default configuration and the
synchronous vector env.
"""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import drawenv
from drawenv.tasks import SUITES

CONFIGS = [
    {},
    {"protocol": "tool_call"},
    {"coords": "norm1000", "repeat_policy": "feedback", "reward": "sr_real"},
]
MAIN_ID, *SUITE_IDS = drawenv.ENV_IDS
CASES = [(MAIN_ID, kwargs) for kwargs in CONFIGS] + [(env_id, {}) for env_id in SUITE_IDS]
IDS = [f"{env_id}-{'-'.join(map(str, kwargs.values())) or 'default'}" for env_id, kwargs in CASES]
VECTOR_CASES = [
    *((env_id, kwargs, mode) for env_id, kwargs in CASES[:2] for mode in ("sync", "async")),
    *((env_id, {}, "sync") for env_id in SUITE_IDS),
]


def rollout(env: gym.Env, seed: int, steps: int = 6) -> list:
    """Reset with ``seed``, step with the action space's own seeded samples, record everything."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    record = [obs]
    for _ in range(steps):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        record.append((action, obs, reward, terminated, truncated, info.get("termination")))
        if terminated or truncated:
            obs, _ = env.reset()
            record.append(obs)
    return record


def same(a, b) -> bool:
    return gym.utils.env_checker.data_equivalence(a, b, exact=True)


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=IDS)
def test_check_env_passes_without_warnings(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=IDS)
def test_same_seed_same_everything(env_id, kwargs):
    first = rollout(gym.make(env_id, **kwargs), seed=7)
    second = rollout(gym.make(env_id, **kwargs), seed=7)
    assert same(first, second)
    third = rollout(gym.make(env_id, **kwargs), seed=8)
    assert not same(first[0], third[0])


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=IDS)
def test_pickle_round_trip_mid_episode(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(0)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(3):
        action = env.action_space.sample()
        step_a = env.step(action)
        step_b = clone.step(action)
        assert same(step_a, step_b)
        if step_a[2] or step_a[3]:
            break


@pytest.mark.parametrize(
    ("env_id", "kwargs", "mode"),
    VECTOR_CASES,
    ids=[
        f"{env_id}-{'-'.join(kwargs.values()) or 'default'}-{mode}"
        for env_id, kwargs, mode in VECTOR_CASES
    ],
)
def test_vector_envs_match_single_envs(env_id, kwargs, mode):
    n, seeds = 2, [11, 12]
    vector_kwargs = {"shared_memory": False} if mode == "async" else {}
    envs = gym.make_vec(
        env_id, num_envs=n, vectorization_mode=mode, vector_kwargs=vector_kwargs, **kwargs
    )
    singles = [gym.make(env_id, **kwargs) for _ in range(n)]
    obs, _ = envs.reset(seed=seeds)
    single_obs = [env.reset(seed=s)[0] for env, s in zip(singles, seeds)]
    for i in range(n):
        assert np.array_equal(obs["text"][i], single_obs[i]["text"])
        assert same(obs["images"][i], single_obs[i]["images"])
    for step in range(4):
        actions = tuple(
            env.unwrapped.protocol.format(
                drawenv.Draw([drawenv.Box(1, (10 + step, 10, 90, 90), f"b{step}")])
            )
            for env in singles
        )
        obs, rewards, terms, truncs, infos = envs.step(actions)
        for i, env in enumerate(singles):
            o, r, t, tr, _ = env.step(actions[i])
            assert same(obs["images"][i], o["images"]) and obs["text"][i] == o["text"]
            assert (rewards[i], terms[i], truncs[i]) == (r, t, tr)
    envs.close()


def test_env_ids_are_every_registered_drawspatial_id():
    registered = [env_id for env_id in gym.registry if env_id.startswith("DrawSpatial")]
    assert sorted(registered) == sorted((*drawenv.ENV_IDS, drawenv.VILASR_ENV_ID))
    assert drawenv.ENV_IDS[0] == "DrawSpatial-v0"
    assert len(drawenv.ENV_IDS) == len(set(drawenv.ENV_IDS)) == 1 + len(SUITES)


@pytest.mark.parametrize("suite", list(SUITES))
def test_suite_id_plays_its_suite(suite):
    env_id = f"DrawSpatial-{suite.capitalize()}-v0"
    assert env_id in drawenv.ENV_IDS
    env = gym.make(env_id)
    for seed in (0, 1, 2):
        env.reset(seed=seed)
        assert env.unwrapped.task.metadata["suite"] == suite
    # the same episodes as DrawSpatial-v0 with task=suite
    plain = gym.make("DrawSpatial-v0", task=suite)
    assert same(rollout(env, seed=5, steps=2), rollout(plain, seed=5, steps=2))


def test_make_kwargs_override_the_ids_task():
    env = gym.make("DrawSpatial-Maze-v0", task="counting")
    assert env.spec.kwargs["task"] == "counting"
    env.reset(seed=0)
    assert env.unwrapped.task.metadata["suite"] == "counting"
