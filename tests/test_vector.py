"""Vector envs over every suite: infos batch losslessly, both vector envs play the same episodes as
plain envs (explicit resets and autoresets included), and a failed step never hangs ``close()``."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode

import drawenv
from drawenv import Box, Draw, DrawEnvError
from drawenv.tasks import ANSWER_TYPES
from drawenv.vector import AsyncVectorEnv

N_ENVS, BATCHES, STEPS = 3, 8, 3  # 24 seeds of the mixed task, every suite several times


def build(kind: str, **kwargs) -> gym.vector.VectorEnv:
    if kind == "gym-sync":
        return gym.make_vec("DrawSpatial-v0", num_envs=N_ENVS, vectorization_mode="sync", **kwargs)
    return drawenv.make_vec(N_ENVS, kind.removeprefix("drawenv-"), **kwargs)


class PlainEnvs:
    """Plain envs stepped as a vector env in next-step autoreset mode steps its copies."""

    def __init__(self, n: int, **kwargs):
        self.envs = [gym.make("DrawSpatial-v0", **kwargs) for _ in range(n)]
        self.ended = [False] * n

    def reset(self, seeds: list[int]) -> list[tuple]:
        self.ended = [False] * len(self.envs)
        return [env.reset(seed=seed) for env, seed in zip(self.envs, seeds, strict=True)]

    def step(self, actions: tuple[str, ...]) -> list[tuple]:
        results = []
        for k, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if self.ended[k]:
                obs, info = env.reset()
                results.append((obs, 0.0, False, False, info))
                self.ended[k] = False
            else:
                results.append(env.step(action))
                self.ended[k] = results[-1][2] or results[-1][3]
        return results


def policy(env: gym.Env, seed: int, step: int) -> str:
    """Draw first on some seeds, then answer: the truth on even seeds, "A" on odd ones."""
    protocol, task = env.unwrapped.protocol, env.unwrapped.task
    if step == 0 and seed % 3 == 0:
        return protocol.format(Draw([Box(1, (10, 10, 60, 60), "first")], thought="mark it"))
    answer = str(task.answer) if seed % 2 == 0 else "A"
    return protocol.format(drawenv.Answer(answer, thought="done"))


def unbatch(infos: dict, k: int) -> dict:
    """Env ``k``'s info out of a batched info dict, numpy scalars made Python values."""
    info = {}
    for key, value in infos.items():
        if key.startswith("_") or not infos[f"_{key}"][k]:
            continue
        if isinstance(value, dict):
            info[key] = unbatch(value, k)
        else:
            item = value[k]
            info[key] = item.item() if isinstance(item, np.generic) else item
    return info


def assert_same(batched, plain, where: str) -> None:
    """Equal values of equal types (so a cast, say 5.66 to 5, fails); NaN equals NaN."""
    if isinstance(plain, dict):
        assert isinstance(batched, dict) and sorted(batched) == sorted(plain), where
        for key in plain:
            assert_same(batched[key], plain[key], f"{where}[{key!r}]")
        return
    assert type(batched) is type(plain), f"{where}: {batched!r} vs {plain!r}"
    if isinstance(plain, float) and math.isnan(plain):
        assert math.isnan(batched), where
    else:
        assert batched == plain, f"{where}: {batched!r} vs {plain!r}"


