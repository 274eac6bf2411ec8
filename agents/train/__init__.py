"""The training wing: configs, losses, cold-start SFT, reflective rejection sampling and GRPO.

Import-free on purpose, so that torch-free commands (``drawenv export-sft``) stay torch-free: import
the module you need, e.g. ``from agents.train.grpo import train_grpo``.
"""
