"""What ``/golive watch`` and ``/golive incident security`` change, as an engine service.

The watches run on the leader replica (bot/watches/); these calls only record what should run
(``watch_control``) or raise an alert, with their audit rows and the messages that show them,
in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.engine.actors import Refused, Requester
from bot.engine.audit_trail import AuditTrail
from bot.engine.notices import Notices
from bot.store import repo
from bot.store.db import Database
from bot.watches import store
from bot.watches.room import raise_alert, watch_key


@dataclass(frozen=True)
class WatchesView:
    """The watches of the active run as ``/golive watch list`` shows them."""

    run_id: int
    control: dict | None
    states: dict[str, dict]


class WatchControl:
    """See the module docstring."""

    def __init__(self, *, db: Database, audit: AuditTrail, notices: Notices,
                 now: Callable[[], datetime]):
        self._db, self._audit, self._notices, self._now = db, audit, notices, now

    def view(self) -> WatchesView:
        """The active run's watches (Refused when no run is active)."""
        with self._db.transaction() as conn:
            run = repo.active_run(conn)
            if run is None:
                raise Refused("There is no active cutover run; the watches run during one.")
            return WatchesView(run["id"], store.control(conn, run["id"]),
                               store.states(conn, run["id"]))

    def states(self, run_id: int) -> dict[str, dict]:
        """Each watch of run ``run_id`` with its last state (``/golive status``)."""
        with self._db.transaction() as conn:
            return store.states(conn, run_id)

    def switch(self, *, actor: Requester, want: str, channel: str) -> tuple[int, bool]:
        """Ask the leader to run (``running``) or stop (``stopped``) the active run's watches:
        (the run, whether anything changed). Audited as ``watch.start`` or ``watch.stop``;
        every watch message is touched (it says it stopped, or no longer does)."""
        with self._db.transaction() as conn:
            run = repo.active_run(conn, for_update=True)
            if run is None:
                raise Refused("There is no active cutover run; the watches run during one.")
            ctl = store.control(conn, run["id"])
            if ctl is not None and ctl["desired"] == want:
                return run["id"], False
            store.set_control(conn, run_id=run["id"], desired=want, by=actor.user_id,
                              now=self._now())
            self._audit.record(conn, actor=actor.user_id, channel=actor.channel,
                               action="watch.start" if want == "running" else "watch.stop",
                               outcome="ok", run_id=run["id"],
                               detail={"was": ctl["desired"] if ctl else None})
            for name in store.states(conn, run["id"]):
                self._notices.touch(conn, key=watch_key(run["id"], name), channel=channel)
        return run["id"], True

    def declare_incident(self, *, actor: Requester, text: str, channels: list[str]) -> int:
        """A security incident: an alert with Start rollback in every channel, audited."""
        now = self._now()
        with self._db.transaction() as conn:
            run = repo.active_run(conn) or repo.latest_run(conn)
            run_id = run["id"] if run else None
            alert = raise_alert(conn, self._notices, channels=channels, run_id=run_id,
                                kind="security_incident", watch=None, text=text,
                                evidence={"declared_by": actor.user_id,
                                          "declared_in": actor.channel,
                                          "at": now.isoformat(), "run": run_id},
                                by=actor.user_id, now=now)
            self._audit.record(conn, actor=actor.user_id, channel=actor.channel,
                               action="incident.security", outcome="ok", run_id=run_id,
                               detail={"alert": alert, "text": text})
        return alert
