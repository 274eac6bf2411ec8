"""A tiny random Qwen2.5-VL built offline in seconds, for tests and examples.

:func:`tiny_model` returns a randomly initialised ``Qwen2_5_VLForConditionalGeneration`` and the
real ``Qwen2_5_VLProcessor`` (with ``Qwen2VLImageProcessor``) around a small byte-level BPE
tokenizer trained on the fly on the env's own protocol text, with Qwen's chat special tokens and a
Qwen-style chat template. :func:`save_tiny_model` writes both to a folder that
``VLMPolicy.from_pretrained(path)`` loads with ``local_files_only=True``. Nothing touches the
network. The weights are random, so the model writes gibberish; it exercises every code path of
the policy and the rollouts (images, placeholders, multi-turn growth, log-probs) on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
)

from agents.vlm.policy import ImageTextProcessor
from drawenv.actions import Answer, Box, Draw, Line
from drawenv.protocol import PROTOCOLS, get_protocol

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen's chat and vision special tokens, in the order they get ids (0, 1, …)."""

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""Qwen's chat layout: ``<|im_start|>role\\n…<|im_end|>\\n`` per message, images as
``<|vision_start|><|image_pad|><|vision_end|>`` (the processor expands the pad per image)."""

VOCAB_SIZE = 1024
"""Target vocabulary size of the tiny tokenizer (special tokens included)."""


def _corpus() -> list[str]:
    """Text the tiny tokenizer learns from: both protocols' instructions and sample turns."""
    texts = []
    for name in PROTOCOLS:
        protocol = get_protocol(name)
        for coords in ("pixel", "norm1000"):
            texts.append(protocol.system_prompt(width=448, height=336, coords=coords))
        texts.append(protocol.format(Draw((Box(1, (12, 40, 200, 180), "red circle"),), "look")))
        texts.append(protocol.format(Draw((Line(2, (5, 9), (300, 120), "path"),), "trace it")))
        texts.append(protocol.format(Answer("B", "The path ends at the door.")))
    texts += [
        "The index of the given image is 1 (width: 448, height: 336).",
        "How many red circles are there? Answer with a whole number, e.g. <answer> 4 </answer>.",
        "Continue reasoning: draw again if it helps, or give the final answer in <answer> "
        "</answer>. Options: A. the sofa B. the lamp C. the table 0123456789",
    ]
    return texts


def tiny_tokenizer(
    corpus: Iterable[str] | None = None, vocab_size: int = VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of ``vocab_size`` tokens (special tokens included) trained now
    on ``corpus`` (default :func:`_corpus`, the protocol's own text), with Qwen's special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus() if corpus is None else corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )


def _image_processor(**kwargs: Any) -> Any:
    """Qwen2-VL's image processor; the PIL backend where torchvision is missing."""
    try:
        import torchvision  # noqa: F401
        from transformers import Qwen2VLImageProcessor as ImageProcessor
    except ImportError:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil as ImageProcessor,
        )
    return ImageProcessor(**kwargs)


def tiny_processor(tokenizer: PreTrainedTokenizerFast | None = None) -> Any:
    """The real ``Qwen2_5_VLProcessor`` around ``tokenizer`` (default :func:`tiny_tokenizer`)
    and Qwen2-VL's image processor; where torchvision is missing (transformers builds the
    processor's video half with it) the same tokenizer and image processor as an
    :class:`~agents.vlm.policy.ImageTextProcessor`."""
    tokenizer = tiny_tokenizer() if tokenizer is None else tokenizer
    image_processor = _image_processor(
        patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=4 * 28 * 28
    )
    try:
        from transformers import Qwen2VLVideoProcessor

        video_processor = Qwen2VLVideoProcessor(patch_size=14, merge_size=2, temporal_patch_size=2)
        return Qwen2_5_VLProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            chat_template=CHAT_TEMPLATE,
        )
    except (ImportError, AttributeError, TypeError):
        return ImageTextProcessor(tokenizer, image_processor)


def tiny_config(
    vocab_size: int,
    special: dict[str, int],
    *,
    text: dict[str, Any] | None = None,
    vision: dict[str, Any] | None = None,
) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config with a two-layer text model and a two-block vision tower; ``text``
    and ``vision`` override entries of the two sub-configs (to build larger models)."""
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        # head_dim 16: the rotary half (8) split over (temporal, height, width).
        "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6},
        "bos_token_id": special["<|endoftext|>"],
        "eos_token_id": special["<|im_end|>"],
        "pad_token_id": special["<|endoftext|>"],
        **(text or {}),
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": text_config["hidden_size"],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
        **(vision or {}),
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=special["<|image_pad|>"],
        video_token_id=special["<|video_pad|>"],
        vision_start_token_id=special["<|vision_start|>"],
        vision_end_token_id=special["<|vision_end|>"],
    )


def tiny_model(
    seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[Qwen2_5_VLForConditionalGeneration, Any]:
    """A random tiny Qwen2.5-VL (weights from ``torch.manual_seed(seed)``) and its processor."""
    processor = tiny_processor()
    tokenizer = processor.tokenizer
    config = tiny_config(len(tokenizer), special_token_ids(tokenizer))
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model.to(dtype).eval(), processor


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """The id of each of :data:`SPECIAL_TOKENS` in ``tokenizer``."""
    return {token: int(tokenizer.convert_tokens_to_ids(token)) for token in SPECIAL_TOKENS}


def save_tiny_model(path: str | Path, seed: int = 0) -> Path:
    """Write :func:`tiny_model` (weights, config, tokenizer, processor) to the folder ``path``."""
    path = Path(path)
    model, processor = tiny_model(seed)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "save_tiny_model",
    "special_token_ids",
    "tiny_config",
    "tiny_model",
    "tiny_processor",
    "tiny_tokenizer",
]
