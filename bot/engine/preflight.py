"""The preflight's engine side: storing each check's result as it arrives from the step, the
gate in front of the cutover's gated steps, and what the checklist and status show.

The step (``check.all`` in runbook/steps/preflight.py) runs in the worker's child process and
emits each finished check; the worker hands the record here, which stores it in
``preflight_results`` and touches the step's card (the checklist), its details reply and one
upload per attached file, in one transaction. The gate reads the newest result of every check
for the run's RC SHA: all green (warnings pass) and the oldest younger than
``[preflight] max_age_minutes``, else the refusal names the check or the age.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bot.engine.binding import step_params
from bot.engine.core import ACTIVE_STATES, ROLLBACK, Shared
from bot.slack import preflight_blocks as pfb
from bot.slack.blocks import esc
from bot.store import preflight as store
from bot.store import repo
from runbook.model import Step
from runbook.steps.preflight import RED, config_of, expected_checks, is_preflight_kind

DETAILS = "preflight:exe"


@dataclass
class PreflightState:
    """The run's preflight as the gate sees it."""

    sha: str | None
    expected: list[str]
    rows: dict[str, dict] = field(default_factory=dict)
    """Newest result per expected check, for ``sha`` only."""
    running: bool = False
    age_min: int | None = None

    @property
    def missing(self) -> list[str]:
        return [n for n in self.expected if n not in self.rows]

    @property
    def red(self) -> list[dict]:
        return [self.rows[n] for n in self.expected if n in self.rows
                and self.rows[n]["status"] in RED]


def _sha_of(run: Mapping[str, Any]) -> str | None:
    return run.get("rc_sha") or (run.get("facts") or {}).get("rc_sha")


