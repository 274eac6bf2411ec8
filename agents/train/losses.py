"""Training math: group advantages, the clipped policy-gradient loss and its variants, SFT loss.

Pure torch functions, computed in fp32 whatever the input dtype, so they can be unit-tested
with hand-computed tensors and reused by any trainer. Shapes follow
:class:`agents.vlm.rollout.Trajectory` padded into a batch: ``(B, T)`` per-token tensors whose
``mask`` is 1 on the tokens the model generated (template, env text, image placeholders and
padding are 0).

Notation (as in docs/training.md): a group is the G trajectories sampled for one prompt, ``S_i``
their rewards, ``N_i`` the number of generated tokens of trajectory ``i``,
``ρ_it = π(o_it) / π_old(o_it)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

ADVANTAGE_KINDS = ("grpo", "ap_grpo", "ap_grpo_mul")
"""Values of ``kind`` in :func:`group_advantages`."""
REWARD_SCALES = ("group", "batch", "none")
"""Values of ``scale`` in :func:`group_advantages`."""
LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
"""Values of ``loss_type`` in :func:`policy_loss`."""


def group_advantages(
    rewards: Tensor,
    group_size: int,
    *,
    kind: str = "grpo",
    alpha: float = 1.0,
    scale: str = "group",
    eps: float = 1e-6,
) -> Tensor:
    """One advantage per trajectory from rewards laid out as consecutive groups.

    ``rewards`` is ``(B,)`` with ``B = n_groups * group_size``; ``rewards[g*G:(g+1)*G]`` is the
    group of prompt ``g``. The group-relative advantage (GRPO, Shao et al. 2024, DeepSeekMath;
    ViLaSR eq. 7) is

        Â_i = (S_i − mean_g(S)) / (std(S) + eps)

    where ``std`` is the **population** standard deviation (``unbiased=False``, divide by G, not
    G − 1) taken over

    - ``scale="group"``: the trajectory's own group (the GRPO default);
    - ``scale="batch"``: the whole batch (mean still per group; Liu et al. 2025 and TRL's
      ``scale_rewards="batch"``);
    - ``scale="none"``: no division at all, ``Â_i = S_i − mean_g(S)`` (Dr. GRPO, Liu et al. 2025).

    ``kind`` then picks the advantage fed to the loss:

    - ``"grpo"``: ``A_i = Â_i``.
    - ``"ap_grpo"`` (absolute-preserving, additive): ``A_i = Â_i + α · S_i``. A group whose
      rewards are all the same non-zero value still gets a gradient (``α · S``).
    - ``"ap_grpo_mul"`` (absolute-preserving, multiplicative): ``A_i = Â_i · S_i^α``. Needs
      ``S >= 0`` unless ``α`` is 0 (``0^0 = 1``).

    With ``α = 0`` both absolute-preserving kinds equal ``"grpo"``. Returns fp32 ``(B,)``.
    """
    if group_size < 1:
        raise ValueError(f"Expected group_size >= 1, got {group_size!r}.")
    rewards = torch.as_tensor(rewards).float()
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"Expected rewards of shape (B,) with B a multiple of group_size ({group_size}), "
            f"got shape {tuple(rewards.shape)}."
        )
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale == "group":
        std = groups.std(dim=1, unbiased=False, keepdim=True)
    elif scale == "batch":
        std = rewards.std(unbiased=False)
    elif scale == "none":
        std = None
    else:
        raise ValueError(f"Unknown reward scale: {scale!r}. Expected one of {REWARD_SCALES}.")
    normed = (centred if std is None else centred / (std + eps)).reshape(-1)

    if kind == "grpo":
        # GRPO (Shao et al. 2024, DeepSeekMath; ViLaSR eq. 7): group-relative only.
        return normed
    elif kind == "ap_grpo":
        # Absolute-preserving GRPO, additive: keeps the reward's absolute level in the signal.
        return normed + alpha * rewards
    elif kind == "ap_grpo_mul":
        # Absolute-preserving GRPO, multiplicative: the relative signal weighted by S^alpha.
        if alpha != 0 and bool((rewards < 0).any()):
            raise ValueError(
                f"Expected rewards >= 0 for kind='ap_grpo_mul' with alpha={alpha}, got "
                f"min {float(rewards.min())}. Use kind='ap_grpo' for signed rewards."
            )
        return normed * rewards.pow(alpha)
    else:
        raise ValueError(f"Unknown advantage kind: {kind!r}. Expected one of {ADVANTAGE_KINDS}.")


def _checked_inputs(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    ref_logprobs: Tensor | None,
    *,
    eps_low: float,
    eps_high: float,
    beta: float,
) -> Tensor:
    """Raise on impossible settings or shapes; returns the advantages as ``(B, 1)`` or
    ``(B, T)`` float32, ready to broadcast over tokens."""
    if not 0 <= eps_low < 1:
        raise ValueError(f"Expected 0 <= eps_low < 1, got {eps_low!r}.")
    if not eps_high >= 0:
        raise ValueError(f"Expected eps_high >= 0, got {eps_high!r}.")
    if not beta >= 0:
        raise ValueError(f"Expected beta >= 0, got {beta!r}.")
    if beta > 0 and ref_logprobs is None:
        raise ValueError(
            f"Expected ref_logprobs with beta={beta}: the KL term needs the reference model's "
            "log-probs. Pass ref_logprobs or set beta=0."
        )
    if logprobs.dim() != 2:
        raise ValueError(f"Expected logprobs of shape (B, T), got {tuple(logprobs.shape)}.")
    for name, value in (("old_logprobs", old_logprobs), ("mask", mask), ("ref", ref_logprobs)):
        if value is not None and value.shape != logprobs.shape:
            raise ValueError(
                f"Expected {name} of shape {tuple(logprobs.shape)} like logprobs, got "
                f"{tuple(value.shape)}."
            )
    batch = logprobs.shape[0]
    advantages = advantages.float()
    if advantages.dim() == 1 and advantages.shape[0] == batch:
        advantages = advantages[:, None]
    elif advantages.shape != logprobs.shape:
        raise ValueError(
            f"Expected advantages of shape ({batch},) or {tuple(logprobs.shape)}, got "
            f"{tuple(advantages.shape)}."
        )
    return advantages


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    loss_type: str = "grpo",
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    ref_logprobs: Tensor | None = None,
    beta: float = 0.0,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped surrogate loss over generated tokens, with its normalisation chosen by name.

    Args:
        logprobs: ``(B, T)`` log π(o_t) under the current weights (carries the gradient).
        old_logprobs: ``(B, T)`` log π_old(o_t), the sampling log-probs (no gradient needed).
        advantages: ``(B,)`` one per trajectory (from :func:`group_advantages`), or ``(B, T)``.
        mask: ``(B, T)`` 1 on generated tokens, 0 elsewhere; what the other tensors hold where
            the mask is 0 (padding, prompt) never reaches the loss or its gradient.
        loss_type: ``"grpo"``, ``"dr_grpo"`` or ``"dapo"`` (below).
        eps_low, eps_high: the clip range ``[1 − eps_low, 1 + eps_high]`` (DAPO's clip-higher
            when ``eps_high > eps_low``).
        ref_logprobs: ``(B, T)`` log π_ref(o_t); required when ``beta > 0``, else ignored.
        beta: KL coefficient (0 = no KL term, the ViLaSR setting).
        max_tokens: the constant normaliser of ``"dr_grpo"`` (the generation budget).

    Per token, with ``ρ = exp(logprobs − old_logprobs)``::

        o_it = min(ρ_it A_i, clip(ρ_it, 1 − eps_low, 1 + eps_high) A_i) − β · KL_it
        KL_it = exp(r_it) − r_it − 1,  r_it = log π_ref − log π   (k3 estimator, Schulman 2020)

    Returns ``(loss, stats)``; ``stats`` holds floats: ``clip_fraction`` (share of generated
    tokens whose clipped branch is the active one: ``ρ > 1 + eps_high`` with ``A > 0`` or
    ``ρ < 1 − eps_low`` with ``A < 0``), ``approx_kl`` (mean of ``(ρ − 1) − log ρ``, the k3
    estimate of KL(π_old ‖ π)), ``ratio_mean`` and, when the KL term is on, ``kl``.
    Trajectories without generated tokens add 0 to the loss and never produce NaN.
    """
    advantages = _checked_inputs(
        logprobs,
        old_logprobs,
        advantages,
        mask,
        ref_logprobs,
        eps_low=eps_low,
        eps_high=eps_high,
        beta=beta,
    )
    batch = logprobs.shape[0]
    on = mask.bool()
    weight = on.float()
    logprobs = logprobs.float()
    # Masked positions get log-ratio 0 so padding can never overflow exp() into a NaN gradient.
    log_ratio = torch.where(on, logprobs - old_logprobs.float(), torch.zeros_like(logprobs))
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high)
    objective = torch.minimum(ratio * advantages, clipped * advantages)
    use_kl = beta > 0
    if use_kl:
        to_ref = torch.where(on, ref_logprobs.float() - logprobs, torch.zeros_like(logprobs))
        kl = to_ref.exp() - to_ref - 1
        objective = objective - beta * kl
    objective = objective * weight

    n_tokens = weight.sum(dim=1)  # N_i
    if loss_type == "grpo":
        # GRPO (Shao et al. 2024, DeepSeekMath; ViLaSR eq. 7): mean over tokens of each
        # trajectory, then mean over trajectories.
        loss = -(objective.sum(dim=1) / n_tokens.clamp(min=1)).sum() / batch
    elif loss_type == "dr_grpo":
        # Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training"): a constant
        # normaliser B * max_tokens removes the length bias of the 1/N_i average.
        if max_tokens is None or max_tokens < 1:
            raise ValueError(
                f"Expected max_tokens >= 1 for loss_type='dr_grpo', got {max_tokens!r}. Pass the "
                "generation budget (tokens per trajectory) as the constant normaliser."
            )
        loss = -objective.sum() / (batch * max_tokens)
    elif loss_type == "dapo":
        # DAPO (Yu et al. 2025): token-level mean over every generated token of the batch.
        loss = -objective.sum() / n_tokens.sum().clamp(min=1)
    else:
        raise ValueError(f"Unknown loss type: {loss_type!r}. Expected one of {LOSS_TYPES}.")

    with torch.no_grad():
        total = weight.sum().clamp(min=1)
        active = ((ratio > 1 + eps_high) & (advantages > 0)) | (
            (ratio < 1 - eps_low) & (advantages < 0)
        )
        stats = {
            "clip_fraction": float((active.float() * weight).sum() / total),
            "approx_kl": float((((ratio - 1) - log_ratio) * weight).sum() / total),
            "ratio_mean": float((ratio * weight).sum() / total) if on.any() else 1.0,
        }
        if use_kl:
            stats["kl"] = float((kl * weight).sum() / total)
    return loss, stats


