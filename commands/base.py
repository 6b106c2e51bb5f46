"""What every command handler gets and returns; handlers stay 5-10 lines."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typed seams without import cycles: commands sit above the engine
    from bot.autopilot import Autopilot
    from bot.canary.room import CanaryRoom
    from bot.engine import Engine, Requester
    from bot.plan.service import PlanService
    from bot.team_config import GoliveConfig


class UsageError(Exception):
    """The command's words are off; ``message`` says how, help follows."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Reply:
    text: str
    blocks: list[dict] | None = None
    in_channel: bool = False


@dataclass(frozen=True)
class Invocation:
    """A parsed `/golive ...`: the subcommand, its positional words and its flags."""

    name: str
    words: tuple[str, ...]
    override: str | None = None
    raw: str = ""


@dataclass
class Context:
    """What a handler may use: the engine (its one way to change anything), who asked, where."""

    engine: Engine
    user_id: str
    channel: str
    config: GoliveConfig
    canary: CanaryRoom | None = None
    plan: PlanService | None = None
    """The plan service (`/golive plan`); None: the command says it is not available."""
    autopilot: Autopilot | None = None

    @property
    def actor(self) -> Requester:
        from bot.engine import Requester

        return Requester(self.user_id, self.channel)


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    handler: Callable[[Context, Invocation], Reply]
    validate: Callable[[Invocation], None] | None = None
    gated: bool = False
    takes_override: bool = False
    """Accepts ``--override "reason"`` (past unmet requirements) even when not gated."""
    from_runbook: bool = False
    """Derived from the runbook's steps (its policy is a step request's)."""
    prepare: Callable[[Context, Invocation], None] | None = None
    """What the handler will need from slow sources, looked up before the request's
    transaction opens (given the handler's Context): a gated step's plan part, the night's
    plan for `/golive plan` (issue 20)."""


MAX_TEXT = 2000
_SLACK_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITY_CHAR = {"amp": "&", "lt": "<", "gt": ">"}


def unescape_slack(text: str) -> str:
    """Undo the three escapes Slack applies to slash-command text (``&amp; &lt; &gt;``), in one
    pass, so what the user typed is what the bot escapes (once) when it shows it."""
    return _SLACK_ENTITY.sub(lambda m: _ENTITY_CHAR[m.group(1)], text)


def tokenize(text: str) -> Invocation:
    """Split the command text (as Slack sends it); raise UsageError (never anything else) on
    bad input."""
    text = unescape_slack(text)
    if len(text) > MAX_TEXT:
        raise UsageError(f"That command is {len(text)} characters long; the limit is {MAX_TEXT}.")
    if any(ord(c) < 32 and c not in "\t\n" for c in text):
        raise UsageError("That command contains control characters.")
    try:
        words = shlex.split(text.replace("“", '"').replace("”", '"'))
    except ValueError as e:
        raise UsageError(f"Could not read that command ({e}); check the quotes.") from None
    if not words:
        return Invocation(name="help", words=(), raw=text)
    override = None
    rest: list[str] = []
    it = iter(words[1:])
    for w in it:
        if w == "--override":
            override = next(it, "").strip()
            if not override:
                raise UsageError('`--override` needs a written reason: --override "why"')
        elif w.startswith("--override="):
            override = w.split("=", 1)[1].strip()
            if not override:
                raise UsageError('`--override` needs a written reason: --override "why"')
        else:
            rest.append(w)
    return Invocation(name=words[0].lower(), words=tuple(rest), override=override, raw=text)
