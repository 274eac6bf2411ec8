"""Image state: the originals, the generated images and their annotation layers
(docs/environment.md, Drawing semantics).

Each image is its root original plus a set of layers keyed by ``(kind, label)``. Drawing on image k
copies k's layers, replaces those whose key the new operations reuse, adds the rest, and renders the
result from the root's pixels, so a corrected box replaces the old one instead of piling on top.
When the new operations only add layers, the result is drawn on k's own pixels instead (pasting
again only the label tags that a new shape touches, so the pixels are the same): chained drawing
costs about the same at any depth.
Pixels are stored once per image, read-only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from drawenv.actions import Operation
from drawenv.canvas import LabelBoxes, render_layers
from drawenv.geometry import check_operation, same_geometry

MAX_OPERATIONS = 32


@dataclass(frozen=True)
class StoredImage:
    """One image: read-only pixels, the 0-based index of its root original, its layers and
    where their label tags lie (so that drawing more on it need not start from the root)."""

    pixels: np.ndarray
    root: int
    layers: Mapping[tuple[str, str], Operation] = field(default_factory=dict)
    labels: LabelBoxes = ()

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.pixels.shape[1], self.pixels.shape[0]


@dataclass
class Plan:
    """A checked drawing step: what it would draw, and why it cannot (if so)."""

    groups: dict[int, list[Operation]] = field(default_factory=dict)  # 0-based target -> pixel ops
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    repeats: list[str] = field(default_factory=list)


def describe(number: int, op: Operation) -> str:
    """How messages name an operation: its position in the turn, kind, label and target."""
    return f"operation {number} ({op.kind} {op.label[:40]!r} on image {op.index})"


class ImageState:
    """The images of one episode, originals first, and what was drawn on each."""

    def __init__(self, originals: Sequence[np.ndarray]):
        self.images: list[StoredImage] = []
        for i, pixels in enumerate(originals):
            pixels.setflags(write=False)
            self.images.append(StoredImage(pixels, root=i))
        # (width, height) of every image, in order; kept up to date by `apply`.
        self.sizes: tuple[tuple[int, int], ...] = tuple(image.size for image in self.images)
        self.applied: dict[int, list[Operation]] = {}
        # The same operations keyed by (target, kind, label), so the repeat check does not grow
        # with the history.
        self._applied_by_key: dict[tuple[int, str, str], list[Operation]] = {}

    def plan(self, operations: Sequence[Operation], *, coords: str, tolerance: float) -> Plan:
        """Check a step's operations against the current images; never raises."""
        plan = Plan()
        if len(operations) > MAX_OPERATIONS:
            plan.errors.append(
                f"{len(operations)} operations in one turn; at most {MAX_OPERATIONS} are allowed"
            )
            return plan
        sizes = self.sizes
        for number, op in enumerate(operations, start=1):
            # Messages name the operation only when there is something to say about it.
            if not 1 <= op.index <= len(sizes):
                plan.errors.append(
                    f"{describe(number, op)}: image index must be between 1 and {len(sizes)}"
                )
                continue
            width, height = sizes[op.index - 1]
            checked = check_operation(op, width=width, height=height, coords=coords)
            if checked.op is None:
                plan.errors.append(f"{describe(number, op)}: {checked.error}")
                continue
            if checked.warning:
                plan.warnings.append(f"{describe(number, op)}: {checked.warning}")
            if self._repeats(checked.op, tolerance):
                plan.repeats.append(
                    f"{describe(number, op)}: repeats a {op.kind} already drawn with this label "
                    "and geometry"
                )
            plan.groups.setdefault(op.index - 1, []).append(checked.op)
        return plan

    def _repeats(self, op: Operation, tolerance: float) -> bool:
        target = self.images[op.index - 1]
        key = (op.kind, op.label)
        earlier = [*self._applied_by_key.get((op.index - 1, *key), ())]
        if key in target.layers:
            earlier.append(target.layers[key])
        if not earlier:
            return False
        diagonal = math.hypot(*target.size)
        return any(same_geometry(prev, op, tol=tolerance, diagonal=diagonal) for prev in earlier)

    def apply(self, plan: Plan) -> list[int]:
        """Execute a checked plan: one new image per target. Returns the new 1-based indices."""
        new_indices = []
        for target, ops in plan.groups.items():
            source = self.images[target]
            layers = dict(source.layers)
            for op in ops:
                layers[(op.kind, op.label)] = op
            ordered = list(layers.values())
            if len(layers) == len(source.layers) + len(ops):  # only new layers: draw on top
                pixels, under = render_layers(source.pixels, source.labels, ops, ordered)
            else:  # a layer replaced: render every layer from the root's pixels
                root = self.images[source.root].pixels
                pixels, under = render_layers(root, (), ordered, ordered)
            pixels.setflags(write=False)
            self.images.append(StoredImage(pixels, source.root, layers, under))
            self.sizes += (source.size,)
            self.applied.setdefault(target, []).extend(ops)
            for op in ops:
                self._applied_by_key.setdefault((target, op.kind, op.label), []).append(op)
            new_indices.append(len(self.images))
        return new_indices
