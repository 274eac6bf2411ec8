"""Trainer checkpoints written atomically and resumed exactly.

A checkpoint is a folder ``output_dir/checkpoint-12`` (for step 12) holding

- ``model/``: the weights (safetensors, through ``save_pretrained``) and the processor, loadable
  by :meth:`agents.vlm.policy.VLMPolicy.from_pretrained` like any model folder;
- ``trainer_state.pt``: the optimiser and scheduler states, the step, and every random state a
  run draws from (Python, NumPy, torch CPU and CUDA, and the trainer's own task-sampling
  generator), read back with ``torch.load(weights_only=True)``: no pickled objects.

Writes go to a temporary sibling folder that is renamed into place with ``os.replace``, so a
crash leaves either the previous checkpoint or the new one, never half of one. The temporary
folders a crash leaves behind (``.NAME.tmp-*``, ``.NAME.old-*``) are removed when a run starts
(:func:`remove_stale`), and :func:`prune_checkpoints` keeps only the newest ``keep_last``.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"
MODEL_DIR = "model"
PREFIX = "checkpoint-"


@dataclass
class TrainerState:
    """What :func:`load_checkpoint` read back."""

    step: int
    """Training steps completed."""
    model_dir: Path
    """The checkpoint's model folder (weights and processor)."""
    sampler_state: dict[str, Any] | None
    """The trainer's task-sampling ``numpy.random.Generator`` bit-generator state."""
    extra: dict[str, Any]


def _jsonable_numpy_state() -> dict[str, Any]:
    state = np.random.get_state(legacy=False)
    state["state"] = {k: np.asarray(v).tolist() for k, v in state["state"].items()}
    return state


def rng_states() -> dict[str, Any]:
    """Every global random state: Python, NumPy, torch CPU and (when present) CUDA."""
    states: dict[str, Any] = {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": _jsonable_numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    random.setstate((states["python_version"], tuple(states["python"]), states["python_gauss"]))
    numpy_state = dict(states["numpy"])
    numpy_state["state"] = {
        k: np.asarray(v, dtype=np.uint32) if isinstance(v, list) else v
        for k, v in numpy_state["state"].items()
    }
    np.random.set_state(numpy_state)
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives."""
    return Path(output_dir) / f"{PREFIX}{step}"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step under ``output_dir``, or ``None``."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    complete = [p for p in folder.iterdir() if _step(p) is not None and (p / STATE_FILE).is_file()]
    return max(complete, key=_step, default=None)


def _step(path: Path) -> int | None:
    """The step of a ``checkpoint-STEP`` folder name, None for any other name."""
    number = path.name[len(PREFIX) :]
    return int(number) if path.name.startswith(PREFIX) and number.isdigit() else None


def remove_stale(output_dir: str | Path) -> list[Path]:
    """Remove what interrupted writes left in ``output_dir``: ``.NAME.tmp-*`` folders, and
    ``.NAME.old-*`` ones (put back as ``NAME`` when a crash came between the two renames and
    ``NAME`` is gone). Call it before the run writes anything; returns the folders removed."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        name, _, kind = path.name[1:].rpartition(".")
        if not (path.name.startswith(".") and name and kind.startswith(("tmp-", "old-"))):
            continue
        if not path.is_dir() or path.is_symlink():
            continue
        target = folder / name
        if kind.startswith("old-") and not target.exists():
            os.replace(path, target)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def prune_checkpoints(
    output_dir: str | Path, keep_last: int, *, keep: Iterable[str | Path | None] = ()
) -> list[Path]:
    """Delete all but the newest ``keep_last`` ``checkpoint-STEP`` folders in ``output_dir``
    (0 keeps all), never one of ``keep`` (the one just written, the one resumed from); returns
    the folders deleted."""
    if keep_last <= 0:
        return []
    folder = Path(output_dir)
    kept = {Path(p).resolve() for p in keep if p is not None}
    found = sorted(
        (p for p in folder.iterdir() if p.is_dir() and _step(p) is not None),
        key=_step,
        reverse=True,
    )
    deleted = []
    for path in found[keep_last:]:
        if path.resolve() not in kept:
            shutil.rmtree(path)
            deleted.append(path)
    return deleted


def write_atomically(target: Path, fill: Any) -> Path:
    """Call ``fill(tmp)`` on a fresh temporary folder beside ``target``, then rename it to
    ``target`` (replacing an older folder of that name only once the new one is complete)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        fill(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def save_checkpoint(
    path: str | Path,
    *,
    model: Any,
    processor: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
    sampler: np.random.Generator | None = None,
    model_state: dict[str, torch.Tensor] | None = None,
    optimizer_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder at ``path`` atomically; returns ``path``.

    ``model_state`` and ``optimizer_state`` replace ``model.state_dict()`` and
    ``optimizer.state_dict()`` where the caller gathered full states (FSDP).
    """

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp / MODEL_DIR, state_dict=model_state, safe_serialization=True)
        processor.save_pretrained(tmp / MODEL_DIR)
        state = {
            "step": int(step),
            "optimizer": optimizer_state if optimizer_state is not None else optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_states(),
            "sampler": sampler.bit_generator.state if sampler is not None else None,
            "extra": extra or {},
        }
        torch.save(state, tmp / STATE_FILE)

    return write_atomically(Path(path), fill)


def load_checkpoint(
    path: str | Path,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
    load_optimizer: bool = True,
) -> TrainerState:
    """Read a checkpoint folder: restore the optimiser and scheduler states (the model is loaded
    from ``TrainerState.model_dir`` by the caller) and, with ``restore_rng``, the random states."""
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(
            f"Expected a checkpoint folder with {STATE_FILE}, got {str(path)!r}. Give a "
            f"OUTPUT_DIR/checkpoint-STEP folder (or resume=true for the latest one)."
        )
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    if optimizer is not None and load_optimizer:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        set_rng_states(state["rng"])
    return TrainerState(
        step=int(state["step"]),
        model_dir=path / MODEL_DIR,
        sampler_state=state["sampler"],
        extra=dict(state.get("extra") or {}),
    )


def resolve_resume(resume: bool | str | Path | None, output_dir: str | Path) -> Path | None:
    """The checkpoint a run's ``resume`` setting names: ``true``/``"latest"`` the latest
    ``checkpoint-STEP`` in ``output_dir`` (None, with a note, when there is none yet), a path that
    folder, ``false``/None nothing."""
    if resume in (None, False, "", "false", "False", "none"):
        return None
    if resume in (True, "true", "True", "latest"):
        found = latest_checkpoint(output_dir)
        if found is None:
            print(f"resume: no checkpoint-STEP folder in {output_dir}; starting at step 0.")
        return found
    return Path(resume)


def save_final(
    path: Path, model: Any, processor: Any, state_dict: dict[str, Any] | None = None
) -> Path:
    """Write the trained model (safetensors) and its processor to the folder ``path``
    atomically, where :meth:`VLMPolicy.from_pretrained` loads it; returns ``path``."""

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        processor.save_pretrained(tmp)

    return write_atomically(path, fill)


def read_optimizer_state(path: str | Path) -> dict[str, Any]:
    """The raw optimiser state dict of a checkpoint (for callers that shard it themselves)."""
    state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)
    return state["optimizer"]


__all__ = [
    "TrainerState",
    "checkpoint_dir",
    "latest_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "read_optimizer_state",
    "remove_stale",
    "resolve_resume",
    "rng_states",
    "save_checkpoint",
    "save_final",
    "set_rng_states",
    "write_atomically",
]
