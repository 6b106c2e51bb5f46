"""Shared fixtures: a real PostgreSQL database for the session, reset between tests."""

from __future__ import annotations

import pytest

from tests.support import pg


@pytest.fixture(scope="session")
def bot_db_url():
    """A fresh database with the bot's schema at head."""
    from bot.store import db

    name, url = pg.create_database()
    db.upgrade(url)
    yield url
    pg.drop_database(name)


@pytest.fixture
def clean_db(bot_db_url):
    pg.reset_state(bot_db_url)
    return bot_db_url


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
