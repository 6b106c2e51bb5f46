"""The autopilot through the sandbox, without Docker: `/golive go` and `/golive pause` as the
operators type them, the driver's ticks called by hand (no worker: a step's end is written as
the worker writes it), the rows in PostgreSQL. The night on the sample stack is
test_autopilot_night.py."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest

from bot.autopilot import Autopilot
from tests.scenario.test_guarded_protections import RC_SHA, green_preflight
from tests.scenario.test_who_may import answer, rows, workspace
from tests.support.harness import Bot


@pytest.fixture
def pbot(clean_db, tmp_path):
    b = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    yield b
    b.stop()


def started(bot: Bot, db: str) -> None:
    assert "started cutover run #1" in answer(bot, "alice", f"start v2 {RC_SHA}")
    green_preflight(bot, db, sha=RC_SHA, age=timedelta(minutes=1))


def ended(db: str, step_id: str, state: str = "succeeded") -> None:
    """The step's latest execution ends as the worker would end it."""
    rows(db, "UPDATE step_executions SET state = %s, finished_at = now() WHERE id = (SELECT max(id)"
         " FROM step_executions WHERE step_id = %s) RETURNING id", state, step_id)


def approved_and_running(db: str, step_id: str) -> None:
    rows(db, "UPDATE step_executions SET state = 'running', started_at = now() WHERE id ="
         " (SELECT max(id) FROM step_executions WHERE step_id = %s) RETURNING id", step_id)


def executions(db: str) -> list[tuple[str, str, str]]:
    return rows(db, "SELECT step_id, state, requested_by FROM step_executions"
                    " WHERE step_id <> 'preflight' ORDER BY id")


def test_go_and_pause_ask_the_policy(pbot, clean_db):
    started(pbot, clean_db)
    assert "Only operators" in answer(pbot, "frank", "go")
    assert "Only operators" in answer(pbot, "frank", "pause")
    assert "Guest accounts" in answer(pbot, "dave", "go")
    assert "only in the cutover channel <#C_CUTOVER>" in answer(pbot, "alice", "go",
                                                                channel="C_INCIDENT")
    assert "only in the cutover channel" in answer(pbot, "alice", "pause", channel="C_GENERAL")
    assert rows(clean_db, "SELECT count(*) FROM autopilot") == [(0,)], "nothing switched on"
    assert pbot.runtime.autopilot.tick() == [] and executions(clean_db) == []
    refusals = rows(clean_db, "SELECT detail->>'refusal' FROM audit_log WHERE outcome ="
                              " 'refused' ORDER BY id")
    assert [r for (r,) in refusals] == ["not_an_operator", "not_an_operator", "guest_account",
                                        "wrong_channel", "wrong_channel"]


def test_go_without_a_run_says_how_to_start_one(pbot, clean_db):
    assert "No cutover run is active" in answer(pbot, "alice", "go")
    assert rows(clean_db, "SELECT count(*) FROM autopilot") == [(0,)]


def test_go_asks_for_approvals_requests_ungated_steps_and_status_shows_it(pbot, clean_db):
    started(pbot, clean_db)
    pilot = pbot.runtime.autopilot
    reply = answer(pbot, "alice", "go")
    assert "<@U_ALICE> turned the autopilot on for run #1" in reply, reply
    assert "already on" in answer(pbot, "bob", "go"), "a second go changes nothing"
    assert pilot.tick() == ["maintenance-on"]
    assert pilot.tick() == [], "an approval it waits for is never asked twice"
    status = answer(pbot, "carol", "status")
    assert "*Autopilot*: on, started by <@U_ALICE>; waiting for maintenance-on" in status, status
    ended(clean_db, "maintenance-on")
    assert pilot.tick() == ["deploy"]
    ended(clean_db, "deploy")
    assert pilot.tick() == ["migrate"]
    ended(clean_db, "migrate")
    assert pilot.tick() == ["health"]
    assert executions(clean_db) == [
        ("maintenance-on", "succeeded", "U_ALICE"), ("deploy", "succeeded", "U_ALICE"),
        ("migrate", "succeeded", "U_ALICE"), ("health", "queued", "U_ALICE")], \
        "every request is the operator's who typed go"
    assert rows(clean_db, "SELECT action, actor FROM audit_log"
                          " WHERE starts_with(action, 'autopilot.')") == [("autopilot.go", "U_ALICE")]


def test_a_failure_stops_it_and_says_why_and_what_is_next(pbot, clean_db):
    started(pbot, clean_db)
    pilot = pbot.runtime.autopilot
    answer(pbot, "alice", "go")
    for step in ("maintenance-on", "deploy"):
        assert pilot.tick() == [step]
        ended(clean_db, step)
    assert pilot.tick() == ["migrate"]
    after = pbot.seq()
    ended(clean_db, "migrate", "failed")
    assert pilot.tick() == []
    notice = pbot.workspace.wait_for_message(
        "C_CUTOVER", contains="Autopilot stopped", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None
            and m.is_reply)  # the stop notice: in the run card's thread, not the card
    assert "*Migrations: alembic upgrade head* failed" in notice.text, notice.text
    assert "`/golive go` to resume" in notice.text
    assert pilot.tick() == [] and rows(clean_db, 'SELECT "on" FROM autopilot') == [(False,)]
    assert "*Autopilot*: off. Autopilot stopped:" in answer(pbot, "bob", "status")


