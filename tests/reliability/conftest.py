"""Fixtures for the delivery tests: the bot in-thread or as `golive serve` processes that a test
may SIGKILL, against one sandbox whose Web API faults the test controls."""

from __future__ import annotations

import pytest

from bot.sandbox import SandboxServer, Workspace
from tests.support.harness import BASE_CONFIG, BOT_TOKEN, SIGNING_SECRET, Bot, bot_environ
from tests.support.procs import BotProcess

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


@pytest.fixture
def spawn(clean_db, tmp_path, toy, sandbox):
    """Start `golive serve` processes (each one is the bot the sandbox delivers to next)."""
    env = bot_environ(sandbox, clean_db, tmp_path, BASE_CONFIG + toy.config(switch_s=SWITCH_S),
                      {"GOLIVE_LOG_LEVEL": "WARNING"})
    procs: list[BotProcess] = []

    def start(name: str) -> BotProcess:
        p = BotProcess(env, tmp_path / f"{name}.log").wait_ready()
        procs.append(p)
        sandbox.bot_url = p.url + "/slack/events"
        return p

    yield start
    for p in procs:
        p.stop()
