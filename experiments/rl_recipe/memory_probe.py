"""Memory held by one training forward and backward pass of the study's 16M model, on the CPU.

    python experiments/rl_recipe/memory_probe.py ROWS TOKENS    # e.g. 16 1024

Builds the evidence study's text model (8 layers of width 256, vocabulary 2048) with random
weights, runs it over ROWS random sequences of TOKENS tokens with the logits of the second half
kept, as the trainer keeps those of the generated tokens, backpropagates a log-prob loss through
them, and prints the growth of the process's peak resident memory in GiB. Each call is one
process, so each figure is one pass's own. Float32 on the CPU: a guide to how a micro-batch's
activations scale with its rows and length, not the GPU's bfloat16 figure.
"""

from __future__ import annotations

import argparse
import resource

import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from agents.vlm.testing import special_token_ids, tiny_config, tiny_processor

TEXT = {  # experiments/evidence/configs/model.toml
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rope_parameters": {"rope_type": "default", "mrope_section": [8, 12, 12], "rope_theta": 20.0},
}


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=int, help="sequences in the micro-batch")
    parser.add_argument("tokens", type=int, help="tokens a sequence")
    args = parser.parse_args()
    config = tiny_config(2048, special_token_ids(tiny_processor().tokenizer), text=TEXT)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    ids = torch.randint(0, 1000, (args.rows, args.tokens))
    keep = torch.zeros(args.rows, args.tokens, dtype=torch.bool)
    keep[:, args.tokens // 2 :] = True
    before = peak_gib()
    logits = model(input_ids=ids, use_cache=False, logits_to_keep=keep).logits
    logits.float().log_softmax(-1).amax(-1).sum().backward()
    print(f"rows {args.rows}  tokens {args.tokens}  peak memory +{peak_gib() - before:.2f} GiB")


if __name__ == "__main__":
    main()
