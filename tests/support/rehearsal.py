"""A full cutover rehearsal (start, preflight override, maintenance on with approval, deploy,
migrate, health, smoke, traffic open) against a toy target that records every side effect,
and a person who drives it through the sandbox as the cards offer, whatever happens to the bot.

Side effects: every step runs ``effect.py`` (as the maintenance switch, or as the "smoke
script" of the deploy, migrate, health and smoke steps of this runbook). It asks the database
which execution is running (the engine allows one per run and commits ``running`` before the
step starts) and appends ``start <exe> <step> <attempt>`` and ``end ...`` lines to a log, so a
step executed twice is visible at the target; an effect that starts while an earlier one's
process still lives (two at once) writes an ``overlap`` line. Nothing it prints names the
database.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.dev.sandbox import SandboxServer
from bot.dev.sandbox.blocks import iter_buttons
from bot.dev.sandbox.workspace import Message
from bot.ids import Action
from tests.support.harness import BASE_CONFIG, text_of
from tests.support.pg import rows
from tests.support.poll import wait_until
from tests.support.toy_target import ToyTarget

CHANNEL = "C_CUTOVER"
OVERRIDE = 'maintenance on --override "rehearsal: preflight waived"'
# (step id, command, gated) in the order the runbook's requires chain runs them.
STEPS = (("maintenance-on", OVERRIDE, True), ("deploy", "deploy v2", True),
         ("migrate", "migrate", False), ("health", "health", False), ("smoke", "smoke", False),
         ("traffic-open", "traffic open", True))
WATCHES = ("health", "webhooks", "payouts", "ledger", "error_budget")

EFFECT = '''import os, sys, time
import psycopg
with psycopg.connect({db!r}, autocommit=True) as c:
    rows = c.execute("SELECT id, step_id, attempt FROM step_executions WHERE state = 'running'"
                     ).fetchall()
exe = " ".join(f"{{i}} {{s}} {{a}}" for i, s, a in rows) or "none 0 0"
def log(what):
    fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{{what}} {{exe}} {{os.getpid()}} {{time.time():.3f}}\\n".encode())
    os.close(fd)
def alive(pid):  # running, not a zombie
    try:
        return open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
lines = open({log!r}).read().split("\\n") if os.path.exists({log!r}) else []
ended = {{ln.split()[1] for ln in lines if ln.startswith("end ")}}
for ln in lines:  # an earlier effect that never ended: is it still running?
    if ln.startswith("start ") and ln.split()[1] not in ended and alive(int(ln.split()[4])):
        log("overlap")
log("start")
time.sleep({hold_s})  # the step's work: a window in which a kill finds it running
if "--flag-on" in sys.argv:
    open({flag!r}, "w").close()
elif "--flag-off" in sys.argv and os.path.exists({flag!r}):
    os.remove({flag!r})
log("end")
print("effect recorded for", exe.split()[1] if rows else "no running step")
'''

RUNBOOK = '''
[runbook]
name = "rehearsal"
version = "1"

[[phases]]
id = "preflight"
title = "Pre-cutover"

[[phases.steps]]
id = "preflight"
title = "Preflight"
kind = "check.all"
args = ["check"]
timeout = 900
command = "preflight"

[[phases]]
id = "cutover"
title = "Cutover (T-0)"

[[phases.steps]]
id = "maintenance-on"
title = "Maintenance mode on"
kind = "maintenance"
params = {{ mode = "on" }}
requires = ["preflight"]
gated = true
command = "maintenance on"

[[phases.steps]]
id = "deploy"
title = "Deploy the release tag"
kind = "smoke"
requires = ["maintenance-on"]
gated = true
args = ["tag"]
command = "deploy"
{ungated}
[[phases.steps]]
id = "traffic-open"
title = "Open traffic"
kind = "traffic"
params = {{ action = "open" }}
requires = ["smoke"]
gated = true
command = "traffic open"
'''
UNGATED = '''
[[phases.steps]]
id = "{id}"
title = "{title}"
kind = "smoke"
requires = ["{after}"]
command = "{id}"
'''


class Rehearsal:
    """The toy target, its effect log and the bot's config for the rehearsal runbook."""

    def __init__(self, root: Path, db: str, *, hold_s: float = 0.3,
                 watch_interval: float | None = None):
        self.root, self.db = root, db
        self.toy = ToyTarget(root).start()
        self.log = root / "effects.log"
        script = root / "effect.py"
        script.write_text(EFFECT.format(db=db, log=str(self.log), flag=str(self.toy.flag),
                                        hold_s=hold_s))
        ungated = "".join(UNGATED.format(id=s, title=s.capitalize(), after=a) for s, a in (
            ("migrate", "deploy"), ("health", "migrate"), ("smoke", "health")))
        (root / "rehearsal.toml").write_text(RUNBOOK.format(ungated=ungated))
        py = sys.executable
        watches = "".join(f"\n[watches.{w}]\nenabled = false\n" for w in WATCHES
                          if not (w == "health" and watch_interval))
        if watch_interval:
            watches += f'\n[watches.health]\ninterval_s = {watch_interval}\nbase = "internal"\n'
        self.config = f'runbook = "{root / "rehearsal.toml"}"\n' + BASE_CONFIG + f"""
[target]
name = "toy"
public_url = "{self.toy.url}"
internal_url = "{self.toy.url}"

[target.maintenance]
kind = "command"
on = ["{py}", "{script}", "--flag-on"]
off = ["{py}", "{script}", "--flag-off"]

[target.health]
path = "/api/health"

[target.smoke]
path = "{script}"
interpreter = ["{py}"]
args = []

[target.probe]
backoff_initial_s = 0.05
backoff_max_s = 0.1
{watches}"""

    def effects(self) -> list[tuple[str, int, str]]:
        """(start|end|overlap, execution id, step id) for each line of the effect log."""
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            what, exe, step = line.split()[:3]
            out.append((what, int(exe) if exe != "none" else 0, step))
        return out

    def running_effect(self) -> bool:
        """A step's effect has started and not ended: its child process runs now."""
        starts = {e for w, e, _ in self.effects() if w == "start"}
        return bool(starts - {e for w, e, _ in self.effects() if w == "end"})

    def stop(self) -> None:
        self.toy.stop()


