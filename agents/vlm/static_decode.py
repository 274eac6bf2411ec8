"""Static-shape decoding: a decode step on fixed buffers, on CUDA captured once and replayed.

:meth:`agents.vlm.policy.VLMPolicy.generate` prefills into a growing ``DynamicCache``. Eager
decoding then grows that cache and the attention mask by one column a step, so every step has
new shapes and runs one Python call per kernel. Static decoding (``VLMPolicy(decode="static")``,
the default on CUDA) copies the prefilled cache into a transformers ``StaticCache`` of a fixed
length instead, and decodes on fixed buffers: the fed tokens, their rotary positions, and a
boolean mask over the cache's whole length that gains one column a step. On CUDA that step is
captured once in a CUDA graph and replayed, one launch a token. The captured steps are kept,
one per batch size bucket, cache length bucket and autocast setting, and reused by later turns
and calls; a change of the model's parameter storage (a new dtype or device) drops them.

Sampling, stop checks and the turn's bookkeeping stay outside the step, as in eager decoding,
so both paths see the same scores and the same random draws. The step attends over the whole
fixed cache with the unused columns masked, so its sums run over other shapes and round
differently: in float32 the log-probs agree to about 1e-6 and the tokens are the same (tested
on the CPU); in bf16 tokens may differ. ``decode="eager"`` keeps the growing cache.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext
from typing import Any

import torch

CAPACITY_STEP = 256
"""A turn's static cache holds its prefill and its longest possible turn, rounded up to a
multiple of this many tokens, so turns of similar lengths reuse one captured step."""

KEPT_STEPS = 4
"""Static steps (each with its cache) kept per policy; the least recently used goes first."""


def static_cache_supported() -> bool:
    """Whether this transformers' ``StaticCache`` keeps its length in a device tensor, which a
    captured step needs (it advances inside the graph)."""
    try:
        from transformers.cache_utils import StaticLayer

        return isinstance(StaticLayer(max_cache_len=1).cumulative_length, torch.Tensor)
    except (ImportError, AttributeError, TypeError):
        return False


def row_bucket(rows: int) -> int:
    """The batch size a static step is built for: ``rows`` rounded up to a power of two, so a
    batch whose episodes end one by one replays a few captured steps, not one per size."""
    return 1 << (rows - 1).bit_length()


def _autocast() -> torch.dtype | None:
    """The CUDA autocast dtype in force, or None."""
    return torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None


class StaticStep:
    """One static-shape decode step: a ``StaticCache`` of ``capacity`` columns for ``rows``
    rows, its input buffers and, on CUDA, the step captured in a graph.

    :meth:`fill` loads a batch's prefill (``rows`` or fewer rows; the others are idle),
    :meth:`__call__` feeds one token a row and returns the next logits, :meth:`kept` hands the
    fed tokens' keys and values back to the ``DynamicCache`` the turn started from.
    """

    def __init__(
        self,
        model: Any,
        cache_argument: str,
        rows: int,
        capacity: int,
        position_dims: tuple[int, ...],
        autocast: torch.dtype | None,
    ):
        from transformers import StaticCache

        device = next(model.parameters()).device
        self.model, self.cache_argument, self.autocast = model, cache_argument, autocast
        self.capacity = capacity
        self.cache = StaticCache(config=model.config, max_cache_len=capacity)
        self.ids = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.position = torch.zeros((*position_dims, rows, 1), dtype=torch.long, device=device)
        self.mask = torch.zeros((rows, 1, 1, capacity), dtype=torch.bool, device=device)
        self.index = torch.zeros(1, dtype=torch.long, device=device)
        self.logits: torch.Tensor | None = None
        self.graph: Any = None
        self.rows = self.prefilled = self.fed = 0
        self.past: Any = None
        self.attention_mask: torch.Tensor | None = None

    def fill(self, past: Any, attention_mask: torch.Tensor, start: torch.Tensor) -> None:
        """Load a turn's prefill: the ``DynamicCache`` ``past`` with its (B, P) ``attention_mask``
        (0 on padding), and ``start``, the rotary position of each row's first decoded token."""
        rows, prefilled = attention_mask.shape
        idle = len(self.ids) - rows
        self.cache.reset()
        for layer, (keys, values) in enumerate(_layers(past)):
            if idle:
                keys = torch.cat([keys, keys.new_zeros((idle, *keys.shape[1:]))])
                values = torch.cat([values, values.new_zeros((idle, *values.shape[1:]))])
            self.cache.update(keys, values, layer)
        self.mask.zero_()
        self.mask[:rows, 0, 0, :prefilled] = attention_mask.bool()
        self.mask[rows:, 0, 0, 0] = True  # idle rows see one (zero) key: no empty softmax
        self.position.zero_()
        self.position[..., :rows, :] = start
        self.index.fill_(prefilled)
        self.rows, self.prefilled, self.fed = rows, prefilled, 0
        self.past, self.attention_mask = past, attention_mask

    def _step(self) -> None:
        self.mask.index_fill_(-1, self.index, True)
        # Autocast's cache of cast weights would hand a captured graph freed memory.
        cast = self.autocast
        with torch.autocast("cuda", dtype=cast, cache_enabled=False) if cast else nullcontext():
            out = self.model(
                input_ids=self.ids,
                attention_mask={"full_attention": self.mask},
                position_ids=self.position,
                use_cache=True,
                **{self.cache_argument: self.cache},
            )
        logits = out.logits[:, -1]
        if self.logits is None:
            self.logits = torch.empty_like(logits)
        self.logits.copy_(logits)
        self.position.add_(1)
        self.index.add_(1)

    def capture(self, pool: Any) -> None:
        """Capture the step in a CUDA graph (after :meth:`fill`): one warm-up step on a side
        stream, the capture, then the buffers put back to the filled state."""
        saved = [t.clone() for t in (self.position, self.index, self.mask)]
        lengths = [layer.cumulative_length.clone() for layer in self.cache.layers]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            self._step()
        for tensor, value in zip((self.position, self.index, self.mask), saved):
            tensor.copy_(value)
        for layer, length in zip(self.cache.layers, lengths):
            layer.cumulative_length.copy_(length)
        self.graph = graph

    def __call__(self, feed: torch.Tensor) -> torch.Tensor:
        """Feed ``feed`` (B, 1), one token a filled row; the next logits (B, V), a view of a
        buffer the next call overwrites."""
        self.ids[: self.rows].copy_(feed)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()
        self.fed += 1
        return self.logits[: self.rows]

    def kept(self, tokens: int) -> tuple[Any, torch.Tensor]:
        """The turn's ``DynamicCache`` and 2-D mask grown by the first ``tokens`` fed tokens."""
        past, mask = self.past, self.attention_mask
        if tokens:
            span = slice(self.prefilled, self.prefilled + tokens)
            for layer in range(len(self.cache.layers)):
                static = self.cache.layers[layer]
                rows = slice(0, self.rows)
                past.update(static.keys[rows, :, span], static.values[rows, :, span], layer)
            mask = torch.cat([mask, mask.new_ones(self.rows, tokens)], 1)
        self.past = self.attention_mask = None
        return past, mask


