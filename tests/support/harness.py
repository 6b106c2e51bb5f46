"""The real bot, served over HTTP by uvicorn (or as `golive socket`), talking to the sandbox.

Nothing here reaches into the bot: commands and clicks arrive as signed HTTP requests (or as
envelopes on the bot's Socket Mode link) and everything the bot says is read back from the
sandbox, as a user would see it.
"""

from __future__ import annotations

import html
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bot.dev.sandbox import SandboxServer, Workspace
from bot.dev.sandbox.workspace import Message, message_text
from bot.runtime import Runtime, Tuning, build_runtime
from bot.server import build_asgi
from bot.settings import load_settings
from tests.support import pg
from tests.support.clock import ShiftClock

SIGNING_SECRET = "sandbox-signing-secret-3f9a1c"
BOT_TOKEN = "xoxb-sandbox-0000-golive-token"
APP_TOKEN = "xapp-1-A0GOLIVE-0000-sandbox-app-token"

BASE_CONFIG = """
environment = "rehearsal"

[channels]
cutover = "C_CUTOVER"
incident = ["C_INCIDENT"]

[approvers]
users = []
groups = { approvers = "S_APPROVERS" }
expiry_minutes = 15
group_cache_seconds = 0

[operators]
# alice runs the cutover; bob and carol (the approvers) may too.
users = ["U_ALICE"]
groups = ["S_APPROVERS"]
"""


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class UvicornThread:
    """Serve an ASGI app on an already-bound socket in a background thread."""

    def __init__(self, asgi: Any, sock: socket.socket, *, log_level: str = "warning",
                 access_log: bool = False, lifespan: str = "on"):
        self.sock = sock
        self.server = uvicorn.Server(uvicorn.Config(asgi, log_level=log_level, lifespan=lifespan,
                                                    access_log=access_log))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()
        return f"http://{host}:{port}"

    def start(self) -> UvicornThread:
        self.thread.start()
        ready = threading.Event()

        def poll() -> None:
            while not self.server.started and self.thread.is_alive():
                ready.wait(0.01)
        poll()
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def bot_environ(sandbox: SandboxServer, db_url: str, tmp_path: Path, config: str,
                env: dict[str, str] | None) -> dict[str, str]:
    """The bot's environment: the sandbox's Slack, the config written to ``tmp_path``."""
    cfg_path = tmp_path / "golive.toml"
    cfg_path.write_text(config, encoding="utf-8")
    # The bot connects as the runtime role and its door as the door role, as in production;
    # db_url is the owner's.
    return {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": sandbox.api_url, "DATABASE_URL": pg.runtime_url(db_url),
            "GOLIVE_DOOR_DATABASE_URL": pg.door_url(db_url),
            "GOLIVE_MIGRATIONS_DATABASE_URL": db_url, "GOLIVE_AUDIT_KEY": pg.TEST_AUDIT_KEY,
            "GOLIVE_CONFIG": str(cfg_path), **(env or {})}


