"""What Slack sends, read defensively. Pure: no I/O.

Payloads are never trusted to be shaped as documented: every reader here returns None (or an
empty string) for a malformed one, and the listener acks it, logs one line and does nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.ids import Block

log = logging.getLogger(__name__)


def field(body: Any, *path: str) -> str | None:
    """``body[path...]`` as a non-empty string, or None: payloads are never trusted to be
    shaped as documented."""
    node = body
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, str) and node else None


def number(text: str | None) -> int | None:
    """A button value or metadata part that must be a database id."""
    return int(text) if text and text.isascii() and text.isdigit() and len(text) < 19 else None


def submission(body: Any, view: Any) -> tuple[str | None, list[str], int | None]:
    """Who submitted a modal, our ``private_metadata`` split on ``|``, and its first part as
    the database id it must be (None when it is not one)."""
    parts = (field(view, "private_metadata") or "").split("|")
    return field(body, "user", "id"), parts, number(parts[0])


def input_value(view: Any, block: str, element: str) -> str:
    """A modal's text input, stripped; empty when it is missing or not text."""
    value = field(view, "state", "values", block, element, "value")
    return value.strip() if value is not None else ""


def reason_of(view: Any) -> str:
    """The written reason of a reason modal (``bot.slack.blocks.reason_modal``)."""
    return input_value(view, Block.REASON, Block.REASON_INPUT)


@dataclass(frozen=True)
class Click:
    """What a button click says, checked for shape: who, where, which card, which value."""

    user: str
    channel: str
    message_ts: str | None
    value: int
    trigger_id: str | None

    @classmethod
    def read(cls, body: Any, action: Any) -> Click | None:
        user, value = field(body, "user", "id"), number(field(action, "value"))
        channel = field(body, "channel", "id") or field(body, "container", "channel_id")
        if user is None or channel is None or value is None:
            log.warning("ignored a malformed click on %s", field(action, "action_id"))
            return None
        return cls(user, channel, field(body, "container", "message_ts"), value,
                   field(body, "trigger_id"))


@dataclass(frozen=True)
class Metadata:
    """A reason modal's submission: who, and what the modal was opened for (our metadata)."""

    user: str
    value: int
    channel: str
    message_ts: str | None

    @classmethod
    def read(cls, body: Any, view: Any) -> Metadata | None:
        user, parts, value = submission(body, view)
        if user is None or value is None or len(parts) < 2 or not parts[1]:
            log.warning("ignored a malformed modal submission")
            return None
        return cls(user, value, parts[1], parts[2] if len(parts) > 2 and parts[2] else None)

    @staticmethod
    def of(click: Click) -> str:
        """The ``private_metadata`` a reason modal opened from ``click`` carries."""
        return f"{click.value}|{click.channel}|{click.message_ts or ''}"
