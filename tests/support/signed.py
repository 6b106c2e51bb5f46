"""Signed Slack requests for tests that build or hold them by hand (fuzz, forgery, replay)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.dev.sandbox import SandboxServer
from bot.dev.sandbox.server import SLACK_USER_AGENT, Delivery

FORM = "application/x-www-form-urlencoded"


def signed_headers(sandbox: SandboxServer, body: bytes,
                   timestamp: float | str | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``, signed now (or at ``timestamp``)."""
    return {"Content-Type": FORM, "User-Agent": SLACK_USER_AGENT,
            **sandbox.sign(body, timestamp)}


def held(sandbox: SandboxServer, act: Callable[[], Any]) -> list[tuple[bytes, dict[str, str]]]:
    """What ``act`` would have delivered to the bot (body and signed headers), each request
    recorded instead of delivered."""
    out: list[tuple[bytes, dict[str, str]]] = []

    def hold(body, headers, path=None, *, kind="raw", user=""):
        out.append((body, dict(headers)))
        return Delivery(kind=kind, status=0, body="", elapsed=0.0, error="held by the test")

    sandbox.deliver = hold
    try:
        act()
    finally:
        del sandbox.deliver
    return out
