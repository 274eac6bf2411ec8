"""The training math of agents/train/losses.py against hand-computed values."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from agents.train.losses import group_advantages, policy_loss, sft_loss  # noqa: E402

torch.set_num_threads(1)
EPS = 1e-6


def approx(values, rel=1e-5, abs=1e-6):
    return pytest.approx(values, rel=rel, abs=abs)


# -- group advantages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rewards", "kwargs", "expected"),
    [
        # group (1, 0): mean 0.5, population std 0.5 (the unbiased one would be 0.707)
        ([1.0, 0.0], {}, [0.5 / (0.5 + EPS), -0.5 / (0.5 + EPS)]),
        # a group whose rewards are all equal has no relative signal
        ([0.5, 0.5], {}, [0.0, 0.0]),
        ([0.5, 0.5], {"kind": "ap_grpo"}, [0.5, 0.5]),  # alpha * S = 1 * 0.5
        ([0.5, 0.5], {"kind": "ap_grpo", "alpha": 2.0}, [1.0, 1.0]),
        ([0.5, 0.5], {"kind": "ap_grpo_mul"}, [0.0, 0.0]),  # 0 * S
        # (1, 0) additive: Â + S = (1 + 1, -1 + 0)
        ([1.0, 0.0], {"kind": "ap_grpo"}, [0.5 / (0.5 + EPS) + 1, -0.5 / (0.5 + EPS)]),
        # (1, 0.25): mean 0.625, std 0.375, Â = (1, -1); times S^1 = (1, -0.25)
        (
            [1.0, 0.25],
            {"kind": "ap_grpo_mul"},
            [0.375 / (0.375 + EPS), -0.25 * 0.375 / (0.375 + EPS)],
        ),
        # times S^0.5 = (1, 0.5)
        ([1.0, 0.25], {"kind": "ap_grpo_mul", "alpha": 0.5}, [1.0, -0.5]),
        # no std division: S - mean
        ([1.0, 0.25], {"scale": "none"}, [0.375, -0.375]),
    ],
)
def test_group_advantages_by_hand(rewards, kwargs, expected):
    got = group_advantages(torch.tensor(rewards), 2, **kwargs)
    assert got.dtype == torch.float32
    assert got.tolist() == approx(expected)


def test_groups_are_consecutive_and_batch_scale_uses_the_batch_std():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])  # groups (1, 0) and (1, 1)
    # per group: (±0.5 / 0.5, 0)
    assert group_advantages(rewards, 2).tolist() == approx([1, -1, 0, 0], rel=1e-5)
    # batch: mean 0.75, variance (3 * 0.0625 + 0.5625) / 4 = 0.1875, std 0.4330127
    std = math.sqrt(0.1875)
    assert group_advantages(rewards, 2, scale="batch").tolist() == approx(
        [0.5 / (std + EPS), -0.5 / (std + EPS), 0, 0]
    )


@pytest.mark.parametrize("kind", ["ap_grpo", "ap_grpo_mul"])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_alpha_zero_is_grpo(kind, scale):
    rewards = torch.tensor([0.0, 0.3, 1.0, 0.7, 0.7, 0.7, 0.0, 0.0, 1.0])
    grpo = group_advantages(rewards, 3, scale=scale)
    assert torch.allclose(group_advantages(rewards, 3, kind=kind, alpha=0.0, scale=scale), grpo)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "ppo"}, "Unknown advantage kind"),
        ({"scale": "std"}, "Unknown reward scale"),
        ({"group_size": 3}, "multiple of group_size"),
        ({"group_size": 0}, "group_size >= 1"),
    ],
)
def test_group_advantages_errors(kwargs, match):
    kwargs = {"group_size": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), **kwargs)


def test_multiplicative_needs_non_negative_rewards():
    with pytest.raises(ValueError, match="ap_grpo"):
        group_advantages(torch.tensor([1.0, -1.0]), 2, kind="ap_grpo_mul")


# -- policy loss ---------------------------------------------------------------------------------


def two_trajectories():
    """B = 2, T = 3.

    trajectory 0: mask (0, 1, 1), N = 2, A = +1, ratios (·, 1.1, 1.5)
        o = (min(1.1, 1.1), min(1.5, 1.2)) = (1.1, 1.2), sum 2.3
    trajectory 1: mask (0, 0, 1), N = 1, A = -0.5, ratio (·, ·, 0.5)
        o = min(0.5 * -0.5, 0.8 * -0.5) = -0.4, sum -0.4
    Masked positions hold garbage that must not matter.
    """
    old = torch.tensor([[-9.0, -1.0, -2.0], [5.0, 7.0, -1.0]])
    new = old + torch.tensor([[123.0, math.log(1.1), math.log(1.5)], [-50.0, 80.0, math.log(0.5)]])
    mask = torch.tensor([[0, 1, 1], [0, 0, 1]])
    return new.requires_grad_(), old, torch.tensor([1.0, -0.5]), mask


@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [
        ("grpo", -(2.3 / 2 + -0.4 / 1) / 2),  # -(1/B) Σ_i (1/N_i) Σ_t o = -0.375
        ("dapo", -(2.3 - 0.4) / 3),  # -Σ o / Σ N_i = -0.6333
        ("dr_grpo", -(2.3 - 0.4) / (2 * 4)),  # -Σ o / (B * max_tokens) = -0.2375
    ],
)
def test_each_loss_type_by_hand(loss_type, expected):
    new, old, adv, mask = two_trajectories()
    loss, stats = policy_loss(new, old, adv, mask, loss_type=loss_type, max_tokens=4)
    assert loss.item() == approx(expected)
    assert stats["clip_fraction"] == approx(2 / 3)  # 1.5 with A > 0 and 0.5 with A < 0
    kl = [(r - 1) - math.log(r) for r in (1.1, 1.5, 0.5)]
    assert stats["approx_kl"] == approx(sum(kl) / 3)
    assert stats["ratio_mean"] == approx((1.1 + 1.5 + 0.5) / 3)
    assert "kl" not in stats
    loss.backward()
    assert torch.isfinite(new.grad).all()
    assert (new.grad[mask == 0] == 0).all()


def test_dr_grpo_needs_max_tokens_and_unknown_types_raise():
    new, old, adv, mask = two_trajectories()
    with pytest.raises(ValueError, match="max_tokens"):
        policy_loss(new, old, adv, mask, loss_type="dr_grpo")
    with pytest.raises(ValueError, match="Unknown loss type: 'ppo'"):
        policy_loss(new, old, adv, mask, loss_type="ppo")
    with pytest.raises(ValueError, match="eps_low"):
        policy_loss(new, old, adv, mask, eps_low=1.0)
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(new, old, adv, mask, beta=0.1)


def one_token(ratio: float, advantage: float, **kwargs):
    new = torch.tensor([[0.0, math.log(ratio)]])
    mask = torch.tensor([[0, 1]])
    loss, stats = policy_loss(new, torch.zeros(1, 2), torch.tensor([advantage]), mask, **kwargs)
    return -loss.item(), stats["clip_fraction"]


@pytest.mark.parametrize(
    ("ratio", "advantage", "eps_low", "eps_high", "objective", "clipped"),
    [
        (1.25, 1.0, 0.2, 0.28, 1.25, 0.0),  # inside the wider upper range
        (1.25, 1.0, 0.2, 0.2, 1.2, 1.0),  # clipped at 1 + eps_high
        (1.25, -1.0, 0.2, 0.2, -1.25, 0.0),  # pessimistic side: never clipped
        (0.75, -1.0, 0.2, 0.28, -0.8, 1.0),  # clipped at 1 - eps_low
        (0.75, -1.0, 0.3, 0.28, -0.75, 0.0),  # inside the wider lower range
        (0.75, 1.0, 0.2, 0.2, 0.75, 0.0),  # pessimistic side: never clipped
    ],
)
def test_asymmetric_clipping(ratio, advantage, eps_low, eps_high, objective, clipped):
    got, fraction = one_token(ratio, advantage, eps_low=eps_low, eps_high=eps_high)
    assert got == approx(objective)
    assert fraction == clipped


def test_kl_term_is_k3_to_the_reference():
    # ratio 1 and A = 0: the objective is -beta * KL with KL = e^d - d - 1, d = log(ref/pi) = log 2
    new = torch.tensor([[0.0, -1.0]], requires_grad=True)
    ref = torch.tensor([[0.0, -1.0 + math.log(2)]])
    mask = torch.tensor([[0, 1]])
    loss, stats = policy_loss(new, new.detach(), torch.zeros(1), mask, beta=0.1, ref_logprobs=ref)
    kl = 2 - math.log(2) - 1  # 0.3069
    assert stats["kl"] == approx(kl)
    assert loss.item() == approx(0.1 * kl)
    loss.backward()
    # d KL / d lp = -(e^d - 1) = -1: the penalty pulls log pi up towards the reference
    assert new.grad[0, 1].item() == approx(0.1 * -1.0)
    # beta = 0 ignores the reference entirely
    loss0, stats0 = policy_loss(new, new.detach(), torch.zeros(1), mask, ref_logprobs=ref)
    assert loss0.item() == 0 and "kl" not in stats0


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_zero_length_trajectory_contributes_nothing(loss_type):
    new = torch.tensor([[0.0, math.log(1.1)], [0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[0, 1], [0, 0]])
    loss, stats = policy_loss(
        new, torch.zeros(2, 2), torch.tensor([1.0, 3.0]), mask, loss_type=loss_type, max_tokens=2
    )
    expected = {"grpo": -1.1 / 2, "dr_grpo": -1.1 / (2 * 2), "dapo": -1.1 / 1}[loss_type]
    assert loss.item() == approx(expected)
    loss.backward()
    assert torch.isfinite(new.grad).all() and (new.grad[1] == 0).all()
    # no generated token at all: a zero loss and finite stats
    empty, stats = policy_loss(
        new, torch.zeros(2, 2), torch.ones(2), torch.zeros(2, 2), max_tokens=2
    )
    assert empty.item() == 0 and all(math.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_gradient_step_lowers_negative_advantage_tokens(loss_type):
    old = torch.log(torch.tensor([[0.5, 0.4, 0.3, 0.6]]))
    new = old.clone().requires_grad_()
    adv = torch.tensor([[0.0, -1.0, 2.0, 0.0]])  # per-token advantages
    mask = torch.tensor([[0, 1, 1, 1]])
    loss, _ = policy_loss(new, old, adv, mask, loss_type=loss_type, max_tokens=4)
    loss.backward()
    step = new.detach() - 0.1 * new.grad
    assert step[0, 1] < old[0, 1]  # negative advantage: less likely
    assert step[0, 2] > old[0, 2]  # positive advantage: more likely
    assert step[0, 3] == old[0, 3]  # zero advantage: unchanged


def test_policy_loss_computes_in_fp32():
    new, old, adv, mask = two_trajectories()
    loss, _ = policy_loss(new.detach().bfloat16(), old.bfloat16(), adv, mask)
    assert loss.dtype == torch.float32


# -- SFT loss ------------------------------------------------------------------------------------


def test_sft_loss_is_the_mean_over_masked_next_tokens():
    vocab = 4
    logits = torch.zeros(1, 4, vocab)
    logits[0, 0, 2] = math.log(3)  # row 0 predicts token 1: p(2) = 3 / 6
    labels = torch.tensor([[0, 2, 1, 3]])
    mask = torch.tensor([[0, 1, 1, 0]])
    # position 1: -log(3/6); position 2 (predicted by row 1, uniform): -log(1/4)
    expected = (-math.log(0.5) - math.log(0.25)) / 2
    assert sft_loss(logits, labels, mask).item() == approx(expected)
    nothing = sft_loss(logits.requires_grad_(), labels, torch.zeros_like(mask))
    assert nothing.item() == 0
    nothing.backward()
