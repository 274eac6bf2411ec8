"""Bridges to the trainers people already use: TRL and verl.

:mod:`drawenv.integrations.core` (torch-free, imported here) steps an episode one tool call at a
time; :mod:`drawenv.integrations.trl` (extra ``drawenv[trl]``) and :mod:`drawenv.integrations.verl`
(extra ``drawenv[verl]``) adapt it to each trainer and are imported only where used. See
``docs/integrations.md``.
"""

from __future__ import annotations

from drawenv.integrations.core import CallResult, Start, ToolEpisode

__all__ = ["CallResult", "Start", "ToolEpisode"]
