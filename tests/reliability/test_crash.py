"""Issue 13, 2: `kill -9` the bot at 20 points of a full cutover rehearsal, restarting it each
time, while a person carries on as the cards offer (re-sends what got no answer, approves the
card, retries an interrupted step from its notice).

The kill points are drawn from a seeded generator (``GOLIVE_CRASH_SEED``, printed), spread
over the rehearsal's steps; a request's first kill is one of:

- ``ack``: the moment the bot acked a command or click (its effect not applied yet);
- ``timed``: a random delay (0 to 1.5 s) after a request;
- ``child``: while the step's child process runs (its effect has started at the target);
- ``delivery``: after the request's state change committed, while Slack delivery is held;

and a step's further kills (it has more than its requests) hit the new bot a random delay
after its start, while it recovers (``recovery``: re-handling acked requests, reaping steps).

Each bot is a `golive serve` process forked from a parent that has imported the bot's
modules (tests/support/zygote.py), so 20 restarts cost 20 start-ups, not 20 imports.

Across all of them: no step execution runs its effect twice and no attempt is made that a
person did not ask for (side effects counted at the target), no approval click delivered is
lost or applied twice (votes and audit rows in the database vs clicks in the inbox), and every
interrupted step is reported with Retry and Mark done.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from urllib.parse import parse_qs

import pytest

from bot.dev.sandbox import SandboxServer
from bot.dev.sandbox.faults import Fault
from bot.ids import Action
from tests.support.harness import bot_environ, text_of
from tests.support.rehearsal import STEPS, Person, Rehearsal, interrupted_notice_ok, rows
from tests.support.rehearsal import wait_until as until
from tests.support.zygote import ForkedBot, Zygote

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("GOLIVE_CRASH_SEED", "1313"))
KILLS = 20
MODES = ("ack", "timed", "child", "delivery")  # and "recovery": see Crasher.act
HOLD_S = 0.5  # how long each step's effect takes at the target: the `child` window
UNITS = ("start", *(s for s, _, _ in STEPS))
STARTS_STEP = {f"{kind}:{step}" for step, _, gated in STEPS
               for kind in (("approve",) if gated else ("command", "retry"))}


class Crasher:
    """Kills the bot at the planned points and starts a new one each time."""

    def __init__(self, spawn, sandbox: SandboxServer, reh: Rehearsal, db: str, seed: int):
        self.spawn, self.sandbox, self.reh, self.db = spawn, sandbox, reh, db
        rng = random.Random(seed)
        self.plan = [round(rng.uniform(0, 1.5), 2) for _ in range(KILLS)]  # the delays
        # Each request's first kill takes the next kind of a seeded cycle over all of them.
        self.modes = itertools.cycle(rng.sample(MODES, len(MODES)))
        quota = [KILLS // len(UNITS)] * len(UNITS)
        for i in rng.sample(range(len(UNITS)), KILLS % len(UNITS)):
            quota[i] += 1
        self.quota = dict(zip(UNITS, quota, strict=True))
        self.done: list[dict] = []  # one record per kill
        self.bot = spawn("bot0")

    def act(self, kind: str, step: str, send):
        if not self.plan or self.quota[step] <= 0:
            return send()
        delay = self.take(step)
        mode = next(self.modes)
        while mode == "child" and f"{kind}:{step}" not in STARTS_STEP:
            mode = next(self.modes)  # this request starts no step: no child to catch
        record = {"mode": mode, "kind": kind, "step": step, "reached": True}
        held: list[Fault] = []
        release = threading.Event()
        if mode == "delivery":
            held = [self.sandbox.api.inject(Fault(m, hold=release))
                    for m in ("chat.postMessage", "chat.update")]
            newest_inbox = (rows(self.db, "SELECT max(id) AS id FROM inbox")[0]["id"] or 0)
        d = send()
        record["status"] = d.status
        if mode == "timed":
            threading.Event().wait(delay)  # the kill point itself: a random moment
        elif mode == "child":
            record["reached"] = self._within(self.reh.running_effect, 10)
        elif mode == "delivery":
            record["reached"] = self._within(lambda: rows(
                self.db, "SELECT 1 FROM inbox WHERE id > %s AND state = 'done'",
                newest_inbox), 10)
        def let_slack_finish() -> None:
            """Slack applies a call it received whether or not its caller lives to read the
            answer: the held calls land before the new bot looks for them (not after it has
            looked and posted again, which no client could tell from a lost post)."""
            for rule in held:
                self.sandbox.api.faults.remove(rule)
            release.set()
            for rule in held:
                until("the held calls to land", lambda rule=rule: not rule.holding.is_set(), 10)
        self.kill_and_restart(record, between=let_slack_finish)
        # A request has fewer kill points than a step has kills: the rest of this request's
        # share kill the new bot while it recovers (re-handles acked requests, reaps steps).
        for _ in range(2):
            if not self.plan or self.quota[step] <= 0:
                break
            threading.Event().wait(self.take(step))
            self.kill_and_restart({"mode": "recovery", "kind": kind, "step": step,
                                   "reached": True})
        return d

    def take(self, step: str) -> float:
        self.quota[step] -= 1
        return self.plan.pop(0)

    @staticmethod
    def _within(cond, timeout: float) -> bool:
        try:
            until("the kill point", cond, timeout)
            return True
        except AssertionError:
            return False

    def kill_and_restart(self, record: dict, between=lambda: None) -> None:
        self.bot.kill()
        between()
        t = time.monotonic()
        self.done.append(record)
        self.bot = self.spawn(f"bot{len(self.done)}")
        record["restart_s"] = time.monotonic() - t

    def distribute(self, finished: str) -> None:
        """A unit finished with kills left: they move to the next unit."""
        i = UNITS.index(finished)
        if i + 1 < len(UNITS):
            self.quota[UNITS[i + 1]] += self.quota[finished]
            self.quota[finished] = 0


def clicks_in_inbox(db: str, action: str) -> list[dict]:
    """The delivered clicks of ``action`` (each a row: the door writes one before it acks)."""
    out = []
    for r in rows(db, "SELECT id, state, body FROM inbox WHERE kind = 'interaction'"):
        payload = json.loads(parse_qs(bytes(r["body"]).decode())["payload"][0])
        acts = payload.get("actions") or [{}]
        if acts[0].get("action_id") == action:
            out.append({"id": r["id"], "state": r["state"], "value": acts[0].get("value")})
    return out


@pytest.fixture
def zygote():
    z = Zygote()
    yield z
    z.stop()


def test_20_kills_during_a_rehearsal_run_no_step_twice_lose_no_approval_report_each(
        zygote, sandbox, clean_db, tmp_path, secret_scan):
    print(f"\ncrash: seed {SEED} (GOLIVE_CRASH_SEED={SEED} reproduces the plan)")
    (tmp_path / "toy").mkdir()
    reh = Rehearsal(tmp_path / "toy", clean_db, hold_s=HOLD_S)
    env = bot_environ(sandbox, clean_db, tmp_path, reh.config, {"GOLIVE_LOG_LEVEL": "WARNING"})
    secret_scan.learn(env)
    bots: list[ForkedBot] = []

    def spawn(name: str) -> ForkedBot:
        log = tmp_path / f"{name}.log"
        secret_scan.process_logs.append(log)
        bots.append(zygote.spawn(env, log).wait_ready())
        sandbox.bot_url = bots[-1].url + "/slack/events"
        return bots[-1]

    try:
        crasher = Crasher(spawn, sandbox, reh, clean_db, SEED)
        person = Person(sandbox, clean_db, act=crasher.act)
        started = time.monotonic()
        person.start()
        crasher.distribute("start")
        for step, text, gated in STEPS:
            person.step(step, text, gated)
            crasher.distribute(step)
        took = time.monotonic() - started
        until("every card delivered", lambda: not rows(
            clean_db, "SELECT 1 FROM outbox WHERE due_at IS NOT NULL OR ts IS NULL"
                      " OR sent_version < version"), 30)
        until("every acked request handled", lambda: not rows(
            clean_db, "SELECT 1 FROM inbox WHERE state = 'new'"), 30)
    finally:
        for b in bots:
            b.stop()
        reh.stop()
    ws = sandbox.workspace
    kills = crasher.done
    exes = rows(clean_db, "SELECT id, step_id, attempt, state FROM step_executions ORDER BY id")
    effects = reh.effects()
    interrupted = [e for e in exes if e["state"] == "interrupted"]
    modes = Counter(k["mode"] for k in kills)
    missed = [k for k in kills if not k["reached"]]
    print(f"crash: {len(kills)} kills ({dict(modes)}; {len(missed)} missed their point) "
          f"in {took:.1f}s (restarts {sum(k['restart_s'] for k in kills):.1f}s); {len(exes)} executions, {len(interrupted)} interrupted and "
          f"reported; {len(person.sent)} requests sent "
          f"({sum(s == 200 for *_, s in person.sent)} acked)")

    # All 20 kills happened, of every kind, and the rehearsal still ended.
    assert len(kills) == KILLS, f"only {len(kills)} kills happened: {crasher.plan}"
    assert set(modes) >= set(MODES), f"not every kind of kill point was used: {modes}"
    assert not missed, f"kills that did not find their point: {missed}"
    assert [s for s, _, _ in STEPS] == [e["step_id"] for e in exes if e["state"] == "succeeded"]

    # No step twice: each execution ran its effect at most once; an execution that succeeded
    # ran it exactly once, to the end; no two effects overlapped; every attempt after a step's
    # first was asked for by a person (a retry click or the command again).
    starts = Counter(e for w, e, _ in effects if w == "start")
    assert all(n == 1 for n in starts.values()), f"an execution ran twice: {effects}"
    assert 0 not in starts, "an effect ran with no step running"
    ends = {e for w, e, _ in effects if w == "end"}
    for e in exes:
        if e["state"] == "succeeded":
            assert starts[e["id"]] == 1 and e["id"] in ends, f"{e} did not run its effect once"
    overlaps = [e for e in effects if e[0] == "overlap"]
    assert not overlaps, f"a step's effect started while another one's still ran: {effects}"
    asked = Counter(step for kind, step, _ in person.sent if kind in ("command", "retry"))
    attempts = Counter(e["step_id"] for e in exes)
    for step, n in attempts.items():
        assert n <= asked[step], f"{step}: {n} attempts but a person asked {asked[step]} times"

    # No approval lost or applied twice: every approve click delivered (an inbox row; every
    # ack is one) was handled once (one audit row each), and each approval clicked has
    # exactly one vote, and was approved once.
    approve_clicks = clicks_in_inbox(clean_db, Action.APPROVE)
    acked = sum(1 for kind, _, s in person.sent if kind == "approve" and s == 200)
    audited = rows(clean_db, "SELECT outcome, detail->>'approval' AS approval FROM audit_log"
                             " WHERE action = 'approval.approve'")
    assert acked <= len(approve_clicks), "an acked click left no inbox row"
    assert all(c["state"] == "done" for c in approve_clicks), approve_clicks
    assert len(audited) == len(approve_clicks), \
        f"{len(approve_clicks)} approve clicks delivered but {len(audited)} handled: {audited}"
    approved = Counter(a["approval"] for a in audited if a["outcome"] == "approved")
    assert all(n == 1 for n in approved.values()), f"an approval applied twice: {approved}"
    votes = rows(clean_db, "SELECT approval_id, user_id FROM approval_votes")
    clicked = {str(a["approval"]) for a in audited}
    by_approval = Counter(str(v["approval_id"]) for v in votes)
    for approval in clicked:
        assert by_approval[approval] == 1, f"approval {approval}: {by_approval[approval]} votes"
    statuses = rows(clean_db, "SELECT id, status FROM approvals")
    assert {str(a["id"]) for a in statuses if a["status"] == "approved"} == set(approved), \
        f"approvals approved vs approved clicks: {statuses} {approved}"
    assert not rows(clean_db, "SELECT 1 FROM inbox WHERE state <> 'done'")

    # Every interrupted step is reported: its notice says so and offered Retry and Mark done,
    # and its card says interrupted.
    assert interrupted, "no kill interrupted a step: the test proved nothing about reporting"
    for e in interrupted:
        notice = person.notices.get(e["id"]) or until(
            f"the notice of {e}", lambda e=e: person.card(f"interrupted:exe:{e['id']}"), 10)
        problem = interrupted_notice_ok(sandbox, notice)
        assert problem is None, f"{e['step_id']} attempt {e['attempt']}: {problem}"
        card = person.card(f"card:exe:{e['id']}")
        assert card is not None and "interrupted" in text_of(
            ws.message(card.channel, card.ts)).lower(), \
            f"the card of {e} does not say interrupted: {card and text_of(card)[:300]}"
    child = [k for k in kills if k["mode"] == "child" and k["reached"]]
    assert len(interrupted) >= len(child), \
        f"{len(child)} kills while a step's child ran, {len(interrupted)} interruptions"

    posted = Counter(((m.metadata or {}).get("event_payload") or {}).get("key")
                     for m in ws.messages("C_CUTOVER", include_ephemeral=False)
                     if m.source == "api")
    twice = {k: n for k, n in posted.items() if n > 1}
    assert not twice, f"messages posted more than once: {twice}"
    by_step: dict[str, list] = defaultdict(list)
    for e in exes:
        by_step[e["step_id"]].append(e["state"])
    print(f"crash: attempts per step {dict(by_step)}")
