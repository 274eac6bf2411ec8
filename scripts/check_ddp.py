"""Check that GRPO under torchrun on several GPUs matches one GPU with the same global batch.

Usage (on a machine with 2 GPUs)::

    python scripts/check_ddp.py prepare runs/ddp            # tiny random model + settings
    python scripts/check_ddp.py train runs/ddp/one          # one process, all prompts
    torchrun --nproc_per_node 2 scripts/check_ddp.py train runs/ddp/two
    python scripts/check_ddp.py compare runs/ddp

``DTYPE=float32`` runs the CUDA forward passes in fp32 instead of bf16 autocast; ``FSDP=1`` shards
the model with FSDP2 instead of replicating it with DDP.

One GRPO step on the `counting` suite with a reward that varies with the text written (a random
model never answers, so the env's own reward would give every group zero advantage). Prints the
step-1 loss and gradient norm of both runs and the largest parameter difference after the step.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from agents.train.config import GRPOConfig
from agents.train.grpo import train_grpo
from agents.train.metrics import read_metrics
from agents.vlm.testing import save_tiny_model


class TextLengthReward:
    """A reward with signal inside every group: it depends on how much the model wrote."""

    def __call__(self, episode):
        reward = (sum(len(text) for text in episode.outputs) % 7) / 6
        return reward, {"accuracy": reward, "format": 1.0}


def config(root: Path, out: Path) -> GRPOConfig:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return GRPOConfig(
        model=str(root / "tiny"),
        output_dir=str(out),
        task="counting",
        prompts_per_step=4,
        group_size=4,
        micro_batch=4,
        rollout_prompts=2,  # each of 2 ranks plays 2 prompts: the same rollout batches on 1 GPU
        max_new_tokens=32,
        max_tokens=4096,
        max_turns=2,
        steps=1,
        lr=1e-3,
        dtype=os.environ.get("DTYPE", "bfloat16" if device == "cuda" else "float32"),
        device=device,
        freeze_vision=False,
        fsdp=os.environ.get("FSDP") == "1",
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        out |= load_file(path)
    return out


def main(argv: list[str]) -> None:
    command, path = argv[0], Path(argv[1])
    if command == "prepare":
        save_tiny_model(path / "tiny")
    elif command == "train":
        train_grpo(config(path.parent, path), reward=TextLengthReward())
    elif command == "compare":
        one, two = (read_metrics(path / run / "metrics.jsonl")[-1] for run in ("one", "two"))
        a, b = weights(path / "one" / "final"), weights(path / "two" / "final")
        start = weights(path / "tiny")
        moved = max(float((a[k].float() - start[k].float()).abs().max()) for k in a)
        diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        report = {
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "gpus": torch.cuda.device_count(),
            "loss_1gpu": one["loss/policy"],
            "loss_2gpu": two["loss/policy"],
            "grad_norm_1gpu": one["train/grad_norm"],
            "grad_norm_2gpu": two["train/grad_norm"],
            "reward_mean_1gpu": one["rollout/reward_mean"],
            "reward_mean_2gpu": two["rollout/reward_mean"],
            "max_param_change": moved,
            "max_param_difference": diff,
        }
        print(json.dumps(report, indent=2))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
