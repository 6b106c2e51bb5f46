"""The canary's transitions in the bot: each one reads the state under a row lock, asks the
pure machine (runbook/canary/machine.py), and commits the new state with its audit row and
outbox rows (the thread replies). Ledger queries and evidence are read outside any bot
transaction and folded in afterwards, only if the item still waits for that very check.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg

from bot.canary import store
from bot.canary.cards import chart_name
from bot.canary.evidence import CanaryWatches
from bot.engine import Refused, Requester
from bot.engine.audit_trail import AuditTrail
from bot.engine.decisions import Decisions
from bot.engine.notices import Notices
from bot.engine.outcomes import StepOutcomes
from bot.slack.directory import Directory, DirectoryUnavailable
from bot.store import repo
from bot.store.db import Database
from runbook.canary import machine
from runbook.canary.ledger import LedgerVerifier, database_label, ledger_check
from runbook.canary.report import SkippedStep, load_template, render_report
from runbook.canary.state import CHECKS, CanaryState, CheckResult, Verify
from runbook.model import Runbook
from runbook.rules import approvals

log = logging.getLogger(__name__)

STEP = "canary"  # the runbook step whose execution records the outcome (watches require it)


class CanaryRoom:
    """See the module docstring."""

    def __init__(self, *, db: Database, runbook: Runbook, audit: AuditTrail, notices: Notices,
                 outcomes: StepOutcomes, directory: Directory, approvers: frozenset[str],
                 now: Callable[[], datetime], config: Any, client: Any,
                 secrets: Mapping[str, str], base_dir: Path | None = None,
                 watches: CanaryWatches | None = None):
        self.db, self.runbook, self.audit, self.notices = db, runbook, audit, notices
        self.outcomes, self.directory, self.approvers = outcomes, directory, approvers
        self._now = now
        self.config, self.cfg = config, config.canary
        self.secrets = dict(secrets)
        self.base_dir = base_dir
        self.watches = watches or CanaryWatches(config)
        groups = sorted({g for r in self.cfg.roles.values() for g in r.groups})
        self.roles_directory = Directory(client, groups={g: g for g in groups})
        url = self.cfg.database_url or config.target.migrations.database_url
        self.ledger_url = url.get_secret_value() if url is not None else ""

    @property
    def now(self) -> Callable[[], datetime]:
        return self._now

    def verifier(self) -> LedgerVerifier:
        return LedgerVerifier(self.ledger_url, self.cfg, clock=self.now)

    # ------------------------------------------------------------------ opening
    def open(self, actor: Requester) -> str:
        """``/golive canary``: open the canary thread for the active run (once its
        requirements succeeded); the opening balances are read from the ledger first."""
        if not self.cfg.enabled:
            raise Refused("The canary is disabled in the config (`[canary] enabled = false`).")
        if self.cfg.unset():  # the ledger's account and queries are the team's, never guessed
            raise Refused("The canary is off until its ledger is configured: set "
                          + ", ".join(f"`{k}`" for k in self.cfg.unset()) + ".")
        if not self.ledger_url:
            raise Refused("The canary needs the target's database: set `[canary] database_url` "
                          "or `[target.migrations] database_url`.")
        with self.db.transaction() as conn:
            run = repo.active_run(conn, for_update=True)
            if run is None:
                raise Refused("No cutover run is active. Start one with `/golive start "
                              "&lt;rc-tag&gt;`.")
            self._check_order(conn, run, actor)
            existing = store.open_of_run(conn, run["id"])
            if existing is not None:
                raise Refused(f"The canary of run #{run['id']} is already open: its thread is "
                              "in the cutover channel.")
            latest = store.latest_of_run(conn, run["id"])
            if latest is not None and latest["outcome"] == "GO":
                raise Refused(f"The canary of run #{run['id']} is already decided: GO.")
            traffic_at = self._traffic_opened_at(conn, run["id"])
        try:
            balances = self.verifier().balances()
        except psycopg.Error as e:
            raise Refused("Could not read the canary account's balances in the target's "
                          f"database ({type(e).__name__}), so the canary was not opened; "
                          "try again.") from None
        self.watches.start()
        now = self.now()
        state = machine.open_canary(
            self.cfg, opened_by=actor.user_id, now=now, run_id=run["id"],
            traffic_opened_at=traffic_at, opening_balances=balances,
            versions={k: v for k, v in (("release", run.get("rc_tag")),
                                        ("commit", run.get("rc_sha"))) if v})
        sample = self.watches.sample(now)
        if sample is not None:
            state = machine.add_sample(state, sample)
        with self.db.transaction() as conn:
            try:
                with conn.transaction():
                    row = store.insert(conn, run_id=run["id"], channel=self.config.channels.cutover,
                                       state=state, now=now)
            except psycopg.errors.UniqueViolation:
                raise Refused("The canary was opened at the same moment by someone else.") \
                    from None
            self.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                               action="canary.open", outcome="ok", run_id=run["id"],
                               detail={"canary": row["id"], "account": state.account,
                                       "deposit_cents": state.deposit_cents,
                                       "withdraw_cents": state.withdraw_cents})
            self._changed(conn, row)
            self._signoff_changed(conn, row)
            self._say(conn, row, f"<@{actor.user_id}> opened the canary. Move the money for real "
                                 f"({state.money(state.deposit_cents)} in, then "
                                 f"{state.money(state.withdraw_cents)} out of `{state.account}`) "
                                 "and report each with its button above; the bot checks the "
                                 "ledger and replies here.")
        return f"Canary opened for run #{run['id']}: its checklist and thread are in the channel."

    def _check_order(self, conn: psycopg.Connection, run: Mapping[str, Any], actor: Requester
                     ) -> None:
        if STEP not in {s.id for s in self.runbook.all_steps()}:
            return
        states = self.outcomes.states(conn, run["id"])
        unmet = self.runbook.unmet_requirements(STEP, states)
        if unmet:
            names = ", ".join(f"`{u}` ({states.get(u, 'pending')})" for u in unmet)
            self.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                               action="canary.open", outcome="refused_order", run_id=run["id"],
                               detail={"unmet": unmet})
            raise Refused(f"The canary cannot open yet: it needs {names} first.")

    def _traffic_opened_at(self, conn: psycopg.Connection, run_id: int) -> datetime | None:
        latest = repo.latest_executions(conn, run_id=run_id)
        kinds = {s.id: s.kind for s in self.runbook.all_steps()}
        done = [e["finished_at"] for sid, e in latest.items()
                if kinds.get(sid) == "traffic" and e["state"] == "succeeded" and e["finished_at"]]
        return max(done) if done else None

    # ------------------------------------------------------------------ reporting
    def report(self, canary_id: int, item: str, reference: str, amount: str | None,
               user: str) -> Verify | None:
        """A reported deposit or withdrawal: the reply goes in the thread; returns the ledger
        check to run once this commits (None for bad input, which changes nothing)."""
        with self.db.transaction() as conn:
            row, state = self._locked(conn, canary_id, open_run=True)
            step = machine.report(state, item, reference, amount, by=user, now=self.now())
            if not step.changed:
                self._say(conn, row, f"<@{user}>: {step.reply}")
                self.audit.record(conn, actor=user, channel=row["channel"],
                                   action="canary.report", outcome="refused", run_id=row["run_id"],
                                   detail={"item": item, "reason": step.reply[:300]})
                return None
            self._save(conn, row, step.state, user, "canary.report",
                       {"item": item, "reference": step.verify.reference if step.verify else None})
            self._say(conn, row, f"<@{user}> reported the {item}. {step.reply}")
            return step.verify

    def run_verify(self, canary_id: int, v: Verify) -> None:
        """Run one ledger check and fold its result in (then the evidence, after a withdrawal)."""
        result = self.verifier().verify(v)
        sample = self.watches.sample(self.now())
        with self.db.transaction() as conn:
            row, state = self._locked(conn, canary_id)
            it = state.items[v.item]
            if state.outcome != "open" or it.status != "checking" or it.reference != v.reference:
                return  # a newer report or a decision overtook this check
            step = machine.record(state, v.item, result, now=self.now())
            st = machine.add_sample(step.state, sample) if sample else step.state
            self._save(conn, row, st, "golive", "canary.verified",
                       {"item": v.item, "reference": v.reference, "ok": result.ok,
                        "summary": result.summary[:500]})
            self._say(conn, row, step.reply)
        if v.item == "withdrawal" and result.ok:
            self.collect(canary_id, by=None)

    def collect(self, canary_id: int, *, by: str | None) -> str:
        """Measure the evidence items not yet ✅ (ledger check, webhooks, error budget) and a
        health sample, and fold them in."""
        with self.db.transaction() as conn:
            _, state = self._locked(conn, canary_id, lock=False, open_run=by is not None)
        if state.outcome != "open":
            return machine.outcome_text(state)
        now = self.now()
        results: dict[str, CheckResult] = {}
        todo = [k for k in ("ledger", "webhooks", "error_budget") if state.items[k].status != "ok"]
        # the canary's references, as reported (the ledger's own ids are not the canary's)
        refs = [r for r in (state.items["deposit"].reference, state.items["withdrawal"].reference)
                if r]
        if "ledger" in todo:
            results["ledger"] = ledger_check(self.verifier(),
                                             state.items["withdrawal"].details
                                             if state.items["withdrawal"].status == "ok" else {})
        if "webhooks" in todo:
            results["webhooks"] = self.watches.webhooks(list(dict.fromkeys(map(str, refs))),
                                                        since=state.opened_at)
        eb = self.watches.error_budget(since=state.traffic_opened_at or state.opened_at, now=now)
        if "error_budget" in todo:
            results["error_budget"] = eb
        sample = self.watches.sample(now, error_rate=eb.details.get("error_rate"))
        with self.db.transaction() as conn:
            row, st = self._locked(conn, canary_id)
            if st.outcome != "open":
                return machine.outcome_text(st)
            replies = []
            for key, res in results.items():
                if st.items[key].status == "ok":
                    continue
                step = machine.record(st, key, res, now=self.now(), by=by)
                st = step.state
                replies.append(step.reply)
            if sample is not None:
                st = machine.add_sample(st, sample)
            self._save(conn, row, st, by or "golive", "canary.evidence",
                       {k: r.ok for k, r in results.items()})
            for text in replies:
                self._say(conn, row, text)
        return "Evidence collected; the thread has the results."

    # ------------------------------------------------------------------ sign-off
    def sign(self, canary_id: int, user: str, *, decision: Literal["sign", "reject"],
             note: str = "") -> str:
        """A Sign or Reject from ``user``: eligibility at click time (fail closed), then the
        machine's rules; a decision closes the canary and records the step's outcome."""
        try:
            account = self.directory.actor(user)
            policy = self._signoff_policy()
        except DirectoryUnavailable as e:
            raise Refused(e.message) from None
        names = self._names(canary_id, user)  # for the report, looked up before the lock
        with self.db.transaction() as conn:
            row, state = self._locked(conn, canary_id, open_run=True)
            step = machine.sign(state, account, policy, now=self.now(), decision=decision,
                                note=note)
            if not step.changed:
                # said in the thread (everyone sees why); the listener audits the refusal
                self._say(conn, row, f"<@{user}>: {step.reply}")
            else:
                self._signed(conn, row, step, user, decision, note, names)
        if not step.changed:
            raise Refused(step.reply)
        return step.reply

    def _names(self, canary_id: int, user: str) -> dict[str, str]:
        """Display names of the canary's people and the signer, for the report (a file does
        not render ``<@U…>``); whoever Slack cannot name now keeps their user id."""
        with self.db.transaction() as conn:
            row = store.get(conn, canary_id)
            skips = Decisions.deviations(conn, row["run_id"]) if row is not None else []
        st = store.state_of(row) if row is not None else None
        people = {user} | ({st.opened_by, *(s.user_id for s in st.signatures),
                            *(it.by for it in st.items.values() if it.by)} if st else set())
        people |= {u for d in skips for u in (d["skip_requested_by"], d["chosen_by"]) if u}
        return self.directory.display_names(people)

    def _signed(self, conn: psycopg.Connection, row: Mapping[str, Any], step: machine.Transition,
                user: str, decision: str, note: str, names: Mapping[str, str]) -> None:
        st = step.state
        report = self._report(conn, row, st, names) if st.outcome != "open" else None
        self._save(conn, row, st, user, f"canary.{decision}",
                   {"note": note[:500], "outcome": st.outcome}, report=report)
        self._signoff_changed(conn, row)
        if st.outcome == "open":
            self._say(conn, row, step.reply)
        else:
            self._decided(conn, row, st, user)

    def _signoff_policy(self) -> approvals.Policy:
        """Who may sign now: each role's users and its groups' members (looked up now)."""
        if not self.cfg.roles:
            return approvals.Policy(approvers=self.approvers,
                                    groups=self.directory.group_members())
        groups = self.roles_directory.group_members()
        return machine.signoff_policy({
            name: {*role.users, *(m for g in role.groups for m in groups.get(g, frozenset()))}
            for name, role in self.cfg.roles.items()})

    def _decided(self, conn: psycopg.Connection, row: Mapping[str, Any], st: CanaryState,
                 user: str) -> None:
        """GO or NO-GO: the step's execution, the audit row, the final message, the report."""
        if STEP in {s.id for s in self.runbook.all_steps()}:
            final = "succeeded" if st.outcome == "GO" else "failed"
            self.outcomes.record(conn, run_id=row["run_id"], step_id=STEP, outcome=final,
                                 params={"canary": row["id"]}, requested_by=st.opened_by,
                                 channel=row["channel"], started_at=st.opened_at,
                                 summary=machine.outcome_text(st)[:1000],
                                 error=None if st.outcome == "GO" else "canary NO-GO")
        self.audit.record(conn, actor=user, channel=row["channel"], action="canary.decided",
                           outcome=st.outcome, run_id=row["run_id"],
                           detail={"canary": row["id"], "signatures": [
                               {"user": s.user_id, "decision": s.decision, "role": s.role,
                                "at": s.at.isoformat(), "note": s.note}
                               for s in st.signatures]})
        cid, ch, thread = row["id"], row["channel"], f"canary:{row['id']}"
        outbox = self.notices
        for key in ("canary-final", "canary-summary", "canary-report", "canary-chart"):
            outbox.touch(conn, key=f"{key}:{cid}", channel=ch, thread_key=thread)
        run = repo.get_run(conn, run_id=row["run_id"])
        if run is not None:
            self.notices.summary_changed(conn, run)

    def _report(self, conn: psycopg.Connection, row: Mapping[str, Any], st: CanaryState,
                names: Mapping[str, str]) -> str:
        """The report, with the run's skipped steps (the summary's deviations) in it."""
        template = load_template(self.cfg.template_file(self.base_dir))
        titles = {s.id: s.title for s in self.runbook.all_steps()}
        skipped = [SkippedStep.of(d, titles.get(d["step_id"], d["step_id"]))
                   for d in Decisions.deviations(conn, row["run_id"])]
        return render_report(st, template, secrets=self.secrets,
                             chart=chart_name(st.run_id or 0),
                             database=database_label(self.ledger_url), now=self.now(),
                             names=names, skipped=skipped)

    # ------------------------------------------------------------------ restart
    def resume(self) -> int:
        """After a restart: restart the evidence sources and re-run interrupted checks."""
        with self.db.transaction() as conn:
            rows = store.all_open(conn)
        if rows:
            self.watches.start()
        n = 0
        for row in rows:
            for v in machine.pending_checks(store.state_of(row)):
                log.info("canary %s: re-running the interrupted %s check", row["id"], v.item)
                self.run_verify(row["id"], v)
                n += 1
        return n

    def status_line(self, run_id: int) -> str | None:
        """The canary's line for ``/golive status`` (None when the run has none)."""
        with self.db.transaction() as conn:
            row = store.latest_of_run(conn, run_id)
        if row is None:
            return None
        st = store.state_of(row)
        if st.outcome == "open":
            done = sum(1 for k in CHECKS if st.items[k].status == "ok")
            return (f"🐤 Canary open: {done} of {len(CHECKS)} checks ✅, "
                    f"{machine.outcome_text(st).removeprefix('canary open: ')}")
        mark = "✅" if st.outcome == "GO" else "❌"
        return f"🐤 Canary {mark} *{machine.outcome_text(st)}*"

    def stop(self) -> None:
        self.watches.stop()

    # ------------------------------------------------------------------ helpers
    def _locked(self, conn: psycopg.Connection, canary_id: int, *, lock: bool = True,
                open_run: bool = False) -> tuple[dict, CanaryState]:
        row = store.get(conn, canary_id, for_update=lock)
        if row is None:
            raise Refused("That canary does not exist; nothing was done.")
        run = repo.get_run(conn, run_id=row["run_id"]) if open_run else None
        if open_run and (run is None or run["status"] != "active"):
            # A person's act on a closed run's canary (a form left open) changes no record.
            raise Refused(f"Run #{row['run_id']} is closed, so its canary takes no more reports "
                          "or sign-offs; nothing was done.")
        return row, store.state_of(row)

    def _save(self, conn: psycopg.Connection, row: Mapping[str, Any], st: CanaryState,
              actor: str, action: str, detail: Mapping[str, Any], *,
              report: str | None = None) -> None:
        store.save(conn, row["id"], st, now=self.now(), report=report)
        self.audit.record(conn, actor=actor, channel=row["channel"], action=action,
                           outcome="ok", run_id=row["run_id"],
                           detail={"canary": row["id"], **detail})
        self._changed(conn, row)

    def _changed(self, conn: psycopg.Connection, row: Mapping[str, Any]) -> None:
        self.notices.touch(conn, key=f"canary:{row['id']}", channel=row["channel"])

    def _signoff_changed(self, conn: psycopg.Connection, row: Mapping[str, Any]) -> None:
        self.notices.touch(conn, key=f"canary-signoff:{row['id']}",
                                      channel=row["channel"], thread_key=f"canary:{row['id']}")

    def _say(self, conn: psycopg.Connection, row: Mapping[str, Any], text: str) -> None:
        """A reply in the canary's thread (one outbox row each, posted in order)."""
        self.notices.touch(conn, key=f"canary-reply:{row['id']}:{uuid.uuid4().hex}",
                                      channel=row["channel"], thread_key=f"canary:{row['id']}",
                                      data={"text": text[:3000]})

    def card_ts(self, canary_id: int, kind: str = "canary") -> str | None:
        """Where one of the canary's messages landed (a click counts only on its own card)."""
        with self.db.transaction() as conn:
            return self.notices.ts(conn, f"{kind}:{canary_id}")
