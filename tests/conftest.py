"""Shared fixtures: a real PostgreSQL database for the session, reset between tests."""

from __future__ import annotations

import pytest

from tests.support import pg


@pytest.fixture(scope="session")
def bot_db_url():
    """A fresh database with the bot's schema at head; the owner's URL (migrations, helpers).
    The bot itself connects as the runtime role (``runtime_db``; the harness derives it)."""
    from bot.store import db

    name, url = pg.create_database()
    db.upgrade(url, runtime_role=pg.ensure_runtime_role())
    yield url
    pg.drop_database(name)
    pg.drop_runtime_role()


@pytest.fixture
def clean_db(bot_db_url):
    """The emptied database, owner URL: tests poke rows directly through it."""
    pg.reset_state(bot_db_url)
    return bot_db_url


@pytest.fixture
def runtime_db(clean_db):
    """The emptied database as the bot's runtime role sees it (no UPDATE/DELETE on audit)."""
    return pg.runtime_url(clean_db)


@pytest.fixture
def bot(clean_db, tmp_path):
    from tests.support.harness import Bot

    b = Bot(clean_db, tmp_path)
    yield b
    b.stop()


@pytest.fixture
def toy(tmp_path):
    from tests.support.toy_target import ToyTarget

    t = ToyTarget(tmp_path).start()
    yield t
    t.stop()


@pytest.fixture
def toybot(clean_db, tmp_path, toy):
    """The bot configured against the toy target (maintenance via a real command)."""
    from tests.support.harness import BASE_CONFIG, Bot

    b = Bot(clean_db, tmp_path, config=BASE_CONFIG + toy.config())
    yield b
    b.stop()


@pytest.fixture
def proxied_bot(clean_db, tmp_path):
    """The bot reaching its database through a TCP proxy a test can cut or silence."""
    from urllib.parse import urlsplit, urlunsplit

    from tests.support.harness import Bot
    from tests.support.tcpproxy import TcpProxy

    parts = urlsplit(clean_db)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    via = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    bot = Bot(via, tmp_path)
    yield bot, proxy
    proxy.restore()
    bot.stop()
    proxy.close()
