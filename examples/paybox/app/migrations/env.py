"""Alembic environment for the Paybox ledger.

URL resolution (first hit wins): ``-x dburl=...``, the config's
``sqlalchemy.url`` (alembic.ini or ``Config.set_main_option``), then the
``PAYBOX_DATABASE_URL`` environment variable. A connection passed in
``config.attributes["connection"]`` is used as-is.

Plain ``postgresql://`` URLs are normalised to the psycopg 3 driver
(``postgresql+psycopg://``) on SQLAlchemy >= 2. SQLAlchemy 1.4 (Debian
bookworm, i.e. inside the image) has no psycopg 3 dialect, so there the
psycopg2 driver is used.

Compatible with alembic 1.8 / SQLAlchemy 1.4 and alembic 1.13+ / SQLAlchemy 2.
"""
import os
import re
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = None
SA2 = int(sa.__version__.split(".")[0]) >= 2


def normalise_url(url):
    m = re.match(r"^(postgres(?:ql)?)(\+\w+)?://", url)
    if not m:
        return url
    driver = "psycopg" if SA2 else "psycopg2"
    if m.group(2) and SA2:
        driver = m.group(2)[1:]
    return f"postgresql+{driver}://" + url[m.end():]


def database_url():
    url = context.get_x_argument(as_dictionary=True).get("dburl")
    url = url or config.get_main_option("sqlalchemy.url") or os.environ.get("PAYBOX_DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: set PAYBOX_DATABASE_URL, -x dburl=... or "
                           "sqlalchemy.url")
    return normalise_url(url)


def run_migrations_offline():
    context.configure(url=database_url(), literal_binds=True,
                      dialect_opts={"paramstyle": "named"}, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection):
    context.configure(connection=connection, target_metadata=target_metadata,
                      transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    conn = config.attributes.get("connection")
    if conn is not None:
        _run(conn)
        return
    engine = sa.create_engine(database_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
            if hasattr(connection, "commit") and SA2:
                connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
