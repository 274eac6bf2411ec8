"""Why an episode ends: the values of ``info["termination"]``.

docs/environment.md (Termination and truncation) gives each reason's condition and the order the
env checks them in.
"""

from __future__ import annotations

ENV_TERMINATIONS = (
    "answer",
    "no_action",
    "max_images",
    "repeated_action",
    "invalid_action",
    "max_turns",
)
"""The reasons the env itself reports, in the order they are checked."""

TERMINATIONS = (*ENV_TERMINATIONS, "max_tokens")
"""Every reason an episode can end with; ``max_tokens`` is set by rollout code that caps the
tokens a policy may generate in one episode."""
