"""Memory held by one training forward and backward pass of the study's 16M model, on the CPU.

    python experiments/rl_recipe/memory_probe.py ROWS TOKENS    # e.g. 16 1024

Builds the evidence study's model (experiments/evidence/configs/model.toml: a text model of 8
layers of width 256, a vocabulary of 2048) with random weights, runs it over ROWS random
sequences of TOKENS tokens with the logits of the second half kept, as the trainer keeps those
of the generated tokens, backpropagates a log-prob loss through them, and prints the growth of
the process's peak resident memory in GiB. Each call is one process, so each figure is one
pass's own. Float32 on the CPU: a guide to how a micro-batch's activations scale with its rows
and length, not the GPU's bfloat16 figure.
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from agents.train.config import ScratchConfig, load_config
from agents.train.scratch import scratch_model_config
from agents.vlm.testing import special_token_ids, tiny_processor

MODEL = Path(__file__).resolve().parents[1] / "evidence" / "configs" / "model.toml"


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=int, help="sequences in the micro-batch")
    parser.add_argument("tokens", type=int, help="tokens a sequence")
    args = parser.parse_args()
    settings = load_config(ScratchConfig, MODEL)
    special = special_token_ids(tiny_processor().tokenizer)
    torch.manual_seed(settings.seed)
    model = Qwen2_5_VLForConditionalGeneration(
        scratch_model_config(settings, settings.vocab_size, special)
    )
    ids = torch.randint(0, 1000, (args.rows, args.tokens))
    keep = torch.zeros(args.rows, args.tokens, dtype=torch.bool)
    keep[:, args.tokens // 2 :] = True
    before = peak_gib()
    logits = model(input_ids=ids, use_cache=False, logits_to_keep=keep).logits
    logits.float().log_softmax(-1).amax(-1).sum().backward()
    print(f"rows {args.rows}  tokens {args.tokens}  peak memory +{peak_gib() - before:.2f} GiB")


if __name__ == "__main__":
    main()
