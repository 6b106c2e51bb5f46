"""The step executions' declared transition table, on a real PostgreSQL, and the one writer.

Every declared transition moves a row from its state to the declared one; every pair the table
does not declare is refused before any SQL runs and leaves the row as it was; nothing outside
bot/engine/executions.py writes step executions.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bot.engine import executions
from bot.engine.executions import NEW, TRANSITIONS, Undeclared

T0 = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)
STATES = ["awaiting_approval", "queued", "running", "succeeded", "failed", "interrupted",
          "cancelled", "skipped"]
EVENTS = sorted({e for (_, e) in TRANSITIONS})
ROOT = Path(__file__).resolve().parents[2]
_ids = itertools.count(1)


@pytest.fixture
def conn(runtime_db):
    with psycopg.connect(runtime_db, row_factory=dict_row, autocommit=True) as c:
        yield c


def _run(conn: psycopg.Connection) -> int:
    return conn.execute("INSERT INTO runs (channel, started_by, started_at, facts)"
                        " VALUES ('C1', 'U1', %s, '{}') RETURNING id", (T0,)).fetchone()["id"]


def _row_in(conn: psycopg.Connection, state: str) -> dict:
    """A step execution put straight into ``state`` (the test's own setup, not the writer)."""
    return conn.execute(
        "INSERT INTO step_executions (run_id, step_id, attempt, state, params, requested_by,"
        " channel, created_at) VALUES (%s, %s, 1, %s, %s, 'U1', 'C1', %s) RETURNING *",
        (_run(conn), f"step{next(_ids)}", state, Jsonb({}), T0)).fetchone()


def _state(conn: psycopg.Connection, exe_id: int) -> str:
    return conn.execute("SELECT state FROM step_executions WHERE id = %s",
                        (exe_id,)).fetchone()["state"]


@pytest.mark.parametrize(("state", "event"), sorted(TRANSITIONS),
                         ids=[f"{s}-{e}" for s, e in sorted(TRANSITIONS)])
def test_every_declared_transition_moves_the_row_where_the_table_says(conn, state, event):
    to = TRANSITIONS[(state, event)]
    if state == NEW:
        row = executions.create(conn, event=event, run_id=_run(conn), step_id="s",
                                params={}, requested_by="U1", channel="C1", now=T0)
    else:
        exe = _row_in(conn, state)
        row = executions.move(conn, execution_id=exe["id"], event=event, only=(state,), now=T0)
        assert row is not None
    assert row["state"] == to
    assert _state(conn, row["id"]) == to
    assert (row["finished_at"] is not None) == (to in executions.FINISHED)


UNDECLARED = [(s, e) for s in STATES for e in EVENTS if (s, e) not in TRANSITIONS]


@pytest.mark.parametrize(("state", "event"), UNDECLARED,
                         ids=[f"{s}-{e}" for s, e in UNDECLARED])
def test_an_undeclared_transition_is_refused_and_changes_nothing(conn, state, event):
    exe = _row_in(conn, state)
    with pytest.raises(Undeclared):
        executions.move(conn, execution_id=exe["id"], event=event, only=(state,), now=T0)
    assert _state(conn, exe["id"]) == state
    # Without naming the state: the row is not in a state the event fires from (or the event
    # only creates rows): it is left alone either way.
    try:
        assert executions.move(conn, execution_id=exe["id"], event=event, now=T0) is None
    except Undeclared:
        pass
    assert _state(conn, exe["id"]) == state


def test_a_new_row_only_starts_where_the_table_says(conn):
    run_id = _run(conn)
    for event in EVENTS:
        if (NEW, event) in TRANSITIONS:
            continue
        with pytest.raises(Undeclared):
            executions.create(conn, event=event, run_id=run_id, step_id="s", params={},
                              requested_by="U1", channel="C1", now=T0)
    assert conn.execute("SELECT count(*) AS n FROM step_executions").fetchone()["n"] == 0


WRITES = re.compile(r"\b(UPDATE|INSERT\s+INTO)\s+step_executions\b", re.IGNORECASE)
WRITER = Path("bot/engine/executions.py")


def test_nothing_outside_the_writer_module_writes_step_executions():
    strays = []
    for top in ("bot", "commands", "runbook"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel == WRITER:
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if WRITES.search(line):
                    strays.append(f"{rel}:{n}: {line.strip()}")
    assert not strays, "step executions written outside bot/engine/executions.py:\n" + \
        "\n".join(strays)
    assert WRITES.search((ROOT / WRITER).read_text())  # the scan looks for what is there
