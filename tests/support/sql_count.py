"""Count the SQL statements this thread sends (a regression guard on how often a request reads
the same rows): every statement goes through ``psycopg.Cursor.execute`` (``conn.execute``
too), patched for the duration of the block; other threads (the sender, the inbox, the
worker) are not counted."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """The statements this thread executes inside the block, in order (their SQL text)."""
    seen: list[str] = []
    me = threading.get_ident()
    real = psycopg.Cursor.execute

    def execute(self, query, params=None, **kw):
        if threading.get_ident() == me:
            text = query if isinstance(query, str) else getattr(query, "as_string", repr)(self)
            seen.append(" ".join(str(text).split()))
        return real(self, query, params, **kw)

    psycopg.Cursor.execute = execute
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = real
