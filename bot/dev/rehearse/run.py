"""`golive rehearse [--with-rollback] [--keep]`: the whole night on one machine, the day before.

It brings up its own sample stack (a unique compose project, ports and ledger database), the
fake GitHub, the bot's database (embedded, or DATABASE_URL) and the sandbox workspace, drives
the real bot over the wire protocol with scripted people through every phase, writes the
evidence pack and tears down what it started (unless --keep).
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

from bot.dev import demo_db
from bot.dev.rehearse import autopilot, phases
from bot.dev.rehearse import stack as sample_stack
from bot.dev.rehearse.people import SIGNERS, People, workspace
from bot.dev.rehearse.sample import FakeGitHub, preflight_toml, revisions, target_toml, watches_toml
from bot.dev.rehearse.timeline import PhaseFailed, RehearsalTimeline

DATABASE = "golive_rehearse"


class Rehearsal:
    def __init__(self, args: argparse.Namespace, timeline: RehearsalTimeline | None = None) -> None:
        from bot.dev.demo import data_dir

        self.args = args
        self.t = timeline or RehearsalTimeline()
        self.root = data_dir(args.data_dir) / "rehearse"
        self.stack = sample_stack.new_stack()
        self.own_db = not os.environ.get("DATABASE_URL")
        self.github: FakeGitHub | None = None
        self.session: Any = None
        self.stack_up = False
        self.canary_report: bytes | None = None
        self.people: People | None = None
        self.ended_at: float | None = None
        self.started_at = datetime.now(UTC)

    # ------------------------------------------------------------------ setup

    def config(self) -> str:
        assert self.github is not None
        work = self.root / self.stack.project
        work.mkdir(parents=True, exist_ok=True)
        from bot.dev.demo import people_toml

        head = people_toml("`golive rehearse`: the sandbox's people and the rehearsal's own "
                           "sample stack.", "rehearsal", 0)
        return (head + target_toml(self.stack)
                + preflight_toml(self.stack, github_url=self.github.url, work=work)
                + watches_toml(interval_s=2, canary_account=f"canary-{self.stack.project[-8:]}",
                               signers=tuple(f"U_{n.upper()}" for n in SIGNERS)))

    def setup(self) -> None:
        from bot.dev.demo import open_session

        t = self.t
        self.root.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.stack_up = True  # from here on, tear-down has something to remove
        sample_stack.up(self.stack, t.info)
        t.note(f"sample stack {self.stack.project} up on v1 (edge :{self.stack.edge_port}, "
               f"app :{self.stack.app_port})", seconds=time.monotonic() - started)
        self.github = FakeGitHub(0)
        t.note(f"fake GitHub at {self.github.url}")
        started = time.monotonic()
        self.session = open_session(
            self.root, self.config(), own_db=self.own_db, keep=False, database=DATABASE,
            workspace=workspace())
        t.note(f"bot serving the sandbox workspace; {self.session.database}",
               seconds=time.monotonic() - started)

    # ------------------------------------------------------------------ the night

    @property
    def mode(self) -> str:
        return "autopilot" if getattr(self.args, "autopilot", False) else "manual"

    def play(self) -> None:
        t = self.t
        p = self.people = People(self.session.sandbox, self.t)
        app = phases.Paybox(self.stack)
        sha = revisions().get("v2") or ""
        if self.mode == "autopilot":
            with t.phase("preflight", "1. Preflight (requested by the autopilot)"):
                after = autopilot.preflight(p, t, sha)
            with t.phase("cutover", "2. Cutover by the autopilot (every 🔒 step approved by a "
                                    "second person)"):
                autopilot.cutover(p, t, after)
        else:
            with t.phase("preflight", "1. Preflight"):
                phases.preflight(p, t, sha)
            with t.phase("cutover", "2. Cutover (every 🔒 step approved by a second person)"):
                phases.cutover(p, t)
        with t.phase("watches", "3. Watches"):
            phases.watches(p, t)
        with t.phase("canary", "4. Canary: a real $10 deposit and withdrawal"):
            msg, reply = phases.canary(p, t, app, f"canary-{self.stack.project[-8:]}")
        with t.phase("signoff", "5. Sign-off"):
            self.canary_report = phases.signoff(p, t, msg, reply)
            if self.mode == "autopilot":
                autopilot.after_canary(p, t, self.runbook(), self.states())
        if self.args.with_rollback:
            with t.phase("rollback", "6. Rollback: payout failures fire the trigger"):
                phases.rollback(p, t, app)
        with t.phase("finish", f"{7 if self.args.with_rollback else 6}. Finish"):
            phases.finish(p, t, completed=not self.args.with_rollback)
        self.ended_at = t.elapsed()

    def runbook(self) -> Any:
        from bot.runtime import runbook_for

        return runbook_for(self.session.settings)

    def states(self) -> dict[str, str]:
        """The newest run's latest state per step (what the autopilot reads)."""
        import psycopg

        with psycopg.connect(self.session.owner_url) as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (e.step_id) e.step_id, e.state FROM step_executions e"
                " WHERE e.run_id = (SELECT max(id) FROM runs) ORDER BY e.step_id, e.id DESC"
            ).fetchall()
        return {step: state for step, state in rows}

    def counts(self) -> Any:
        """What people did and saw (bot/dev/rehearse/counts.py), up to the end of `finish`."""
        from bot.dev.rehearse.counts import count

        wall = self.ended_at if self.ended_at is not None else self.t.elapsed()
        setup = sum(ph.seconds for ph in self.t.phases if ph.name == "setup")
        return count(self.session.workspace, self.mode,
                     typed=self.people.typed if self.people else (),
                     lookup_answers=self.people.lookup_answers if self.people else (),
                     wall_s=wall, night_s=wall - setup)

    # ------------------------------------------------------------------ after

    def teardown(self) -> None:
        t = self.t
        if self.session is not None:
            self.session.stop()
        if self.github is not None:
            self.github.stop()
        if self.args.keep:
            t.info(f"kept: the sample stack `{self.stack.project}` (bash examples/paybox/down.sh"
                   f" {self.stack.project}) and the embedded PostgreSQL (golive demo --stop "
                   f"--data-dir {self.root})")
            return
        if self.stack_up:
            started = time.monotonic()
            sample_stack.down(self.stack, t.info)
            t.note(f"removed the sample stack {self.stack.project} and its ledger database",
                   seconds=time.monotonic() - started)
        if self.own_db:
            pid = demo_db.stop_embedded(self.root)
            if pid is not None:
                t.note(f"stopped the embedded PostgreSQL (pid {pid})")


def _on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def rehearse_main(args: argparse.Namespace) -> int:
    from bot.dev.rehearse.evidence import summary, write_evidence

    r = Rehearsal(args)
    t = r.t
    t.console.rule("[bold]golive rehearse[/bold] — the whole cutover, with scripted people")
    problems = sample_stack.missing(r.stack)
    if problems:
        t.console.print("[red]golive rehearse cannot start; missing:[/red]")
        for line in problems:
            t.console.print(f"  - {line}", markup=False)
        return 1
    pack = None
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal still tears down
        signal.signal(sig, _on_signal)
    try:
        with t.phase("setup", "0. Setup: sample stack, fake GitHub, bot"):
            r.setup()
        r.play()
    except PhaseFailed:
        pass  # the phase marked itself failed and said why
    except KeyboardInterrupt:
        t.note("interrupted", ok=False)
    except Exception as e:  # noqa: BLE001 - a broken rehearsal still tears down and reports
        if all(ph.ok for ph in t.phases):  # a failing phase has said why already
            t.note(f"the rehearsal broke: {type(e).__name__}: {e}", ok=False)
    finally:
        if r.session is not None:
            pack = write_evidence(r)
        r.teardown()
    return summary(r, pack)

