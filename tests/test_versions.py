"""Declared versions are tested versions: pyproject's minimums are what scripts/test_lowest.sh
installs, and scoring works on the transformers releases whose ``logits_to_keep`` takes no mask."""

from __future__ import annotations

import re
import tomllib
from importlib.util import find_spec
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def declared_minimums() -> dict[str, Version]:
    """Each requirement of pyproject.toml (core and every extra) with its lower bound."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    # Extras that cannot be installed at the lowest versions of the rest: verl pins transformers
    # below `agents`' minimum (it has its own environment), and trl needs numpy >= 1.26.
    for name, extra in project["optional-dependencies"].items():
        if name not in ("verl", "trl"):
            lines += extra
    minimums = {}
    for line in lines:
        requirement = Requirement(line)
        if requirement.name == project["name"]:
            continue  # an extra that includes another
        bounds = [s for s in requirement.specifier if s.operator in (">=", "==")]
        assert len(bounds) == 1, f"Expected one lower bound (>= or ==) in {line!r}."
        minimums[requirement.name] = Version(bounds[0].version)
    return minimums


def lowest_pins() -> dict[str, Version]:
    """The ``name==version`` lines of scripts/test_lowest.sh's PINS block."""
    script = (ROOT / "scripts" / "test_lowest.sh").read_text()
    block = re.search(r"<<'PINS'.*?\n(.*?)\nPINS\n", script, re.S)
    assert block, "Expected a <<'PINS' … PINS block in scripts/test_lowest.sh."
    pins = {}
    for line in block.group(1).splitlines():
        name, version = line.split("==")
        pins[Requirement(name).name] = Version(version)
    return pins


def test_lowest_environment_pins_exactly_the_declared_minimums():
    assert lowest_pins() == declared_minimums()


# -- scoring where logits_to_keep takes no mask ---------------------------------------------------

TORCH = bool(find_spec("torch") and find_spec("transformers"))
if TORCH:
    import torch

    import agents.vlm.policy as policy_module
    from agents.vlm.policy import GenerationSettings, VLMPolicy
    from agents.vlm.rollout import rollout
    from agents.vlm.testing import tiny_model
    from drawenv.env import DrawSpatialEnv

needs_torch = pytest.mark.skipif(not TORCH, reason="needs torch and transformers")

SMALL = {"task": "counting", "max_turns": 2, "max_pixels": 168 * 168}


@pytest.fixture(scope="module")
def scored(one_thread):
    """A tiny policy and three rollouts of unequal length (padding, images, several turns)."""
    policy = VLMPolicy(*tiny_model(seed=0), GenerationSettings(max_new_tokens=10))
    trajectories = rollout(policy, [DrawSpatialEnv(**SMALL) for _ in range(3)], seed=5)
    assert len({len(t.ids) for t in trajectories}) > 1
    return policy, trajectories


def logprobs(policy, trajectories, support: bool | None, monkeypatch) -> list:
    """Scores with the mask path (``True``), the fallback (``False``) or whichever the first call
    finds (``None``), from a fresh cache."""
    cache = {} if support is None else {type(policy.model): support}
    monkeypatch.setattr(policy_module, "_LOGITS_MASK", cache)
    with torch.no_grad():
        return policy.token_logprobs(trajectories, temperature=0.7)


def full_logits_logprobs(policy, trajectories) -> list:
    """The same log-probs from the logits of every position: slow, version-proof."""
    input_ids, attention_mask, pixel_values, grid = policy.pad_batch(trajectories, left=False)
    with torch.no_grad():
        logits = policy.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=policy.positions(input_ids, attention_mask, grid),
            pixel_values=pixel_values,
            image_grid_thw=grid,
            use_cache=False,
        ).logits
    scores = policy._scores(logits[:, :-1], 0.7)
    picked = scores.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    out = []
    for row, t in enumerate(trajectories):
        expected = torch.zeros(len(t.ids))
        expected[1:] = picked[row, : len(t.ids) - 1].where(t.mask[1:].bool(), 0.0)
        out.append(expected)
    return out


@needs_torch
def test_fallback_gives_the_mask_paths_logprobs(scored, monkeypatch):
    policy, trajectories = scored
    found = logprobs(policy, trajectories, None, monkeypatch)
    if not policy_module._LOGITS_MASK[type(policy.model)]:
        pytest.skip("This transformers takes no logits_to_keep mask: only the fallback runs.")
    fallback = logprobs(policy, trajectories, False, monkeypatch)
    for a, b in zip(found, fallback):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@needs_torch
def test_fallback_equals_scoring_every_position(scored, monkeypatch):
    policy, trajectories = scored
    fallback = logprobs(policy, trajectories, False, monkeypatch)
    for a, b in zip(fallback, full_logits_logprobs(policy, trajectories)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@needs_torch
def test_fallback_projects_only_the_kept_positions(scored, monkeypatch):
    policy, trajectories = scored
    shapes = []
    head = policy.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, out: shapes.append(out.shape))
    try:
        logprobs(policy, trajectories, False, monkeypatch)
    finally:
        handle.remove()
    kept = sum(int(t.mask.sum()) for t in trajectories)
    assert shapes == [(kept, head.out_features)]


@needs_torch
def test_first_call_learns_the_fallback_where_the_mask_is_refused(scored, monkeypatch):
    """Transformers before 5.21 index ``logits_to_keep`` along the sequence only, which a (B, L)
    mask makes an IndexError; the first call falls back and remembers it."""
    policy, trajectories = scored
    modeling = __import__(type(policy.model).__module__, fromlist=["_"])
    if hasattr(modeling, "slice_logits_to_keep"):

        def sequence_only(hidden_states, logits_to_keep):
            keep = logits_to_keep
            return hidden_states[:, slice(-keep, None) if isinstance(keep, int) else keep, :]

        monkeypatch.setattr(modeling, "slice_logits_to_keep", sequence_only)
    found = logprobs(policy, trajectories, None, monkeypatch)
    learnt = policy_module._LOGITS_MASK
    assert learnt == {type(policy.model): False}
    for a, b in zip(found, full_logits_logprobs(policy, trajectories)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
