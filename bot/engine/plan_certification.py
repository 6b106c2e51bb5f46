"""Certification after a step (issue 20, item 3): what really runs is what was planned.

After a step of a kind that certifies ends well, and before it is recorded succeeded,
:meth:`PlanCertifier.certify` reads what really runs (``runbook.plan.certify.certify_step``)
and compares it with the approved part (for an ungated step: the part computed just before
its claim or while it ran, :meth:`PlanCertifier.while_running`). Any difference fails the step.
``after_step``: who wants to know a step's process ended before its certification reads the
systems (metrics; a test replaces what runs there). Outside any transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from bot.engine.plan_parts import PlanParts
from bot.store.db import Database
from runbook.model import Step
from runbook.plan.certify import Certification, Difference, certify_step
from runbook.plan.model import Plan
from runbook.target import TargetConfig

CERTIFIES = frozenset({"deploy", "migrate", "maintenance", "traffic"})
"""The step kinds whose effect is certified after they run."""

Certify = Callable[..., Certification | None]


class PlanCertifier:
    """See the module docstring. Built by the facade; the step runner is given it."""

    def __init__(self, *, db: Database, target: TargetConfig, parts: PlanParts,
                 certify: Certify = certify_step):
        self._db = db
        self._target = target
        self._parts = parts
        self._certify = certify
        self.after_step: list[Callable[[Mapping[str, Any], Step], None]] = []
        """Called when a step's process ended well, before its certification reads what runs
        (metrics; a test replaces a container there)."""

    def while_running(self, exe: Mapping[str, Any], run: Mapping[str, Any], step: Step,
                      params: Mapping[str, Any], fresh: Plan | None) -> Callable[[], Plan | None]:
        """The part the certification will compare with, as a callable that waits for it: the
        one recomputed before the claim, else (an ungated step) one computed in a thread while
        the step runs, from the sources the step does not change (the RC image's head, the
        tag's digest in the registry): the claim is not held up for seconds."""
        if fresh is not None or step.kind not in CERTIFIES or step.phase == "rollback" \
                or exe.get("approval_id"):
            return lambda: fresh
        if step.kind == "deploy":  # compose ps during the recreate could fail: read after
            return lambda: self._parts.compute(run=run, step=step, params=params)
        box: list[Plan | None] = [None]

        def work() -> None:
            box[0] = self._parts.compute(run=run, step=step, params=params)

        t = threading.Thread(target=work, name=f"golive-plan-{exe['id']}", daemon=True)
        t.start()

        def wait() -> Plan | None:
            t.join()
            return box[0]
        return wait

    def certify(self, exe: Mapping[str, Any], step: Step, params: Mapping[str, Any],
                fresh: Callable[[], Plan | None]) -> tuple[Certification | None, str]:
        """Certify the step's effect against its approved part (else the part computed
        before its claim); (None, ...) when the kind certifies nothing. Outside any
        transaction. Returns the certification and which plan it compared with."""
        if step.kind not in CERTIFIES or step.phase == "rollback":
            return None, ""
        for hook in self.after_step:
            hook(exe, step)
        with self._db.connection() as conn:
            approved = self._parts.approved(conn, exe.get("approval_id"))
        plan, against = (approved, "approved") if approved is not None else (fresh(), "start")
        if plan is None:
            cert = Certification(step.id)
            cert.differences.append(Difference("plan", "computed", "no plan to certify "
                                               "against"))
            return cert, "none"
        blind = self._parts.blind(plan, step.id)
        if blind:
            cert = Certification(step.id)
            cert.differences += [Difference("plan", "resolved", f"unresolved: {b}")
                                 for b in blind]
            return cert, against
        url, _ = self._parts.database_url()
        try:
            cert = self._certify(self._target, plan.step(step.id), params, database_url=url)
        except Exception as e:  # noqa: BLE001 - never certified on a guess
            cert = Certification(step.id)
            cert.differences.append(Difference("certification", "ran", self._parts.mask(
                f"could not run: {type(e).__name__}: {e}")[:300]))
        return cert, against

    def not_certified(self, cert: Certification) -> str:
        """The failed step's error: every difference, from what was planned to what runs."""
        shown = "; ".join(str(d) for d in cert.differences[:8])
        return self._parts.mask(f"effect not certified: {shown}")

    @staticmethod
    def fact(cert: Certification, against: str) -> dict[str, Any]:
        """The audit row's detail: what was compared and with which plan."""
        return {**cert.as_fact(), "against": against}  # the audit trail masks it
