"""Language models for investigator agents: Claude through the anthropic SDK, or offline.

:func:`model_for` picks Claude when an API key or base URL is configured, else the built-in
deterministic investigator, which runs the same loop with the same tools.
"""

from __future__ import annotations

from emberlake.settings import Settings

from .base import AssistantTurn, Model, ToolSpec, ToolUse
from .offline import OfflineInvestigator

__all__ = ["AssistantTurn", "Model", "OfflineInvestigator", "ToolSpec", "ToolUse", "model_for"]


def model_for(settings: Settings) -> Model:
    """Claude if the settings say how to reach it, else the offline investigator."""
    if settings.agents.anthropic_api_key or settings.agents.anthropic_base_url:
        from .anthropic_model import AnthropicModel

        return AnthropicModel.from_settings(settings)
    return OfflineInvestigator()