def sft_loss(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Token-level cross-entropy on the assistant's tokens, normalised by their count.

    ``logits`` is ``(B, T, V)`` as a causal LM returns it for ``input_ids = labels``: row ``t``
    is the distribution of the token at ``t + 1``. ``labels`` and ``mask`` are ``(B, T)``,
    aligned with the input ids, ``mask[b, t] = 1`` when ``labels[b, t]`` is an assistant token
    (the same convention as :attr:`Trajectory.mask`; ``mask[:, 0]`` has no prediction and is
    ignored). With ``M = {(b, t) : mask[b, t] = 1, t >= 1}``::

        L = −(1/|M|) Σ_{(b,t) ∈ M} log softmax(logits[b, t − 1])[labels[b, t]]

    Only the selected rows of ``logits`` are cast to fp32. ``|M| = 0`` gives a zero loss that
    still backpropagates (zero gradients).
    """
    if logits.dim() != 3 or logits.shape[:2] != labels.shape or labels.shape != mask.shape:
        raise ValueError(
            f"Expected logits (B, T, V) with labels and mask (B, T), got "
            f"{tuple(logits.shape)}, {tuple(labels.shape)} and {tuple(mask.shape)}."
        )
    keep = mask[:, 1:].bool()
    if not keep.any():
        return logits.sum() * 0.0
    scores = logits[:, :-1][keep].float()  # (|M|, V)
    targets = labels[:, 1:][keep].long()
    return torch.nn.functional.cross_entropy(scores, targets, reduction="mean")


__all__ = [
    "ADVANTAGE_KINDS",
    "LOSS_TYPES",
    "REWARD_SCALES",
    "group_advantages",
    "policy_loss",
    "sft_loss",
]
