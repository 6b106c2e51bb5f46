"""Issue 13, 3: the database goes away (a TCP proxy cuts every connection and refuses new ones,
as in tests/scenario/test_outages.py) in the middle of the watches, and comes back.

The bot is measuring again, and answering commands, within 5 s of the database's return;
every command during the outage gets a clear "try again" answer and changes nothing; a command
acked before the cut whose handling met it is told the same and is never applied later behind
the person's back (bot/inbox.py marks it dropped); nothing acked is left unanswered."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.dev.sandbox.faults import Fault
from tests.support.harness import Bot, text_of
from tests.support.rehearsal import OVERRIDE, Rehearsal, rows, wait_until
from tests.support.tcpproxy import TcpProxy
from tests.watches_shell.conftest import is_watch_card

pytestmark = pytest.mark.slow

INTERVAL = 0.5
OUTAGE_S = 3.0
DB_DOWN = "database is not answering"


@pytest.fixture
def watching(clean_db, tmp_path, sandbox):
    """The bot with the health watch at 0.5 s, reaching its database through a proxy."""
    (tmp_path / "toy").mkdir()
    reh = Rehearsal(tmp_path / "toy", clean_db, watch_interval=INTERVAL)
    parts = urlsplit(clean_db)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    via = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    bot = Bot(via, tmp_path, config=reh.config, sandbox=sandbox)
    yield bot, proxy
    proxy.restore()
    bot.stop()
    proxy.close()
    reh.stop()


def ticks(db: str) -> int:
    got = rows(db, "SELECT ticks FROM watch_states WHERE name = 'health'")
    return got[0]["ticks"] if got else 0


def test_database_cut_during_the_watches_bot_back_within_5_s_and_loses_nothing(
        watching, clean_db):
    bot, proxy = watching
    ws = bot.workspace
    assert "started" in bot.command("alice", "start v2").lower()
    bot.command("alice", "watch start")
    wait_until("the health watch measuring", lambda: ticks(clean_db) >= 2, 20)

    # Acked before the cut: alice's request, held in its directory lookup until after it.
    held = bot.sandbox.api.inject(Fault("users.info", hold=threading.Event(),
                                        params={"user": ws.user("alice").id}, times=1))
    mark = bot.seq()
    assert bot.slash("alice", OVERRIDE).status == 200, "the request was not acked"
    assert held.holding.wait(10), "the request's handling never looked alice up"
    before = ticks(clean_db)
    proxy.cut()
    cut = time.monotonic()
    held.hold.set()
    told = text_of(bot.replies_to("alice", after=mark, timeout=15))

    # During the outage: every command is acked and answered "try again", nothing changes.
    answers = []
    while time.monotonic() - cut < OUTAGE_S or len(answers) < 3:
        user, text = [("carol", "status"), ("alice", "maintenance on"),
                      ("bob", "watch stop")][len(answers) % 3]
        answers.append((text, bot.command(user, text, timeout=15)))
    during = ticks(clean_db)

    proxy.restore()
    back = time.monotonic()
    measured_at = answered_at = None
    while measured_at is None or answered_at is None:
        assert time.monotonic() - back < 15, "the bot did not come back within 15 s"
        if measured_at is None and ticks(clean_db) > during:
            measured_at = time.monotonic() - back
        if answered_at is None and DB_DOWN not in bot.command("carol", "status", timeout=15):
            answered_at = time.monotonic() - back
        threading.Event().wait(0.05)
    retried = bot.command("alice", OVERRIDE)
    inbox = rows(clean_db, "SELECT state, count(*) AS n FROM inbox GROUP BY state")
    by_state = {r["state"]: r["n"] for r in inbox}
    tops = [m for m in ws.messages("C_CUTOVER", include_ephemeral=False)
            if is_watch_card(m, "Health")]
    print(f"\ndb restart: {len(answers)} commands in {back - cut:.1f}s of outage, "
          f"{sum(DB_DOWN in a for _, a in answers)} "
          f"told to try again; watch measuring again {measured_at:.2f}s and commands answered "
          f"{answered_at:.2f}s after the database came back; inbox "
          f"{by_state}")

    assert DB_DOWN in told and "Try again" in told, \
        f"the request acked before the cut must be told to try again: {told}"
    for text, answer in answers:
        assert DB_DOWN in answer and "Try again" in answer and "Traceback" not in answer, \
            f"/golive {text} during the outage answered: {answer}"
    assert during <= before + 1, "the watch measured (saved) while the database was cut"
    assert measured_at <= 5.0, f"the watch measured again {measured_at:.1f}s after the return"
    assert answered_at <= 5.0, f"commands answered again {answered_at:.1f}s after the return"
    # Nothing told "try again" was applied later: the only maintenance-on request is the retry.
    assert "Approval requested" in retried, retried
    exes = rows(clean_db, "SELECT step_id, attempt FROM step_executions")
    assert exes == [{"step_id": "maintenance-on", "attempt": 1}], exes
    assert rows(clean_db, "SELECT desired FROM watch_control") == [{"desired": "running"}], \
        "a `watch stop` told to try again was applied"
    states = {r["state"] for r in inbox}
    assert "new" not in states and "dropped" in states, \
        f"acked requests must end handled or dropped (told), none pending: {inbox}"
    assert len(tops) == 1, f"{len(tops)} Health watch messages: the watch must continue its own"
