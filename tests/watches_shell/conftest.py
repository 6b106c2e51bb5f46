"""Fixtures for the watches' shell: a health target we turn red and back (or let flap), the
bot configured to watch it (and a log file of access lines for the 5xx source)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.dev.sandbox.workspace import Message
from tests.support.harness import BASE_CONFIG, Bot, text_of
from tests.support.toy_target import ToyTarget

OFF = """
[watches.{name}]
enabled = false
"""


class HealthTarget:
    """``/api/health``: green (200 ok), red (503), or flapping every ``flap_s`` seconds."""

    def __init__(self) -> None:
        self.red = False
        self.flap_s: float | None = None
        self.hits = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                red = outer.is_red()
                body = json.dumps({"status": "degraded" if red else "ok", "db": "ok"}).encode()
                self.send_response(503 if red else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def is_red(self) -> bool:
        if self.flap_s:
            return int(time.monotonic() / self.flap_s) % 2 == 1
        return self.red

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def health() -> Iterator[HealthTarget]:
    h = HealthTarget()
    yield h
    h.stop()


def watch_config(toy: ToyTarget, health: HealthTarget, *, interval: float = 0.5,
                 access_log: Path | None = None) -> str:
    """The bot against the toy target (traffic switch), watching ``health``; with
    ``access_log`` also the error budget, counted from that file."""
    target = toy.config().replace(f'internal_url = "{toy.url}"',
                                  f'internal_url = "{health.url}"')
    parts = [BASE_CONFIG, target, f"""
[watches]
history = 10

[watches.health]
interval_s = {interval}
base = "internal"
""", OFF.format(name="webhooks"), OFF.format(name="payouts"), OFF.format(name="ledger")]
    if access_log is None:
        parts.append(OFF.format(name="error_budget"))
    else:
        parts.append(f"""
[watches.error_budget]
interval_s = 0.5
source = "logs"
logs = {{ kind = "file", path = "{access_log}" }}
""")
    return "".join(parts)


@pytest.fixture
def access_log(tmp_path: Path) -> Path:
    p = tmp_path / "access.log"
    p.write_text("")
    return p


@pytest.fixture
def watchbot(clean_db, tmp_path, toy, health, access_log) -> Iterator[Bot]:
    b = Bot(clean_db, tmp_path, config=watch_config(toy, health, access_log=access_log))
    yield b
    b.stop()


def is_watch_card(m: Message, title: str) -> bool:
    """The watch's live card ("🟢 *Health*: *ok* since ..."), wherever it is: since issue 21
    item 4 it is a reply in the run card's thread (its state changes are replies there too)."""
    return m.ephemeral_to is None and re.search(
        rf"^\S+ \*{re.escape(title)}\*( \(dry run\))?: ", text_of(m), re.MULTILINE) is not None


def watch_replies(bot: Bot, msg: Message) -> list[Message]:
    """The watch's state-change lines: the replies after its card in the thread it is in
    (the run card's), other cards left out."""
    root = msg.thread_ts or msg.ts
    return [m for m in bot.workspace.thread("C_CUTOVER", root)
            if m.is_reply and m.seq > msg.seq and m.ephemeral_to is None
            and not re.search(r"^\S+ \*[^*]+\*( \(dry run\))?: ", text_of(m), re.MULTILINE)
            and "step `" not in text_of(m)
            and "Autopilot stopped" not in text_of(m)]


def watch_message(bot: Bot, title: str, *words: str, timeout: float = 15.0) -> Message:
    """The watch's message in the cutover channel once it shows one of ``words``."""
    def find() -> Message | None:
        for m in bot.workspace.messages("C_CUTOVER"):
            t = text_of(m)
            if is_watch_card(m, title) and any(w in t for w in words):
                return m
        return None
    find.__qualname__ = f"the {title} watch message showing one of {words}"
    return bot.workspace.wait_for(find, timeout)
