"""The scripted people of a rehearsal, acting only through the sandbox workspace as Slack
users do: signed slash commands, button clicks and modal submissions delivered to the bot
over its wire protocol; everything they read comes back from the sandbox.

alice requests, bob and carol approve (@golive-approvers), erin and finn sign the canary.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from bot.dev.rehearse.counts import is_lookup
from bot.dev.rehearse.timeline import PhaseFailed, RehearsalTimeline
from bot.dev.sandbox import Workspace
from bot.dev.sandbox.workspace import Message, message_text
from bot.ids import Action, Block

CUTOVER, INCIDENT = "C_CUTOVER", "C_INCIDENT"
REQUESTER, APPROVERS, SIGNERS = "alice", ("bob", "carol"), ("erin", "finn")


def workspace() -> Workspace:
    """The demo workspace plus the two canary signers."""
    users = [{"id": "U_ALICE", "name": "alice", "real_name": "Alice Archer"},
             {"id": "U_BOB", "name": "bob", "real_name": "Bob Baker"},
             {"id": "U_CAROL", "name": "carol", "real_name": "Carol Chen"},
             {"id": "U_ERIN", "name": "erin", "real_name": "Erin Engineer"},
             {"id": "U_FINN", "name": "finn", "real_name": "Finn Finance"}]
    return Workspace({
        "team": {"id": "T0SANDBOX", "domain": "sandbox"}, "users": users,
        "usergroups": [{"id": "S_APPROVERS", "handle": "golive-approvers",
                        "users": ["U_BOB", "U_CAROL"]}],
        "channels": [{"id": CUTOVER, "name": "cutover"}, {"id": INCIDENT, "name": "incident"}]})


def text_of(msg: Message) -> str:
    """What a person reads (Slack shows &lt; as <)."""
    return html.unescape(message_text(msg))


def public(m: Message) -> bool:
    return m.ephemeral_to is None


class People:
    def __init__(self, sandbox: Any, timeline: RehearsalTimeline) -> None:
        self.sandbox, self.ws, self.t = sandbox, sandbox.workspace, timeline
        self.lookup_answers: set[str] = set()
        """The ts of the ephemeral answers to look-ups (status, watch list): not counted."""
        self.typed: list[str] = []
        """Every `/golive` text typed, in order (look-ups included)."""

    def uid(self, name: str) -> str:
        return self.ws.user(name).id

    def seq(self) -> int:
        return self.ws.seq

    def find(self, channel: str, *, after: int = 0, contains: str | None = None,
             where: Callable[[Message], bool] = lambda m: True) -> Message | None:
        for m in self.ws.messages(channel, after_seq=after):
            if (contains is None or contains in text_of(m)) and where(m):
                return m
        return None

    def command(self, user: str, text: str, *, channel: str = CUTOVER,
                timeout: float = 20) -> str:
        """`/golive text` as ``user``; the bot's answer as the user sees it."""
        uid, after = self.uid(user), self.seq()
        self.typed.append(" ".join(text.split()))
        d = self.sandbox.slash(user, text, channel=channel)
        if d.status != 200:
            raise PhaseFailed(f"/golive {text}: the bot answered HTTP {d.status} {d.error or ''}")
        msg = self.t.wait(f"{user}: /golive {text}", lambda: self.find(
            channel, after=after, where=lambda m: (m.via_response_url or m.source == "ack")
            and m.ephemeral_to in (None, uid)), timeout=timeout)
        if is_lookup(" ".join(text.split())):
            self.lookup_answers.update(m.ts for m in self.ws.messages(channel, after_seq=after)
                                       if m.ephemeral_to == uid)
        return text_of(msg)

    def expect(self, answer: str, *wants: str, what: str) -> None:
        if not any(w in answer for w in wants):
            raise PhaseFailed(f"{what}: the bot answered {answer[:300]!r}")

    def card(self, title: str, *, after: int, channel: str = CUTOVER, timeout: float = 20,
             showing: tuple[str, ...] = (), in_thread: bool = False) -> Message:
        """The public message with ``title`` posted after ``after``, once it shows each of
        ``showing`` (e.g. its step id and Approve button): top-level, or with ``in_thread`` a
        reply in the run card's thread (a step card that needs nobody, issue 21 item 4)."""
        return self.t.wait(f"the {title} card", lambda: self.find(
            channel, after=after, contains=title,
            where=lambda m: public(m) and not m.via_response_url and m.is_reply == in_thread
            and all(w in text_of(m) for w in showing)), timeout=timeout)

    def card_showing(self, card: Message, label: str, words: tuple[str, ...], *,
                     timeout: float, channel: str = CUTOVER) -> str:
        """Wait (progress bar) until the card, updated in place, shows one of ``words``."""
        def now() -> str:
            m = self.ws.message(channel, card.ts)
            return text_of(m) if m else ""

        def status() -> str:
            lines = [ln.strip() for ln in now().splitlines() if ln.strip()]
            return lines[-1] if lines else ""
        def shown() -> str | None:
            s = now()
            return s if any(w in s for w in words) else None
        return self.t.wait(label, shown, timeout=timeout, status=status)

    def click(self, user: str, msg: Message, action: str) -> None:
        d = self.sandbox.click(user, msg, action_id=action)
        if d.status != 200:
            raise PhaseFailed(f"{user}'s click on {action}: HTTP {d.status} {d.error or ''}")

    def in_thread(self, parent: Message, contains: str, *, after: int,
                  timeout: float = 30) -> str:
        return text_of(self.t.wait(f"“{contains}” in the thread", lambda: self.find(
            CUTOVER, after=after, contains=contains,
            where=lambda m: public(m) and m.thread_ts == parent.ts and m.ts != parent.ts),
            timeout=timeout))

    def modal(self, user: str, values: dict[str, dict[str, str]]) -> int:
        """Submit the modal ``user`` has open with ``values``; the seq before submitting."""
        uid = self.uid(user)
        view = self.t.wait(f"{user}'s modal", lambda: (self.ws.open_views(uid) or [None])[0],
                           timeout=15)
        after = self.seq()
        d = self.sandbox.submit_view(user, view.id, values)
        if d.status != 200:
            raise PhaseFailed(f"{user}'s modal: HTTP {d.status} {d.error or ''}")
        return after

    # ------------------------------------------------------------------ runbook moves

    def run_step(self, text: str, title: str, step: str, *, approver: str | None = None,
                 timeout: float = 240) -> str:
        """alice asks for a step; an approver approves a gated one; the card's final text."""
        after = self.seq()
        answer = self.command(REQUESTER, text)
        self.expect(answer, "Approval requested" if approver else "Queued",
                    what=f"/golive {text}")
        card = self.card(title, after=after, in_thread=approver is None,
                         showing=(f"step `{step}`", *(("Approve",) if approver else ())))
        if approver:
            self.t.note(f"{REQUESTER} asked for `{text}`; the card waits for a second person")
            self.click(approver, card, Action.APPROVE)
            self.t.note(f"{approver} approved `{text}`")
        done = self.card_showing(card, f"{title}: running", ("succeeded", "failed",
                                                            "interrupted"), timeout=timeout)
        if "succeeded" not in done:
            raise PhaseFailed(f"{title}: {done[-400:]}")
        return done

    def report(self, msg: Message, item: str, ref: str, amount: str) -> int:
        action = Action.CANARY_DEPOSIT if item == "deposit" else Action.CANARY_WITHDRAWAL
        self.click(REQUESTER, msg, action)
        return self.modal(REQUESTER, {
            Block.CANARY_REFERENCE: {Block.CANARY_REFERENCE_INPUT: ref},
            Block.CANARY_AMOUNT: {Block.CANARY_AMOUNT_INPUT: amount}})

    def sign(self, signoff: Message, user: str, note: str) -> int:
        self.click(user, signoff, Action.CANARY_SIGN)
        return self.modal(user, {Block.CANARY_NOTE: {Block.CANARY_NOTE_INPUT: note}})
