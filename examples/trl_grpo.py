"""GRPO with TRL on DrawSpatial tasks: the model draws through tool calls, the env pays the reward.

    pip install "drawenv[trl]"
    python examples/trl_grpo.py Qwen/Qwen2.5-VL-3B-Instruct counting runs/trl

The test suite runs :func:`train` with a tiny random model (tests/test_integrations_trl.py).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from trl import GRPOConfig, GRPOTrainer

from drawenv.integrations import qwen
from drawenv.integrations.trl import TRLDrawingEnv, TRLEnvReward, trl_dataset


def train(
    model: Any,
    processor: Any,
    task: str,
    output_dir: str,
    *,
    rows: int = 256,
    env_kwargs: dict | None = None,
    generation_kwargs: dict | None = None,
    **config: Any,
) -> GRPOTrainer:
    """Train ``model`` on ``rows`` tasks of ``task``; ``config`` overrides GRPOConfig fields."""
    env_kwargs = {"max_turns": 4, **(env_kwargs or {})}
    processor = qwen.use_tools_template(processor)  # tools, tool calls, reasoning; a parser
    settings = {
        "num_generations": 4,
        "per_device_train_batch_size": 4,
        "max_completion_length": 1024,
        # One env turn is kept for the answer; TRL counts rounds of calls, the env counts calls.
        "max_tool_calling_iterations": env_kwargs["max_turns"] - 1,
        "report_to": [],
        **config,
    }
    # TRL suppresses only <|image_pad|>; a sampled <|video_pad|> or <|vision_start|> breaks the
    # forward pass.
    generation_kwargs = {**qwen.generation_kwargs(processor), **(generation_kwargs or {})}
    args = GRPOConfig(output_dir=output_dir, generation_kwargs=generation_kwargs, **settings)
    trainer = GRPOTrainer(
        model,
        reward_funcs=TRLEnvReward(),
        args=args,
        train_dataset=trl_dataset(task, size=rows, **env_kwargs),
        processing_class=processor,
        environment_factory=partial(TRLDrawingEnv, task=task, **env_kwargs),
    )
    trainer.train()
    return trainer


if __name__ == "__main__":
    from transformers import AutoModelForImageTextToText, AutoProcessor

    name, task, output_dir = sys.argv[1:4]
    train(
        AutoModelForImageTextToText.from_pretrained(name, dtype="bfloat16"),
        AutoProcessor.from_pretrained(name, padding_side="left"),
        task,
        output_dir,
        bf16=True,
        max_steps=200,
    )
