"""Who asks the engine, and its refusal: shared by the engine's collaborators without
importing the facade (no cycle)."""

from __future__ import annotations

from dataclasses import dataclass


class Refused(Exception):
    """A request the engine will not carry out; ``message`` is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Actor:
    user_id: str
    channel: str
