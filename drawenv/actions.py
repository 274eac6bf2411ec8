"""Typed actions: what a model's turn means once parsed.

Scripted agents and tests can hand these to ``env.step`` instead of text; the env formats them with
its protocol and parses the text back, so typed and text actions take exactly the same path.
Coordinates are in the env's coordinate mode (``pixel`` or ``norm1000``) and image indices are
1-based, as in the protocol text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Box:
    """A labelled bounding box ``(x1, y1, x2, y2)`` on image ``index`` (the "Object Mapper")."""

    index: int
    bbox: tuple[float, float, float, float]
    label: str
    kind: ClassVar[str] = "box"

    def __post_init__(self) -> None:
        object.__setattr__(self, "bbox", tuple(self.bbox))
        object.__setattr__(self, "label", self.label.strip())


@dataclass(frozen=True)
class Line:
    """A labelled auxiliary line from ``start`` to ``end`` on image ``index`` ("Path Tracer")."""

    index: int
    start: tuple[float, float]
    end: tuple[float, float]
    label: str
    kind: ClassVar[str] = "line"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", tuple(self.start))
        object.__setattr__(self, "end", tuple(self.end))
        object.__setattr__(self, "label", self.label.strip())


Operation = Box | Line


@dataclass(frozen=True)
class Draw:
    """A drawing turn: one or more operations, with the model's reasoning text."""

    operations: tuple[Operation, ...]
    thought: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(self.operations))
        object.__setattr__(self, "thought", self.thought.strip())


@dataclass(frozen=True)
class Answer:
    """An answer turn: the final answer text, with the model's reasoning text."""

    text: str
    thought: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", self.text.strip())
        object.__setattr__(self, "thought", self.thought.strip())


Action = Draw | Answer
