"""Fixtures for the delivery tests: the bot in-thread or as `golive serve` processes that a test
may SIGKILL, against one sandbox whose Web API faults the test controls."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from bot.settings import load_settings
from tests.support.harness import (
    APP_TOKEN,
    BASE_CONFIG,
    BOT_TOKEN,
    SIGNING_SECRET,
    Bot,
    bot_environ,
)
from tests.support.procs import BotProcess
from tests.support.socket_proc import SocketProcess

# Steps slow enough to get a live log in their card's thread: more messages at stake.
SWITCH_S = 1.5


@pytest.fixture
def sandbox():
    s = SandboxServer(Workspace.default_demo(), signing_secret=SIGNING_SECRET,
                      bot_token=BOT_TOKEN).start()
    yield s
    s.api.faults.clear()  # releases held calls too: none outlives the test
    s.stop()


@pytest.fixture
def toybot(clean_db, tmp_path, toy, sandbox):
    """The bot in this process, against the toy target and the test's sandbox."""
    b = Bot(clean_db, tmp_path, config=BASE_CONFIG + toy.config(switch_s=SWITCH_S),
            sandbox=sandbox)
    yield b
    b.stop()


def spawner(transport: str, sandbox: SandboxServer, clean_db: str, tmp_path: Path, toy):
    """Start bot processes over ``transport``: `golive serve` behind HTTP (``http``) or
    `golive socket` on a Socket Mode link (``socket``); each is the bot the sandbox delivers
    to next. Yields the start function, stops them all after."""
    extra = {"GOLIVE_LOG_LEVEL": "WARNING"}
    if transport == "socket":
        links = sandbox.enable_socket_mode(APP_TOKEN)
        extra["SLACK_APP_TOKEN"] = APP_TOKEN
    env = bot_environ(sandbox, clean_db, tmp_path, BASE_CONFIG + toy.config(switch_s=SWITCH_S),
                      extra)
    procs: list[BotProcess | SocketProcess] = []

    def start(name: str) -> BotProcess | SocketProcess:
        log = tmp_path / f"{name}.log"
        if transport == "socket":
            p: BotProcess | SocketProcess = SocketProcess(env, log, links).wait_ready()
        else:
            p = BotProcess(env, log).wait_ready()
            sandbox.bot_url = p.url + "/slack/events"
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


@pytest.fixture
def spawn(clean_db, tmp_path, toy, sandbox):
    """Start `golive serve` processes (each one is the bot the sandbox delivers to next)."""
    yield from spawner("http", sandbox, clean_db, tmp_path, toy)


@pytest.fixture(params=["http", "socket"])
def transport(request) -> str:
    """How Slack reaches the bot: the guarantees hold for both."""
    return request.param


@pytest.fixture
def spawn_over(transport, clean_db, tmp_path, toy, sandbox):
    """``spawn`` over each transport (``golive serve`` on HTTP, ``golive socket``)."""
    yield from spawner(transport, sandbox, clean_db, tmp_path, toy)


# ------------------------------------------------------------------ suite-wide secret scan
class SecretWatch(logging.Handler):
    """Everything the reliability tests leave behind that a secret could leak into: each
    sandbox (every request it received), each bot's secrets, each `golive serve` log, and
    every log record of this process."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.sandboxes: list[SandboxServer] = []
        self.secrets: dict[str, str] = {}
        self.process_logs: list[Path] = []
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # with any traceback, as a log file would hold

    def learn(self, environ: dict[str, str]) -> None:
        for name, value in load_settings(environ=environ).secrets().items():
            self.secrets.setdefault(value, name)

    def hits(self) -> tuple[list[str], dict[str, int]]:
        """Where each secret was found, and how many texts of each kind were scanned."""
        texts: list[tuple[str, str]] = []
        for s in self.sandboxes:
            ws = s.workspace
            texts += [(f"sandbox request {c.method}", c.raw) for c in ws.api_calls]
            texts += [(f"bot's answer to a {d.kind}", d.body or "") for d in ws.deliveries]
        texts += [("log", line) for line in self.lines]
        texts += [(f"log {p.name}", p.read_text(errors="replace"))
                  for p in self.process_logs if p.exists()]
        found = [f"{name} in a {where}: ...{text[max(0, text.find(v) - 60):][:160]!r}"
                 for v, name in self.secrets.items() for where, text in texts if v in text]
        counts = {"sandboxes": len(self.sandboxes), "secrets": len(self.secrets),
                  "requests": sum(len(s.workspace.api_calls) for s in self.sandboxes),
                  "log records": len(self.lines), "process logs": len(self.process_logs)}
        return found, counts


@pytest.fixture(scope="package", autouse=True)
def secret_scan(request):
    """After the last reliability test: no secret of any bot's settings or target environment
    in any request a sandbox received, in any answer the bot gave, or in any log."""
    watch = SecretWatch()
    start, bot_init = SandboxServer.start, Bot.__init__
    proc_inits = {BotProcess: BotProcess.__init__, SocketProcess: SocketProcess.__init__}

    def sandbox_start(self, *a, **kw):
        if self not in watch.sandboxes:
            watch.sandboxes.append(self)
        return start(self, *a, **kw)

    def bot_created(self, *a, **kw):
        bot_init(self, *a, **kw)
        watch.learn(self.environ)

    def process_created(self, environ, log, *a, **kw):
        watch.learn(environ)
        watch.process_logs.append(log)
        proc_inits[type(self)](self, environ, log, *a, **kw)

    root = logging.getLogger()
    level = root.level
    root.addHandler(watch)
    root.setLevel(min(level or logging.WARNING, logging.INFO))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SandboxServer, "start", sandbox_start)
        mp.setattr(Bot, "__init__", bot_created)
        for cls in proc_inits:
            mp.setattr(cls, "__init__", process_created)
        yield watch
    root.removeHandler(watch)
    root.setLevel(level)
    found, counts = watch.hits()
    figures = ", ".join(f"{n} {k}" for k, n in counts.items())
    request.config.pluginmanager.get_plugin("terminalreporter").write_line(
        f"reliability secret scan: {figures}; {len(found)} hits")
    assert counts["secrets"] and counts["requests"], f"the scan had nothing to scan: {figures}"
    assert not found, "secrets leaked:\n" + "\n".join(found[:20])
