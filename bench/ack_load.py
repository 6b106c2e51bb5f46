"""Issue 13's background load for bench/ack_latency.py's open-loop golive rounds.

"While a deploy streams progress and five watches run at 1 s": everything here runs inside the
bench's sandbox process (it owns the Slack sandbox, so the flows are the ones a person would
click through), and nothing reaches into the bot.

* A local target: an "app" (``internal_url``: ``/api/health`` always green, for the health
  watch) and an "ingress" (``public_url``) whose answer the bench switches between open (200
  JSON) and the maintenance page (503 "Scheduled maintenance").
* The deploy: a bench runbook (the default one, the two maintenance steps given a long timeout)
  whose ``maintenance on|off`` step, requested by alice and approved by bob in the sandbox,
  verifies the public URL with [target.probe] backoff 0.1-0.2 s. The ingress is set to the
  other state first, so the step keeps retrying and says so ("verifying: ...") every
  100-200 ms; the bot writes that live log into the card's thread and the outbox streams it at
  its own pace. When the round ends the ingress is switched and the step succeeds.
* Five watches at 1 s (``/golive watch start`` by alice): health against the app, webhooks and
  the 5xx error budget tailing an access log this module appends to every 0.2 s, payouts and
  the ledger against a small throwaway PostgreSQL database with the tables they query.

Counted per round: versions of the live-log reply and of the watch messages written in the
counted window (what the channel saw) and, by the bench itself, ``watch_states.ticks``.
"""

from __future__ import annotations

import html
import json
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.poll import wait_until

CHANNEL = "C_CUTOVER"
WATCHES = ("health", "webhooks", "error_budget", "payouts", "ledger")
TARGET_SCHEMA = """
CREATE TABLE accounts (id int PRIMARY KEY, available_cents bigint NOT NULL,
                       held_cents bigint NOT NULL);
CREATE TABLE payouts (id serial PRIMARY KEY, account_id int NOT NULL, amount_cents bigint NOT NULL,
                      status text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE transactions (id serial PRIMARY KEY, account_id int NOT NULL,
                           amount_cents bigint NOT NULL);
INSERT INTO accounts VALUES (1, 10000, 0), (2, 2500, 0);
INSERT INTO transactions (account_id, amount_cents) VALUES (1, 10000), (2, 2500);
INSERT INTO payouts (account_id, amount_cents, status) VALUES (1, 500, 'settled'), (2, 100, 'settled');
"""


# --------------------------------------------------------------------------- the target

class Target:
    """The app (always green) and the ingress (open or the maintenance page), on 127.0.0.1."""

    def __init__(self) -> None:
        self.maintenance = False
        self.hits = {"app": 0, "ingress": 0}
        outer = self

        def handler(name: str):
            class H(BaseHTTPRequestHandler):
                def do_GET(self) -> None:
                    outer.hits[name] += 1
                    if name == "ingress" and outer.maintenance:
                        self._send(503, "text/html",
                                   b"<html><h1>Scheduled maintenance</h1></html>")
                    else:
                        self._send(200, "application/json",
                                   json.dumps({"status": "ok", "db": "ok"}).encode())

                def _send(self, status: int, ctype: str, body: bytes) -> None:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *a: Any) -> None:
                    pass
            return H

        self.servers = {n: ThreadingHTTPServer(("127.0.0.1", 0), handler(n))
                        for n in ("app", "ingress")}
        for s in self.servers.values():
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.servers[name].server_address[1]}"

    def stop(self) -> None:
        for s in self.servers.values():
            s.shutdown()
            s.server_close()


