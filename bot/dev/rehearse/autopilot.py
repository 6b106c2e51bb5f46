"""`golive rehearse --autopilot`: the same night driven by `/golive go` (issue 21). alice types
`start` and `go`; the autopilot requests the preflight and every ungated step on her behalf and
posts each gated step's approval card, which the second person approves as it appears (the same
approvers as the manual rehearsal: bob, carol, bob). It stops by itself at the canary, which
people do exactly as in the manual rehearsal (phases.canary, phases.signoff); if the runbook
has steps the autopilot drives after the canary, alice types `go` again and the approvals follow
as before; then `finish`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.dev.rehearse.people import APPROVERS, CUTOVER, REQUESTER, People, public, text_of
from bot.dev.rehearse.phases import preflight_card
from bot.dev.rehearse.timeline import PhaseFailed, RehearsalTimeline
from bot.ids import Action

STOPPED = "Autopilot stopped"
STEPS = (("Maintenance mode on", "maintenance-on", APPROVERS[0]),
         ("Deploy", "deploy", APPROVERS[1]),
         ("Migrations", "migrate", None),
         ("Health", "health", None),
         ("Smoke", "smoke", None),
         ("Open traffic", "traffic-open", APPROVERS[0]))


def _top(m: Any) -> bool:
    return public(m) and not m.via_response_url and not m.is_reply


def _seen(m: Any) -> bool:
    """Public and posted by the bot (top-level or in a thread: the run card's thread holds the
    step cards that need nobody and the autopilot's stop notices, issue 21 item 4)."""
    return public(m) and not m.via_response_url


def stop_notice(p: People, after: int) -> Any:
    """The autopilot's newest stop notice posted after ``after``, or None."""
    found = [m for m in p.ws.messages(CUTOVER, after_seq=after)
             if _seen(m) and STOPPED in text_of(m)]
    return found[-1] if found else None


def go(p: People, t: RehearsalTimeline) -> int:
    """alice types `/golive go`; the seq before it."""
    after = p.seq()
    p.expect(p.command(REQUESTER, "go"), "turned the autopilot on", what="/golive go")
    t.note(f"{REQUESTER} turned the autopilot on (/golive go)")
    return after


def preflight(p: People, t: RehearsalTimeline, sha: str) -> int:
    """`start`, then `go`: the autopilot requests the preflight; its checks are green. The seq
    before `go` (the cutover's cards come after it)."""
    p.expect(p.command(REQUESTER, f"start v2 {sha}"), "started cutover run",
             what="/golive start")
    t.note(f"{REQUESTER} started the run for v2 pinned to {sha[:12]}")
    after = go(p, t)
    _failed_stop(p, after)
    preflight_card(p, t, after)
    return after


def _failed_stop(p: People, after: int) -> None:
    notice = stop_notice(p, after)
    if notice is not None and "Canary" not in text_of(notice):
        raise PhaseFailed(text_of(notice)[:400])


def _approval_card(p: People, t: RehearsalTimeline, title: str, step: str, after: int,
                   *, timeout: float = 420) -> Any:
    """The step's approval card once the autopilot posts it (PhaseFailed if it stops first)."""
    def found() -> Any:
        _failed_stop(p, after)
        return p.find(CUTOVER, after=after, contains=title, where=lambda m: _top(m) and all(
            w in text_of(m) for w in (f"step `{step}`", "Approve")))
    return t.wait(f"the {title} approval card", found, timeout=timeout)


def cutover(p: People, t: RehearsalTimeline, after: int) -> None:
    """The second person approves each gated card as it appears; every step succeeds and the
    autopilot stops before the canary."""
    for title, step, approver in STEPS:
        if approver is None:
            continue
        card = _approval_card(p, t, title, step, after)
        who = "autopilot" if "autopilot" in text_of(card) else "someone else"
        t.note(f"the autopilot asked for `{step}` (the card says requested by {who}); it waits "
               "for a second person")
        p.click(approver, card, Action.APPROVE)
        t.note(f"{approver} approved `{step}`")
    notice = t.wait("the autopilot's stop at the canary", lambda: stop_notice(p, after),
                    timeout=420)
    text = text_of(notice)
    t.note(text.splitlines()[0][:140], ok="Canary" in text)
    if "Canary" not in text:
        raise PhaseFailed(text[:400])
    for title, step, _ in STEPS:
        # A card's last update may still be on its way (one update a second per message):
        # wait for it, as a person would glance again, rather than read it once.
        def card_text(s: str = step, title: str = title) -> str:
            card = p.find(CUTOVER, after=after, contains=title,
                          where=lambda m: _seen(m) and f"step `{s}`" in text_of(m))
            return text_of(card) if card is not None else ""

        def succeeded_line(read: Callable[[], str] = card_text) -> str | None:
            return next((ln for ln in read().splitlines() if "succeeded" in ln), None)
        try:
            head = t.wait(f"the {title} card showing succeeded", succeeded_line, timeout=60,
                          status=lambda read=card_text: read()[-60:])
        except PhaseFailed:
            done = card_text()
            t.note(f"{title}: no succeeded card", ok=False)
            raise PhaseFailed(f"{title}: {done[-300:] or 'no card'}") from None
        t.note(f"{title}: {head.strip()[:110]}")


def continues(runbook: Any, states: dict[str, str]) -> bool:
    """Whether the autopilot has anything to drive from ``states`` (after the canary)."""
    from runbook.rules.autopilot import next_moves

    moves = next_moves(runbook, states)
    return bool(moves.request or moves.ask_approval)


def after_canary(p: People, t: RehearsalTimeline, runbook: Any, states: dict[str, str]
                 ) -> None:
    """If the runbook goes on past the canary with steps the autopilot drives: `go` again and
    approve each card as it appears (bob) until it stops."""
    if not continues(runbook, states):
        t.note("the runbook has nothing the autopilot drives after the canary: no `go`")
        return
    after = go(p, t)
    approved: set[str] = set()

    def step() -> Any:
        for m in p.ws.messages(CUTOVER, after_seq=after):
            if _top(m) and m.ts not in approved and "Approve" in text_of(m) \
                    and "awaiting approval" in text_of(m):
                approved.add(m.ts)
                p.click(APPROVERS[0], m, Action.APPROVE)
                t.note(f"{APPROVERS[0]} approved {text_of(m).splitlines()[0][:80]}")
        return stop_notice(p, after)
    notice = t.wait("the autopilot's stop", step, timeout=600)
    t.note(text_of(notice).splitlines()[0][:140])
