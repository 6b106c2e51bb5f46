"""Every database call has a deadline: a silent partition (a middlebox that accepts and ACKs
but forwards nothing, which defeats TCP keepalives and statement_timeout) gets a clear reply
within 5 s instead of hanging the bot's listener threads."""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.harness import Bot
from tests.support.tcpproxy import TcpProxy


@pytest.fixture
def proxied_bot(clean_db, tmp_path):
    parts = urlsplit(clean_db)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    via = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    bot = Bot(via, tmp_path)
    yield bot, proxy
    proxy.restore()
    bot.stop()
    proxy.close()


def test_a_command_during_a_silent_partition_is_answered_within_5_seconds(proxied_bot):
    bot, proxy = proxied_bot
    assert "No cutover run" in bot.command("alice", "status")

    proxy.silence()
    for attempt in range(3):  # pooled connections and fresh ones alike
        started = time.monotonic()
        reply = bot.command("alice", "status", timeout=30)
        took = time.monotonic() - started
        assert "database is not answering" in reply, reply
        assert took < 5.0, f"attempt {attempt + 1}: the reply took {took:.1f}s in a partition"
    health = bot.get("/healthz")
    assert health.status_code == 503, "healthz must go red, not hang"

    proxy.restore()
    assert bot.workspace.wait_for(lambda: bot.get("/healthz").status_code == 200, 15)
    assert "No cutover run" in bot.command("alice", "status")
