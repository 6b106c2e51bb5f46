"""Issue 13, 4: two bot replicas (two `golive serve` processes, one database) behind one
endpoint that sends Slack's requests to each in turn, through a full cutover rehearsal: the
same outcome as one replica, each card posted once, no step run twice, and the watches
measured by one leader only."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.dev.sandbox import Workspace
from tests.support import pg
from tests.support.harness import Bot, bot_environ
from tests.support.procs import BotProcess
from tests.support.rehearsal import CHANNEL, STEPS, Person, Rehearsal, outcome, rows, wait_until
from tests.support.roundrobin import RoundRobin
from tests.watches_shell.conftest import is_watch_card

pytestmark = pytest.mark.slow

INTERVAL = 0.5  # the health watch's interval
WINDOW = 3.0  # seconds of watching in which measurements are counted


def posted(ws: Workspace) -> Counter:
    """Messages the bot posted in the channel, per outbox key (the sandbox keeps metadata)."""
    return Counter(((m.metadata or {}).get("event_payload") or {}).get("key")
                   for m in ws.messages(CHANNEL, include_ephemeral=False) if m.source == "api")


def ticks(db: str) -> tuple[int, set[str]]:
    got = rows(db, "SELECT ticks, measured_by FROM watch_states WHERE name = 'health'")
    return (got[0]["ticks"], {got[0]["measured_by"]}) if got else (0, set())


def delivered(db: str) -> None:
    wait_until("every outbox row delivered", lambda: not rows(
        db, "SELECT 1 FROM outbox WHERE due_at IS NOT NULL OR ts IS NULL"
            " OR sent_version < version"), 30)


def one_replica(db: str, root: Path) -> dict:
    """The rehearsal with one bot (in this process: the same runtime `golive serve` builds)."""
    reh = Rehearsal(root, db)
    bot = Bot(db, root, config=reh.config)
    try:
        started = time.monotonic()
        Person(bot.sandbox, db).cutover()
        took = time.monotonic() - started
        delivered(db)
        return {"outcome": outcome(db), "effects": reh.effects(),
                "posted": posted(bot.workspace), "took": took}
    finally:
        bot.stop()
        reh.stop()


def test_two_replicas_behind_one_endpoint_end_as_one_replica_does(sandbox, clean_db, tmp_path):
    (tmp_path / "one").mkdir()
    one = one_replica(clean_db, tmp_path / "one")
    pg.reset_state(clean_db)

    root = tmp_path / "two"
    root.mkdir()
    reh = Rehearsal(root, clean_db, watch_interval=INTERVAL)
    env = bot_environ(sandbox, clean_db, root, reh.config, {"GOLIVE_LOG_LEVEL": "WARNING"})
    procs = [BotProcess(env, root / f"replica{i}.log") for i in (1, 2)]
    rr = None
    try:
        for p in procs:
            p.wait_ready()
        rr = RoundRobin([p.url for p in procs])  # once ready: a port can change on the way
        sandbox.bot_url = rr.url + "/slack/events"
        started = time.monotonic()
        Person(sandbox, clean_db).cutover()
        took = time.monotonic() - started
        delivered(clean_db)
        wait_until("the watches measuring", lambda: ticks(clean_db)[0] >= 2, 20)
        n0, by0 = ticks(clean_db)
        t0 = time.monotonic()
        threading.Event().wait(WINDOW)  # a window to count measurements in
        n1, by1 = ticks(clean_db)
        window = time.monotonic() - t0
        two = {"outcome": outcome(clean_db), "effects": reh.effects(),
               "posted": posted(sandbox.workspace)}
    finally:
        if rr is not None:
            rr.stop()
        for p in procs:
            p.stop()
        reh.stop()
    measured, leaders = n1 - n0, by0 | by1
    watch_tops = [m for m in sandbox.workspace.messages(CHANNEL, include_ephemeral=False)
                  if is_watch_card(m, "Health")]
    backends = Counter(rr.sent)

    print(f"\nreplicas: one replica {one['took']:.1f}s, two replicas {took:.1f}s "
          f"({len(rr.sent)} requests, {sorted(backends.values())} per replica); "
          f"{len(two['outcome']['steps'])} steps, same outcome as one replica: "
          f"{two['outcome'] == one['outcome']}; step effects {len(two['effects']) // 2}; "
          f"cards posted twice {sum(n > 1 for n in two['posted'].values())}; "
          f"watch: {measured} measurements in {window:.1f}s at {INTERVAL}s "
          f"by {len(leaders)} leader(s), {len(watch_tops)} message(s)")
    assert len(backends) == 2 and min(backends.values()) >= 3, \
        f"the requests did not alternate between the replicas: {backends}"
    assert two["outcome"] == one["outcome"], \
        f"two replicas ended otherwise than one:\n{two['outcome']}\nvs\n{one['outcome']}"
    steps = [s for s, _, _ in STEPS]
    for run in (one, two):
        assert [(w, s) for w, _, s in run["effects"]] == [
            (w, s) for s in steps for w in ("start", "end")], \
            f"each step's effect must run once, in order: {run['effects']}"
        assert all(state == "succeeded" for _, _, state in run["outcome"]["steps"]), run
        twice = {k: n for k, n in run["posted"].items() if n > 1}
        assert not twice and None not in run["posted"], f"posted twice or unkeyed: {twice}"
    assert len(leaders) == 1, f"more than one replica measured: {leaders}"
    assert len(watch_tops) == 1, f"{len(watch_tops)} Health watch messages"
    assert 3 <= measured <= window / INTERVAL + 2, \
        f"{measured} measurements in {window:.1f}s at {INTERVAL}s: the watches ran twice " \
        "(or not at all)"