class StaticDecoder:
    """The :class:`StaticStep` s of one model, kept across turns and calls (at most
    :data:`KEPT_STEPS`, least recently used dropped first), sharing one CUDA graph pool."""

    def __init__(self, model: Any, cache_argument: str):
        self.model, self.cache_argument = model, cache_argument
        self.steps: OrderedDict[tuple, StaticStep] = OrderedDict()
        self.weights: tuple[int, ...] = ()
        self.pool: Any = None

    def start(
        self, past: Any, attention_mask: torch.Tensor, start: torch.Tensor, new_tokens: int
    ) -> StaticStep:
        """A step filled with this turn's prefill, with room for ``new_tokens`` more."""
        weights = tuple(p.data_ptr() for p in self.model.parameters())
        if weights != self.weights:  # new parameter storage: captured steps would read the old
            self.steps.clear()
            self.weights = weights
        rows, prefilled = attention_mask.shape
        capacity = -(-(prefilled + new_tokens) // CAPACITY_STEP) * CAPACITY_STEP
        autocast = _autocast()
        key = (row_bucket(rows), capacity, tuple(start.shape[:-2]), autocast)
        step = self.steps.pop(key, None)
        if step is None:
            step = StaticStep(self.model, self.cache_argument, key[0], capacity, key[2], autocast)
        self.steps[key] = step
        while len(self.steps) > KEPT_STEPS:
            self.steps.popitem(last=False)
        step.fill(past, attention_mask, start)
        if step.graph is None and attention_mask.device.type == "cuda":
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            step.capture(self.pool)
        return step


def _layers(past: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The keys and values of each layer of a ``DynamicCache``, (B, H, L, D) each."""
    return [(layer.keys, layer.values) for layer in past.layers]
