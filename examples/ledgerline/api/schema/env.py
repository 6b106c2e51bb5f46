"""Alembic environment for Ledgerline: the URL comes from ``LL_DB_DSN`` and nowhere else, and
the revision lives in ``ll_schema_version``.

This is the common shape that makes a migration dry run dangerous: whoever runs this env.py
with LL_DB_DSN in its environment migrates that database. golive must run it with an
environment pointed at the scratch copy only.

Works with alembic 1.8 / SQLAlchemy 1.4 (Debian bookworm, in the image: psycopg2) and
alembic 1.13+ / SQLAlchemy 2 (psycopg 3).
"""
import os
import re
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

VERSION_TABLE = "ll_schema_version"
SA2 = int(sa.__version__.split(".")[0]) >= 2


def dsn():
    url = os.environ.get("LL_DB_DSN")
    if not url:
        raise SystemExit("LL_DB_DSN is not set: ledgerline migrations need it")
    driver = "psycopg" if SA2 else "psycopg2"
    return re.sub(r"^postgres(ql)?(\+\w+)?://", f"postgresql+{driver}://", url)


def run_offline():
    context.configure(url=dsn(), literal_binds=True, version_table=VERSION_TABLE,
                      transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online():
    engine = sa.create_engine(dsn(), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, version_table=VERSION_TABLE,
                              transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
            if SA2:
                connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
