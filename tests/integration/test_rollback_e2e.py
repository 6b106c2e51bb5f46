"""A full cutover v1 -> v2, then a rollback to v1 through the bot, once per database strategy,
on the real paybox stack (Docker, the local registry, alembic, HTTP) and PostgreSQL.

- downgrade: the bot (`golive serve`, a process of its own) is killed with SIGKILL while the
  revert runs; a new process finds the step interrupted, a person asks to resume with Retry
  and a second approves: the revert runs to completion once more and the steps done before
  it are not re-run.
- restore: the preflight's backup drill takes the snapshot; a row written after it is gone
  after the rollback, the schema is back with the data.

Each test costs a cutover and a rollback on the session's stack (minutes of CI).
"""

from __future__ import annotations

import psycopg
import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from bot.ids import Action
from tests.integration.test_full_cutover import config_for
from tests.support import pg
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, Bot, bot_environ, text_of
from tests.support.night import request_and_approve, run_ungated
from tests.support.procs import BotProcess

pytestmark = pytest.mark.docker
PLAN = ("rb-maintenance-on", "rb-revert-deploy", "rb-restore-or-downgrade", "rb-verify",
        "rb-traffic-open")


class ProcBot(Bot):
    """:class:`Bot`'s commands and clicks, delivered to `golive serve` processes that the
    test may SIGKILL and start again (one at a time), against one sandbox."""

    def __init__(self, db_url: str, tmp_path, config: str):
        self.workspace = Workspace.default_demo()
        self.sandbox = SandboxServer(self.workspace, signing_secret=SIGNING_SECRET,
                                     bot_token=BOT_TOKEN).start()
        self._own_sandbox = True
        self.environ = bot_environ(self.sandbox, db_url, tmp_path, config,
                                   {"GOLIVE_LOG_LEVEL": "WARNING"})
        self.tmp_path, self.started = tmp_path, 0
        self.proc: BotProcess | None = None
        self.start()

    def start(self) -> None:
        self.started += 1
        self.proc = BotProcess(self.environ, self.tmp_path / f"bot{self.started}.log")
        self.proc.wait_ready()
        self.sandbox.bot_url = self.proc.url + "/slack/events"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        self.sandbox.stop()


def rows(db: str, sql: str, *args) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def cutover_to_v2(bot: Bot, paybox, maintenance_override: str = "drill") -> None:
    """The cutover v1 -> v2 as the runbook has it, through the bot, to traffic open."""
    assert "started cutover run" in bot.command("alice", f"start v2 {paybox.revisions['v2']}")
    request_and_approve(bot, "alice", f'maintenance on --override "{maintenance_override}"',
                        "bob", "Maintenance mode on")
    request_and_approve(bot, "alice", "deploy v2", "carol", "Deploy")
    run_ungated(bot, "migrate", "Migrations")
    run_ungated(bot, "health", "Health")
    run_ungated(bot, "smoke", "Smoke")
    request_and_approve(bot, "alice", "traffic open", "bob", "Open traffic")
    assert paybox.running_image("app")["image"].endswith(":v2")
    assert paybox.alembic_revision() == "0002_payout_idempotency"


def ask_rollback(bot: Bot, words: str, approver: str = "bob"):
    """`/golive <words>` from #incident, approved there by ``approver``; the request card."""
    after = bot.seq()
    reply = bot.command("alice", words, channel="C_INCIDENT")
    assert "Rollback requested" in reply, reply
    card = bot.workspace.wait_for_message(
        "C_INCIDENT", contains="Rollback requested", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None and not m.via_response_url)
    bot.sandbox.click(approver, card, action_id=Action.APPROVE)
    return card


def timelines_complete(bot: Bot, after: int, timeout: float = 300) -> str:
    """The final timeline in both channels; its text in the cutover channel."""
    texts = [text_of(bot.workspace.wait_for_message(
        channel, contains="Rollback of run #1: completed", after_seq=after, timeout=timeout))
        for channel in ("C_CUTOVER", "C_INCIDENT")]
    for title in ("Maintenance mode on", "Revert to the previous image", "Data:",
                  "Verify login", "Re-open traffic"):
        assert title in texts[0], texts[0]
    return texts[0]


def assert_back_on_v1(paybox) -> None:
    running = paybox.running_image("app")
    assert running["image"].endswith("paybox/app:v1"), running
    assert running["revision"] == paybox.revisions["v1"]
    code, _ = paybox.http("GET", f"http://127.0.0.1:{paybox.edge_port}/api/health")
    assert code == 200, "traffic is open again after the rollback"