def test_pause_during_deploy_lets_it_finish_and_requests_nothing_after_it(pbot, clean_db):
    started(pbot, clean_db)
    pilot = pbot.runtime.autopilot
    answer(pbot, "alice", "go")
    assert pilot.tick() == ["maintenance-on"]
    ended(clean_db, "maintenance-on")
    assert pilot.tick() == ["deploy"]
    approved_and_running(clean_db, "deploy")
    reply = answer(pbot, "bob", "pause")
    assert "<@U_BOB> paused the autopilot of run #1: `deploy` goes on" in reply, reply
    assert rows(clean_db, "SELECT state FROM step_executions WHERE step_id = 'deploy'"
                ) == [("running",)], "nothing was interrupted"
    ended(clean_db, "deploy")
    assert pilot.tick() == [] and [s for s, _, _ in executions(clean_db)] == [
        "maintenance-on", "deploy"], "nothing is requested after the pause"
    assert "paused by <@U_BOB>" in answer(pbot, "carol", "status")
    answer(pbot, "carol", "go")
    assert pilot.tick() == ["migrate"]
    assert executions(clean_db)[-1] == ("migrate", "queued", "U_CAROL"), \
        "resumed on behalf of who typed go"


def test_two_drivers_at_once_make_one_set_of_requests(pbot, clean_db):
    started(pbot, clean_db)
    answer(pbot, "alice", "go")
    rt = pbot.runtime
    drivers = [rt.autopilot, Autopilot(db=rt.db, engine=rt.engine, outbox=rt.autopilot.outbox,
                                       now=pbot.clock.now)]
    def drive(d: Autopilot, gate: threading.Barrier, got: list[list[str]]) -> None:
        gate.wait()
        got.append(d.tick())

    for step in ("maintenance-on", "deploy", "migrate"):
        gate = threading.Barrier(2)
        got: list[list[str]] = []
        threads = [threading.Thread(target=drive, args=(d, gate, got)) for d in drivers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(got) == [[], [step]], got
        ended(clean_db, step)
    assert [s for s, _, _ in executions(clean_db)] == ["maintenance-on", "deploy", "migrate"]
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(2,)]


def test_while_another_process_drives_the_run_this_one_requests_nothing(pbot, clean_db):
    # Proves the driver's row lock: a replica whose tick comes while another holds the run's
    # autopilot row (mid-tick) neither waits for it nor drives the run a second time.
    started(pbot, clean_db)
    answer(pbot, "alice", "go")
    with psycopg.connect(clean_db) as other:  # another replica, mid-tick
        other.execute("SELECT 1 FROM autopilot FOR UPDATE")
        assert pbot.runtime.autopilot.tick() == [], "it drove a run another process drives"
        assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)]
    assert pbot.runtime.autopilot.tick() == ["maintenance-on"], "once the other one is done"


def test_a_restart_resumes_and_requests_nothing_twice(clean_db, tmp_path):
    first = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    try:
        started(first, clean_db)
        answer(first, "alice", "go")
        assert first.runtime.autopilot.tick() == ["maintenance-on"]
    finally:
        first.stop()
    second = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    try:
        pilot = second.runtime.autopilot
        assert pilot.tick() == [], "the approval it asked for before the restart is waited for"
        ended(clean_db, "maintenance-on")
        assert pilot.tick() == ["deploy"]
        assert pilot.tick() == []
    finally:
        second.stop()
    assert [s for s, _, _ in executions(clean_db)] == ["maintenance-on", "deploy"]
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(2,)]


def test_a_restart_while_its_step_ran_stops_it_at_the_interruption_and_runs_nothing_twice(
        clean_db, tmp_path):
    first = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    try:
        started(first, clean_db)
        answer(first, "alice", "go")
        for step in ("maintenance-on", "deploy"):
            assert first.runtime.autopilot.tick() == [step]
            ended(clean_db, step)
        assert first.runtime.autopilot.tick() == ["migrate"]
        # a worker claimed migrate, then the process died with it
        rows(clean_db, "UPDATE step_executions SET state = 'running', started_at = now(),"
                       " heartbeat_at = now() - interval '1 hour', claimed_by = 'dead-host:1'"
                       " WHERE step_id = 'migrate' RETURNING id")
    finally:
        first.stop()
    second = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    try:
        after = second.seq()
        assert second.engine.reap_interrupted() == 1
        assert second.runtime.autopilot.tick() == []
        # the stop notice is in the run card's thread (issue 21 item 4); the card says it too
        notice = second.workspace.wait_for_message(
            "C_CUTOVER", contains="Autopilot stopped", after_seq=after,
            predicate=lambda m: m.ephemeral_to is None and m.is_reply)
        assert "*Migrations: alembic upgrade head* was interrupted" in notice.text, notice.text
        assert second.runtime.autopilot.tick() == []
    finally:
        second.stop()
    assert rows(clean_db, "SELECT step_id, state FROM step_executions WHERE step_id = 'migrate'"
                ) == [("migrate", "interrupted")], "nothing was requested or run again"


def test_once_the_run_ends_status_no_longer_shows_it_on_and_it_requests_nothing(pbot, clean_db):
    started(pbot, clean_db)
    answer(pbot, "alice", "go")
    assert pbot.runtime.autopilot.tick() == ["maintenance-on"]
    assert "aborted" in answer(pbot, "alice", 'finish --abort "the vendor postponed"')
    assert pbot.runtime.autopilot.tick() == []
    status = answer(pbot, "bob", "status")
    assert "*Autopilot*: off. The run ended (aborted)." in status, status
