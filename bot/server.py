"""The ASGI app: POST /slack/events, GET /healthz, GET /metrics."""

from __future__ import annotations

import gc
import sys
import time
from contextlib import asynccontextmanager

from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.runtime import Runtime


def _kind(body: bytes) -> str:
    if body.startswith(b"payload="):
        return "interaction"
    if b"command=" in body:
        return "command"
    return "other"


def build_asgi(runtime: Runtime, *, worker: bool = True) -> Starlette:
    app, metrics = runtime.app, runtime.metrics

    async def events(request: Request) -> Response:
        started = time.perf_counter()
        body = await request.body()
        # Bolt's dispatch is synchronous: run it off the event loop so acks don't queue.
        bolt_resp = await run_in_threadpool(app.dispatch, to_bolt_request(request, body))
        kind = _kind(body)
        metrics.ack_seconds.labels(kind).observe(time.perf_counter() - started)
        metrics.requests.labels(kind, str(bolt_resp.status)).inc()
        return to_starlette_response(bolt_resp)

    async def healthz(request: Request) -> Response:
        ok = await run_in_threadpool(runtime.db.ping)
        return JSONResponse({"ok": ok, "database": "up" if ok else "down"},
                            status_code=200 if ok else 503)

    async def prometheus(request: Request) -> Response:
        data, ctype = metrics.render()
        return Response(data, media_type=ctype)

    @asynccontextmanager
    async def lifespan(_app: Starlette):
        runtime.start(worker=worker)
        try:
            yield
        finally:
            runtime.stop()

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"]),
                             Route("/metrics", prometheus, methods=["GET"])],
                     lifespan=lifespan)


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
    sys.setswitchinterval(0.001)
