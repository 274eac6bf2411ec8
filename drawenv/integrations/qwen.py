"""Qwen2.5-VL for trainers that run tools: a tools-capable chat template, its response parser, the
vision tokens generation must never sample, and a processor that needs no torchvision.

Qwen2.5-VL's own chat template ignores ``tools`` and ``tool_calls``, and trainers ship no parser
for its replies. :data:`TOOLS_CHAT_TEMPLATE` renders the Hermes layout Qwen2.5 models use
(``<tools>`` in the system message, ``<tool_call>{json}</tool_call>`` in the assistant's turn, tool
results as ``<tool_response>`` blocks of a user turn, images included) and is prefix-preserving
(earlier messages render the same whatever follows), as multi-turn trainers require.
:data:`RESPONSE_TEMPLATE` parses a reply into ``reasoning_content`` (the ``<think>`` text),
``content`` and ``tool_calls`` (transformers >= 5.13 ``response_template`` format).
:func:`use_tools_template` sets both on a processor. Needs ``transformers`` (``drawenv[trl]`` or
``drawenv[verl]``).
"""

from __future__ import annotations

from typing import Any

from transformers import ProcessorMixin, Qwen2_5_VLProcessor

VISION_TOKENS = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen2-VL's vision special tokens. Only the processor may place them: a sampled one breaks the
next forward pass (an image or video placeholder without pixels)."""

_CONTENT = (
    "{% macro render(content) %}"
    "{% if content is string %}{{ content }}"
    "{% elif content %}{% for part in content %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{% endmacro %}"
)

TOOLS_CHAT_TEMPLATE = (
    _CONTENT + "{% if messages[0]['role'] == 'system' %}"
    "<|im_start|>system\n{{ render(messages[0]['content']) }}"
    "{% set rest = messages[1:] %}"
    "{% else %}<|im_start|>system\nYou are a helpful assistant."
    "{% set rest = messages %}{% endif %}"
    "{% if tools %}{{ '\\n\\n' }}# Tools\n\nThese functions can be called; their signatures are "
    "within <tools></tools>:\n<tools>"
    "{% for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{% endfor %}{{ '\\n' }}</tools>\n\n"
    "To call a function, write a JSON object with its name and arguments within "
    '<tool_call></tool_call>:\n<tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call>"
    "{% endif %}<|im_end|>\n"
    "{% for message in rest %}"
    "{% if message['role'] == 'tool' %}"
    "{% if loop.first or loop.previtem['role'] != 'tool' %}<|im_start|>user{% endif %}"
    "{{ '\\n' }}<tool_response>\n{{ render(message['content']) }}\n</tool_response>"
    "{% if loop.last or loop.nextitem['role'] != 'tool' %}<|im_end|>\n{% endif %}"
    "{% elif message['role'] == 'assistant' %}<|im_start|>assistant\n"
    "{% if message.get('reasoning_content') %}"
    "<think> {{ message['reasoning_content'] }} </think>\n{% endif %}"
    "{{ render(message.get('content')) }}"
    "{% for call in message.get('tool_calls') or [] %}"
    "{% set function = call['function'] if call['function'] is defined else call %}"
    "{{ '\\n' }}<tool_call>\n{\"name\": {{ function['name'] | tojson }}, \"arguments\": "
    "{{ function['arguments'] if function['arguments'] is string "
    "else function['arguments'] | tojson }}}\n</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ render(message['content']) }}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""A Qwen2.5-VL chat template that renders tools, tool calls, tool results and reasoning."""

RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "reasoning_content": {
            "open": "<think>",
            "close_pattern": r"\s*</think>\s*",
            "content": "text",
        },
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}
"""How a reply in :data:`TOOLS_CHAT_TEMPLATE`'s layout parses (``tokenizer.response_template``)."""


class Qwen2_5_VLImageProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` for images only: a real ``ProcessorMixin`` built without a video
    processor, so it works where torchvision is missing (transformers builds the video half with
    it). Trainers that check ``isinstance(processor, ProcessorMixin)`` treat the model as a VLM.

    Args:
        image_processor: Qwen2-VL's image processor (the PIL one needs no torchvision).
        tokenizer: the model's tokenizer.
        chat_template: the chat template (default: the tokenizer's).
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def use_tools_template(processor: Any) -> Any:
    """Set :data:`TOOLS_CHAT_TEMPLATE` and :data:`RESPONSE_TEMPLATE` on ``processor`` (a
    ``ProcessorMixin`` or a tokenizer) and its tokenizer; returns ``processor``."""
    tokenizer = getattr(processor, "tokenizer", processor)
    if not hasattr(tokenizer, "convert_tokens_to_ids"):
        raise TypeError(
            f"Expected a transformers processor or tokenizer, got {type(processor).__name__}."
        )
    processor.chat_template = TOOLS_CHAT_TEMPLATE
    tokenizer.chat_template = TOOLS_CHAT_TEMPLATE
    tokenizer.response_template = RESPONSE_TEMPLATE
    return processor


def vision_token_ids(processor: Any) -> list[int]:
    """The ids of :data:`VISION_TOKENS` in ``processor``'s vocabulary (those it has)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    unknown = tokenizer.unk_token_id
    ids = (tokenizer.convert_tokens_to_ids(token) for token in VISION_TOKENS)
    return sorted({int(i) for i in ids if i is not None and i != unknown})


def generation_kwargs(processor: Any) -> dict[str, Any]:
    """Generation settings that keep every vision special token from being sampled
    (``suppress_tokens``), for ``GRPOConfig(generation_kwargs=…)`` or ``model.generate``."""
    return {"suppress_tokens": vision_token_ids(processor)}


def is_processor(processor: Any) -> bool:
    """``processor`` is a transformers ``ProcessorMixin`` (trainers then feed it images)."""
    return isinstance(processor, ProcessorMixin)


__all__ = [
    "RESPONSE_TEMPLATE",
    "TOOLS_CHAT_TEMPLATE",
    "VISION_TOKENS",
    "Qwen2_5_VLImageProcessor",
    "generation_kwargs",
    "is_processor",
    "use_tools_template",
    "vision_token_ids",
]
