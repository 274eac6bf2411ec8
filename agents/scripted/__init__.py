"""The scripted wing: baseline agents that play DrawSpatial-v0 without learning.

:mod:`agents.scripted.baselines` holds the random, answer-only and oracle agents,
:mod:`agents.scripted.heuristic` the pixel-reading agent with one solver per question kind
(:mod:`agents.scripted.solvers`, built on the pixel helpers of :mod:`agents.scripted.vision`).
:data:`AGENTS` names them for the command line.
"""

from __future__ import annotations

from agents.base import Agent
from agents.scripted.baselines import AnswerOnlyAgent, OracleAgent, RandomAgent
from agents.scripted.heuristic import HeuristicAgent
from drawenv.errors import check_choice

AGENTS: dict[str, type[Agent]] = {
    "random": RandomAgent,
    "answer_only": AnswerOnlyAgent,
    "heuristic": HeuristicAgent,
    "oracle": OracleAgent,
}
"""The scripted agents by their command-line name (``drawenv eval --agent NAME``)."""


def make_agent(name: str) -> Agent:
    """A scripted agent by its command-line name; an unknown name is a clear error."""
    return AGENTS[check_choice("--agent", name, AGENTS)]()


__all__ = [
    "AGENTS",
    "AnswerOnlyAgent",
    "HeuristicAgent",
    "OracleAgent",
    "RandomAgent",
    "make_agent",
]