class PreflightGate:
    """See the module docstring. Owns nothing but ``preflight_results`` (written in
    ``record``); reads the run's executions it is given or reads them itself."""

    def __init__(self, shared: Shared):
        self._s = shared
        self._deps = shared.deps
        self._runbook = shared.runbook

    # ------------------------------------------------------------------ recording
    def record(self, exe: Mapping[str, Any], kind: str,
                          payload: Mapping[str, Any]) -> None:
        """One record a preflight step emitted: a finished check, or the SHA it resolved."""
        with self._s.db.transaction() as tx:
            if kind == "rc_sha":
                store.tie_to_sha(tx, execution_id=exe["id"], rc_sha=payload.get("rc_sha"))
                return
            if kind != "check":
                return
            row = store.insert_result(tx, run_id=exe["run_id"], execution_id=exe["id"],
                                      rc_sha=payload.get("rc_sha"),
                                      result=self._deps.mask(dict(payload)), now=self._deps.now())
            if row is None:
                return
            self._s.notices.step_changed(tx, exe)  # the checklist shows the new line
            thread = f"card:exe:{exe['id']}"
            if row["details"] or row["files"]:
                self._s.notices.touch(tx, key=f"{DETAILS}:{exe['id']}", channel=exe["channel"],
                                      thread_key=thread)
            for name in row["files"]:
                self._s.notices.touch(tx, key=f"upload:exe:{exe['id']}:{name}",
                                      channel=exe["channel"], thread_key=thread)

    # ------------------------------------------------------------------ the gate
    def steps(self) -> list[Step]:
        return [s for s in self._runbook.cutover_steps() if is_preflight_kind(s.kind)]

    def gated(self, step: Step) -> bool:
        """Gated cutover steps that require a preflight step themselves (``maintenance on``,
        the step that opens the cutover). Later steps are held by their ``requires`` chain: once
        two people opened the cutover past a red or aged preflight, deploy is not asked again;
        manual steps (``maintenance off``) must stay possible to abort with."""
        if not step.gated or step.phase == ROLLBACK or step.params.get("manual") \
                or is_preflight_kind(step.kind):
            return False
        pre = {s.id for s in self.steps()}
        return bool(set(step.requires) & pre)

    def state(self, conn: psycopg.Connection, run: Mapping[str, Any],
                         executions: Mapping[str, Mapping[str, Any]] | None = None
                         ) -> PreflightState:
        """``executions``: the run's latest executions when the caller already read them."""
        cfg = config_of(self._deps.config)
        expected = list(dict.fromkeys(n for s in self.steps()
                                      for n in expected_checks(cfg, s.kind)))
        sha = _sha_of(run)
        latest = store.latest_results(conn, run_id=run["id"])
        rows = {n: r for n, r in latest.items() if n in expected and r["rc_sha"] == sha}
        states = executions if executions is not None \
            else repo.latest_executions(conn, run_id=run["id"])
        running = any(states[s.id]["state"] in ACTIVE_STATES
                      for s in self.steps() if s.id in states)
        age = None
        if rows:
            oldest = min(r["finished_at"] for r in rows.values())
            age = int((self._deps.now() - oldest).total_seconds() // 60)
        return PreflightState(sha=sha, expected=expected, rows=rows, running=running,
                              age_min=age)

    def refusal(self, conn: psycopg.Connection, run: Mapping[str, Any],
                           step: Step, st: PreflightState | None = None) -> str | None:
        """Why ``step`` may not start on this run's preflight, or None (``st``: the state,
        when the caller already has it)."""
        if not self.gated(step):
            return None
        st = st or self.state(conn, run)
        sha = f"RC sha `{st.sha[:12]}`" if st.sha else "this run (no RC sha known yet)"
        if st.running:
            return "the preflight is still running; wait for its checklist to finish."
        if st.missing:
            return (f"no preflight result for {sha} from {', '.join(st.missing)}: run "
                    "`/golive preflight` first.")
        if st.red:
            lines = "; ".join(f"{pfb.icon(r['status'])} {r['check_name']}: "
                              f"{esc(r['finding'][:300])}" for r in st.red)
            one = st.red[0]["check_name"]
            return (f"the preflight for {sha} is red: {lines}. Fix it and re-run "
                    f"`/golive preflight` (or just `/golive preflight {one}`).")
        max_age = config_of(self._deps.config).max_age_minutes
        if st.age_min is not None and st.age_min >= max_age:
            return (f"the preflight for {sha} is {st.age_min} min old (the limit is {max_age} "
                    "min, `[preflight] max_age_minutes`): re-run `/golive preflight`.")
        return None

    def verdict(self, conn: psycopg.Connection, run_id: int,
                           st: PreflightState | None = None) -> str:
        """What an approval binds of the preflight: the RC sha and each check's status."""
        if not self.steps():
            return ""
        if st is None:
            run = repo.get_run(conn, run_id=run_id)
            if run is None:
                return ""
            st = self.state(conn, run)
        return f"{st.sha or '-'}:" + ",".join(
            f"{n}={st.rows[n]['status'] if n in st.rows else 'missing'}" for n in st.expected)

    def summary(self, conn: psycopg.Connection, run: Mapping[str, Any]
                           ) -> dict | None:
        """What `/golive status` shows of the stored preflight (None before any ran)."""
        if not self.steps():
            return None
        st = self.state(conn, run)
        if not st.rows and not st.running:
            return None
        max_age = config_of(self._deps.config).max_age_minutes
        verdict = ("running" if st.running else "red ❌" if st.red or st.missing
                   else f"stale ⌛ (older than {max_age} min)"
                   if st.age_min is not None and st.age_min >= max_age else "green ✅")
        return {"rc_sha": st.sha, "verdict": verdict, "age_min": st.age_min,
                "max_age": max_age,
                "lines": pfb.checklist(st.expected, list(st.rows.values()),
                                       running=st.running, off=config_of(
                                           self._deps.config).not_selected())}

    # ------------------------------------------------------------------ renderers
    def checklist(self, conn: psycopg.Connection, exe: Mapping[str, Any],
                             step: Step) -> list[str] | None:
        """The checklist lines of a preflight step's card (None for other steps)."""
        if not is_preflight_kind(step.kind):
            return None
        from runbook.steps.preflight import not_configured, planned_checks

        try:
            planned = planned_checks(config_of(self._deps.config), step.kind,
                                     step_params(step, exe["params"]))
        except ValueError:
            planned = []
        rows = store.results_of_execution(conn, execution_id=exe["id"])
        if not planned and not rows:
            return None
        return pfb.checklist(planned, rows, running=exe["state"] in ACTIVE_STATES,
                             off=not_configured(config_of(self._deps.config), step.kind))

    def render_details(self, conn: psycopg.Connection, ref: str, data: Any
                                 ) -> dict | None:
        """The details reply in a preflight card's thread."""
        exe = repo.get_execution(conn, execution_id=int(ref))
        rows = store.results_of_execution(conn, execution_id=int(ref)) if exe else []
        if not rows:
            return None
        text, body = pfb.details_reply(self._runbook.step(exe["step_id"]).title, rows)
        return {"text": text, "blocks": body}

    def render_file(self, conn: psycopg.Connection, exe_id: int, name: str
                              ) -> dict | None:
        """One file a check attached (e.g. the migration SQL), uploaded in the thread."""
        text = store.file_of(conn, execution_id=exe_id, filename=name)
        if text is None:
            return None
        return {"filename": name, "content": self._deps.mask(text),
                "title": f"preflight: {name}", "comment": None}
