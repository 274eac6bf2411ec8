"""A Qwen2.5-VL-architecture model initialised from scratch, for runs without pretrained weights.

:func:`build_scratch_model` trains a byte-level BPE tokenizer (Qwen's special tokens and chat
layout) on the text of a chat JSONL written by ``drawenv export-sft``, builds a Qwen2.5-VL config
of the requested width and depth, and saves random weights, config and processor to a folder that
``VLMPolicy.from_pretrained`` and the trainers load. Nothing downloads. The study in
``experiments/evidence/`` trains one of these through SFT and GRPO.

    drawenv train init --config experiments/evidence/configs/model.toml
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from agents.train.config import ScratchConfig, config_to_toml, run_stage
from agents.vlm.testing import special_token_ids, tiny_config, tiny_processor, tiny_tokenizer


def chat_texts(path: str | Path) -> Iterator[str]:
    """Every distinct message text of a chat JSONL (system, user and assistant)."""
    seen: set[str] = set()
    with open(path, encoding="utf-8") as file:
        for line in file:
            if not line.strip():
                continue
            for message in json.loads(line)["messages"]:
                content = message["content"]
                parts = [content] if isinstance(content, str) else content
                for part in parts:
                    text = part if isinstance(part, str) else part.get("text")
                    if text and text not in seen:
                        seen.add(text)
                        yield text


def scratch_model_config(
    config: ScratchConfig, vocab_size: int, special: dict[str, int]
) -> Qwen2_5_VLConfig:
    """The Qwen2.5-VL config of ``config``'s width and depth, for a tokenizer of ``vocab_size``
    tokens whose special tokens have the ids ``special``."""
    quarter = config.hidden_size // config.heads // 16  # rotary half split 2:3:3 (t, h, w)
    text = {
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.layers,
        "num_attention_heads": config.heads,
        "num_key_value_heads": config.kv_heads,
        "rope_parameters": {
            "rope_type": "default",
            "mrope_section": [2 * quarter, 3 * quarter, 3 * quarter],
            "rope_theta": float(config.rope_theta),
        },
    }
    last = config.vision_depth - 1
    vision = {
        "depth": config.vision_depth,
        "hidden_size": config.vision_hidden_size,
        "intermediate_size": config.vision_intermediate_size,
        "num_heads": config.vision_heads,
        "out_hidden_size": config.hidden_size,
        "fullatt_block_indexes": sorted({last // 2, last}),
    }
    model_config = tiny_config(vocab_size, special, text=text, vision=vision)
    model_config._attn_implementation = "sdpa"
    return model_config


def build_scratch_model(config: ScratchConfig) -> Path:
    """Save a randomly initialised Qwen2.5-VL and its processor to ``config.output_dir``."""
    if not Path(config.data).is_file():
        raise FileNotFoundError(
            f"Expected the chat JSONL written by `drawenv export-sft`, got {config.data!r}."
        )
    processor = tiny_processor(tiny_tokenizer(chat_texts(config.data), config.vocab_size))
    tokenizer = processor.tokenizer
    model_config = scratch_model_config(config, len(tokenizer), special_token_ids(tokenizer))
    torch.manual_seed(config.seed)
    model = Qwen2_5_VLForConditionalGeneration(model_config)
    model.generation_config.eos_token_id = model_config.text_config.eos_token_id
    model.generation_config.pad_token_id = model_config.text_config.pad_token_id
    out = Path(config.output_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "init.toml").write_text(config_to_toml(config), encoding="utf-8")
    params = sum(p.numel() for p in model.parameters())
    vision_params = sum(p.numel() for p in model.model.visual.parameters())
    print(
        f"saved {out}: {params / 1e6:.1f}M parameters ({vision_params / 1e6:.1f}M vision), "
        f"vocabulary {len(tokenizer)}"
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``[--config FILE] [key=value ...]``; ``--help`` lists every setting."""
    description = "Build a Qwen2.5-VL-architecture model with random weights (no download)."
    run_stage(
        ScratchConfig, build_scratch_model, argv, prog="drawenv train init", description=description
    )
    return 0


__all__ = ["ScratchConfig", "build_scratch_model", "chat_texts", "main", "scratch_model_config"]


if __name__ == "__main__":
    sys.exit(main())
