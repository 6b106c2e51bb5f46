"""Ack latency of `/golive status` through `golive serve`, against a bare Bolt app baseline.

Run:  .venv/bin/python bench/ack_latency.py [--requests N] [--concurrency C] [--rounds R]

What it does (everything on 127.0.0.1, everything started and stopped here):

* creates a throwaway PostgreSQL database and applies the bot's schema;
* starts the Slack sandbox (local Web API + response_url endpoint) in its own process, so the
  bot's lazy replies do not compete with the load generator for this process's GIL;
* starts `golive serve` (the real console script) and a bare Bolt app served by the same
  uvicorn + Starlette adapter (`bench/ack_latency.py --serve-bare`), each a separate process
  (plus a diagnostic bare app with a no-op lazy listener, unless --no-lazy-baseline);
* runs interleaved rounds bare, bare_lazy, golive, bare, ... each with a warm-up (not counted)
  and N counted signed `/golive status` slash commands over C keep-alive connections (a minimal
  asyncio HTTP/1.1 client by default; --client httpx for httpx.AsyncClient);
* after each golive round waits for the lazy half (audit row + response_url post) to drain, so
  the next round starts on a quiet machine; checks audit rows, response_url posts and errors;
* in each open-loop golive round, runs issue 13's background load (bench/ack_load.py; skip
  with --no-background-load): a cutover step streaming its live log and five watches at 1 s,
  started through the sandbox as people would, counted in the JSON (`background_load`); the
  bare Bolt rounds and the closed loop run without it (bare Bolt has no deploys or watches);
* writes bench/results/ack_latency.json and prints a summary table.

Latency is client-side: from just before the POST is sent to the full HTTP response (the ack).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ack_latency.json"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIGNING_SECRET = "bench-signing-secret-7d41e2"
BOT_TOKEN = "xoxb-bench-0000-golive-token"
ADMIN_URL = os.environ.get("GOLIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
USERS = [("U_ALICE", "alice"), ("U_BOB", "bob"), ("U_CAROL", "carol")]
CHANNEL = ("C_CUTOVER", "cutover")
TARGET_RATIO = 1.5
TARGET_P99_MS = 100.0
# `golive serve` with another GIL switch interval than the one `bot.server.tune_gc` sets (the
# --ab-switchinterval diagnostic): the same console entry point, tune_gc wrapped in this
# launcher only, so the bot's code is the same in both processes.
SWITCH_AB_LAUNCHER = """
import os, sys
import bot.server as server
tune = server.tune_gc
def tune_then_switch():
    tune()
    sys.setswitchinterval(float(os.environ["GOLIVE_BENCH_SWITCHINTERVAL"]))
