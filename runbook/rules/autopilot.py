"""The autopilot's next moves, from where the run stands (issue 21). Pure: no I/O.

``next_moves(runbook, states, ...)`` reads the run's latest execution per step and answers:

* **request** these ungated, non-manual cutover steps now (their requirements are met: the
  same ``Runbook.next_steps`` / ``unmet_requirements`` the engine refuses an early request with),
  all at once;
* **ask approval** for these reachable gated steps (the request posts the approval card; the
  autopilot never approves);
* **wait** for these (awaiting approval, queued, running);
* or **stop**, with why and what is next: a step failed or was interrupted, an approval was
  rejected or expired, the rollback started, the canary is reachable (people move real money
  there), every cutover step it drives is done (next: ``/golive finish``), or nothing is left
  it may request.

It drives the cutover phases only, never the rollback plan, and never requests a ``canary`` or
``watch.*`` step (the watches start on their own when traffic opens; the canary is people's).
A step whose kind is not built is never requested. A gated step is asked for only when the
preflight gate lets it (``preflight_block``: the gate's refusal, or None); otherwise it stops
with the gate's words. Whether it is on, and who started it, is the driver's business.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from runbook.model import DONE_STATES, Runbook, Step

__all__ = ["ACTIVE", "NEVER_DRIVES", "Moves", "Stop", "StopReason", "fresh_states",
           "next_moves"]

ACTIVE = frozenset({"awaiting_approval", "queued", "running"})
BROKEN = frozenset({"failed", "interrupted"})
NEVER_DRIVES = frozenset({"canary"})
"""Kinds the autopilot stops before: people move real money there."""
_SELF_STARTING = ("watch.",)
"""Kind prefixes the autopilot leaves alone: the watches start when traffic opens."""


class StopReason(StrEnum):
    FAILURE = "failure"
    """A step failed or was interrupted: a person decides (Retry, Skip, Roll back, ...)."""
    REJECTED = "rejected"
    """An approval the autopilot asked for was rejected, expired or cancelled."""
    ROLLBACK = "rollback"
    PREFLIGHT = "preflight"
    """The preflight gate refuses the next gated step."""
    CANARY = "canary"
    FINISH = "finish"
    """Every step it drives is done; next is ``/golive finish``."""
    NOTHING = "nothing"
    """Nothing it may request, nothing running: a person's turn."""


@dataclass(frozen=True)
class Stop:
    reason: StopReason
    step_id: str | None
    why: str
    """What happened, for the channel (plain words, step titles in *bold*)."""
    next: str
    """What a person does next."""


@dataclass(frozen=True)
class Moves:
    request: tuple[str, ...] = ()
    """Ungated step ids to request now (runbook order)."""
    ask_approval: tuple[str, ...] = ()
    """Gated step ids to request now: each posts its approval card."""
    waiting: tuple[str, ...] = ()
    """Step ids in progress (awaiting approval, queued, running)."""
    stop: Stop | None = None
    """Set when the autopilot turns itself off; ``request`` and ``ask_approval`` are then empty."""
    blocked: tuple[str, ...] = field(default=())
    """Reachable steps it will not request (not built), for the stop's words."""

    @property
    def waits_for(self) -> str:
        """One line for status: what it waits for."""
        if self.stop is not None:
            return f"stopped: {self.stop.why}"
        if self.waiting:
            return ", ".join(self.waiting)
        return "nothing"


def _drives(step: Step) -> bool:
    return not step.manual and step.kind not in NEVER_DRIVES \
        and not step.kind.startswith(_SELF_STARTING)


def fresh_states(rows: Iterable[tuple[str, str, datetime | None]], since: datetime
                 ) -> dict[str, str]:
    """The latest state per step, as the autopilot reads it: a step cancelled (rejected,
    expired, void) *before* the autopilot was (re)started counts as never requested, so
    ``/golive go`` asks again; one cancelled after it is a person's "no" and stops it.
    ``rows``: (step id, state, when it ended or None)."""
    out: dict[str, str] = {}
    for step_id, state, ended in rows:
        if state == "cancelled" and ended is not None and ended < since:
            continue
        out[step_id] = state
    return out


def next_moves(runbook: Runbook, states: Mapping[str, str], *,
               available: Collection[str] | None = None,
               preflight_block: str | None = None,
               rollback_started: bool = False) -> Moves:
    """The autopilot's moves (see the module docstring). ``states``: the latest state per step
    id (absent: never requested). ``available``: the built kinds (None: every kind)."""
    cutover = runbook.cutover_steps()
    if rollback_started or any(states.get(s.id) for s in runbook.rollback):
        return Moves(stop=Stop(StopReason.ROLLBACK, None, "the rollback has started",
                               "follow the rollback's cards; the autopilot stays off"))
    for step in cutover:
        state = states.get(step.id)
        if state in BROKEN:
            word = "was interrupted" if state == "interrupted" else "failed"
            return Moves(stop=Stop(StopReason.FAILURE, step.id, f"*{step.title}* {word}",
                                   "decide on its card (Retry, Mark done or Start rollback), "
                                   "then `/golive go` to resume"))
        if state == "cancelled" and _drives(step):
            return Moves(stop=Stop(StopReason.REJECTED, step.id,
                                   f"the request for *{step.title}* was rejected, expired or "
                                   "cancelled", "`/golive go` asks for it again"))
    waiting = tuple(s.id for s in cutover if states.get(s.id) in ACTIVE and _drives(s))
    reachable = [s for s in runbook.next_steps(states) if states.get(s.id) not in ACTIVE]
    canary = next((s for s in reachable if s.kind in NEVER_DRIVES), None)
    mine = [s for s in reachable if _drives(s)]
    blocked = tuple(s.id for s in mine if available is not None and s.kind not in available)
    mine = [s for s in mine if s.id not in blocked]
    request = tuple(s.id for s in mine if not s.gated)
    gated = [s for s in mine if s.gated]
    if gated and preflight_block:
        if request or waiting:  # let the rest go on; the gate speaks once nothing else moves
            return Moves(request=request, waiting=waiting, blocked=blocked)
        return Moves(stop=Stop(StopReason.PREFLIGHT, gated[0].id,
                               f"*{gated[0].title}* cannot start: {preflight_block}",
                               "fix the preflight (`/golive preflight`), then `/golive go`"),
                     blocked=blocked)
    ask = tuple(s.id for s in gated)
    if request or ask or waiting:
        return Moves(request=request, ask_approval=ask, waiting=waiting, blocked=blocked)
    if canary is not None:
        return Moves(stop=Stop(StopReason.CANARY, canary.id,
                               f"*{canary.title}* is next: people move real money there",
                               f"`/golive {canary.command or canary.id}` when you are ready"),
                     blocked=blocked)
    left = [s for s in cutover if _drives(s) and states.get(s.id) not in DONE_STATES
            and (available is None or s.kind in available)]
    if not left:
        return Moves(stop=Stop(StopReason.FINISH, None,
                               "every step the autopilot drives is done",
                               "check the watches and the canary's sign-off, then "
                               "`/golive finish`"), blocked=blocked)
    names = ", ".join(f"`{s.id}`" for s in left)
    return Moves(stop=Stop(StopReason.NOTHING, None,
                           f"nothing it may request now ({names} not reachable)",
                           "a person's turn: see `/golive status`"), blocked=blocked)
