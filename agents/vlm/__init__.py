"""The VLM wing: a transformers model as a DrawSpatial-v0 policy, batched rollouts, VLM evaluation.

Needs the optional extra ``agents`` (torch, transformers). Modules: :mod:`agents.vlm.policy`,
:mod:`agents.vlm.rollout`, :mod:`agents.vlm.evaluate`, :mod:`agents.vlm.device`,
:mod:`agents.vlm.testing` (tiny offline models for tests).
"""