server.tune_gc = tune_then_switch
from bot.cli import main
sys.exit(main())
"""


# --------------------------------------------------------------------------- bare Bolt server

def build_bare_asgi(lazy_noop: bool = False):
    """A bare Bolt app behind exactly the adapter code bot/server.py's `events` uses.

    With `lazy_noop`, the listener also has one lazy function that does nothing: a diagnostic
    baseline that isolates the cost of Bolt's lazy-listener machinery (request deep copy,
    executor hand-off) from the bot's own work.
    """
    from slack_bolt import App
    from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
    from slack_bolt.authorization import AuthorizeResult
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id=None, bot_token=BOT_TOKEN,
                               bot_user_id=None, bot_id=None)

    app = App(signing_secret=SIGNING_SECRET, authorize=authorize, process_before_response=True,
              token_verification_enabled=False)

    def ack_only(ack):
        ack()

    def lazy_nothing():
        pass

    if lazy_noop:
        app.command("/golive")(ack=ack_only, lazy=[lazy_nothing])
    else:
        app.command("/golive")(ack_only)

    async def events(request: Request) -> Response:
        body = await request.body()
        bolt_resp = await run_in_threadpool(app.dispatch, to_bolt_request(request, body))
        return to_starlette_response(bolt_resp)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"])])


def serve_bare(port: int, lazy_noop: bool = False) -> int:
    import uvicorn

    uvicorn.run(build_bare_asgi(lazy_noop), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)
    return 0


# --------------------------------------------------------------------------- sandbox process

def sandbox_main(conn) -> None:
    """Run the Slack sandbox; answer 'issue' / 'stats' / 'load_*' / 'stop' over a pipe."""
    from bench.ack_load import BackgroundLoad
    from bot.dev.sandbox import SandboxServer, Workspace

    ws = Workspace.default_demo()
    server = SandboxServer(ws, signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN,
                           host="127.0.0.1").start()
    # When each response_url was first posted to (CLOCK_MONOTONIC, the same clock as the load
    # generator's time.monotonic): the open-loop rounds report reply latency from it. A wrapper
    # in this process only; the sandbox's code is unchanged.
    first_post: dict[str, float] = {}
    handle = server._handle_response_url

    def timed_response_url(token: str, body: bytes):
        first_post.setdefault(token, time.monotonic())
        return handle(token, body)
    server._handle_response_url = timed_response_url
    conn.send(server.api_url)
    load: BackgroundLoad | None = None
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd.startswith("load_") or cmd == "bot_url":
                # Issue 13's background load (bench/ack_load.py); errors go back to the bench.
                try:
                    if cmd == "load_setup":
                        load = BackgroundLoad(server, Path(arg["tmp"]), arg["admin_url"],
                                              arg["db_url"], arg["step_timeout_s"])
                        conn.send(("ok", load.config(arg["base"])))
                    elif cmd == "bot_url":
                        server.bot_url = arg
                        conn.send(("ok", None))
                    elif cmd == "load_begin":
                        conn.send(("ok", load.begin()))
                    elif cmd == "load_counts":
                        conn.send(("ok", load.counts(*arg)))
                    elif cmd == "load_end":
                        conn.send(("ok", {**load.end(), "commands_sent": load.commands_sent}))
                    elif cmd == "load_settle":
                        conn.send(("ok", load.settle()))
                    elif cmd == "load_stop":
                        if load is not None:
                            load.stop()
                            load = None
                        conn.send(("ok", None))
                except Exception as e:  # noqa: BLE001 - reported by the bench, which stops
                    conn.send(("error", f"{type(e).__name__}: {e}"))
            elif cmd == "issue":  # arg: list of (user_id, channel_id)
                conn.send([server.api.issue_response_url(u, c, None) for u, c in arg])
            elif cmd == "stats":
                with ws.lock:
                    calls = list(ws.api_calls)
                    msgs = [m for lst in ws._messages.values() for m in lst]
                    failures = list(ws.delivery_failures)
                rurl = [c for c in calls if c.method == "response_url"]
                via = [m for m in msgs if getattr(m, "source", "") == "response_url"]
                other: dict[str, int] = {}
                for c in calls:
                    if c.method != "response_url":
                        other[c.method] = other.get(c.method, 0) + 1
                conn.send({
                    "response_url_posts": len(rurl),
                    "response_url_ok": sum(1 for c in rurl if c.ok),
                    "response_url_errors": sorted({f"{c.status} {c.error}" for c in rurl
                                                   if not c.ok}),
                    "response_url_messages": len(via),
                    "replies_something_went_wrong": sum(1 for m in via
                                                        if "went wrong" in (m.text or "")),
                    "replies_db_down": sum(1 for m in via
                                           if "database is not answering" in (m.text or "")),
                    "sample_reply": via[0].text[:200] if via else None,
                    "other_api_calls": other,
                    "delivery_failures": len(failures),
                })
            elif cmd == "replies":  # arg: tokens; their first response_url post times
                conn.send({t: first_post.get(t) for t in arg})
            elif cmd == "stop":
                conn.send("bye")
                return
    finally:
        if load is not None:
            load.stop()
        server.stop()


class Sandbox:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=sandbox_main, args=(child,), daemon=True,
                                name="bench-sandbox")
        self.proc.start()
        if not self.conn.poll(30):
            raise RuntimeError("sandbox did not start")
        self.api_url: str = self.conn.recv()

    def issue(self, pairs: list[tuple[str, str]]) -> list[str]:
        self.conn.send(("issue", pairs))
        return self.conn.recv()

    def replies(self, tokens: list[str]) -> dict[str, float | None]:
        self.conn.send(("replies", tokens))
        return self.conn.recv()

    def stats(self) -> dict:
        self.conn.send(("stats", None))
        return self.conn.recv()

    def call(self, cmd: str, arg: Any = None, timeout: float = 180.0) -> Any:
        """One background-load command (see sandbox_main); raises what went wrong there."""
        self.conn.send((cmd, arg))
        if not self.conn.poll(timeout):
            raise RuntimeError(f"sandbox: no answer to {cmd} within {timeout:g}s")
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"sandbox {cmd}: {value}")
        return value

    def stop(self) -> None:
        try:
            if self.proc.is_alive():
                self.conn.send(("stop", None))
                self.conn.poll(5) and self.conn.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# --------------------------------------------------------------------------- database

def create_database() -> tuple[str, str]:
    import uuid

    import psycopg

    name = f"golive_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = ADMIN_URL.rpartition("/")
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def audit_commands(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM audit_log WHERE action = 'command'").fetchone()[0]


# --------------------------------------------------------------------------- server processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, logdir: Path):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s")

    def log_problems(self) -> list[str]:
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return [ln for ln in text.splitlines()
                if any(k in ln for k in ("WARNING", "ERROR", "Traceback", "Exception"))]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to this pid only: uvicorn shuts down gracefully
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# --------------------------------------------------------------------------- load generator

def signed(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    body = urlencode(fields).encode()
    ts = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body,
                      hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/x-www-form-urlencoded",
                  "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
                  "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def slash_fields(i: int, response_url: str) -> dict[str, str]:
    uid, uname = USERS[i % len(USERS)]
    return {"token": "bench-verification-token", "team_id": "T0SANDBOX",
            "team_domain": "sandbox", "channel_id": CHANNEL[0], "channel_name": CHANNEL[1],
            "user_id": uid, "user_name": uname, "command": "/golive", "text": "status",
            "api_app_id": "A0SANDBOX", "is_enterprise_install": "false",
            "response_url": response_url, "trigger_id": f"{i}.{i}.bench{i:08x}"}


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client connection (asyncio streams).

    The default load generator: at 20 concurrent connections on a 2-core machine, httpx's own
    per-request CPU cost (~1 ms) queues requests inside the client, and client-side percentiles
    then measure the client (see bench/README.md). This client costs a few microseconds.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            await self.connect()
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
        else:
            data = await self.reader.readexactly(int(hdrs.get("content-length", "0")))
        if hdrs.get("connection", "").lower() == "close":
            self.writer.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _blast(url: str, response_urls: list[str], concurrency: int, client: str = "raw"
                 ) -> tuple[list[float], float, dict[str, int]]:
    """Send one signed slash command per response_url over `concurrency` connections."""
    from urllib.parse import urlsplit

    import httpx

    latencies: list[float] = [0.0] * len(response_urls)
    statuses: dict[str, int] = {}
    nxt = iter(range(len(response_urls)))
    parts = urlsplit(url)

    def record(i: int, t0: float, key: str) -> None:
        latencies[i] = time.perf_counter() - t0
        statuses[key] = statuses.get(key, 0) + 1

    if client == "raw":
        async def worker() -> None:
            conn = RawHTTP(parts.hostname, parts.port)
            await conn.connect()
            try:
                for i in nxt:
                    body, headers = signed(slash_fields(i, response_urls[i]))
                    t0 = time.perf_counter()
                    try:
                        status, data = await conn.post(parts.path, body, headers)
                        key = str(status) + ("+body" if data else "")
                    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                        key = type(e).__name__
                        await conn.close()
                        conn = RawHTTP(parts.hostname, parts.port)
                    record(i, t0, key)
            finally:
                await conn.close()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started, statuses

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as hc:
        async def hworker() -> None:
            for i in nxt:
                body, headers = signed(slash_fields(i, response_urls[i]))
                t0 = time.perf_counter()
                try:
                    r = await hc.post(url, content=body, headers=headers)
                    key = str(r.status_code) + ("+body" if r.content else "")
                except httpx.HTTPError as e:
                    key = type(e).__name__
                record(i, t0, key)

        started = time.perf_counter()
        await asyncio.gather(*(hworker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started, statuses


async def _open_loop(url: str, response_urls: list[str], rate: float, preopen: int
                     ) -> dict[str, Any]:
    """Send one signed slash command per response_url at fixed times start + i/rate.

    Each send is due at its scheduled time whatever the earlier ones are doing: it takes an
    idle keep-alive connection or opens a new one, never waits behind a slow response. Latency
    is measured from the scheduled time (no coordinated omission); how late the client itself
    sent (send lag) is recorded to show the client kept up.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    n = len(response_urls)
    # Sign everything up front: the client's own CPU stays out of the schedule.
    prepared = [signed(slash_fields(i, response_urls[i])) for i in range(n)]
    # FIFO: every idle connection is reused within preopen/rate seconds, so none sits idle
    # past uvicorn's 5 s keep-alive timeout and gets closed under a request (LIFO did that).
    idle: collections.deque[RawHTTP] = collections.deque()
    for _ in range(preopen):
        c = RawHTTP(parts.hostname, parts.port)
        await c.connect()
        idle.append(c)
    opened = [0]
    latencies: list[float] = [0.0] * n
    send_lag: list[float] = [0.0] * n
    statuses: dict[str, int] = {}
    bodies: list[str] = []
    loop = asyncio.get_running_loop()

    async def one(i: int, due: float) -> None:
        send_lag[i] = time.monotonic() - due
        if idle:
            conn = idle.popleft()
        else:
            conn = RawHTTP(parts.hostname, parts.port)
            opened[0] += 1
        body, headers = prepared[i]
        try:
            status, data = await asyncio.wait_for(conn.post(parts.path, body, headers), 30.0)
            key = str(status) + ("+body" if data else "")
            if data and len(bodies) < 5:
                bodies.append(data[:300].decode(errors="replace"))
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as e:
            key = type(e).__name__
            await conn.close()
        latencies[i] = time.monotonic() - due
        statuses[key] = statuses.get(key, 0) + 1

    start = time.monotonic() + 0.05
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    wall = time.monotonic() - start
    for c in idle:
        await c.close()
    return {"latencies": latencies, "send_lag": send_lag, "statuses": statuses, "wall": wall,
            "start": start, "extra_connections": opened[0], "bodies": bodies}


