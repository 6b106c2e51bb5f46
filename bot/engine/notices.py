"""Notices: which messages must now show something new (outbox keys and touches).

Message keys (rendered by bot/engine/cards.py): card:exe:N is a step's card (for a gated step
also its approval card), card:approval:N a rollback or mark-done request's own card,
interrupted:exe:N the notice that asks what to do, summary:run:N the living run card (posted at
``start``, updated in place; the run summary once the run has ended), decision:exe:N the
top-level decision card of a step whose card is in the run card's thread, progress:exe:N the
live log in the card's thread, upload:exe:N long output as a file,
upload:exe:N:NAME a file a preflight check attached, preflight:exe:N the preflight's details in
the card's thread (bot/engine/preflight.py). Every touch is made in the transaction of the state
change it shows; the sender renders the message from the database at send time.

A quiet channel (issue 21 item 4): a step's card is top-level only where a person must act on it
(a gated cutover step's card is its approval card); every other step card (preflight, migrate,
health, smoke, the watches, the canary step, the rollback's steps) is a reply in the run card's
thread, and when such a step fails or is interrupted its decision card is posted top-level too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from bot.outbox import RUN_CARD, Outbox
from runbook.model import Runbook

DECISION = "decision:exe"
NEEDS_SOMEONE = ("failed", "interrupted")
SUMMARY_DELAY_S = 1.5  # past the closing card's own one-second update window


class Notices:
    """See the module docstring."""

    def __init__(self, outbox: Outbox, runbook: Runbook | None = None):
        self.outbox = outbox
        self._runbook = runbook

    @staticmethod
    def run_card_key(run_id: int) -> str:
        return f"{RUN_CARD}:{run_id}"

    def run_card(self, conn: psycopg.Connection, run: Mapping[str, Any]) -> None:
        """The living run card shows the run as it is now (posted at ``start``)."""
        self.outbox.touch(conn, key=self.run_card_key(run["id"]), channel=run["channel"])

    def run_thread(self, conn: psycopg.Connection, run_id: int | None) -> str | None:
        """The run card's key when it was posted (its thread takes progress), else None."""
        return self.outbox.run_thread(conn, run_id)

    def _quiet(self, exe: Mapping[str, Any]) -> bool:
        """Whether the step's card needs nobody's action: not a gated cutover step's card."""
        if self._runbook is None:
            return False
        step = self._runbook.step(exe["step_id"])
        return not step.gated or step.phase == "rollback"

    def touch(self, conn: psycopg.Connection, *, key: str, channel: str,
              thread_key: str | None = None, data: Any = None, delay: float = 0.0,
              final: bool = False) -> None:
        """Any message by key (the canary's and the watches' own messages)."""
        self.outbox.touch(conn, key=key, channel=channel, thread_key=thread_key, data=data,
                          delay=delay, final=final)

    def ts(self, conn: psycopg.Connection, key: str) -> str | None:
        """Where a message landed (None until it was posted)."""
        return self.outbox.ts(conn, key)

    def exists(self, conn: psycopg.Connection, key: str) -> bool:
        """Whether message ``key`` was ever touched."""
        return self.outbox.exists(conn, key)

    def landing(self, conn: psycopg.Connection, channel: str, ts: str) -> bool:
        """Whether a message is being posted in ``channel`` and its ts is not yet recorded."""
        return self.outbox.landing(conn, channel, ts)

    def step_changed(self, conn: psycopg.Connection, exe: Mapping[str, Any], *,
                     delay: float = 0.0, final: bool = False) -> None:
        """The step's card must show its current state (``delay``: only if still true then;
        ``final``: the step's result, sent without the debounce)."""
        run_card = self.run_thread(conn, exe.get("run_id"))
        thread = run_card if self._quiet(exe) else None
        self.outbox.touch(conn, key=f"card:exe:{exe['id']}", channel=exe["channel"],
                          thread_key=thread, delay=delay, final=final)
        if run_card is not None:  # the run card's "now" line
            self.outbox.touch(conn, key=run_card, channel=exe["channel"])
        if thread is None:
            return
        decision = f"{DECISION}:{exe['id']}"
        if exe["state"] in NEEDS_SOMEONE or self.outbox.exists(conn, decision):
            # someone must decide: the step's decision card is top-level, its buttons too
            self.outbox.touch(conn, key=decision, channel=exe["channel"], final=final)

    def card_thread(self, conn: psycopg.Connection, exe: Mapping[str, Any]) -> str:
        """Where a reply about the step's decision goes: its top-level decision card's thread
        when its card is in the run card's thread, else its card's."""
        decision = f"{DECISION}:{exe['id']}"
        return decision if self.outbox.exists(conn, decision) else f"card:exe:{exe['id']}"

    def interrupted(self, conn: psycopg.Connection, exe: Mapping[str, Any]) -> None:
        """Ask the channel what to do about a step whose outcome is unknown."""
        self.step_changed(conn, exe)
        # A cutover step's card is its decision card (issue 21): the notice's Retry / Mark done /
        # Start rollback go into that card's thread rather than making a second top-level
        # message; a rollback step's or the canary's notice is the only place to act: top-level.
        thread = None
        if self._runbook is not None:
            step = self._runbook.step(exe["step_id"])
            if step.phase != "rollback" and step.kind != "canary":
                thread = self.card_thread(conn, exe)
        self.outbox.touch(conn, key=f"interrupted:exe:{exe['id']}", channel=exe["channel"],
                          thread_key=thread)

    def progress(self, conn: psycopg.Connection, exe: Mapping[str, Any],
                 lines: list[str]) -> None:
        """The step's live log, one reply in its card's thread."""
        self.outbox.touch(conn, key=f"progress:exe:{exe['id']}", channel=exe["channel"],
                          thread_key=f"card:exe:{exe['id']}", data={"lines": lines[-50:]})

    def output_file(self, conn: psycopg.Connection, exe: Mapping[str, Any]) -> None:
        """The step's long output, uploaded as a file in its card's thread."""
        self.outbox.touch(conn, key=f"upload:exe:{exe['id']}", channel=exe["channel"],
                          thread_key=f"card:exe:{exe['id']}")

    def summary_changed(self, conn: psycopg.Connection, run: Mapping[str, Any]) -> None:
        """The run summary must show the run as it is. Held back a little so that the card of
        the step that closed the run shows its result first."""
        self.outbox.touch(conn, key=f"summary:run:{run['id']}", channel=run["channel"],
                          delay=SUMMARY_DELAY_S)