# ------------------------------------------------------------------ reading the database
def newest(db: str, step: str) -> dict | None:
    got = rows(db, "SELECT * FROM step_executions WHERE step_id = %s ORDER BY id DESC LIMIT 1",
               step)
    return got[0] if got else None


def outcome(db: str) -> dict[str, Any]:
    """What a rehearsal leaves behind, comparable between two runs of it: the watches' and the
    live logs' messages depend on timing (a step still running after a second gets one)."""
    exes = rows(db, "SELECT step_id, attempt, state FROM step_executions ORDER BY id")
    keys = rows(db, "SELECT key FROM outbox WHERE key NOT LIKE 'watch%%'"
                    " AND key NOT LIKE 'progress:%%' ORDER BY id")
    return {"steps": [(r["step_id"], r["attempt"], r["state"]) for r in exes],
            "runs": [r["status"] for r in rows(db, "SELECT status FROM runs ORDER BY id")],
            "messages": [r["key"] for r in keys]}


# ------------------------------------------------------------------ the person
@dataclass
class Person:
    """Drives the rehearsal as the channel would: sends the next command, approves the card
    it posted, retries an interrupted step from its notice, re-sends what got no answer.
    ``act(kind, step, send)`` wraps every request it sends (the crash test kills the bot
    there); ``sent`` lists each (kind, step, HTTP status of the bot's answer, 0: none)."""

    sandbox: SandboxServer
    db: str
    act: Callable[[str, str, Callable[[], Any]], Any] = lambda kind, step, send: send()
    patience: float = 8.0
    sent: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, step, status)
    notices: dict[int, Message] = field(default_factory=dict)  # interrupted exe -> notice

    def _send(self, kind: str, step: str, send: Callable[[], Any]) -> None:
        d = self.act(kind, step, send)
        self.sent.append((kind, step, d.status if d is not None else 0))

    def start(self) -> None:
        while not rows(self.db, "SELECT 1 FROM runs WHERE status = 'active'"):
            self._send("command", "start", lambda: self.sandbox.slash("alice", "start v2"))
            self._settle(lambda: rows(self.db, "SELECT 1 FROM runs WHERE status = 'active'"))

    def cutover(self) -> None:
        self.start()
        for step, text, gated in STEPS:
            self.step(step, text, gated)

    def _settle(self, done: Callable[[], Any]) -> bool:
        """Wait up to ``patience`` for ``done``; False means: do it again."""
        try:
            wait_until("settle", done, self.patience)
            return True
        except AssertionError:
            return False

    def card(self, key: str) -> Message | None:
        """The message the bot posted for an outbox key, once it recorded where it is."""
        got = rows(self.db, "SELECT ts FROM outbox WHERE key = %s AND ts IS NOT NULL", key)
        return self.sandbox.workspace.message(CHANNEL, got[0]["ts"]) if got else None

    def step(self, step: str, text: str, gated: bool, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while (exe := newest(self.db, step)) is None or exe["state"] != "succeeded":
            assert time.monotonic() < deadline, f"{step} did not succeed: {exe}"
            state = exe["state"] if exe else None
            if state in (None, "cancelled", "failed"):
                self._send("command", step, lambda: self.sandbox.slash("alice", text))
                self._settle(lambda: (newest(self.db, step) or {}).get("id") !=
                             (exe or {}).get("id"))
            elif state == "awaiting_approval":
                card = self._settle(lambda: self.card(f"card:exe:{exe['id']}")) and \
                    self.card(f"card:exe:{exe['id']}")
                if card and any(b.action_id == Action.APPROVE
                                for b in self.sandbox.buttons(card)):
                    self._send("approve", step, lambda c=card: self.sandbox.click(
                        "bob", c, action_id=Action.APPROVE))
                self._settle(lambda: newest(self.db, step)["state"] != "awaiting_approval")
            elif state == "interrupted":
                notice = self._settle(lambda: self.card(f"interrupted:exe:{exe['id']}")) \
                    and self.card(f"interrupted:exe:{exe['id']}")
                if notice:
                    self.notices[exe["id"]] = notice
                    if any(b.action_id == Action.RETRY for b in self.sandbox.buttons(notice)):
                        self._send("retry", step, lambda n=notice: self.sandbox.click(
                            "alice", n, action_id=Action.RETRY))
                self._settle(lambda: newest(self.db, step)["id"] != exe["id"])
            else:  # queued, running: the bot is on it
                self._settle(lambda s=state: newest(self.db, step)["state"] != s)


def interrupted_notice_ok(sandbox: SandboxServer, notice: Message) -> str | None:
    """Why the notice does not report its interruption as the card should, or None: it says
    "was interrupted" and offered Retry and Mark done."""
    now = sandbox.workspace.message(notice.channel, notice.ts)
    versions = [v.blocks for v in now.history] + [now.blocks]
    text = text_of(now)
    if "interrupted" not in text:
        return f"the notice does not say interrupted: {text[:200]}"
    offered = {b.action_id for blocks in versions for b in iter_buttons(blocks)}
    if not {Action.RETRY, Action.MARK_DONE} <= offered:
        return f"the notice never offered Retry and Mark done: {offered}"
    return None
