"""What every agent is: something that writes one model turn from an observation.

Agents act through the same text protocol a VLM uses: ``act`` returns the turn's text, which the
env parses. Only agents with ``uses_ground_truth = True`` (the oracle) are handed the task record;
every other agent sees what a model sees: the images, the env's messages and ``info``.
"""

from __future__ import annotations

from typing import Any

from drawenv.actions import Action
from drawenv.protocol import Protocol, get_protocol
from drawenv.tasks import TaskRecord


class Agent:
    """Base class of the scripted agents.

    Subclasses implement :meth:`begin` (optional) and :meth:`decide`, returning typed actions;
    :meth:`act` writes them in the env's protocol.
    """

    name = "agent"
    uses_ground_truth = False

    def reset(
        self,
        obs: dict[str, Any],
        info: dict[str, Any],
        *,
        protocol: str = "vilasr",
        coords: str = "pixel",
        seed: int = 0,
        task: TaskRecord | None = None,
    ) -> None:
        """Start an episode: remember the protocol, the coordinate mode and the first message."""
        self.protocol: Protocol = get_protocol(protocol)
        self.coords = coords
        self.seed = seed
        self.turn = 0
        self.begin(obs, info, task)

    def begin(self, obs: dict[str, Any], info: dict[str, Any], task: TaskRecord | None) -> None:
        """Look at the first observation (and, for the oracle, the task)."""

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        """The next turn's text."""
        action = self.decide(obs, info)
        self.turn += 1
        return self.protocol.format(action)

    def decide(self, obs: dict[str, Any], info: dict[str, Any]) -> Action:
        """The next turn as a typed action."""
        raise NotImplementedError
