"""Two bot processes: only the leader measures; kill -9 it and the other takes over within
15 s, continuing the same watch messages, and the watches never run twice at once."""

from __future__ import annotations

import time

import psycopg
import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, bot_environ, text_of
from tests.support.poll import wait_until
from tests.support.procs import BotProcess, parent_of
from tests.watches_shell.conftest import is_watch_card, watch_config

INTERVAL = 0.5
COUNTED = 8  # measurements counted while both replicas live (~4 s at the interval)


def ticks(url: str) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT ticks, measured_by FROM watch_states "
                           "WHERE name = 'health'").fetchone()
    return (row[0], row[1]) if row else (0, "")


@pytest.fixture
def replicas(clean_db, tmp_path, toy, health):
    sandbox = SandboxServer(Workspace.default_demo(), signing_secret=SIGNING_SECRET,
                            bot_token=BOT_TOKEN).start()
    env = bot_environ(sandbox, clean_db, tmp_path, watch_config(toy, health, interval=INTERVAL),
                      None)
    procs = [BotProcess(env, tmp_path / f"bot{i}.log") for i in (1, 2)]
    try:
        for p in procs:
            p.wait_ready()
        sandbox.bot_url = procs[0].url + "/slack/events"
        yield sandbox, procs
    finally:
        for p in procs:
            p.stop()
        sandbox.stop()


def test_leader_killed_another_replica_takes_over_within_15s(replicas, clean_db):
    sandbox, procs = replicas
    ws = sandbox.workspace
    for text in ("start v2", "watch start"):
        assert sandbox.slash("alice", text, channel="C_CUTOVER").status == 200
    msg = ws.wait_for(lambda: next((m for m in ws.messages("C_CUTOVER", include_ephemeral=False)
                                    if "*Health*" in text_of(m) and "*ok*" in text_of(m)),
                                   None), 20)

    # Both replicas live: the measurements come at the interval's pace, not twice as fast
    # (COUNTED of them would come in half the time).
    n0, _ = ticks(clean_db)
    t0 = time.monotonic()
    wait_until("the leader measuring", lambda: ticks(clean_db)[0] >= n0 + COUNTED, timeout=20)
    n1, leader = ticks(clean_db)
    elapsed = time.monotonic() - t0
    assert n1 - n0 <= elapsed / INTERVAL + 2, \
        f"{n1 - n0} measurements in {elapsed:.1f}s at a {INTERVAL}s interval: ran twice"

    pid = int(leader.rsplit(":", 1)[1])  # a `golive serve`'s work process (its child)
    victim = next(p for p in procs if p.proc.pid in (pid, parent_of(pid)))
    survivor = next(p for p in procs if p is not victim)
    updates_before = len(ws.message("C_CUTOVER", msg.ts).history)
    victim.kill()
    killed = time.monotonic()

    def taken_over() -> bool:
        _, by = ticks(clean_db)
        tail = by.rsplit(":", 1)[-1]
        return tail.isdigit() and survivor.proc.pid in (int(tail), parent_of(int(tail)))
    wait_until("another replica taking over the watches within 15 s", taken_over, timeout=15)
    took = time.monotonic() - killed
    ws.wait_for(lambda: len(ws.message("C_CUTOVER", msg.ts).history) > updates_before + 1, 10)
    tops = [m for m in ws.messages("C_CUTOVER", include_ephemeral=False)
            if is_watch_card(m, "Health")]
    assert len(tops) == 1, "the new leader must continue the same message, not post another"
    n2, _ = ticks(clean_db)
    assert n2 > n1, "the new leader continues the count (the history is in the database)"
    print(f"takeover after kill -9: {took:.1f}s")
