"""Agents that act in DrawSpatial-v0 or learn from it (scripted baselines, VLM policy, trainers)."""
