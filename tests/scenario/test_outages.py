"""A database outage: /healthz goes red, commands get a clear message, and the bot recovers."""

from __future__ import annotations

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


def test_healthz_red_while_db_down_and_bot_recovers(proxied_bot):
    bot, proxy = proxied_bot
    assert bot.get("/healthz").status_code == 200
    assert "No cutover run" in bot.command("alice", "status")

    proxy.cut()
    health = bot.get("/healthz")
    assert health.status_code == 503 and health.json()["database"] == "down"
    reply = bot.command("alice", "status")
    assert "database is not answering" in reply and "nothing was changed" in reply
    assert "Traceback" not in reply and "psycopg" not in reply
    assert not bot.workspace.delivery_failures, "the ack must stay 200 during an outage"

    proxy.restore()
    assert bot.workspace.wait_for(lambda: bot.get("/healthz").status_code == 200, 15)
    assert "No cutover run" in bot.command("alice", "status")
