"""Each layer that keeps a step to one live execution, tested on its own against PostgreSQL:
the unique indexes (direct SQL), the claim's row lock and compare-and-set (two connections
racing), the reaper's lock and heartbeat checks, holding queued steps after a failure, and the
approval's expiry and binding at claim time."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from bot.runtime import Tuning
from bot.store import repo
from tests.support.harness import BASE_CONFIG, Bot

ACTIVE = ("awaiting_approval", "queued", "running")


def sql(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def new_run(url: str) -> int:
    return sql(url, "INSERT INTO runs (channel, started_by) VALUES ('C_CUTOVER', 'U_ALICE')"
                    " RETURNING id")[0][0]


def add_step(url: str, run_id: int, step_id: str, state: str, *, attempt: int = 1,
             override: str | None = "drill", extra: str = "", values: str = "") -> int:
    return sql(url, "INSERT INTO step_executions (run_id, step_id, attempt, state, params,"
                    " requested_by, channel, queued_at, started_at, override_reason" + extra +
                    ") VALUES (%s, %s, %s, %s, '{}', 'U_ALICE', 'C_CUTOVER', now(), now(), %s"
                    + values + ") RETURNING id",
               (run_id, step_id, attempt, state, override))[0][0]


def state_of(url: str, exe_id: int) -> str:
    return sql(url, "SELECT state FROM step_executions WHERE id = %s", (exe_id,))[0][0]


# ------------------------------------------------------------------ the unique indexes
def test_the_database_refuses_a_second_active_run(clean_db):
    new_run(clean_db)
    with pytest.raises(psycopg.errors.UniqueViolation):
        new_run(clean_db)


def test_the_database_refuses_a_second_pending_approval_of_a_step(clean_db):
    run = new_run(clean_db)
    insert = ("INSERT INTO approvals (run_id, step_id, action, params, params_hash, requester,"
              " required, channel, expires_at) VALUES (%s, 'deploy', 'Deploy', '{}', 'h',"
              " 'U_ALICE', 1, 'C_CUTOVER', now() + interval '15 minutes')")
    sql(clean_db, insert, (run,))
    with pytest.raises(psycopg.errors.UniqueViolation):
        sql(clean_db, insert, (run,))


def test_the_database_refuses_a_second_running_step_of_a_run(clean_db):
    run = new_run(clean_db)
    add_step(clean_db, run, "maintenance-on", "running")
    with pytest.raises(psycopg.errors.UniqueViolation):
        add_step(clean_db, run, "deploy", "running")


@pytest.mark.parametrize("first", ACTIVE)
def test_the_database_refuses_a_second_live_attempt_of_a_step(clean_db, first):
    """Also one active rollback per run: a rollback queues the plan's steps, so a second one
    collides on the first step of the plan still queued or running."""
    run = new_run(clean_db)
    add_step(clean_db, run, "rb-revert-deploy", first)
    with pytest.raises(psycopg.errors.UniqueViolation):
        add_step(clean_db, run, "rb-revert-deploy", "queued", attempt=2)
    add_step(clean_db, run, "rb-maintenance-on", "succeeded")
    add_step(clean_db, run, "rb-maintenance-on", "queued", attempt=2)  # a finished one: fine


# ------------------------------------------------------------------ through the engine
@pytest.fixture
def engine_bot(clean_db, tmp_path, toy):
    """The real bot against the toy target, without its worker: tests drive the claim."""
    bot = Bot(clean_db, tmp_path, config=BASE_CONFIG + toy.config(), worker=False)
    bot.command("alice", "start v2")
    yield bot
    bot.stop()


def run_id_of(url: str) -> int:
    return sql(url, "SELECT id FROM runs WHERE status = 'active'")[0][0]


def unlocked_read(conn, **_):
    """What a worker without the row lock reads: the queued rows, locking nothing."""
    return conn.execute("SELECT * FROM step_executions WHERE state = 'queued' ORDER BY id"
                        ).fetchall()


@pytest.mark.parametrize("b_reads", ["as the worker does", "without the row lock"])
def test_two_workers_racing_on_one_queued_step_run_it_once(engine_bot, clean_db, toy,
                                                           monkeypatch, b_reads):
    """Worker B reads the queued row before worker A commits its claim; A then claims and
    runs the step to success; then B goes on. The row lock (B's read locks the row, so A
    skips it) and the compare-and-set on ``queued`` (B's claim finds it no longer queued)
    each keep it to one execution; the second case takes the row lock away."""
    add_step(clean_db, run_id_of(clean_db), "maintenance-on", "queued")
    b_read, a_done = threading.Event(), threading.Event()
    real = repo.queued_candidates

    def spying(conn, **kw):
        b = threading.current_thread().name == "worker-b"
        rows = (unlocked_read if b and b_reads != "as the worker does" else real)(conn, **kw)
        if b:
            b_read.set()
            assert a_done.wait(30), "worker A never finished"
        return rows

    monkeypatch.setattr(repo, "queued_candidates", spying)
    results: dict[str, object] = {}
    b = threading.Thread(target=lambda: results.update(b=engine_bot.engine.run_next()),
                         name="worker-b")
    b.start()
    assert b_read.wait(10), "worker B never read the queue"
    try:
        results["a"] = engine_bot.engine.run_next()
    finally:
        a_done.set()
        b.join(60)
    assert toy.executions() == ["on"], f"the step ran {len(toy.executions())} times: {results}"
    assert sorted(results.values()) == [False, True], results


def test_a_row_another_worker_has_locked_is_skipped_not_claimed(engine_bot, clean_db, toy):
    exe = add_step(clean_db, run_id_of(clean_db), "maintenance-on", "queued")
    with psycopg.connect(clean_db) as other:
        other.execute("SELECT id FROM step_executions WHERE id = %s FOR UPDATE", (exe,))
        assert engine_bot.engine.run_next() is False, "a locked row is another's claim"
        assert toy.executions() == []
    assert engine_bot.engine.run_next() is True
    assert toy.executions() == ["on"]


def test_the_reaper_leaves_a_step_whose_lock_is_held_even_with_a_stale_heartbeat(
        engine_bot, clean_db):
    exe = add_step(clean_db, run_id_of(clean_db), "maintenance-on", "running",
                   extra=", heartbeat_at", values=", now() - interval '1 hour'")
    with psycopg.connect(clean_db, autocommit=True) as replica:
        replica.execute("SELECT pg_advisory_lock(%s, %s)", (repo.LOCK_NS, exe))
        assert engine_bot.engine.reap_interrupted() == 0
        assert state_of(clean_db, exe) == "running", "another replica is still running it"
        # Unlock explicitly: a closed connection's backend may release its locks a moment
        # after the client has gone, which would race the next reaper pass.
        replica.execute("SELECT pg_advisory_unlock(%s, %s)", (repo.LOCK_NS, exe))
    assert engine_bot.engine.reap_interrupted() == 1, "once its holder is gone, it is reaped"
    assert state_of(clean_db, exe) == "interrupted"


def test_the_reaper_leaves_a_live_step_whose_connection_dropped(engine_bot, clean_db):
    """Nobody holds the lock (the step's connection dropped) but the worker still renews the
    heartbeat: the step is alive and must not be marked interrupted."""
    exe = add_step(clean_db, run_id_of(clean_db), "maintenance-on", "running",
                   extra=", heartbeat_at", values=", now()")
    assert engine_bot.engine.reap_interrupted() == 0
    assert state_of(clean_db, exe) == "running"
    sql(clean_db, "UPDATE step_executions SET heartbeat_at = now() - interval '1 minute'")
    assert engine_bot.engine.reap_interrupted() == 1
    assert state_of(clean_db, exe) == "interrupted"


def until(probe, what: str, timeout: float = 30.0) -> None:
    """Poll ``probe`` (a database read) until it holds; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_running_step_is_held_by_its_workers_lock_even_with_a_stale_heartbeat(
        clean_db, tmp_path, toy):
    """The worker's claim takes the step's advisory lock: while the worker lives, no reaper
    takes its step for dead, even when the heartbeat has gone stale (renewals stalled)."""
    release = tmp_path / "release"
    slow = toy.config().replace('on = ["sh", "-c", "',
                                f'on = ["sh", "-c", "while [ ! -e {release} ]; do sleep 0.05;'
                                ' done; ', 1)
    # No renewal during the test: the heartbeat goes stale.
    bot = Bot(clean_db, tmp_path, config=BASE_CONFIG + slow, worker=False,
              tuning=Tuning(heartbeat_s=3600))
    worker = threading.Thread(target=bot.engine.run_next, name="worker")
    try:
        bot.command("alice", "start v2")
        exe = add_step(clean_db, run_id_of(clean_db), "maintenance-on", "queued")
        worker.start()
        until(lambda: state_of(clean_db, exe) == "running", "the worker never started the step")
        sql(clean_db, "UPDATE step_executions SET heartbeat_at = now() - interval '1 hour'")
        assert bot.engine.reap_interrupted() == 0, (
            "a step its worker is still running was reaped: the claim took no lock")
        assert state_of(clean_db, exe) == "running"
    finally:
        release.touch()
        worker.join(60)
        bot.stop()
    assert state_of(clean_db, exe) == "succeeded", "the step must run to its end, once"
    assert toy.executions() == ["on"]


# ------------------------------------------------------------------ held after a failure
def test_an_interrupted_step_holds_the_overridden_step_queued_behind_it(engine_bot, clean_db,
                                                                        toy):
    run = run_id_of(clean_db)
    on = add_step(clean_db, run, "maintenance-on", "running")
    off = add_step(clean_db, run, "maintenance-off", "queued", override="abort the drill")
    assert engine_bot.engine.reap_interrupted() == 1
    assert state_of(clean_db, on) == "interrupted"
    assert state_of(clean_db, off) == "cancelled", "it must wait for a person, override or not"
    assert engine_bot.engine.run_next() is False
    assert toy.executions() == []


def test_a_failed_step_holds_every_queued_step_of_its_run(clean_db, tmp_path, toy):
    failing = toy.config().replace('on = ["sh", "-c", "', 'on = ["sh", "-c", "exit 3; ', 1)
    bot = Bot(clean_db, tmp_path, config=BASE_CONFIG + failing, worker=False)
    try:
        bot.command("alice", "start v2")
        run = run_id_of(clean_db)
        on = add_step(clean_db, run, "maintenance-on", "queued")
        off = add_step(clean_db, run, "maintenance-off", "queued", override="abort the drill")
        assert bot.engine.run_next() is True
        assert state_of(clean_db, on) == "failed"
        assert state_of(clean_db, off) == "cancelled"
        assert bot.engine.run_next() is False
        assert toy.executions() == [], "maintenance off must not start on its own"
    finally:
        bot.stop()


def test_a_queued_step_is_not_claimed_after_a_failure_further_up(engine_bot, clean_db, toy):
    """The claim's own check, for a failure recorded without holding the queue (an older
    replica, a hand edit): anything failing in the run after it was queued holds it."""
    run = run_id_of(clean_db)
    off = add_step(clean_db, run, "maintenance-off", "queued", override="abort the drill")
    sql(clean_db, "UPDATE step_executions SET queued_at = now() - interval '1 minute'")
    add_step(clean_db, run, "maintenance-on", "failed", extra=", finished_at",
             values=", now()")
    assert engine_bot.engine.run_next() is False
    assert state_of(clean_db, off) == "cancelled"
    assert toy.executions() == []


# ------------------------------------------------------------------ approvals at claim time
def approved_maintenance_on(bot: Bot) -> int:
    from bot.ids import Action

    card = bot.request("alice", 'maintenance on --override "drill"')
    bot.sandbox.click("bob", card, action_id=Action.APPROVE)
    bot.card_showing(card, "Approved by <@U_BOB>")
    return sql(bot_url(bot), "SELECT id FROM step_executions WHERE step_id = 'maintenance-on'"
                             " AND state = 'queued'")[0][0]


def bot_url(bot: Bot) -> str:
    return bot.environ["GOLIVE_MIGRATIONS_DATABASE_URL"]


def test_an_approval_lapses_when_the_step_does_not_start_within_10_minutes(engine_bot,
                                                                            clean_db, toy):
    exe = approved_maintenance_on(engine_bot)
    sql(clean_db, "UPDATE approvals SET decided_at = decided_at - interval '11 minutes'")
    assert engine_bot.engine.run_next() is False
    assert state_of(clean_db, exe) == "cancelled"
    assert "approval lapsed" in engine_bot.command("carol", "status")
    assert toy.executions() == []


def test_the_claim_checks_the_approval_against_the_parameters_that_would_run(engine_bot,
                                                                             clean_db, toy):
    exe = approved_maintenance_on(engine_bot)
    sql(clean_db, """UPDATE step_executions SET params = '{"mode": "off"}' WHERE id = %s""",
        (exe,))
    assert engine_bot.engine.run_next() is False
    assert state_of(clean_db, exe) == "cancelled"
    assert "approval void" in engine_bot.command("carol", "status")
    assert toy.executions() == []


def test_an_approved_step_runs_when_nothing_changed(engine_bot, clean_db, toy):
    exe = approved_maintenance_on(engine_bot)
    assert engine_bot.engine.run_next() is True
    assert state_of(clean_db, exe) == "succeeded"
    assert toy.executions() == ["on"]