def pct(sorted_xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_xs) - 1, math.ceil(p / 100.0 * len(sorted_xs)) - 1))
    return sorted_xs[k]


def summarize(lat: list[float], wall: float) -> dict[str, float]:
    xs = sorted(x * 1000.0 for x in lat)
    return {"n": len(xs), "p50_ms": pct(xs, 50), "p90_ms": pct(xs, 90), "p99_ms": pct(xs, 99),
            "max_ms": xs[-1], "mean_ms": statistics.fmean(xs), "wall_s": wall,
            "throughput_rps": len(xs) / wall}


def run_round(target: ServerProc, sandbox: Sandbox, *, warmup: int, requests: int,
              concurrency: int, client: str) -> dict[str, Any]:
    pairs = [(USERS[i % len(USERS)][0], CHANNEL[0]) for i in range(warmup + requests)]
    urls = sandbox.issue(pairs)  # valid for 5 uses and 30 minutes: plenty for one round
    url = f"{target.url}/slack/events"
    _, _, warm_status = asyncio.run(_blast(url, urls[:warmup], concurrency, client))
    lat, wall, status = asyncio.run(_blast(url, urls[warmup:], concurrency, client))
    return {"server": target.name, **summarize(lat, wall), "statuses": status,
            "warmup_statuses": warm_status}


