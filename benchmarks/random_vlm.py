"""The random-weight Qwen2.5-VL that the GPU benchmarks share, and its scripted-opening policy.

:func:`build_policy` builds the model from a config with random weights (no download), with SDPA
attention, in one of :data:`SIZES`: ``0.8b`` (the default) is a ~0.8B Qwen2.5-VL (a
Qwen2.5-0.5B-sized text model with its 151,936-row vocabulary, untied, and an 8-block vision
tower of Qwen2.5-VL's width); ``16m`` is the ~16M model of ``ScratchConfig``'s defaults (what
``drawenv train init`` builds: hidden 256, 8 layers, 4 heads, 2 key-value heads, a 6-block vision
tower of width 256, 2,048 embedding rows); ``tiny`` is the test model of
:mod:`agents.vlm.testing`. All three use the tiny test tokenizer (1,024 tokens; sampling never
goes beyond it). Random weights never choose to stop, so every turn writes exactly
``max_new_tokens`` tokens (``min_new_tokens`` equals it), and :class:`BenchPolicy` opens each
episode's first turn with a drawing, so that the env draws an image and the second turn sees two.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from agents.vlm.policy import GenerationSettings, VLMPolicy, pick_tokens
from agents.vlm.testing import special_token_ids, tiny_config, tiny_model, tiny_processor
from drawenv.actions import Box, Draw
from drawenv.protocol import get_protocol

TEXT = {  # the size of Qwen2.5-0.5B's text model
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_parameters": {"rope_type": "default", "mrope_section": [8, 12, 12], "rope_theta": 1e6},
}
VISION = {  # Qwen2.5-VL's vision width, 8 blocks instead of 32
    "depth": 8,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 896,
    "fullatt_block_indexes": [3, 7],
}


def opening_ids(tokenizer) -> list[int]:
    """The token ids of the scripted drawing that opens every episode's first turn."""
    text = get_protocol("vilasr").format(Draw([Box(1, (8, 8, 120, 120), "object")], "look"))
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class BenchPolicy(VLMPolicy):
    """Samples as usual, except that each episode's first turn opens with a drawing.

    It reads nothing back from the device: the opening is forced by the turn's step
    (``generated.step``), which every first-turn row has reached while the opening lasts, and the
    sampling is :func:`~agents.vlm.policy.pick_tokens`. So ``rollout(..., read_every=k)`` runs it
    with reads every ``k`` steps like the default policy."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.opening = opening_ids(self.tokenizer)
        self._turns: list[int] | None = None
        self._opening: tuple[torch.Tensor, torch.Tensor] | None = None

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        tokens = pick_tokens(scores, generator=generator, settings=settings)
        step = generated.step
        if step >= len(self.opening) or 0 not in turns:
            return tokens
        if turns is not self._turns:  # one list per turn: copy its first-turn rows over once
            self._turns = turns
            first = torch.tensor([t == 0 for t in turns], device=scores.device)
            self._opening = first, torch.tensor(self.opening, device=scores.device)
        first, opening = self._opening
        return torch.where(first, opening[step], tokens)


SIZES = ("tiny", "16m", "0.8b")
"""Model sizes :func:`build_policy` builds."""


def scratch_sizes() -> tuple[dict, dict]:
    """The text and vision config entries of ``ScratchConfig``'s default model, set as
    ``agents.train.scratch.build_scratch_model`` sets them."""
    from agents.train.config import ScratchConfig

    default = {f.name: f.default for f in dataclasses.fields(ScratchConfig)}
    quarter = default["hidden_size"] // default["heads"] // 16  # rotary half split 2:3:3
    text = {
        "vocab_size": default["vocab_size"],
        "hidden_size": default["hidden_size"],
        "intermediate_size": default["intermediate_size"],
        "num_hidden_layers": default["layers"],
        "num_attention_heads": default["heads"],
        "num_key_value_heads": default["kv_heads"],
        "rope_parameters": {
            "rope_type": "default",
            "mrope_section": [2 * quarter, 3 * quarter, 3 * quarter],
            "rope_theta": float(default["rope_theta"]),
        },
    }
    last = default["vision_depth"] - 1
    vision = {
        "depth": default["vision_depth"],
        "hidden_size": default["vision_hidden_size"],
        "intermediate_size": default["vision_intermediate_size"],
        "num_heads": default["vision_heads"],
        "out_hidden_size": default["hidden_size"],
        "fullatt_block_indexes": sorted({last // 2, last}),
    }
    return text, vision


def build_policy(
    *, tiny: bool = False, size: str | None = None, device: str, dtype: str, max_new_tokens: int
) -> BenchPolicy:
    """The benchmark model of ``size`` (default ``tiny`` if ``tiny`` else ``0.8b``; random
    weights, seed 0) on ``device`` in ``dtype``, in eval mode."""
    size = size or ("tiny" if tiny else "0.8b")
    if size not in SIZES:
        raise ValueError(f"Expected a model size in {SIZES}, got {size!r}.")
    if size == "tiny":
        model, processor = tiny_model(seed=0)
    else:
        processor = tiny_processor()
        text, vision = (TEXT, VISION) if size == "0.8b" else scratch_sizes()
        config = tiny_config(
            text["vocab_size"], special_token_ids(processor.tokenizer), text=text, vision=vision
        )
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        with torch.device(device):
            from transformers import Qwen2_5_VLForConditionalGeneration

            model = Qwen2_5_VLForConditionalGeneration(config)
    settings = GenerationSettings(
        temperature=1.0, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens
    )
    return BenchPolicy(model.to(device, getattr(torch, dtype)).eval(), processor, settings)


def device_name(device: str) -> str:
    """The GPU's name, or the CPU and its torch thread count."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def start_clock(device: str) -> float:
    """Wait for the GPU, reset its peak-memory counter, and return the time."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    return time.perf_counter()


def seconds_since(start: float, device: str) -> float:
    """Seconds since ``start``, once the GPU has finished its queued work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_gib(device: str) -> float | None:
    """The peak GPU memory allocated since the last reset, in GiB (None off CUDA)."""
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def print_header(header: str) -> None:
    """A table's header line and a rule as wide."""
    print(header)
    print("-" * len(header))


def write_json(path: str, report: dict) -> None:
    """Write a benchmark report as indented JSON, making the folder."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
