"""Break-glass: one person may start a rollback alone, with a reason, for listed triggers only.

Pure (pydantic only). The bot config's ``[rollback.break_glass]`` table is
:class:`BreakGlassConfig`; :func:`break_glass_allowed` is the rule. An ``allowed_triggers``
entry matches a trigger id equal to it or starting with it and a ``-`` (``security`` matches
``security-incident``), so the defaults fit the shipped runbook's trigger ids. A metric
trigger (a watched number) counts only when the watch saw it over its threshold: naming the
ledger is not enough to skip the second person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class BreakGlassConfig(BaseModel):
    """``[rollback.break_glass]``: when one person may roll back without a second approver."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    """Allow break-glass at all; false: every rollback follows [approvers]
    rollback_requires_approval."""
    allowed_triggers: tuple[str, ...] = ("security", "ledger")
    """Trigger ids (or their first words: ``security`` matches ``security-incident``)."""
    min_reason_chars: int = Field(20, ge=1, le=500)
    """The reason is mandatory; a few words of why, not ``x``."""
    require_fired: bool = True
    """A metric trigger counts only when its watch measured it over the threshold."""

    @field_validator("allowed_triggers")
    @classmethod
    def _ids(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [t for t in v if not t.strip() or t != t.strip().lower()]
        if bad:
            raise ValueError(f"trigger ids are lowercase, without spaces around: {bad}")
        return v


class RollbackSettings(BaseModel):
    """``[rollback]`` of the bot config (the runbook's ``[rollback]`` holds the steps)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    break_glass: BreakGlassConfig = Field(default_factory=BreakGlassConfig)
    """[rollback.break_glass]: when one person may roll back alone."""


def matches(trigger_id: str, allowed: str) -> bool:
    """``allowed`` names this trigger: the same id, or its first words."""
    return trigger_id == allowed or trigger_id.startswith(allowed + "-")


def break_glass_allowed(trigger: Any, reason: str | None, config: BreakGlassConfig, *,
                        metrics: Mapping[str, float] | None = None,
                        triggers: Sequence[Any] | None = None) -> tuple[bool, str]:
    """(ok, why): may one person start the rollback alone for ``trigger`` with ``reason``?

    ``trigger`` is a ``runbook.model.Trigger``, or its id resolved against ``triggers`` (the
    runbook's; pass them, or an id is taken as a manual declaration). ``metrics`` are the
    watch's latest measurements, which a metric trigger must have crossed.
    """
    if isinstance(trigger, str) and triggers is not None and trigger.strip():
        found = [t for t in triggers if t.id == trigger.strip()]
        if not found:
            return False, (f"no rollback trigger {trigger.strip()!r} in the runbook (known: "
                           f"{', '.join(t.id for t in triggers) or 'none'})")
        trigger = found[0]
    if not config.enabled:
        return False, "break-glass is turned off ([rollback.break_glass] enabled = false)"
    if trigger is None or (isinstance(trigger, str) and not trigger.strip()):
        return False, ("break-glass needs the trigger that forces it (one of "
                       f"{', '.join(config.allowed_triggers) or 'none configured'})")
    trigger_id = trigger if isinstance(trigger, str) else str(trigger.id)
    if not any(matches(trigger_id, a) for a in config.allowed_triggers):
        return False, (f"break-glass is not allowed for {trigger_id}: only for "
                       f"{', '.join(config.allowed_triggers) or 'no trigger'} "
                       "([rollback.break_glass] allowed_triggers); ask a second approver")
    text = " ".join((reason or "").split())
    if not text:
        return False, "break-glass needs a reason: say why this cannot wait for a second person"
    if len(text) < config.min_reason_chars:
        return False, (f"the break-glass reason is too short ({len(text)} characters, at least "
                       f"{config.min_reason_chars}): say what happened")
    if config.require_fired and not isinstance(trigger, str) and not getattr(
            trigger, "manual", True):
        fired = trigger.fired(metrics or {})
        if fired is not True:
            seen = "was not measured" if fired is None else "is not over its threshold"
            return False, (f"{trigger_id} is a watched metric and it {seen}: break-glass needs "
                           "the watch to have fired; ask a second approver")
    return True, f"break-glass allowed for {trigger_id}: one person may proceed, reason recorded"