class AccessLog:
    """The app's access log the webhooks and error-budget watches tail: a verified webhook and
    a 200 access line every 0.2 s."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("", encoding="utf-8")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            while not self._stop.wait(0.2):
                now = datetime.now(UTC).isoformat(timespec="milliseconds")
                f.write(f"{now} INFO webhooks Signature Verified evt_{uuid.uuid4().hex[:12]}\n"
                        f"{now} INFO access POST /webhooks/stripe 200 3ms\n")
                f.flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def create_target_database(admin_url: str) -> tuple[str, str]:
    """A throwaway database with the tables the payouts and ledger watches query."""
    import psycopg

    name = f"golive_bench_target_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TARGET_SCHEMA)
    return name, url


def bench_runbook(step_timeout_s: int) -> str:
    """The default runbook, its maintenance steps allowed to run ``step_timeout_s``."""
    from runbook.model import default_runbook_path

    rb = default_runbook_path().read_text(encoding="utf-8")
    for mode in ('{ mode = "on" }\nrequires = ["preflight"]',
                 '{ mode = "off", manual = true }'):
        old = f'kind = "maintenance"\nparams = {mode}'
        if old not in rb:
            raise RuntimeError(f"bench runbook: the default runbook has no {old!r}")
        rb = rb.replace(old, f"{old}\ntimeout = {step_timeout_s}", 1)
    return rb


def bot_config(base: str, target: Target, access_log: Path, target_db_url: str,
               runbook: Path) -> str:
    """The bot's config: ``base`` plus the bench runbook, the target and five watches at 1 s."""
    on_off = json.dumps(["true"])
    from bot.dev.rehearse.sample import PAYBOX_INVARIANTS, PAYBOX_PAYOUTS_SQL
    from tests.support.paybox_target import toml_value

    logs = f'{{ kind = "file", path = "{access_log}" }}'
    return f"""runbook = "{runbook}"
{base}
[target]
name = "bench"
public_url = "{target.url('ingress')}"
internal_url = "{target.url('app')}"

[target.maintenance]
kind = "command"
on = {on_off}
off = {on_off}

[target.probe]
backoff_initial_s = 0.1
backoff_max_s = 0.2

[target.health]
path = "/api/health"

[watches.health]
interval_s = 1
base = "internal"

[watches.webhooks]
interval_s = 1
logs = {logs}

[watches.error_budget]
interval_s = 1
source = "logs"
logs = {logs}

[watches.payouts]
interval_s = 1
database_url = "{target_db_url}"
sql = {toml_value(PAYBOX_PAYOUTS_SQL)}

[watches.ledger]
interval_s = 1
database_url = "{target_db_url}"
invariants = {toml_value(PAYBOX_INVARIANTS)}
"""


# --------------------------------------------------------------------------- the flows

def _key(m: Any) -> str:
    return str(((m.metadata or {}).get("event_payload") or {}).get("key") or "")


def _until(what: str, fn: Any, timeout: float) -> Any:
    return wait_until(f"background load: {what}", fn, timeout)


