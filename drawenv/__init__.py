"""drawenv: a Gymnasium environment for training vision-language models to reason by drawing.

``import drawenv`` registers ``DrawSpatial-v0``::

    import gymnasium as gym
    import drawenv

    env = gym.make("DrawSpatial-v0", task="counting")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(model_output_text)
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from drawenv.actions import Action, Answer, Box, Draw, Line, Operation
from drawenv.errors import DrawEnvError
from drawenv.tasks import TaskRecord, TaskSource

__version__ = "0.1.0"

ENV_IDS = ("DrawSpatial-v0",)

if "DrawSpatial-v0" not in registry:
    register(id="DrawSpatial-v0", entry_point="drawenv.env:DrawSpatialEnv")

__all__ = [
    "ENV_IDS",
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
]