def same(a, b) -> bool:
    """``data_equivalence(a, b, exact=True)``, but NaN equals NaN (the ``answer_number`` of a
    letter answer)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, np.ndarray):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype == object:
            return all(map(same, a, b))
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def assert_batch_equals(batched: tuple, plain: list[tuple], where: str) -> None:
    obs, *rest, infos = batched
    for k, single in enumerate(plain):
        here = f"{where}, env {k}"
        single_obs, *single_rest, single_info = single
        assert obs["text"][k] == single_obs["text"], here
        assert data_equivalence(obs["images"][k], single_obs["images"], exact=True), here
        for name, values, value in zip(("reward", "terminated", "truncated"), rest, single_rest):
            assert values[k] == value, f"{here}: {name}"
        assert_same(unbatch(infos, k), single_info, f"{here}: info")


@pytest.mark.parametrize("kind", ["gym-sync", "drawenv-sync", "drawenv-async"])
def test_mixed_task_vector_envs_equal_plain_envs(kind):
    envs, plain = build(kind, task="mixed"), PlainEnvs(N_ENVS, task="mixed")
    answer_types = set()
    try:
        for batch in range(BATCHES):
            seeds = [batch * N_ENVS + k for k in range(N_ENVS)]
            obs, infos = envs.reset(seed=seeds)
            assert_batch_equals((obs, infos), plain.reset(seeds), f"reset {seeds}")
            for step in range(STEPS):
                actions = tuple(
                    policy(env, seed, step) for env, seed in zip(plain.envs, seeds, strict=True)
                )
                batched = envs.step(actions)
                assert_batch_equals(batched, plain.step(actions), f"seeds {seeds}, step {step}")
                answer_types.update(t for t in batched[-1].get("answer_type", ()) if t)
    finally:
        envs.close()
    assert answer_types == set(ANSWER_TYPES) - {"text"}  # the suites have no text answers


def test_every_info_key_has_one_type_across_suites():
    types: dict[str, set] = {}
    for suite in drawenv.tasks.SUITES:
        env = gym.make("DrawSpatial-v0", task=suite)
        for seed in range(3):
            _, info = env.reset(seed=seed)
            for key, value in info.items():
                types.setdefault(key, set()).add(type(value))
            for step in range(2):
                *_, info = env.step(policy(env, seed, step))
                for key, value in info.items():
                    types.setdefault(key, set()).add(type(value))
                if "termination" in info:
                    break
    assert types.pop("prediction") <= {str, type(None)}
    assert {key: sorted(t.__name__ for t in kinds) for key, kinds in types.items()} == {
        "reward_terms": ["dict"],
        "operations": ["list"],
        "new_image_indices": ["list"],
        "errors": ["list"],
        "turn": ["int"],
        "task_id": ["str"],
        "system_prompt": ["str"],
        "termination": ["str"],
        "answer": ["str"],
        "answer_number": ["float"],
        "answer_type": ["str"],
    }


def test_answer_as_text_and_number():
    env = gym.make("DrawSpatial-v0", task="depth")
    for seed in range(6):
        env.reset(seed=seed)
        task = env.unwrapped.task
        *_, info = env.step(env.unwrapped.protocol.format(drawenv.Answer("A")))
        assert info["answer"] == str(task.answer)
        if task.answer_type in ("numeric", "count"):
            assert info["answer_number"] == float(task.answer)
        else:
            assert math.isnan(info["answer_number"])


def test_async_first_action_after_an_explicit_reset_is_played():
    """An ended episode, then reset(seed=...): the next step must step the new episode."""
    envs, plain = drawenv.make_vec(2, "async", task="counting"), PlainEnvs(2, task="counting")
    answer = plain.envs[0].unwrapped.protocol.format(drawenv.Answer("3"))
    try:
        for seeds in ([0, 1], [2, 3], [4, 5]):
            assert_batch_equals(envs.reset(seed=seeds), plain.reset(seeds), f"reset {seeds}")
            batched = envs.step((answer, answer))
            assert batched[2].all() and list(batched[-1]["turn"]) == [1, 1]
            assert_batch_equals(batched, plain.step((answer, answer)), f"step {seeds}")
    finally:
        envs.close()


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_async_matches_sync_in_other_autoreset_modes(mode):
    vector_kwargs = {"autoreset_mode": mode}
    sync = drawenv.make_vec(2, "sync", vector_kwargs=vector_kwargs, task="mixed")
    asynchronous = drawenv.make_vec(2, "async", vector_kwargs=vector_kwargs, task="mixed")
    answer = "<think> done </think> Action: Answer\n<answer> A </answer>"
    try:
        for seeds in ([0, 1], [4, 5]):
            assert same(sync.reset(seed=seeds), asynchronous.reset(seed=seeds))
            assert same(sync.step((answer, answer)), asynchronous.step((answer, answer)))
    finally:
        sync.close()
        asynchronous.close()


# -- close() after a failed step: in a subprocess, so that a hang fails the test, not the run -----

FAILURES = {
    # a user's wrapper copies the raw task answer (an int or a letter) into info: batching fails
    # in the main process after every worker has answered
    "infos-not-batchable": """
        class RawAnswer(gym.Wrapper):
            def step(self, action):
                *step, info = self.env.step(action)
                return *step, {**info, "raw": self.unwrapped.task.answer}

        envs = drawenv.make_vec(2, "async", wrappers=[RawAnswer], task="mixed")
        envs.reset(seed=[0, 1])  # a maze (count) and a multiview (letter) task
        try:
            envs.step((ANSWER, ANSWER))
        except ValueError as error:
            print("step failed:", error)
    """,
    # a step raises inside one worker
    "worker-raises": """
        envs = drawenv.make_vec(2, "async", task="counting")
        envs.reset(seed=[0, 1])
        try:
            envs.step((123, ANSWER))
        except DrawEnvError as error:
            print("step failed:", error)
    """,
    # a reset raises inside every worker
    "reset-raises": """
        envs = drawenv.make_vec(2, "async", task="counting")
        try:
            envs.reset(seed=[0, 1], options={"indx": 3})
        except DrawEnvError as error:
            print("reset failed:", error)
    """,
}
PRELUDE = """
import gymnasium as gym
import drawenv
from drawenv import DrawEnvError
ANSWER = "<think> done </think> Action: Answer\\n<answer> A </answer>"
"""


@pytest.mark.parametrize("failure", list(FAILURES))
def test_close_returns_after_a_failed_call(failure):
    script = PRELUDE + textwrap.dedent(FAILURES[failure]) + "envs.close()\nprint('closed')\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "failed:" in done.stdout and done.stdout.rstrip().endswith("closed"), done.stdout


def test_make_vec_arguments_are_checked():
    with pytest.raises(DrawEnvError, match="Did you mean 'async'"):
        drawenv.make_vec(2, "asyn")
    with pytest.raises(DrawEnvError, match="Invalid `num_envs`"):
        drawenv.make_vec(0)
    with pytest.raises(DrawEnvError, match="Invalid `shared_memory`"):
        AsyncVectorEnv([lambda: gym.make("DrawSpatial-v0")], shared_memory=True)


def test_make_vec_copies_nothing_by_default():
    envs = drawenv.make_vec(2, "sync", task="counting")
    try:
        assert envs.copy is False
        assert [env.unwrapped.copy_images for env in envs.envs] == [False, False]
        obs, _ = envs.reset(seed=[0, 1])
        turn = Draw([Box(1, (10, 10, 60, 60), "first")], thought="mark it")
        text = envs.envs[0].unwrapped.protocol.format(turn)
        later, *_ = envs.step((text, text))
        for k in range(2):
            first = obs["images"][k][0]
            assert not first.flags.writeable
            assert np.shares_memory(first, later["images"][k][0])  # handed out, not copied
            assert len(later["images"][k]) == 2
    finally:
        envs.close()
    copied = drawenv.make_vec(1, "sync", copy_images=True, vector_kwargs={"copy": True})
    try:
        assert copied.copy is True and copied.envs[0].unwrapped.copy_images is True
    finally:
        copied.close()


def test_async_workers_send_only_new_images():
    from drawenv.vector import _NewImages

    env = gym.make("DrawSpatial-v0", task="counting", copy_images=False, disable_env_checker=True)
    shown, _ = env.reset(seed=0)
    text = env.unwrapped.protocol.format(Draw([Box(1, (10, 10, 60, 60), "first")]))
    after, *_ = env.step(text)
    sent = _NewImages.of(shown, after)
    assert isinstance(sent, _NewImages) and sent.kept == 1 and len(sent.images) == 1
    assert sent.images[0] is after["images"][1] and sent.rest == {"text": after["text"]}
    rebuilt = sent.observation(shown["images"])
    assert rebuilt["images"][0] is shown["images"][0] and rebuilt["text"] == after["text"]
    assert _NewImages.of({"images": (np.zeros((2, 2, 3), np.uint8),)}, after) is after

    envs = drawenv.make_vec(2, "async", task="counting")
    plain = PlainEnvs(2, task="counting")
    try:
        seeds = [3, 4]
        assert_batch_equals(envs.reset(seed=seeds), plain.reset(seeds), "reset")
        for turn in range(1, 4):  # each turn draws on the newest image: the history grows
            action = plain.envs[0].unwrapped.protocol.format(
                Draw([Box(turn, (10 + turn, 10, 60 + turn, 60), f"box {turn}")])
            )
            batched = envs.step((action, action))
            assert_batch_equals(batched, plain.step((action, action)), f"turn {turn}")
            assert [len(images) for images in batched[0]["images"]] == [turn + 1] * 2
            assert not any(i.flags.writeable for images in batched[0]["images"] for i in images)
    finally:
        envs.close()