class Bot:
    """One bot process in-thread + the sandbox it talks to."""

    def __init__(self, db_url: str, tmp_path: Path, *, config: str = BASE_CONFIG,
                 env: dict[str, str] | None = None, workspace: Workspace | None = None,
                 sandbox: SandboxServer | None = None, worker: bool = True,
                 tuning: Tuning | None = None):
        self.workspace = workspace or (sandbox.workspace if sandbox else Workspace.default_demo())
        self.sandbox = sandbox or SandboxServer(self.workspace, signing_secret=SIGNING_SECRET,
                                                bot_token=BOT_TOKEN).start()
        self._own_sandbox = sandbox is None
        self.environ = bot_environ(self.sandbox, db_url, tmp_path, config, env)
        self.settings = load_settings(environ=self.environ)
        # The clock the bot reads (tests move it forward: ``bot.clock.advance(minutes=16)``).
        self.clock = ShiftClock()
        tuning = tuning or Tuning()
        self.runtime: Runtime = build_runtime(
            self.settings, replace(tuning, now=tuning.now or self.clock.now))
        self.http = UvicornThread(build_asgi(self.runtime, worker=worker), free_socket()).start()
        self.sandbox.bot_url = f"{self.http.url}/slack/events"

    @property
    def engine(self):
        return self.runtime.engine

    def slash(self, user: str, text: str, *, channel: str = "C_CUTOVER"):
        return self.sandbox.slash(user, text, channel=channel)

    def replies_to(self, user: str, *, after: int = 0, channel: str = "C_CUTOVER",
                   contains: str = "", timeout: float = 10.0) -> Message:
        """Wait for an ephemeral reply only ``user`` sees."""
        uid = self.workspace.user(user).id
        return self.workspace.wait_for_message(
            channel, contains=contains or None, after_seq=after, timeout=timeout,
            predicate=lambda m: m.ephemeral_to == uid)

    def command(self, user: str, text: str, *, channel: str = "C_CUTOVER",
                timeout: float = 10.0) -> str:
        """Send `/golive text` and wait for the bot's answer to it, as the user sees it."""
        uid = self.workspace.user(user).id
        after = self.seq()
        d = self.slash(user, text, channel=channel)
        assert d.status == 200, f"/golive {text} answered HTTP {d.status}"
        msg = self.workspace.wait_for_message(
            channel, after_seq=after, timeout=timeout,
            predicate=lambda m: (m.via_response_url or m.source == "ack")
            and m.ephemeral_to in (None, uid))
        return text_of(msg)

    def request(self, user: str, text: str, *, contains: str = "Approve",
                reply: str = "", channel: str = "C_CUTOVER") -> Message:
        """Send a request (its answer must contain ``reply``); return the card it posted."""
        after = self.seq()
        answer = self.command(user, text, channel=channel)
        assert reply in answer, answer
        return self.workspace.wait_for_message(channel, contains=contains, after_seq=after,
                                               predicate=lambda m: m.ephemeral_to is None)

    def card_showing(self, card: Message, *words: str, timeout: float = 20.0,
                     channel: str = "C_CUTOVER") -> Message:
        """Wait until the card (updated in place) shows one of ``words``."""
        def find():
            m = self.workspace.message(channel, card.ts)
            return m if m and any(w in text_of(m) for w in words) else None
        find.__qualname__ = f"card {card.ts} showing one of {words}"
        return self.workspace.wait_for(find, timeout)

    def seq(self) -> int:
        return self.workspace.seq

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.http.url + path, timeout=10)

    def stop(self) -> None:
        self.http.stop()
        if self._own_sandbox:
            self.sandbox.stop()


class SocketBot(Bot):
    """`golive socket` in its own process: Socket Mode against the sandbox, no HTTP endpoint.

    Commands and clicks reach it as envelopes on its WebSocket link; everything it says is
    read back from the sandbox, as with :class:`Bot`. ``engine`` and ``get`` are not available
    (the bot lives in another process)."""

    def __init__(self, db_url: str, tmp_path: Path, *, config: str = BASE_CONFIG,
                 env: dict[str, str] | None = None, workspace: Workspace | None = None):
        self.workspace = workspace or Workspace.default_demo()
        self.sandbox = SandboxServer(self.workspace, signing_secret=SIGNING_SECRET,
                                     bot_token=BOT_TOKEN).start()
        self._own_sandbox = True
        self.links = self.sandbox.enable_socket_mode(APP_TOKEN)
        self.environ = bot_environ(self.sandbox, db_url, tmp_path, config,
                                   {"SLACK_APP_TOKEN": APP_TOKEN, **(env or {})})
        self.log = tmp_path / "golive-socket.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "socket"],
                                     env={**os.environ, **self.environ},
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self.link = self.links.wait_for_link(timeout=30, alive=lambda: self.proc.poll()
                                                 is None)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"golive socket did not connect: {self.output()}") from None

    def output(self) -> str:
        """The tail of the process's log."""
        return self.log.read_text(errors="replace")[-3000:]

    def reconnected(self, after: int, timeout: float = 15.0) -> Any:
        """Wait for the app's next link (more than ``after`` links opened so far)."""
        return self.links.wait_for_link(after=after, timeout=timeout,
                                        alive=lambda: self.proc.poll() is None)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, as a platform stops a process; its exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise

    def stop(self) -> None:
        try:
            self.terminate()
        except subprocess.TimeoutExpired:
            pass
        self.sandbox.stop()


def text_of(msg: Message) -> str:
    """What the user reads: Slack shows &lt; &gt; &amp; as < > &."""
    return html.unescape(message_text(msg))


def is_run_card(m: Message) -> bool:
    """The living run card (updated in place; it names every step by its title)."""
    key = ((m.metadata or {}).get("event_payload") or {}).get("key") or ""
    return str(key).startswith("summary:run:")
