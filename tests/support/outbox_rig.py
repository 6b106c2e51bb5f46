"""A rig for outbox tests: the real sandbox over HTTP, the bot's masking client, a real
PostgreSQL, and one ManualClock shared by the sandbox and the senders (so "2 s later" is a
clock step, never a sleep)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.dev.sandbox import ManualClock, SandboxServer, Workspace
from bot.dev.sandbox.workspace import Message, message_text
from bot.outbox import Outbox, Sender, store
from bot.slack.client import MaskingWebClient
from bot.store.db import Database

BOT_TOKEN = "xoxb-outbox-rig-token"
CHANNEL = "C_CUTOVER"
EPOCH = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Rig:
    """See the module docstring. ``state[key]`` is what message ``key`` should say now."""

    def __init__(self, db_url: str, *, manual_clock: bool = True):
        self.clock = ManualClock() if manual_clock else time.monotonic
        self._real = not manual_clock
        self.ws = Workspace.default_demo(clock=self.clock)
        self.server = SandboxServer(self.ws, signing_secret="outbox-rig-signing-secret",
                                    bot_token=BOT_TOKEN, clock=self.clock).start()
        self.db = Database(db_url, min_size=1, max_size=8)
        self.db.open(wait=True)
        self.outbox = Outbox(now=self.now)
        self.state: dict[str, str] = {}
        self.renders: list[str] = []
        self.senders: list[Sender] = []

    def now(self) -> datetime:
        if self._real:
            return datetime.now(UTC)
        return EPOCH + timedelta(seconds=self.clock())

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def client(self) -> MaskingWebClient:
        return MaskingWebClient(token=BOT_TOKEN, base_url=self.server.api_url, secrets={})

    def render(self, conn: Any, ref: str, data: Any) -> dict[str, Any] | None:
        """A card renderer reading the current state when the sender sends."""
        text = self.state.get(ref)
        if text is None:
            return None
        self.renders.append(ref)
        return {"text": text, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}]}

    def sender(self, client: Any = None, **kw: Any) -> Sender:
        s = Sender(self.db, client or self.client(), now=self.now, **kw)
        s.register("card", lambda conn, ref, data: self.render(conn, f"card:{ref}", data))
        s.register("progress", lambda conn, ref, data: self.render(conn, f"progress:{ref}", data))
        self.senders.append(s)
        return s

    def touch(self, key: str, text: str, **kw: Any) -> None:
        """Change what ``key`` should say and touch its outbox row, in one transaction."""
        self.state[key] = text
        with self.db.transaction() as conn:
            self.outbox.touch(conn, key=key, channel=CHANNEL, **kw)

    def row(self, key: str) -> dict[str, Any] | None:
        with self.db.transaction() as conn:
            return store.get(conn, key)

    def messages(self) -> list[Message]:
        """What a channel member sees: every message and thread reply, in posting order."""
        return self.ws.messages(CHANNEL, include_ephemeral=False)

    def showing(self, text: str) -> list[Message]:
        return [m for m in self.messages() if message_text(m).startswith(text)]

    def calls(self, method: str) -> list[Any]:
        return self.ws.calls(method)

    def close(self) -> None:
        for s in self.senders:
            s.stop(timeout=2)
        self.db.close()
        self.server.stop()


def pump_until(rig: Rig, sender: Any, done: Any, *, step: float = 0.1,
               limit: float = 10.0) -> float:
    """Advance the clock and pump until ``done()``; returns the sender time it took."""
    start = rig.clock()
    while not done():
        assert rig.clock() - start < limit, f"still not done after {limit:g}s of sender time"
        rig.advance(step)
        sender.pump()
    return rig.clock() - start
