"""Deadlines on the channel (issue 21, part of): the reminder at half time and the escalation to
the backup group for every open approval request of the active run, and "overdue" once for a
running step past its expected duration. When is decided by the pure rules
(``runbook.rules.deadlines``); this module reads the rows, and posts each notice once in the
card's thread through the outbox (its key is the record that it was sent: a touched key is never
posted again, so two replicas or a restart cannot repeat it).

Expiry stays the engine's: an approval expires at its ``expires_at``, which the request sets
to the step's deadline (``deadline = "20m"``, else ``[approvers] deadline_minutes``), extended by
half when a backup group is configured (``bot.engine.expiry``): expiry is a rejection, nothing
runs. A decision card (a failed or interrupted step, ``bot.engine.decisions``) gets the reminder
at half its deadline and, at the deadline, a page to the operators in its thread; nothing runs
by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg

from bot.engine.expiry import approval_open, decision_open
from bot.slack import blocks
from bot.store import repo
from runbook.rules import deadlines as rule

KEY = "deadline"
LOCK = 0x60_11_7E_21  # one replica posts the notices of a tick (pg_try_advisory_xact_lock)


class DeadlineWatch:
    """See the module docstring. ``config``: the bot's GoliveConfig (approvers, operators)."""

    def __init__(self, *, db: Any, runbook: Any, outbox: Any, config: Any,
                 now: Callable[[], datetime]) -> None:
        self.db, self.runbook, self.outbox, self.config, self.now = (db, runbook, outbox,
                                                                     config, now)

    def tick(self) -> list[str]:
        """Post what is due now; the keys of the notices queued."""
        with self.db.transaction() as conn:
            if not conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok",
                                (LOCK,)).fetchone()["ok"]:
                return []
            run = repo.active_run(conn)
            if run is None:
                return []
            return self._approvals(conn, run) + self._overdue(conn, run) + \
                self._decisions(conn, run)

    # ------------------------------------------------------------------ approvals
    def _approvals(self, conn: psycopg.Connection, run: dict) -> list[str]:
        cfg = self.config.approvers
        found = conn.execute(
            "SELECT a.*, e.id AS exe_id FROM approvals a"
            " LEFT JOIN step_executions e ON e.approval_id = a.id"
            " WHERE a.run_id = %s AND a.status = 'pending' ORDER BY a.id",
            (run["id"],)).fetchall()
        out: list[str] = []
        for a in found:
            step = self._step(a["step_id"])
            card = approval_open(step, opened_at=a["created_at"], config=self.config,
                                 default=timedelta(minutes=cfg.deadline))
            keys = {ev: f"{KEY}:{ev.value}:approval:{a['id']}"
                    for ev in (rule.Event.REMIND, rule.Event.ESCALATE)}
            sent = [ev for ev, k in keys.items() if self.outbox.exists(conn, k)]
            for ev in rule.due(card, now=self.now(), sent=sent):
                if ev not in keys:
                    continue  # the expiry is the engine's (see the module docstring)
                thread = f"card:exe:{a['exe_id']}" if a["exe_id"] else f"card:approval:{a['id']}"
                self.outbox.touch(conn, key=keys[ev], channel=a["channel"],
                                  thread_key=thread,
                                  data={"text": self._approval_text(ev, a, card)})
                out.append(keys[ev])
        return out

    def _step(self, step_id: str) -> Any:
        try:
            return self.runbook.step(step_id)
        except KeyError:
            return None  # the rollback request's pseudo step

    def _approval_text(self, ev: rule.Event, a: dict, card: rule.Open) -> str:
        groups = self.config.approvers.groups
        if ev is rule.Event.ESCALATE:
            backup = card.backup_group or ""
            who = f"<!subteam^{groups[backup]}>" if backup in groups else blocks.esc(backup)
            left = rule.final_deadline(card) - self.now()
            return (f"⏰ Nobody answered {blocks.esc(a['action'])} by its deadline: {who} "
                    f"(backup approvers), please decide. It expires in "
                    f"{_minutes(left)} unless someone approves it; then nothing runs.")
        # the gate's groups; a gate naming none is any configured approver
        named = [groups[g] for g in (a["groups"] or groups) if g in groups]
        who = " ".join(f"<!subteam^{s}>" for s in named) or \
            " ".join(f"<@{u}>" for u in self.config.approvers.users) or "approvers"
        left = card.opened_at + card.deadline - self.now()
        return (f"⏳ Reminder: {blocks.esc(a['action'])} (requested by <@{a['requester']}>) "
                f"waits for an approval; {_minutes(left)} left. {who}")

    # ------------------------------------------------------------------ decision cards
    def _decisions(self, conn: psycopg.Connection, run: dict) -> list[str]:
        """Open decision cards: the newest attempt of a cutover step that failed or was
        interrupted and has no decision taken."""
        out: list[str] = []
        rollback = {s.id for s in self.runbook.rollback}
        for exe in repo.latest_executions(conn, run_id=run["id"]).values():
            step = self._step(exe["step_id"])
            if exe["state"] not in ("failed", "interrupted") or step is None \
                    or step.id in rollback or step.kind == "canary":
                continue
            d = repo.decision(conn, exe["id"])
            if d is not None and d["chosen"] is not None:
                continue
            card = decision_open(step, opened_at=exe["finished_at"] or exe["created_at"],
                                 config=self.config)
            keys = {ev: f"{KEY}:{ev.value}:decision:{exe['id']}"
                    for ev in (rule.Event.REMIND, rule.Event.EXPIRE)}
            sent = [ev for ev, k in keys.items() if self.outbox.exists(conn, k)]
            for ev in rule.due(card, now=self.now(), sent=sent):
                if ev not in keys:
                    continue
                owner = f"<@{d['owner']}> owns it" if d is not None else "nobody has taken it"
                ops = self._operators()
                if ev is rule.Event.REMIND:
                    left = rule.final_deadline(card) - self.now()
                    text = (f"⏳ Reminder: *{blocks.esc(step.title)}* {exe['state']} and waits "
                            f"for a decision ({owner}); {_minutes(left)} left. {ops}")
                else:
                    text = (f"⌛ The decision on *{blocks.esc(step.title)}* passed its deadline "
                            f"({owner}): nothing runs by itself. {ops} — please decide on "
                            "its card.")
                # the decision card's thread: top-level when the step's card is in the run
                # card's thread (issue 21 item 4)
                top = f"decision:exe:{exe['id']}"
                self.outbox.touch(conn, key=keys[ev], channel=exe["channel"],
                                  thread_key=top if self.outbox.exists(conn, top)
                                  else f"card:exe:{exe['id']}", data={"text": text})
                out.append(keys[ev])
        return out

    def _operators(self) -> str:
        ops = self.config.effective_operators()
        return " ".join([*(f"<@{u}>" for u in ops.users),
                         *(f"<!subteam^{g}>" for g in ops.groups)]) or "operators"

    # ------------------------------------------------------------------ overdue
    def _overdue(self, conn: psycopg.Connection, run: dict) -> list[str]:
        out: list[str] = []
        running = conn.execute("SELECT * FROM step_executions WHERE run_id = %s AND state ="
                               " 'running' AND started_at IS NOT NULL ORDER BY id",
                               (run["id"],)).fetchall()
        for exe in running:
            step = self._step(exe["step_id"])
            key = f"{KEY}:overdue:exe:{exe['id']}"
            if step is None or self.outbox.exists(conn, key):
                continue
            earlier = repo.succeeded_durations(conn, step_id=exe["step_id"]).get(
                exe["step_id"], [])
            if not rule.overdue(started_at=exe["started_at"], now=self.now(), earlier=earlier,
                                timeout_s=step.timeout_s, sent=()):
                continue
            expected = rule.expected_duration(earlier, step.timeout_s)
            basis = "its median of earlier runs" if earlier else "half its timeout"
            ops = self.config.effective_operators()
            who = " ".join([*(f"<@{u}>" for u in ops.users),
                            *(f"<!subteam^{g}>" for g in ops.groups)]) or "operators"
            self.outbox.touch(conn, key=key, channel=exe["channel"],
                              thread_key=f"card:exe:{exe['id']}", data={"text": (
                                  f"🐢 *{blocks.esc(step.title)}* is overdue: running "
                                  f"{_minutes(self.now() - exe['started_at'])}, expected about "
                                  f"{_minutes(timedelta(seconds=expected))} ({basis}). {who}")})
            out.append(key)
        return out


def _minutes(d: timedelta) -> str:
    s = max(0, int(d.total_seconds()))
    return f"{s // 60} min" if s >= 60 else f"{s} s"


def render(conn: psycopg.Connection, ref: str, data: Any) -> dict | None:
    text = str((data or {}).get("text") or "")
    return blocks.message(text[:3000], [blocks.section(blocks.clip(text))]) if text else None


def register(sender: Any) -> None:
    sender.register(KEY, render)
