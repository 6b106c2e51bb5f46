"""Who asks the engine, and its refusal: shared by the engine's collaborators without
importing the facade (no cycle).

``Requester`` is the engine's caller (a Slack user in a channel), not the two-person rule's
``runbook.rules.approvals.Actor`` (a Slack account with its flags)."""

from __future__ import annotations

from dataclasses import dataclass


class Refused(Exception):
    """A request the engine will not carry out; ``message`` is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Requester:
    """Who asks, and where. ``via``: another requester acting for ``user_id`` (for example
    the autopilot): the request is ``user_id``'s (the two-person rule counts it as theirs),
    and the audit and the step card say who made it on their behalf."""

    user_id: str
    channel: str
    via: str | None = None
