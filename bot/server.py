"""The ASGI app: POST /slack/events, GET /healthz, GET /metrics."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager

import httpx
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import ingress
from bot.door import Door, unhandled
from bot.runtime import Runtime
from bot.store.db import DatabaseUnavailable

log = logging.getLogger(__name__)
SWITCH_INTERVAL_S = 0.001
"""The GIL switch interval `golive serve` runs with (``tune_gc``). The acks run on the event
loop and one short worker thread each; the lazy halves (status views, audit rows, replies) are
CPU-bound Python in Bolt's executor threads. At Python's default 5 ms, an ack that wants the
GIL back waits up to 5 ms per hand-off behind them, several hand-offs per ack; at 1 ms it waits
at most 1 ms each. bench/ack_latency.py --ab-switchinterval runs both side by side; on the
loaded 2-core machine of 2026-12-02 the difference was inside the noise (bench/README.md)."""


def build_asgi(runtime: Runtime, *, worker: bool = True, work: bool = True,
               work_status: Callable[[], str | None] | None = None) -> Starlette:
    """The door over HTTP: verify (once: nothing after it verifies again), record in the inbox,
    ack (bot/door.py). It dispatches to the ack-only Bolt app;
    the lazy halves run on the work side (bot/handoff.py): in this process with ``work``
    (``worker``: the step worker too), else in the work process ``golive serve`` supervises,
    whose state ``work_status`` reports for /healthz (None: up)."""
    metrics = runtime.metrics

    verifier = SignatureVerifier(runtime.settings.signing_secret)  # the one check
    door = Door(runtime)

    def answer(kind: str, started: float, resp: Response) -> Response:
        metrics.ack_seconds.labels(kind).observe(time.perf_counter() - started)
        metrics.requests.labels(kind, str(resp.status_code)).inc()
        return resp

    async def events(request: Request) -> Response:
        started = time.perf_counter()
        body = await request.body()
        headers = request.headers
        inbound = ingress.inspect(body, headers.get("content-type", ""))
        if not verifier.is_valid(body, headers.get("x-slack-request-timestamp", ""),
                                 headers.get("x-slack-signature", "")):
            return answer(inbound.kind, started, JSONResponse({"error": "invalid request"},
                                                              status_code=401))
        if inbound.problem:
            log.warning("refused a malformed %s request: %s", inbound.kind, inbound.problem)
            return answer(inbound.kind, started, JSONResponse({"error": "malformed request"},
                                                              status_code=400))
        background = None
        if inbound.is_help:  # answered in the ack; recorded after it, for its audit row
            background = BackgroundTask(door.record_after_ack, inbound,
                                        ingress.signature_key(headers), body)
        try:
            bolt_req = to_bolt_request(request, body)
            # One hop off the event loop for both halves of the door (each hop is a thread
            # switch on the ack's path): record it, then let Bolt ack it.
            inbox_id, bolt_resp = await run_in_threadpool(
                door.record_and_ack, inbound, ingress.signature_key(headers), body, bolt_req)
        except DatabaseUnavailable:
            return answer(inbound.kind, started, database_down(inbound))
        except Exception as e:  # noqa: BLE001 - the boundary: never a 5xx or a traceback
            err = uuid.uuid4().hex[:8]
            log.error("request %s failed before its ack: %s (error id %s)", inbound.kind,
                      type(e).__name__, err)
            return answer(inbound.kind, started, JSONResponse(
                {"response_type": "ephemeral",
                 "text": f"Something went wrong on our side (error id `{err}`); nothing was "
                         "done."} if inbound.kind == "command" else {}))
        if bolt_resp is None:
            log.warning("refused a replayed %s request", inbound.kind)
            return answer(inbound.kind, started, JSONResponse(
                {"error": "this request was already received"}, status_code=401))
        if unhandled(bolt_resp):
            # No listener for it, or a listener failed before its ack (Bolt has logged why):
            # Slack expects an ack, and a 404/5xx only shows the user an opaque error.
            log.warning("acked a %s request Bolt answered %s", inbound.kind, bolt_resp.status)
            if inbox_id is not None:  # nothing will handle it: not an orphan to recover
                await run_in_threadpool(door.nothing_to_do, inbox_id)
            return answer(inbound.kind, started, Response(status_code=200))
        resp = to_starlette_response(bolt_resp)
        resp.background = background
        return answer(inbound.kind, started, resp)

    async def healthz(request: Request) -> Response:
        db_ok = await run_in_threadpool(runtime.db.ping)
        problem = work_status() if work_status is not None else None
        ok = db_ok and problem is None
        return JSONResponse({"ok": ok, "database": "up" if db_ok else "down",
                             "work": problem or "up"}, status_code=200 if ok else 503)

    async def prometheus(request: Request) -> Response:
        data, ctype = metrics.render()
        return Response(data, media_type=ctype)

    @asynccontextmanager
    async def lifespan(_app: Starlette):
        runtime.start(worker=worker, work=work)
        try:
            yield
        finally:
            runtime.stop()

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"]),
                             Route("/metrics", prometheus, methods=["GET"])],
                     lifespan=lifespan)


def database_down(inbound: ingress.Inbound) -> Response:
    """The answer when the request cannot even be recorded: say so, change nothing."""
    from bot.app import DB_DOWN

    if inbound.kind == "command":
        return JSONResponse({"response_type": "ephemeral", "text": DB_DOWN})
    if (inbound.payload or {}).get("type") == "view_submission":
        block = ingress.first_input_block(inbound)
        if block:
            return JSONResponse({"response_action": "errors", "errors": {block: DB_DOWN}})
    url = ingress.response_url_of(inbound)
    if url:  # a click: tell the clicker through its response_url, off the ack path
        threading.Thread(target=_say, args=(url, DB_DOWN), daemon=True).start()
    return Response(status_code=200)


def _say(url: str, text: str) -> None:
    try:
        httpx.post(url, json={"response_type": "ephemeral", "replace_original": False,
                              "text": text}, timeout=5)
    except httpx.HTTPError as e:
        log.warning("could not tell the clicker the database is down: %s", type(e).__name__)


def tune_gc() -> None:
    """Keep the collector's pauses out of ack latency.

    Everything built at start-up (modules, the app, the pool) moves to the permanent
    generation, so full collections only walk request-lifetime objects; a larger gen-0
    threshold makes collections rarer under a burst of commands (measured in bench/).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    # Acks wait on the GIL behind background work; hand it over more often than every 5 ms.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
