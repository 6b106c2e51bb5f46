"""Shared fixtures: a real PostgreSQL database for the session, reset between tests.

The suite runs under pytest-xdist (``-n auto --dist loadgroup`` in pyproject.toml). Every
session fixture is per worker process and names what it creates uniquely (databases, roles,
compose projects, ports). Tests that share one expensive fixture wider than a test (a Docker
stack, a module's app) are put in one ``xdist_group`` below, so one worker builds it once.
"""

from __future__ import annotations

import os

import pytest

from tests.support import pg

# Workers for the whole suite when `-n auto` (the default in pyproject.toml);
# PYTEST_XDIST_AUTO_NUM_WORKERS overrides, `-n 0` or `-p no:xdist` runs in this process.
# Most tests wait on I/O (Docker, PostgreSQL, subprocesses, real-time windows), so more
# workers than the machine's 2 cores pay off.
DEFAULT_WORKERS = 4

# Session fixtures that stand up a whole stack: every test using one runs on the same worker.
SHARED_STACKS = {"paybox": "paybox-it", "paybox_stack": "paybox-stack"}


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """With `-p no:xdist` the addopts' `-n`/`--dist` are accepted and ignored."""
    if not pluginmanager.has_plugin("xdist"):
        group = parser.getgroup("xdist", "pytest-xdist is disabled (-p no:xdist)")
        # _addoption: a plugin may not claim a lowercase short option; xdist's own is -n
        group._addoption("-n", "--numprocesses", dest="numprocesses", default=None,
                         help="ignored: pytest-xdist is disabled")
        group.addoption("--dist", dest="dist", default="no",
                        help="ignored: pytest-xdist is disabled")


@pytest.hookimpl(optionalhook=True)  # a hook only pytest-xdist defines
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """The whole suite (no paths given) on DEFAULT_WORKERS; a run of chosen files or tests in
    this process, as before (starting workers costs more than such a run gains, and the
    machine is shared). `-n 4` or PYTEST_XDIST_AUTO_NUM_WORKERS parallelise any run."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return 0
    return DEFAULT_WORKERS


def _group_of(item: pytest.Item) -> str | None:
    """The xdist group a test must share with others, or None to schedule it on its own."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for name, group in SHARED_STACKS.items():
        if name in info.name2fixturedefs:
            return group
    # A module's (or class's) fixture is built once per worker that runs one of its tests.
    # Package fixtures (tests/reliability's secret scan) are cheap and check per worker what
    # that worker's tests left behind: no group.
    for defs in info.name2fixturedefs.values():
        if defs and defs[-1].scope in ("module", "class"):
            return "mod:" + item.nodeid.split("::", 1)[0]
    return None


# Directories whose tests take longest, scheduled first so no long test starts last
# (xdist hands out the biggest groups first, then single tests in collection order).
SLOW_FIRST = ("container", "reliability", "integration", "canary", "scenario")


@pytest.hookimpl(tryfirst=True)  # before xdist appends the group to the node id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None and (group := _group_of(item)):
            item.add_marker(pytest.mark.xdist_group(group))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # only the order of the distributed run

        def rank(item: pytest.Item) -> int:
            parts = item.path.relative_to(config.rootpath).parts
            top = parts[1] if len(parts) > 2 else ""
            return SLOW_FIRST.index(top) if top in SLOW_FIRST else len(SLOW_FIRST)

        items.sort(key=rank)  # stable: each module's tests keep their order


@pytest.fixture(scope="session")
def bot_db_url():
    """A fresh database with the bot's schema at head; the owner's URL (migrations, helpers).
    The bot itself connects as the runtime role (``runtime_db``) and its door as the door role
    (``door_db``); the harness derives both."""
    name, url = pg.create_database()
    pg.upgrade(url)
    yield url
    pg.drop_database(name)
    pg.drop_runtime_role()


@pytest.fixture(scope="session")
def paybox_stack():
    """The sample stack of tests/paybox and tests/watches (one per session or xdist worker)."""
    from tests.paybox.conftest import running_stack

    yield from running_stack()


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
def door_db(clean_db):
    """The emptied database as the bot's door role sees it (the only role that writes the
    inbox)."""
    return pg.door_url(clean_db)


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