class BackgroundLoad:
    """Starts and stops issue 13's load around each golive round (in the sandbox process)."""

    def __init__(self, server: Any, tmp: Path, admin_url: str, bot_db_url: str,
                 step_timeout_s: int) -> None:
        self.server, self.ws, self.db = server, server.workspace, bot_db_url
        self.target = Target()
        self.log = AccessLog(tmp / "access.log")
        self.target_db, target_url = create_target_database(admin_url)
        self.admin_url = admin_url
        runbook = tmp / "bench-runbook.toml"
        runbook.write_text(bench_runbook(step_timeout_s), encoding="utf-8")
        self.config_parts = (self.target, self.log.path, target_url, runbook)
        self.started = False
        self.maintenance_on = False  # the step that last succeeded
        self.commands_sent = 0  # slash commands (each writes one 'command' audit row)
        self.progress_msgs: list[Any] = []
        self.watch_msgs: list[Any] = []
        self.step: str | None = None
        # The answers to the load's own commands, told apart from the bench's status replies
        # by their response_url: tokens issued while the load sends, and what was posted there.
        self._mine: set[str] = set()
        self._answers: dict[str, str] = {}
        self._sending = False
        issue, handle = server.api.issue_response_url, server._handle_response_url

        def issue_mine(*a: Any, **kw: Any) -> str:
            url = issue(*a, **kw)
            if self._sending:
                self._mine.add(url.rsplit("/", 1)[1])
            return url

        def handle_mine(token: str, body: bytes):
            if token in self._mine:
                self._answers.setdefault(token, body.decode(errors="replace"))
            return handle(token, body)
        server.api.issue_response_url, server._handle_response_url = issue_mine, handle_mine

    def config(self, base: str) -> str:
        return bot_config(base, *self.config_parts)

    def _rows(self, sql: str, *args: Any) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.db, autocommit=True) as conn:
            return conn.execute(sql, args).fetchall()

    def command(self, user: str, text: str) -> str:
        """`/golive text` as ``user``; its answer (the ack's body or its response_url post)."""
        return self.answer(self.send(user, text), text)

    def send(self, user: str, text: str) -> Any:
        """`/golive text` as ``user``, acked; its answer comes later (see answer())."""
        self.commands_sent += 1
        self._sending = True
        try:
            d = self.server.slash(user, text, channel=CHANNEL)
        finally:
            self._sending = False
        if d.status != 200:
            raise RuntimeError(f"background load: /golive {text} answered HTTP {d.status}")
        return d

    def answer(self, d: Any, text: str, timeout: float = 30.0) -> str:
        token = (d.response_url or "").rsplit("/", 1)[-1]
        posted = _until(f"the answer to /golive {text}",
                        lambda: d.body.strip() or self._answers.get(token), timeout)
        return html.unescape(posted)

    def begin(self) -> dict[str, Any]:
        """Start the watches and a maintenance step that streams progress until end()."""
        from bot.ids import Action

        if not self.started:
            said = self.command("alice", "start v2")
            if "started" not in said.lower():
                raise RuntimeError(f"background load: start v2 said {said!r}")
            self.started = True
        said = self.command("alice", "watch start")
        if "start" not in said.lower():
            raise RuntimeError(f"background load: watch start said {said!r}")
        # The step waits for the other state: it keeps verifying until end() switches it.
        on = not self.maintenance_on
        self.target.maintenance = not on
        self.step = "maintenance-on" if on else "maintenance-off"
        # A step that already succeeded in this run is re-run only with a reason.
        text = f'maintenance {"on" if on else "off"} --override "ack bench background load"'
        after = self.ws.seq
        said = self.command("alice", text)
        if "approv" not in said.lower():
            raise RuntimeError(f"background load: /golive {text} said {said!r}")
        card = self.ws.wait_for_message(
            CHANNEL, contains="Maintenance mode", after_seq=after, timeout=30,
            predicate=lambda m: m.source == "api" and m.ephemeral_to is None
            and _key(m).startswith("card:exe:"))  # in the run card's thread (quiet channel)
        _until("the bot recording its card", lambda: self._rows(
            "SELECT 1 FROM outbox WHERE ts = %s", card.ts), 30)
        after = self.ws.seq
        self.server.click("bob", card, action_id=Action.APPROVE)
        exe = _key(card).rsplit(":", 1)[1]
        progress = self.ws.wait_for_message(
            CHANNEL, after_seq=after, timeout=30,
            predicate=lambda m: _key(m) == f"progress:exe:{exe}")
        self.progress_msgs.append(progress)
        _until("two live-log updates", lambda: len(progress.history) >= 2, 30)
        def watch_messages() -> list[Any] | None:
            ms = [m for m in self.ws.messages(CHANNEL, include_ephemeral=False)
                  if m.source == "api" and _key(m).startswith("watch:run:")]
            return ms if len(ms) >= len(WATCHES) else None
        self.watch_msgs = _until("five watch messages", watch_messages, 30)
        return {"step": self.step, "execution": int(exe), "card_ts": card.ts}

    def counts(self, t0: float, t1: float) -> dict[str, int]:
        """Message versions written in [t0, t1] (CLOCK_MONOTONIC, shared across processes)."""
        def versions(msgs: list[Any]) -> int:
            return sum(1 for m in msgs for at in [v.at for v in m.history] + [m.at]
                       if t0 <= at <= t1)
        from bot.dev.sandbox.workspace import message_text

        with self.ws.lock:
            return {"progress_updates": versions(self.progress_msgs),
                    "watch_message_updates": versions(self.watch_msgs),
                    # What the channel shows now: each watch's first line, the live log's last.
                    "watch_messages_now": [html.unescape(message_text(m)).splitlines()[0][:100]
                                           for m in self.watch_msgs],
                    "live_log_now": html.unescape(message_text(
                        self.progress_msgs[-1])).splitlines()[-1][:160]}

    def end(self) -> dict[str, Any]:
        """Let the step succeed and wait for it; ask the watches to stop (settle() checks).

        The stop is a command like the bench's: its lazy half queues behind the round's
        backlog of status commands, so the watches run on until that backlog has drained."""
        self.target.maintenance = self.step == "maintenance-on"
        def done() -> str | None:
            r = self._rows("SELECT state FROM step_executions WHERE step_id = %s"
                           " ORDER BY id DESC LIMIT 1", self.step)
            return r[0][0] if r and r[0][0] in ("succeeded", "failed", "interrupted") else None
        state = _until(f"{self.step} finishing", done, 60)
        if state != "succeeded":
            raise RuntimeError(f"background load: {self.step} ended {state}")
        self.maintenance_on = self.step == "maintenance-on"
        self._stop_sent = self.send("alice", "watch stop")
        return {"step_state": state}

    def settle(self) -> dict[str, Any]:
        """After the backlog: the watches said they stopped."""
        said = self.answer(self._stop_sent, "watch stop", timeout=120)
        if "stop" not in said.lower():
            raise RuntimeError(f"background load: watch stop said {said!r}")
        return {"commands_sent": self.commands_sent}

    def stop(self) -> None:
        import psycopg

        self.log.stop()
        self.target.stop()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.target_db}" WITH (FORCE)')
