"""Devices and precision: the dtype names, the ``auto`` device and CUDA autocast, in one place."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Precision names as configs and the command line write them (the keys of
:data:`agents.train.config.DTYPE_NAMES`)."""


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when available, else ``cpu``; anything else is kept."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """Mixed precision in ``dtype`` on CUDA (weights stay as they are); nothing elsewhere."""
    if device.type == "cuda" and dtype != "float32":
        return torch.autocast("cuda", dtype=DTYPES[dtype])
    return contextlib.nullcontext()


class PhaseTimes:
    """Wall seconds spent in named phases (e.g. ``render``, ``prefill``, ``decode``, ``env``),
    summed over calls. On CUDA the device is synchronised as a phase ends, so the work it
    queued counts in that phase, not the next one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str, device: torch.device | None = None) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if device is not None and device.type == "cuda":
                torch.cuda.synchronize(device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


__all__ = ["DTYPES", "PhaseTimes", "autocast", "resolve_device"]
