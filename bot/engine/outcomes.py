"""The public service the rooms outside the engine (the canary) use for steps: a run's step
states, and an outcome decided outside the worker, recorded through the one writer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from bot.engine import executions
from bot.store import repo


class StepOutcomes:
    """See the module docstring."""

    def __init__(self, *, now: Callable[[], datetime]):
        self._now = now

    @staticmethod
    def states(conn: psycopg.Connection, run_id: int) -> dict[str, str]:
        """The state of the newest attempt of every step of the run, by step id."""
        return {k: v["state"] for k, v in repo.latest_executions(conn, run_id=run_id).items()}

    def record(self, conn: psycopg.Connection, *, run_id: int, step_id: str, outcome: str,
               params: dict[str, Any], requested_by: str, channel: str,
               started_at: datetime | None, summary: str | None,
               error: str | None) -> dict[str, Any]:
        """The step ended ``outcome`` (succeeded or failed) by a decision made elsewhere."""
        return executions.record(conn, outcome=outcome, run_id=run_id, step_id=step_id,
                                 params=params, requested_by=requested_by, channel=channel,
                                 now=self._now(), started_at=started_at, summary=summary,
                                 error=error)
