"""A step's part of the plan (issue 20): computed from its sources, kept with its approval, and
what it could not resolve that its certification needs.

``PlanParts`` is what the binding at a request (``bot.engine.plan_binding``), the approval card
(``bot.engine.plan_card``), the drift at the claim (``bot.engine.plan_drift``) and the
certification after a step (``bot.engine.plan_certification``) share: computing one part
(``runbook.plan.sources.compute_step``: the registry and compose for a deploy, the database and
the RC image for a migration), reading the part an approval bound (``step_plans``, written by
``PlanBinding``), naming a part that is blind, and masking what any of them says.

Every network call here happens outside a transaction: the sources take seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import psycopg

from runbook.adapters.redact import mask
from runbook.model import Runbook, Step
from runbook.plan.inputs import PlanInputs
from runbook.plan.model import Plan, StepPlan, Unresolved, plan_from_dict
from runbook.plan.sources import compute_step
from runbook.target import TargetConfig

ComputeStep = Callable[[Runbook, TargetConfig, PlanInputs, str], Plan]


class PlanParts:
    """See the module docstring. Built by the facade and given to the four plan objects."""

    def __init__(self, *, runbook: Runbook, target: TargetConfig, config: Any = None,
                 secrets: Mapping[str, str] | None = None, now: Callable[[], datetime],
                 compute: ComputeStep = compute_step):
        self._runbook = runbook
        self._target = target
        self._config = config
        self._secrets = {**target.secrets(), **dict(secrets or {})}
        self._now = now
        self._compute = compute

    def mask(self, text: str) -> str:
        """``text`` with every secret of the target and the bot masked."""
        return mask(text, self._secrets)

    def database_url(self) -> tuple[str | None, str | None]:
        """The migration check's database URL and the variable naming it (None: not set)."""
        mc = getattr(getattr(self._config, "preflight", None), "migration_check", None)
        url = mc.database_url.get_secret_value() if mc is not None and mc.database_url \
            else None
        return url, (mc.url_variable if mc is not None else None)

    # ------------------------------------------------------------------ computing
    def compute(self, *, run: Mapping[str, Any], step: Step,
                params: Mapping[str, Any]) -> Plan:
        """The step's part of the plan now (a plan holding that step alone), for the tag it
        runs with (its ``tag`` parameter, else the run's RC). Never raises: what could not
        be read is an ``Unresolved`` entry (the card shows it)."""
        tag = _tag(run, params)
        url, variable = self.database_url()
        inputs = PlanInputs(rc_tag=tag, run_id=run["id"], run_facts=dict(run.get("facts") or {}),
                            secrets=self._secrets, url_variable=variable, database_url=url,
                            now=self._now)
        try:
            return self._compute(self._runbook, self._target, inputs, step.id)
        except Exception as e:  # noqa: BLE001 - a plan that cannot be computed says why
            why = self.mask(str(e).strip().splitlines()[0] if str(e).strip()
                            else type(e).__name__)[:300]
            return self._unresolved(run, step, tag, why)

    def compute_within(self, budget_s: float, *, run: Mapping[str, Any], step: Step,
                       params: Mapping[str, Any]) -> Plan:
        """:meth:`compute`, given up after ``budget_s`` (a hung registry must not hold a
        request for its whole timeout): then the part says it was not computed in time, which
        the card shows (and, for a deploy or migration, fail safe: it will not start)."""
        box: list[Plan] = []
        t = threading.Thread(target=lambda: box.append(self.compute(
            run=run, step=step, params=params)), name="golive-plan-request", daemon=True)
        t.start()
        t.join(budget_s)
        if box:
            return box[0]
        return self._unresolved(run, step, _tag(run, params),
                                f"not computed within {budget_s:.0f} s (a source did not "
                                "answer)")

    def _unresolved(self, run: Mapping[str, Any], step: Step, tag: str | None,
                    why: str) -> Plan:
        return Plan(runbook=self._runbook.name, runbook_version=self._runbook.version,
                    target=self._target.name or "", rc_tag=tag, run_id=run["id"],
                    steps=(StepPlan(step.id, step.title, step.kind, command=step.command,
                                    unresolved=(Unresolved("plan", why),)),))

    # ------------------------------------------------------------------ what an approval bound
    @staticmethod
    def approved(conn: psycopg.Connection, approval_id: int | None) -> Plan | None:
        """The part an approval request showed and bound (None: it bound none)."""
        if approval_id is None:
            return None
        row = conn.execute("SELECT plan FROM step_plans WHERE approval_id = %s",
                           (approval_id,)).fetchone()
        return plan_from_dict(row["plan"]) if row else None

    def blind(self, plan: Plan, step_id: str) -> list[str]:
        """Why a deploy's or a migration's part lacks what its certification compares (a
        digest per service, the planned head) when the target configures that source; empty:
        nothing is blind. Fail safe: such a step never starts (the claim voids its approval)
        and is never certified."""
        sp = plan.step(step_id)
        why = [f"{u.what}: {u.why}" for u in sp.unresolved]
        if sp.kind == "deploy" and self._target.deployer is not None and (
                not sp.services or any(not s.digest for s in sp.services)):
            return why or ["no image digest for the release"]
        if sp.kind == "migrate" and self._has_database() and (
                sp.migration is None or sp.migration.head is None):
            return why or ["no planned head revision"]
        return []

    def _has_database(self) -> bool:
        return bool(self._target.migrations.database_url) or bool(self.database_url()[0])


def _tag(run: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
    """The tag a step runs with: its ``tag`` parameter, else the run's RC."""
    return str(params.get("tag") or run.get("rc_tag") or "") or None