def test_a_crash_mid_rollback_resumes_at_the_interrupted_step_downgrade(stack, clean_db,
                                                                         tmp_path):
    paybox = stack
    bot = ProcBot(clean_db, tmp_path, config_for(paybox))
    try:
        cutover_to_v2(bot, paybox)
        after = bot.seq()
        ask_rollback(bot, "rollback payout failure rate 22%")
        bot.workspace.wait_for(lambda: rows(clean_db, (
            "SELECT 1 FROM step_executions WHERE step_id = 'rb-revert-deploy' "
            "AND state = 'running'")), 120)
        bot.proc.kill()  # SIGKILL mid-revert: no cleanup runs
        bot.start()

        notice = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="Revert to the previous image tag / commit* was interrupted",
            after_seq=after, timeout=60)
        mark = bot.seq()
        bot.sandbox.click("alice", notice, action_id=Action.RETRY)
        reply = text_of(bot.replies_to("alice", after=mark, contains="Resuming"))
        assert "at `rb-revert-deploy` (not re-run: rb-maintenance-on)" in reply, reply
        card = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="Resumes the stopped rollback at rb-revert-deploy",
            after_seq=mark, predicate=lambda m: m.ephemeral_to is None)
        bot.sandbox.click("carol", card, action_id=Action.APPROVE)
        timeline = timelines_complete(bot, after)
    finally:
        bot.stop()

    assert "Revert to the previous image tag / commit: interrupted" in timeline, timeline
    assert "Revert to the previous image tag / commit (attempt 2): succeeded" in timeline
    attempts = dict(rows(clean_db, "SELECT step_id, array_agg(state ORDER BY attempt) FROM "
                                   "step_executions WHERE step_id LIKE 'rb-%%' GROUP BY step_id"))
    assert attempts == {"rb-maintenance-on": ["succeeded"],
                        "rb-revert-deploy": ["interrupted", "succeeded"],
                        "rb-restore-or-downgrade": ["cancelled", "succeeded"],
                        "rb-verify": ["cancelled", "succeeded"],
                        "rb-traffic-open": ["cancelled", "succeeded"]}, attempts
    assert_back_on_v1(paybox)
    assert paybox.alembic_revision() == "0001_ledger"


def test_a_rollback_with_the_snapshot_restore_puts_the_data_back(stack, clean_db, tmp_path):
    paybox = stack
    with psycopg.connect(paybox.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM accounts WHERE id LIKE 'rb-e2e-%'")
        conn.execute("INSERT INTO accounts (id, available_cents) VALUES ('rb-e2e-before', 100)")
    drill = (f'\n[preflight.backup_drill]\ndatabase_url = "{paybox.database_url}"\n'
             f'scratch_url = "{pg.ADMIN_URL}"\nsnapshot_dir = "{tmp_path / "snapshots"}"\n')
    bot = Bot(clean_db, tmp_path, config=config_for(paybox) + drill)
    try:
        assert "started cutover run" in bot.command("alice",
                                                    f"start v2 {paybox.revisions['v2']}")
        after = bot.seq()
        assert "Queued" in bot.command("alice", "preflight backup_drill")
        bot.workspace.wait_for(lambda: rows(clean_db, (
            "SELECT 1 FROM runs WHERE facts ? 'snapshot_sha256'")), 120)
        request_and_approve(bot, "alice", 'maintenance on --override "drill"', "bob",
                            "Maintenance mode on")
        request_and_approve(bot, "alice", "deploy v2", "carol", "Deploy")
        run_ungated(bot, "migrate", "Migrations")
        run_ungated(bot, "health", "Health")
        run_ungated(bot, "smoke", "Smoke")
        request_and_approve(bot, "alice", "traffic open", "bob", "Open traffic")
        with psycopg.connect(paybox.database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO accounts (id, available_cents) VALUES "
                         "('rb-e2e-after', 200)")
        ask_rollback(bot, "rollback --restore ledger looks corrupt")
        timeline = timelines_complete(bot, after)
    finally:
        bot.stop()

    assert "snapshot restored" in timeline, timeline
    assert_back_on_v1(paybox)
    assert paybox.alembic_revision() == "0001_ledger"
    with psycopg.connect(paybox.database_url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM accounts WHERE id LIKE 'rb-e2e-%' ORDER BY id").fetchall()]
    assert ids == ["rb-e2e-before"], "the data equals the snapshot: the later row is gone"
