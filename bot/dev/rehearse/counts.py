"""What people did and saw during a rehearsal, counted from the sandbox workspace as a user
would: the actions they took (slash commands typed, buttons clicked, modals submitted, as the
sandbox delivered them to the bot) and the bot's messages in the cutover channel (top-level
messages, thread replies, ephemeral replies).

Read-only look-ups the scripted people make to watch progress (`/golive status`, `/golive
watch list`, `/golive help`: a person would glance at the channel instead) are counted apart,
with the ephemeral answers they got, so the manual and the autopilot night compare on what
drives the night.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

CUTOVER = "C_CUTOVER"
LOOKUPS = ("status", "help", "watch list")
"""Commands that only read: the scripted people's way of looking, not an action."""
KINDS = {"slash": "commands", "block_actions": "clicks", "view_submission": "modal_submits"}


@dataclass
class RehearsalCounts:
    mode: str
    """``manual`` or ``autopilot``."""
    commands: int = 0
    clicks: int = 0
    modal_submits: int = 0
    lookups: int = 0
    """Read-only commands (status, watch list, help), not in ``human_actions``."""
    top_level: int = 0
    """Public messages in the cutover channel that are not thread replies."""
    thread_replies: int = 0
    ephemeral: int = 0
    """Ephemeral replies in the cutover channel, the look-ups' answers excluded."""
    lookup_replies: int = 0
    wall_s: float = 0.0
    """From the rehearsal's start to the end of `finish`, set-up included."""
    night_s: float = 0.0
    """The phases after set-up (preflight to finish)."""
    typed: list[str] = field(default_factory=list)
    """The commands typed, in order (first word and sub-command), look-ups excluded."""

    @property
    def human_actions(self) -> int:
        return self.commands + self.clicks + self.modal_submits

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "human_actions": self.human_actions}


def is_lookup(text: str) -> bool:
    return any(text == w or text.startswith(w + " ") for w in LOOKUPS)


def _short(text: str) -> str:
    words = text.split()
    return " ".join(words[:2] if words[:1] in (["maintenance"], ["traffic"]) else words[:1])


def count(workspace: Any, mode: str, *, typed: Iterable[str] = (),
          lookup_answers: Iterable[str] = (), wall_s: float = 0.0, night_s: float = 0.0
          ) -> RehearsalCounts:
    """The counts of the workspace as it stands. The actions are what the sandbox delivered to
    the bot (slash commands, clicks, modal submissions answered 200); ``typed``: the texts of
    the slash commands in order (People records them), to tell the look-ups apart;
    ``lookup_answers``: the ts of the look-ups' ephemeral answers."""
    c = RehearsalCounts(mode, wall_s=round(wall_s, 1), night_s=round(night_s, 1))
    for d in list(workspace.deliveries):
        kind = KINDS.get(d.kind)
        if kind is not None and d.status == 200:
            setattr(c, kind, getattr(c, kind) + 1)
    texts = list(typed)
    c.lookups = sum(is_lookup(x) for x in texts)
    c.commands -= c.lookups
    c.typed = [_short(x) for x in texts if not is_lookup(x)]
    skip = set(lookup_answers)
    for m in workspace.messages(CUTOVER):
        if m.source == "user":  # a person's own message, not the bot's
            continue
        if m.ephemeral_to is not None:
            if m.ts in skip:
                c.lookup_replies += 1
            else:
                c.ephemeral += 1
        elif m.is_reply:
            c.thread_replies += 1
        else:
            c.top_level += 1
    return c


ROWS = (("human actions", "human_actions"), ("  commands typed", "commands"),
        ("  clicks", "clicks"), ("  modal submits", "modal_submits"),
        ("top-level messages", "top_level"), ("thread replies", "thread_replies"),
        ("ephemeral replies", "ephemeral"), ("look-ups (not counted above)", "lookups"),
        ("wall time (s)", "wall_s"), ("the night (s, set-up excluded)", "night_s"))


def load(path: Any) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
