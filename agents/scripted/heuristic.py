"""``HeuristicAgent``: reads only pixels and the question text, draws what it found, answers.

Each built-in kind of question has a solver module in :mod:`agents.scripted.solvers` (OpenCV colour
segmentation, connected components, label template matching, BFS on the maze picture, the scale
bar, ground-plane geometry). The agent picks the first solver whose ``matches`` accepts the
question; when none does, it answers with the text-only guess.
"""

from __future__ import annotations

import importlib
from typing import Any

from agents.base import Agent
from agents.scripted.baselines import text_only_guess, to_env_coords
from drawenv.actions import Action, Answer, Draw
from drawenv.prompts import read_question_prompt
from drawenv.tasks import TaskRecord

SOLVERS = (
    "agents.scripted.solvers.floorplan",
    "agents.scripted.solvers.depth",
    "agents.scripted.solvers.counting",
    "agents.scripted.solvers.multiview",
    "agents.scripted.solvers.maze",
)


class HeuristicAgent(Agent):
    """Pixel heuristics per question kind; one drawing turn with what was found, then the answer."""

    name = "heuristic"

    def begin(self, obs: dict[str, Any], info: dict[str, Any], task: TaskRecord | None) -> None:
        prompt = read_question_prompt(obs["text"])
        solver = next((m for m in map(importlib.import_module, SOLVERS) if m.matches(prompt)), None)
        self.operations: tuple = ()
        self.answer = text_only_guess(obs["text"])
        if solver is not None:
            solution = solver.solve(obs["images"], prompt)
            self.operations = to_env_coords(solution.operations, obs["images"], self.coords)
            self.answer = solution.answer

    def decide(self, obs: dict[str, Any], info: dict[str, Any]) -> Action:
        if self.turn == 0 and self.operations:
            return Draw(self.operations, thought="Let me mark what I found.")
        return Answer(self.answer, thought="From what I measured.")
