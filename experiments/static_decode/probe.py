"""How much would a decode step captured once buy? A probe, not drawenv's decoding.

Greedy decoding of a text prompt with the benchmarks' random Qwen2.5-VL (``--model-size``), three
ways, from the same prefill:

- ``eager, dynamic cache``: the model called once per token with a growing ``DynamicCache`` and
  a growing 2-D attention mask, as drawenv's rollouts decode today;
- ``eager, static cache``: the same with a ``StaticCache`` of fixed length and a fixed 4-D mask
  buffer, updated in place (the shapes a captured step needs);
- ``CUDA graph``: that static step captured once with ``torch.cuda.CUDAGraph`` and replayed
  (CUDA only).

Each prints its seconds per token and whether its tokens equal the dynamic cache's. Run from the
repository root (on a GPU: ``--device cuda``)::

    PYTHONPATH=.:benchmarks python experiments/static_decode/probe.py --device cpu --batch 2
"""

from __future__ import annotations

import argparse
import json

import torch
from random_vlm import SIZES, build_policy, device_name, seconds_since, start_clock
from transformers import DynamicCache, StaticCache


def prefill(model, ids: torch.Tensor, cache) -> torch.Tensor:
    """The prompt's logits at its last position, its keys and values written to ``cache``."""
    positions = torch.arange(ids.shape[1], device=ids.device).expand(3, *ids.shape)
    out = model(input_ids=ids, position_ids=positions, cache=cache, use_cache=True)
    return out.logits[:, -1]


def decode_dynamic(model, ids: torch.Tensor, steps: int) -> tuple[torch.Tensor, float]:
    cache = DynamicCache(config=model.config)
    logits = prefill(model, ids, cache)
    mask = torch.ones_like(ids)
    position = torch.full((3, len(ids), 1), ids.shape[1], device=ids.device)
    tokens = []
    began = start_clock(str(ids.device))
    for _ in range(steps):
        token = logits.argmax(-1, keepdim=True)
        tokens.append(token)
        mask = torch.cat([mask, mask.new_ones(len(ids), 1)], 1)
        out = model(
            input_ids=token,
            attention_mask=mask,
            position_ids=position,
            cache=cache,
            use_cache=True,
        )
        logits, position = out.logits[:, -1], position + 1
    return torch.cat(tokens, 1), seconds_since(began, str(ids.device)) / steps


class StaticStep:
    """One decode step on fixed buffers: feed ``token`` at ``position``, see every cached key
    up to it (a boolean mask of the cache's full length), write the next logits."""

    def __init__(self, model, ids: torch.Tensor, steps: int):
        self.model = model
        batch, length = ids.shape
        self.cache = StaticCache(config=model.config, max_cache_len=length + steps)
        self.logits = prefill(model, ids, self.cache)
        self.token = self.logits.argmax(-1, keepdim=True)
        self.position = torch.full((3, batch, 1), length, device=ids.device)
        self.mask = torch.zeros(batch, 1, 1, length + steps, dtype=torch.bool, device=ids.device)
        self.mask[..., :length] = True
        self.index = torch.tensor([length], device=ids.device)

    def __call__(self) -> None:
        self.mask.index_fill_(-1, self.index, True)
        out = self.model(
            input_ids=self.token,
            attention_mask={"full_attention": self.mask},
            position_ids=self.position,
            cache=self.cache,
            use_cache=True,
        )
        self.logits.copy_(out.logits[:, -1])
        self.token.copy_(self.logits.argmax(-1, keepdim=True))
        self.position.add_(1)
        self.index.add_(1)


def decode_static(model, ids, steps: int, graph: bool) -> tuple[torch.Tensor, float]:
    step = StaticStep(model, ids, steps)
    run = step
    if graph:
        # Capture on a copy of the buffers' state: warm up on a side stream, capture one step,
        # then put the buffers back to the prefill's state (the warm-up and capture ran a step).
        saved = [t.clone() for t in (step.logits, step.token, step.position, step.mask, step.index)]
        layers = [
            (layer.keys.clone(), layer.values.clone(), layer.cumulative_length.clone())
            for layer in step.cache.layers
        ]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            step()
        torch.cuda.current_stream().wait_stream(stream)
        captured = torch.cuda.CUDAGraph()
        with torch.cuda.graph(captured):
            step()
        for t, s in zip((step.logits, step.token, step.position, step.mask, step.index), saved):
            t.copy_(s)
        for layer, (k, v, n) in zip(step.cache.layers, layers):
            layer.keys.copy_(k), layer.values.copy_(v), layer.cumulative_length.copy_(n)
        run = captured.replay
    tokens = []
    began = start_clock(str(ids.device))
    for _ in range(steps):
        tokens.append(step.token.clone())
        run()
    return torch.cat(tokens, 1), seconds_since(began, str(ids.device)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model-size", choices=SIZES, default="16m")
    parser.add_argument("--dtype", default=None, help="bfloat16 on a GPU, float32 on the CPU")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--prompt", type=int, default=512, help="prompt tokens")
    parser.add_argument("--steps", type=int, default=128, help="tokens decoded")
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    policy = build_policy(size=args.model_size, device=args.device, dtype=dtype, max_new_tokens=1)
    model = policy.model
    rows, vocab = [], model.config.get_text_config().vocab_size
    print(f"decode probe, {args.model_size} model, {device_name(args.device)}, {dtype}")
    print(f"{'path':24} {'batch':>5} {'ms/token':>9} {'x eager':>8}  same tokens")
    for batch in args.batch:
        generator = torch.Generator().manual_seed(batch)
        ids = torch.randint(8, min(1000, vocab), (batch, args.prompt), generator=generator).to(
            device
        )
        with torch.inference_mode():
            reference, base = decode_dynamic(model, ids, args.steps)
            paths = [("eager, dynamic cache", reference, base)]
            paths.append(("eager, static cache", *decode_static(model, ids, args.steps, False)))
            if device.type == "cuda":
                try:
                    paths.append(("CUDA graph", *decode_static(model, ids, args.steps, True)))
                except RuntimeError as error:  # a step that cannot be captured: say why
                    print(f"CUDA graph, batch {batch}: capture failed: {error}")
        for name, tokens, seconds in paths:
            same = bool(torch.equal(tokens, reference))
            print(f"{name:24} {batch:>5} {seconds * 1e3:>9.2f} {base / seconds:>8.2f}  {same}")
            rows.append(
                {
                    "path": name,
                    "batch": batch,
                    "ms_per_token": seconds * 1e3,
                    "speedup": base / seconds,
                    "same_tokens": same,
                }
            )
    if args.out:
        with open(args.out, "w") as file:
            json.dump(
                {
                    "device": device_name(args.device),
                    "model": args.model_size,
                    "dtype": dtype,
                    "prompt": args.prompt,
                    "steps": args.steps,
                    "rows": rows,
                },
                file,
                indent=1,
            )


if __name__ == "__main__":
    main()
