"""Devices and precision: the dtype names, the ``auto`` device and CUDA autocast, in one place."""

from __future__ import annotations

import contextlib

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


__all__ = ["DTYPES", "autocast", "resolve_device"]