def watch_ticks(db_url: str) -> int:
    """Measurements the watches have made so far (``watch_states.ticks``, all watches)."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        return int(conn.execute("SELECT coalesce(sum(ticks), 0) FROM watch_states").fetchone()[0])


def run_open_round(target: ServerProc, sandbox: Sandbox, *, rate: float, seconds: float,
                   warmup_seconds: float, preopen: int, replies: bool,
                   load_db: str | None = None) -> dict[str, Any]:
    """One open-loop round: warm-up then `rate * seconds` counted sends at fixed times.

    With ``load_db`` (golive's database), issue 13's background load runs through the whole
    round (bench/ack_load.py): started before the warm-up, counted over the counted sends,
    stopped after them.
    """
    n_warm, n = round(rate * warmup_seconds), round(rate * seconds)
    pairs = [(USERS[i % len(USERS)][0], CHANNEL[0]) for i in range(n_warm + n)]
    urls = sandbox.issue(pairs)
    url = f"{target.url}/slack/events"
    load: dict[str, Any] | None = None
    if load_db is not None:
        t = time.monotonic()
        load = {"started": sandbox.call("load_begin"), "setup_s": time.monotonic() - t}
    warm = asyncio.run(_open_loop(url, urls[:n_warm], rate, preopen)) if n_warm else None
    ticks0 = watch_ticks(load_db) if load_db is not None else 0
    res = asyncio.run(_open_loop(url, urls[n_warm:], rate, preopen))
    t1 = time.monotonic()  # every counted ack is in
    if load is not None:
        counts = sandbox.call("load_counts", (res["start"], t1))
        load.update(counts, watch_measurements=watch_ticks(load_db) - ticks0,
                    counted_window_s=t1 - res["start"])
        load["ended"] = sandbox.call("load_end")
    lag = sorted(x * 1000.0 for x in res["send_lag"])
    out = {"server": target.name, "rate_per_s": rate, **summarize(res["latencies"], res["wall"]),
           "statuses": res["statuses"],
           "warmup_statuses": warm["statuses"] if warm else {},
           "extra_connections": res["extra_connections"],
           "sample_ack_bodies": (warm["bodies"] if warm else []) + res["bodies"],
           "client_send_lag_ms": {"p50": pct(lag, 50), "p99": pct(lag, 99), "max": lag[-1]}}
    out["_acked_at"] = t1
    if load is not None:
        out["background_load"] = load
    if replies:
        out["_reply_tokens"] = ([u.rsplit("/", 1)[1] for u in urls[n_warm:]],
                                [res["start"] + i / rate for i in range(n)])
    return out


def reply_latency(sandbox: Sandbox, res: dict[str, Any]) -> dict[str, Any]:
    """Scheduled send -> the bot's response_url post arrives at the sandbox (the user sees it)."""
    tokens, dues = res.pop("_reply_tokens")
    got = sandbox.replies(tokens)
    xs = sorted((got[t] - d) * 1000.0 for t, d in zip(tokens, dues, strict=True)
                if got.get(t) is not None)
    if not xs:
        return {"n": 0, "missing": len(tokens)}
    return {"n": len(xs), "missing": len(tokens) - len(xs), "p50_ms": pct(xs, 50),
            "p90_ms": pct(xs, 90), "p99_ms": pct(xs, 99), "max_ms": xs[-1]}


def git_state() -> dict[str, Any]:
    """The commit the benchmarked code came from, and whether the tree differed from it.

    A run from an exported tree (`git archive`, no .git: see bench/README.md) names its commit
    and changed files in GOLIVE_BENCH_COMMIT / GOLIVE_BENCH_DIRTY (comma-separated).
    """
    if os.environ.get("GOLIVE_BENCH_COMMIT"):
        commit = os.environ["GOLIVE_BENCH_COMMIT"]
        dirty = [f for f in os.environ.get("GOLIVE_BENCH_DIRTY", "").split(",") if f]
    else:
        def git(*a: str) -> str:
            return subprocess.run(["git", *a], cwd=ROOT, check=False, capture_output=True,
                                  text=True).stdout.strip()
        commit, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain").splitlines()
    return {"git": commit + (" + uncommitted changes" if dirty else ""),
            "git_commit": commit, "git_dirty": bool(dirty), "git_dirty_files": dirty}


def wait_drained(db_url: str, expected: int, timeout: float = 120.0) -> tuple[int, float]:
    """Wait until `expected` command audit rows exist (the lazy half has finished)."""
    started = time.perf_counter()
    n = audit_commands(db_url)
    while n < expected and time.perf_counter() - started < timeout:
        time.sleep(0.1)
        n = audit_commands(db_url)
    return n, time.perf_counter() - started


# --------------------------------------------------------------------------- orchestration

def machine_facts() -> dict[str, Any]:
    def ver(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    import psycopg

    pg_version = None
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error as e:
        pg_version = f"unknown ({type(e).__name__})"
    return {"nproc": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "machine": platform.machine(),
            "postgres_server": pg_version,
            "packages": {p: ver(p) for p in ("slack_bolt", "slack_sdk", "uvicorn", "starlette",
                                             "psycopg", "httpx", "anyio",
                                             "uvloop", "httptools")}}


def background_load_text(on: bool) -> dict[str, str]:
    """What ran besides the benchmarked commands, per kind of round (params.background_load)."""
    own = "the commands' own lazy halves (audit row, status view, response_url post)"
    golive = ("none besides " + own) if not on else (
        own + ", plus issue 13's load through the whole round (bench/ack_load.py): a cutover "
        "run whose maintenance on|off step (requested by alice, approved by bob in the "
        "sandbox) keeps verifying the public URL every 100-200 ms and streams its live log "
        "into the card's thread (the worker writes it at most every 0.5 s, the outbox paces "
        "updates), and five watches at interval 1 s (/golive watch start): health against a "
        "local app, webhooks and error budget tailing an access log appended every 0.2 s, "
        "payouts and ledger against a small local PostgreSQL database; started before the "
        "warm-up; the step ends after the counted sends, the watches stop once their stop "
        "command is handled (after the round's backlog of status commands)")
    return {"golive_open_loop": golive,
            "bare_open_loop": "none: bare Bolt has no deploys or watches; the load is stopped "
                              "during its rounds (no step running, watches stopped)",
            "closed_loop": "none besides " + own + " (all servers)"}


def load_summary(open_rounds: list[dict], on: bool) -> dict[str, Any]:
    """Issue 13's load as counted in the counted window of each golive open-loop round."""
    per = [{"rate_per_s": x["rate_per_s"], "round": x["round"],
            **{k: x["background_load"][k] for k in ("progress_updates", "watch_measurements",
                                                    "watch_message_updates",
                                                    "counted_window_s")}}
           for x in open_rounds if "background_load" in x]
    if not on or not per:
        return {"enabled": False}
    return {"enabled": True,
            "progress_updates": sum(r["progress_updates"] for r in per),
            "watch_measurements": sum(r["watch_measurements"] for r in per),
            "watch_message_updates": sum(r["watch_message_updates"] for r in per),
            "counted_seconds": round(sum(r["counted_window_s"] for r in per), 1),
            "per_round": per,
            "bare": "no background load (bare Bolt has no deploys or watches)"}


def median_of(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="counted requests per round")
    ap.add_argument("--warmup", type=int, default=200, help="uncounted requests per round")
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per server (interleaved)")
    ap.add_argument("--no-lazy-baseline", action="store_true",
                    help="skip the diagnostic bare+no-op-lazy baseline")
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw",
                    help="load generator: minimal asyncio HTTP/1.1 client (default) or "
                         "httpx.AsyncClient (measures httpx's own queueing too; see README)")
    ap.add_argument("--open-rates", type=lambda v: [float(x) for x in v.split(",") if x],
                    default=[50.0, 200.0],
                    help="open-loop rates in commands/s, comma-separated ('' to skip)")
    ap.add_argument("--open-seconds", type=float, default=20.0,
                    help="counted seconds per open-loop round")
    ap.add_argument("--open-warmup-seconds", type=float, default=2.0)
    ap.add_argument("--open-rounds", type=int, default=3,
                    help="open-loop rounds per server and rate (bare, golive interleaved)")
    ap.add_argument("--drain-timeout", type=float, default=300.0,
                    help="longest wait for golive's lazy half after a round")
    ap.add_argument("--ab-switchinterval", type=float, default=None, metavar="SECONDS",
                    help="diagnostic: also run a second golive (`golive_si`) whose GIL switch "
                         "interval is SECONDS instead of tune_gc's, in the open-loop rounds")
    ap.add_argument("--no-background-load", dest="background_load", action="store_false",
                    help="open-loop golive rounds without issue 13's deploy streaming progress "
                         "and five watches at 1 s (bench/ack_load.py)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--lazy-noop", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_bare:
        return serve_bare(args.port, args.lazy_noop)
    if args.ab_switchinterval is not None and args.background_load:
        # Two golive processes on one database: either may be the watches' leader or run the
        # step, so the load could not be told apart.
        ap.error("--ab-switchinterval needs --no-background-load")

    started_at = datetime.now(UTC)
    t_start = time.perf_counter()
    source = git_state()  # before anything runs: the tree may move while the benchmark runs
    from tests.support import pg
    from tests.support.harness import BASE_CONFIG

    tmp = Path(tempfile.mkdtemp(prefix="golive-bench-"))
    db_name = sandbox = None
    servers: list[ServerProc] = []
    try:
        db_name, db_url = create_database()
        # As in production (and tests/support/harness.bot_environ): migrations run as the
        # database's owner, the bot connects as the runtime role they grant.
        pg.upgrade(db_url)
        sandbox = Sandbox()
        cfg = tmp / "golive.toml"
        config = BASE_CONFIG
        if args.background_load and args.open_rates:
            config = sandbox.call("load_setup", {
                "tmp": str(tmp), "admin_url": ADMIN_URL, "db_url": db_url, "base": BASE_CONFIG,
                "step_timeout_s": int(args.open_warmup_seconds + args.open_seconds + 120)})
        cfg.write_text(config, encoding="utf-8")
        env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "SLACK_API_URL": sandbox.api_url, "DATABASE_URL": pg.runtime_url(db_url),
               "GOLIVE_DOOR_DATABASE_URL": pg.door_url(db_url),
               "GOLIVE_MIGRATIONS_DATABASE_URL": db_url, "GOLIVE_AUDIT_KEY": pg.TEST_AUDIT_KEY,
               "GOLIVE_CONFIG": str(cfg), "GOLIVE_LOG_LEVEL": "WARNING",
               "PYTHONUNBUFFERED": "1"}
        venv_bin = Path(sys.executable).parent
        golive_bin = venv_bin / "golive"
        golive_argv = ([str(golive_bin)] if golive_bin.exists()
                       else [sys.executable, "-m", "bot.cli"])
        bare = ServerProc("bare", [sys.executable, str(Path(__file__).resolve()), "--serve-bare",
                                   "--port", str(port := free_port())], env, port, tmp)
        servers.append(bare)
        bare_lazy = None
        if not args.no_lazy_baseline:
            bare_lazy = ServerProc("bare_lazy", [sys.executable, str(Path(__file__).resolve()),
                                                 "--serve-bare", "--lazy-noop",
                                                 "--port", str(port := free_port())],
                                   env, port, tmp)
            servers.append(bare_lazy)
        golive = ServerProc("golive", golive_argv + ["serve", "--host", "127.0.0.1",
                                                     "--port", str(port := free_port())],
                            env, port, tmp)
        servers.append(golive)
        golive_si = None
        if args.ab_switchinterval is not None:
            golive_si = ServerProc(
                "golive_si", [sys.executable, "-c", SWITCH_AB_LAUNCHER, "serve", "--host",
                              "127.0.0.1", "--port", str(port := free_port())],
                {**env, "GOLIVE_BENCH_SWITCHINTERVAL": str(args.ab_switchinterval)}, port, tmp)
            servers.append(golive_si)
        golives = (golive, golive_si)
        for srv in servers:
            srv.wait_ready()
        sandbox.call("bot_url", f"{golive.url}/slack/events")  # the load's commands and clicks
        order = [bare] + ([bare_lazy] if bare_lazy else []) + [golive]

        rounds: list[dict[str, Any]] = []
        golive_sent = 0
        load_commands = 0  # the background load's own slash commands (one audit row each)
        for r in range(args.rounds):
            for srv in order:
                round_began = time.perf_counter()
                res = run_round(srv, sandbox, warmup=args.warmup, requests=args.requests,
                                concurrency=args.concurrency, client=args.client)
                res["round"] = r + 1
                res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
                if srv is golive:
                    golive_sent += sum(v for st in (res["warmup_statuses"], res["statuses"])
                                       for k, v in st.items() if k == "200")
                    n, drain = wait_drained(db_url, golive_sent)
                    res["lazy_drain_s_after_last_ack"] = drain
                    res["audit_rows_after_round"] = n
                    # The work process's throughput: every command of the round (warm-up
                    # too) handled and answered, from the first send to the last audit row.
                    res["work_replies_per_s"] = ((args.warmup + args.requests)
                                                 / (time.perf_counter() - round_began))
                else:
                    time.sleep(1.0)
                rounds.append(res)
                print(f"round {r + 1} {srv.name:9s}  p50 {res['p50_ms']:7.2f}  "
                      f"p90 {res['p90_ms']:7.2f}  p99 {res['p99_ms']:7.2f}  "
                      f"max {res['max_ms']:7.2f} ms  {res['throughput_rps']:7.1f} req/s  "
                      f"{res['statuses']}"
                      + (f"  drain {res['lazy_drain_s_after_last_ack']:.2f}s  work "
                         f"{res['work_replies_per_s']:.0f} replies/s"
                         if srv is golive else ""), flush=True)

        # Open loop: fixed rates, bare and golive interleaved, latency from the scheduled time.
        open_rounds: list[dict[str, Any]] = []
        for rate in args.open_rates:
            for r in range(args.open_rounds):
                for srv in [x for x in (bare, golive, golive_si) if x is not None]:
                    with_load = args.background_load and srv is golive
                    res = run_open_round(srv, sandbox, rate=rate, seconds=args.open_seconds,
                                         warmup_seconds=args.open_warmup_seconds,
                                         preopen=args.concurrency, replies=srv in golives,
                                         load_db=db_url if with_load else None)
                    if with_load:
                        load_commands = res["background_load"]["ended"]["commands_sent"]
                    res["round"] = r + 1
                    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
                    if srv in golives:
                        # Only an empty 200 ack is handed to the lazy half (a "database is not
                        # answering" ack, HTTP 200 with a body, is not).
                        golive_sent += sum(v for st in (res["warmup_statuses"], res["statuses"])
                                           for k, v in st.items() if k == "200")
                        n, _ = wait_drained(db_url, golive_sent + load_commands,
                                            timeout=args.drain_timeout)
                        # From the last counted ack (the load's end sits in between).
                        drain = time.monotonic() - res["_acked_at"]
                        res["lazy_drain_s_after_last_ack"] = drain
                        if with_load:
                            res["background_load"]["settled"] = sandbox.call("load_settle")
                        res["audit_rows_after_round"] = n
                        time.sleep(0.5)  # the reply is posted after the audit row commits
                        res["reply"] = reply_latency(sandbox, res)
                    else:
                        time.sleep(1.0)
                    res.pop("_acked_at")
                    open_rounds.append(res)
                    reply = res.get("reply") or {}
                    bl = res.get("background_load")
                    print(f"open {rate:g}/s round {r + 1} {srv.name:7s} p50 {res['p50_ms']:7.2f}"
                          f"  p90 {res['p90_ms']:7.2f}  p99 {res['p99_ms']:7.2f}  max "
                          f"{res['max_ms']:7.2f} ms  send lag p99 "
                          f"{res['client_send_lag_ms']['p99']:.2f} ms  +conns "
                          f"{res['extra_connections']}  {res['statuses']}"
                          + (f"  drain {res['lazy_drain_s_after_last_ack']:.2f}s  reply p50 "
                             f"{reply.get('p50_ms', float('nan')):.0f} p99 "
                             f"{reply.get('p99_ms', float('nan')):.0f} ms"
                             f" missing {reply.get('missing')}" if srv in golives else "")
                          + (f"  load: {bl['progress_updates']} progress updates, "
                             f"{bl['watch_measurements']} watch measurements, "
                             f"{bl['watch_message_updates']} watch message updates in "
                             f"{bl['counted_window_s']:.1f}s" if bl else ""),
                          flush=True)

        time.sleep(1.0)  # let the last response_url posts land
        checks = {"golive_requests_sent": golive_sent,
                  "background_load_commands_sent": load_commands,
                  "audit_command_rows": audit_commands(db_url),
                  "sandbox": sandbox.stats(),
                  "golive_log_problems": golive.log_problems()[:20],
                  "bare_log_problems": bare.log_problems()[:20],
                  "golive_lazy_drain_s_after_last_ack": [x["lazy_drain_s_after_last_ack"]
                                                         for x in rounds
                                                         if x["server"] == "golive"]}
        names = [srv.name for srv in order]
        by = {name: [x for x in rounds if x["server"] == name] for name in names}
        med = {name: {k: median_of(rs, k) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms",
                                                     "throughput_rps")}
               for name, rs in by.items()}
        ratio = {"p50": med["golive"]["p50_ms"] / med["bare"]["p50_ms"],
                 "p99": med["golive"]["p99_ms"] / med["bare"]["p99_ms"]}
        diag = None
        if "bare_lazy" in med:
            diag = {"golive_over_bare_lazy_p50": med["golive"]["p50_ms"] / med["bare_lazy"]["p50_ms"],
                    "golive_over_bare_lazy_p99": med["golive"]["p99_ms"] / med["bare_lazy"]["p99_ms"],
                    "bare_lazy_over_bare_p50": med["bare_lazy"]["p50_ms"] / med["bare"]["p50_ms"],
                    "bare_lazy_over_bare_p99": med["bare_lazy"]["p99_ms"] / med["bare"]["p99_ms"]}
        # Targets (issues 8 and 13): p99 <= 100 ms under the saturating closed loop; at each
        # fixed open-loop rate p99 <= 1.5x bare Bolt's and <= 100 ms. The closed-loop ratio is
        # reported, not a target.
        targets = {"closed_p99_ms_max": TARGET_P99_MS,
                   "closed_p99_ms_met": med["golive"]["p99_ms"] <= TARGET_P99_MS,
                   "closed_p99_ratio_info": ratio["p99"], "open": {}}
        open_summary: dict[str, Any] = {}
        for rate in args.open_rates:
            at = [x for x in open_rounds if x["rate_per_s"] == rate]
            om = {name: {k: median_of([x for x in at if x["server"] == name], k)
                         for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")}
                  for name in ("bare", "golive", "golive_si") if any(
                      x["server"] == name for x in at)}
            replies = [x["reply"] for x in at if x["server"] == "golive" and x["reply"]["n"]]
            om["golive_reply"] = {k: statistics.median(r[k] for r in replies)
                                  for k in ("p50_ms", "p99_ms")} if replies else None
            om["golive_lazy_drain_s"] = [x["lazy_drain_s_after_last_ack"] for x in at
                                         if x["server"] == "golive"]
            r99 = om["golive"]["p99_ms"] / om["bare"]["p99_ms"]
            om["ratio_golive_over_bare"] = {"p50": om["golive"]["p50_ms"] / om["bare"]["p50_ms"],
                                            "p99": r99}
            if "golive_si" in om:  # the A/B: the same ratio with the other switch interval
                om["ratio_golive_si_over_bare"] = {
                    "p50": om["golive_si"]["p50_ms"] / om["bare"]["p50_ms"],
                    "p99": om["golive_si"]["p99_ms"] / om["bare"]["p99_ms"],
                    "switchinterval_s": args.ab_switchinterval}
                from bot.server import SWITCH_INTERVAL_S
                om["golive_switchinterval_s"] = SWITCH_INTERVAL_S  # what tune_gc sets
            open_summary[f"{rate:g}"] = om
            targets["open"][f"{rate:g}"] = {
                "p99_ratio_max": TARGET_RATIO, "p99_ratio": r99,
                "p99_ratio_met": r99 <= TARGET_RATIO,
                "p99_ms_max": TARGET_P99_MS, "p99_ms_met": om["golive"]["p99_ms"] <= TARGET_P99_MS}
        targets["all_met"] = targets["closed_p99_ms_met"] and all(
            t["p99_ratio_met"] and t["p99_ms_met"] for t in targets["open"].values())
        ok_acks = sum(v for x in by["golive"] for k, v in x["statuses"].items() if k == "200")
        result = {
            "benchmark": "ack_latency",
            "timestamp": started_at.isoformat(timespec="seconds"),
            "duration_s": round(time.perf_counter() - t_start, 1),
            **source,
            "params": {"requests_per_round": args.requests, "warmup_per_round": args.warmup,
                       "concurrency": args.concurrency, "rounds_per_server": args.rounds,
                       "order": [f"{x['server']}#{x['round']}" for x in rounds],
                       "command": "/golive status",
                       "background_load": background_load_text(args.background_load
                                                               and bool(args.open_rates)),
                       "client": ("minimal asyncio HTTP/1.1 keep-alive client (RawHTTP)"
                                  if args.client == "raw" else
                                  "httpx.AsyncClient, max_connections=C"),
                       "latency": "client-side, POST sent -> full HTTP response (ack)",
                       "percentiles": "nearest-rank"},
            "machine": machine_facts(),
            "rounds": rounds,
            "median": med,
            "ratio_golive_over_bare": ratio,
            "diagnostic_ratios": diag,
            "targets": targets,
            "open_loop": {"params": {"rates_per_s": args.open_rates,
                                     "seconds_per_round": args.open_seconds,
                                     "warmup_seconds_per_round": args.open_warmup_seconds,
                                     "rounds_per_server_and_rate": args.open_rounds,
                                     "order": "per rate: bare, golive, bare, golive, ...",
                                     "latency": "client-side, scheduled send time -> full "
                                                "HTTP response (no coordinated omission)",
                                     "reply": "golive only: scheduled send time -> its "
                                              "response_url post reaches the sandbox"},
                          "rounds": open_rounds, "median": open_summary},
            "checks": {**checks, "golive_counted_acks_200_empty": ok_acks},
            "background_load": load_summary(open_rounds, args.background_load),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

        print()
        print("| server | p50 ms | p90 ms | p99 ms | max ms | req/s |")
        print("|---|---:|---:|---:|---:|---:|")
        for name in names:
            m = med[name]
            print(f"| {name} (median of {len(by[name])}) | {m['p50_ms']:.2f} | "
                  f"{m['p90_ms']:.2f} | {m['p99_ms']:.2f} | {m['max_ms']:.2f} | "
                  f"{m['throughput_rps']:.0f} |")
        print(f"\nratio golive/bare: p50 {ratio['p50']:.2f}x, p99 {ratio['p99']:.2f}x")
        if diag:
            print(f"diagnostic: golive/bare_lazy p50 {diag['golive_over_bare_lazy_p50']:.2f}x, "
                  f"p99 {diag['golive_over_bare_lazy_p99']:.2f}x; bare_lazy/bare p50 "
                  f"{diag['bare_lazy_over_bare_p50']:.2f}x, p99 {diag['bare_lazy_over_bare_p99']:.2f}x")
        print(f"closed loop: p99 <= {TARGET_P99_MS:.0f} ms: "
              f"{'MET' if targets['closed_p99_ms_met'] else 'MISSED'}")
        for rate, om in open_summary.items():
            t = targets["open"][rate]
            rep = om["golive_reply"] or {}
            print(f"open {rate}/s: bare p50/p99 {om['bare']['p50_ms']:.2f}/"
                  f"{om['bare']['p99_ms']:.2f} ms, golive {om['golive']['p50_ms']:.2f}/"
                  f"{om['golive']['p99_ms']:.2f} ms, ratio p99 {t['p99_ratio']:.2f}x "
                  f"({'MET' if t['p99_ratio_met'] else 'MISSED'}), <= 100 ms "
                  f"{'MET' if t['p99_ms_met'] else 'MISSED'}; golive reply p50/p99 "
                  f"{rep.get('p50_ms', float('nan')):.0f}/{rep.get('p99_ms', float('nan')):.0f}"
                  f" ms; drains {[round(x, 1) for x in om['golive_lazy_drain_s']]}")
            if "golive_si" in om:
                si = om["ratio_golive_si_over_bare"]
                print(f"  A/B golive_si (switchinterval {si['switchinterval_s']} s): p50/p99 "
                      f"{om['golive_si']['p50_ms']:.2f}/{om['golive_si']['p99_ms']:.2f} ms, "
                      f"ratio p99 {si['p99']:.2f}x")
        bl = result["background_load"]
        if bl["enabled"]:
            print(f"background load (golive open-loop rounds, {bl['counted_seconds']} s counted):"
                  f" {bl['progress_updates']} progress updates, {bl['watch_measurements']} "
                  f"watch measurements, {bl['watch_message_updates']} watch message updates")
        print(f"checks: {json.dumps(checks, indent=1)}")
        print(f"wrote {args.out}")
        return 0
    finally:
        for srv in servers:
            srv.stop()
        if sandbox is not None:
            sandbox.stop()
        if db_name is not None:
            drop_database(db_name)
            pg.drop_runtime_role()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
