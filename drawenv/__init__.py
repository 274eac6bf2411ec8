"""drawenv: a Gymnasium environment for training vision-language models to reason by drawing.

``import drawenv`` registers ``DrawSpatial-v0`` (every built-in suite, or any ``task=``), one
id per built-in suite, ``DrawSpatial-Maze-v0``, ``DrawSpatial-Counting-v0``, … (:data:`ENV_IDS`
lists these), and ``DrawSpatial-ViLaSR-v0`` (:data:`VILASR_ENV_ID`: ViLaSR's rollout and
reward)::

    import gymnasium as gym
    import drawenv

    env = gym.make("DrawSpatial-Counting-v0")  # = gym.make("DrawSpatial-v0", task="counting")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(model_output_text)

    envs = drawenv.make_vec(8, "async", task="counting")  # see drawenv.vector
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from drawenv.actions import Action, Answer, Box, Draw, Line, Operation
from drawenv.errors import DrawEnvError
from drawenv.tasks import SUITES, TaskRecord, TaskSource
from drawenv.vector import make_vec

__version__ = "0.1.0"

# One class serves every id, as in Minigrid: a suite's id only presets `task`, and keyword
# arguments given to gym.make override it, as they override any registered kwargs.
_SUITE_IDS = {f"DrawSpatial-{suite.capitalize()}-v0": suite for suite in SUITES}

ENV_IDS = ("DrawSpatial-v0", *_SUITE_IDS)
"""Every id ``import drawenv`` registers: ``DrawSpatial-v0``, then one per built-in suite."""

if "DrawSpatial-v0" not in registry:
    register(id="DrawSpatial-v0", entry_point="drawenv.env:DrawSpatialEnv")
for _env_id, _suite in _SUITE_IDS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point="drawenv.env:DrawSpatialEnv", kwargs={"task": _suite})
del _env_id, _suite
VILASR_ENV_ID = "DrawSpatial-ViLaSR-v0"
"""ViLaSR's RL rollout and reward, rule for rule (``drawenv.vilasr``; docs/environment.md)."""

if VILASR_ENV_ID not in registry:
    register(id=VILASR_ENV_ID, entry_point="drawenv.vilasr:ViLaSREnv")

__all__ = [
    "ENV_IDS",
    "VILASR_ENV_ID",
    "Action",
    "Answer",
    "Box",
    "Draw",
    "DrawEnvError",
    "Line",
    "Operation",
    "TaskRecord",
    "TaskSource",
    "__version__",
    "make_vec",
]
