"""`golive serve` is two processes (bot/supervise.py): the door acks, the work process handles.
What an operator would notice: the door alone never handles a request, but nothing it acked
is lost while the work process is down; the work process is restarted; it never outlives the
door; /healthz and /metrics speak for both."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.reliability.test_delivery import ON, OVERRIDE, command, request_card
from tests.support.pg import rows
from tests.support.poll import wait_until as until

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (zombies excluded)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def work_pid(door_pid: int) -> int:
    return until("the work process", lambda: next(iter(children(door_pid)), None), 20)


def test_the_door_acks_and_the_work_process_handles_and_counts(spawn, sandbox, clean_db):
    bot = spawn("a")
    health = httpx.get(bot.url + "/healthz", timeout=5).json()
    assert health == {"ok": True, "database": "up", "work": "up"}, health
    worker = work_pid(bot.proc.pid)
    assert os.getpriority(os.PRIO_PROCESS, worker) > os.getpriority(os.PRIO_PROCESS,
                                                                      bot.proc.pid), \
        "the work process must yield the CPU to the door"
    assert "started cutover run #1" in command(sandbox, "alice", "start v2")
    request_card(sandbox, clean_db, OVERRIDE, ON)  # posted by the work process
    metrics = httpx.get(bot.url + "/metrics", timeout=5).text
    assert 'golive_requests_total{kind="command",status="200"}' in metrics, "the door's count"
    assert 'golive_slack_api_calls_total{method="chat.postMessage"}' in metrics, \
        "the work process's Slack calls are missing from /metrics"


def test_a_request_acked_while_the_work_process_is_down_is_handled_when_it_is_back(
        spawn, sandbox, clean_db):
    bot = spawn("a")
    first = work_pid(bot.proc.pid)
    os.kill(first, signal.SIGKILL)
    until("/healthz saying the work process is down", lambda: httpx.get(
        bot.url + "/healthz", timeout=5).status_code == 503, 10)
    assert sandbox.slash("alice", "start v2").status == 200, "the door must still ack"
    assert rows(clean_db, "SELECT 1 FROM inbox WHERE state = 'new'"), "the ack left no trace"
    until("the work process started again", lambda: work_pid(bot.proc.pid) != first, 20)
    until("/healthz up again", lambda: httpx.get(bot.url + "/healthz", timeout=5)
          .status_code == 200, 20)
    sandbox.workspace.wait_for_message(
        "C_CUTOVER", contains="started cutover run #1", timeout=20,
        predicate=lambda m: m.via_response_url)
    until("the request handled once", lambda: rows(
        clean_db, "SELECT count(*) AS n FROM runs")[0]["n"] == 1
        and not rows(clean_db, "SELECT 1 FROM inbox WHERE state = 'new'"), 10)


def test_the_work_process_dies_with_the_door(spawn, sandbox, clean_db):
    bot = spawn("a")
    worker = work_pid(bot.proc.pid)
    assert alive(worker), "the work process must be running before the door dies"
    os.kill(bot.proc.pid, signal.SIGKILL)  # the door alone, not its process group
    assert bot.proc.wait(10) == -signal.SIGKILL
    assert until("the work process exiting", lambda: not alive(worker), 10), \
        f"the work process {worker} outlived the door"
