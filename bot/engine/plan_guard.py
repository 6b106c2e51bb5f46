"""Approvals bound to the plan, drift at the claim, effect certification (issue 20, items 2-3).

- **Bind.** A gated step's request computes the step's part of the plan
  (``runbook.plan.sources.compute_step``: the registry and compose for a deploy, the database
  and the RC image for a migration) before the engine's transaction opens; the approval binds
  its ``step_digest`` (``bot.engine.binding.bind(plan=...)``, so the approval hash covers it)
  and the part itself is stored with the approval (``step_plans``, migration 0017) for the card
  and for naming drift.
- **Drift at the claim.** Before the claim's transaction the worker recomputes the part of
  each queued step that could start now (:meth:`PlanGuard.before_claim`); the claim binds the
  fresh digest in the hash it compares (the claim's compare-and-set stays the one gate), and
  when it moved the approval is void with what changed, from what to what
  (``runbook.plan.model.diff``).
- **Certification.** After a step of a kind that certifies ends well, and before it is
  recorded succeeded, :meth:`PlanGuard.certify` reads what really runs and compares it with
  the approved part (for an ungated step: the part computed just before its claim). Any
  difference fails the step. ``after_step``: who wants to know a step's process ended before
  its certification reads the systems (metrics; a test replaces what runs there).

Every network call here happens outside a transaction: the sources take seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bot.engine.binding import step_params
from bot.engine.notices import Notices
from bot.slack.blocks import MAX_BLOCKS, Content, upload
from bot.slack.plan_blocks import step_part_blocks
from bot.store import repo
from bot.store.db import Database
from runbook.adapters.redact import mask
from runbook.model import Runbook, Step
from runbook.plan.certify import Certification, Difference, certify_step
from runbook.plan.model import (
    Plan,
    PlanChange,
    StepPlan,
    Unresolved,
    diff,
    plan_from_dict,
    plan_to_dict,
    render_markdown,
    step_digest,
)
from runbook.plan.sources import PlanInputs, compute_step
from runbook.rules.canonical import canonical_json
from runbook.target import TargetConfig

log = logging.getLogger(__name__)

STEP_FILE = "upload:stepplan"
KEEP_S = 60.0
"""How long a part prepared before a request's transaction is used by that request."""
REQUEST_BUDGET_S = 5.0
"""How long a request waits for its step's plan part inside its transaction (the command's
handling has 10 s): when none was prepared before it."""
PREPARE_BUDGET_S = 30.0
"""How long the part prepared before a request's transaction may take (a migration's renders
the SQL in the RC image: seconds, more on a loaded machine)."""
CERTIFIES = frozenset({"deploy", "migrate", "maintenance", "traffic"})
"""The step kinds whose effect is certified after they run."""

ComputeStep = Callable[[Runbook, TargetConfig, PlanInputs, str], Plan]
Certify = Callable[..., Certification | None]


@dataclass
class Fresh:
    """The step parts recomputed before one claim: execution id -> the part (a one-step plan)."""

    plans: dict[int, Plan] = field(default_factory=dict)

    def missing(self, exe: Mapping[str, Any], step: Step, guard: PlanGuard) -> bool:
        """Whether this queued step needs a fresh part and has none (it waits for the next
        round: it became claimable after the parts were computed)."""
        return guard.wants(exe, step) and exe["id"] not in self.plans


class PlanGuard:
    """See the module docstring. Built by the facade; the request path, the claim and the
    step runner are given it."""

    def __init__(self, *, db: Database, runbook: Runbook, target: TargetConfig,
                 config: Any = None, secrets: Mapping[str, str] | None = None,
                 now: Callable[[], datetime], notices: Notices,
                 compute: ComputeStep = compute_step, certify: Certify = certify_step):
        self._db = db
        self.notices = notices
        self._runbook = runbook
        self._target = target
        self._config = config
        self._secrets = {**target.secrets(), **dict(secrets or {})}
        self._now = now
        self._compute = compute
        self._certify = certify
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[float, Plan]] = {}
        self.after_step: list[Callable[[Mapping[str, Any], Step], None]] = []
        """Called when a step's process ended well, before its certification reads what runs
        (metrics; a test replaces a container there)."""

    # ------------------------------------------------------------------ computing
    def _database_url(self) -> tuple[str | None, str | None]:
        mc = getattr(getattr(self._config, "preflight", None), "migration_check", None)
        url = mc.database_url.get_secret_value() if mc is not None and mc.database_url \
            else None
        return url, (mc.url_variable if mc is not None else None)

    def compute(self, *, run: Mapping[str, Any], step: Step,
                params: Mapping[str, Any]) -> Plan:
        """The step's part of the plan now (a plan holding that step alone), for the tag it
        runs with (its ``tag`` parameter, else the run's RC). Never raises: what could not
        be read is an ``Unresolved`` entry (the card shows it)."""
        tag = str(params.get("tag") or run.get("rc_tag") or "") or None
        url, variable = self._database_url()
        inputs = PlanInputs(rc_tag=tag, run_id=run["id"], run_facts=dict(run.get("facts") or {}),
                            secrets=self._secrets, url_variable=variable, database_url=url,
                            now=self._now)
        try:
            return self._compute(self._runbook, self._target, inputs, step.id)
        except Exception as e:  # noqa: BLE001 - a plan that cannot be computed says why
            why = mask(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__,
                       self._secrets)[:300]
            return Plan(runbook=self._runbook.name, runbook_version=self._runbook.version,
                        target=self._target.name or "", rc_tag=tag, run_id=run["id"],
                        steps=(StepPlan(step.id, step.title, step.kind, command=step.command,
                                        unresolved=(Unresolved("plan", why),)),))

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
        tag = str(params.get("tag") or run.get("rc_tag") or "") or None
        return Plan(runbook=self._runbook.name, runbook_version=self._runbook.version,
                    target=self._target.name or "", rc_tag=tag, run_id=run["id"],
                    steps=(StepPlan(step.id, step.title, step.kind, command=step.command,
                                    unresolved=(Unresolved("plan", f"not computed within "
                                                           f"{budget_s:.0f} s (a source did "
                                                           "not answer)"),)),))

    # Parts computed before a request's transaction (``StepRequests.prepare``), kept briefly:
    # the request takes its own, once. A stale one is harmless: the claim recomputes.
    def _key(self, run: Mapping[str, Any], step: Step, params: Mapping[str, Any]) -> str:
        return canonical_json({"run": run["id"], "tag": run.get("rc_tag"), "step": step.id,
                               "params": dict(params)})

    def keep(self, *, run: Mapping[str, Any], step: Step, params: Mapping[str, Any],
             plan: Plan) -> None:
        with self._lock:
            now = time.monotonic()
            self._kept = {k: v for k, v in self._kept.items() if now - v[0] < KEEP_S}
            self._kept[self._key(run, step, params)] = (now, plan)

    def prepared(self, *, run: Mapping[str, Any], step: Step, params: Mapping[str, Any]
                 ) -> Plan | None:
        with self._lock:
            got = self._kept.pop(self._key(run, step, params), None)
        return got[1] if got is not None and time.monotonic() - got[0] < KEEP_S else None

    @staticmethod
    def digest(plan: Plan, step_id: str) -> str:
        return step_digest(plan, step_id)

    # ------------------------------------------------------------------ bind (request path)
    def binds(self, step: Step) -> bool:
        """Whether a gated request of ``step`` binds its plan part: every cutover step (a
        rollback's approval binds the rollback plan: bot/engine/rollback_requests.py)."""
        return step.phase != "rollback"

    def store(self, conn: psycopg.Connection, *, approval: Mapping[str, Any],
              plan: Plan) -> None:
        """Keep the part an approval request shows and binds (in the request's transaction)."""
        conn.execute(
            "INSERT INTO step_plans (approval_id, run_id, step_id, digest, plan, created_at)"
            " VALUES (%s,%s,%s,%s,%s,%s)",
            (approval["id"], approval["run_id"], approval["step_id"],
             self.digest(plan, approval["step_id"]), Jsonb(plan_to_dict(plan)), self._now()))

    def approved(self, conn: psycopg.Connection, approval_id: int | None) -> Plan | None:
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
        m = self._target.migrations
        return bool(m.database_url) or bool(self._database_url()[0])

    # ------------------------------------------------------------------ the approval card
    def with_plan_part(self, conn: psycopg.Connection, card: list[dict],
                       approval: Mapping[str, Any]) -> list[dict]:
        """The card with the part its approval binds, above its buttons (unchanged when the
        approval bound none). At most 50 blocks."""
        plan = self.approved(conn, approval["id"])
        if plan is None:
            return card
        step_id = approval["step_id"]
        part = step_part_blocks(plan, step_id, digest=self.digest(plan, step_id),
                                blind=self.blind(plan, step_id),
                                file_note=self._file_note(conn, approval, plan))
        at = next((i for i, b in enumerate(card) if b.get("type") == "actions"), len(card))
        out = [*card[:at], *part, *card[at:]]
        return out[:MAX_BLOCKS]

    def _file_note(self, conn: psycopg.Connection, approval: Mapping[str, Any],
                   plan: Plan) -> str:
        """Where the full plan (the SQL) is: the run's latest `/golive plan` file, else the
        step's own file posted in the card's thread."""
        row = conn.execute("SELECT id, rc_tag FROM plans WHERE run_id = %s ORDER BY id DESC"
                           " LIMIT 1", (approval["run_id"],)).fetchone()
        if row is not None:
            tag = "".join(c if c.isalnum() or c in "._-" else "_" for c in (row["rc_tag"]
                                                                           or "notag"))
            return f"`plan-{tag}-{row['id']}.md` (the latest `/golive plan`)"
        return f"`{self.filename(approval)}` in this card's thread"

    @staticmethod
    def filename(approval: Mapping[str, Any]) -> str:
        return f"plan-{approval['step_id']}-approval-{approval['id']}.md"

    def post_file(self, conn: psycopg.Connection, *, approval: Mapping[str, Any],
                  exe: Mapping[str, Any], plan: Plan) -> None:
        """Post the step's part as a file in its card's thread when the run has no plan file
        yet and the part holds SQL (the card shows its size, the file the statements)."""
        sp = plan.step(approval["step_id"])
        if sp.migration is None or not sp.migration.sql:
            return
        if conn.execute("SELECT 1 FROM plans WHERE run_id = %s LIMIT 1",
                        (approval["run_id"],)).fetchone() is not None:
            return
        self.notices.touch(conn, key=f"{STEP_FILE}:{approval['id']}", channel=exe["channel"],
                           thread_key=f"card:exe:{exe['id']}", final=True)

    def register(self, sender: Any) -> None:
        sender.register(STEP_FILE, self.render_file, upload=True)

    def render_file(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        a = conn.execute("SELECT * FROM approvals WHERE id = %s", (int(ref),)).fetchone()
        plan = self.approved(conn, int(ref))
        if a is None or plan is None:
            return None
        digest = self.digest(plan, a["step_id"])
        return upload(self.filename(a), mask(render_markdown(plan, digest), self._secrets),
                      f"The plan of {a['step_id']} this approval binds: {digest[:12]}")

    # ------------------------------------------------------------------ drift (the claim)
    def wants(self, exe: Mapping[str, Any], step: Step) -> bool:
        """Whether the claim of ``exe`` needs its part recomputed: its approval binds one (an
        ungated step's part is computed while it runs: :meth:`while_running`)."""
        return step.phase != "rollback" and bool(exe.get("approval_id"))

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
            return lambda: self.compute(run=run, step=step, params=params)
        box: list[Plan | None] = [None]

        def work() -> None:
            box[0] = self.compute(run=run, step=step, params=params)

        t = threading.Thread(target=work, name=f"golive-plan-{exe['id']}", daemon=True)
        t.start()

        def wait() -> Plan | None:
            t.join()
            return box[0]
        return wait

    def before_claim(self) -> Fresh:
        """Recompute the part of each queued step that could be claimed now (its run has no
        step running and its requirements succeeded), outside any transaction."""
        fresh = Fresh()
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT e.id, e.run_id, e.step_id, e.params, e.approval_id, e.override_reason,"
                " r.rc_tag, r.facts"
                " FROM step_executions e JOIN runs r ON r.id = e.run_id"
                " WHERE e.state = 'queued' AND NOT EXISTS (SELECT 1 FROM step_executions o"
                "  WHERE o.run_id = e.run_id AND o.state = 'running') ORDER BY e.id LIMIT 10"
            ).fetchall()
            states: dict[int, dict[str, str]] = {}
            for r in rows:
                if r["run_id"] not in states:
                    states[r["run_id"]] = {step_id: x["state"] for step_id, x in
                                           repo.latest_executions(conn, run_id=r["run_id"]).items()}
        for r in rows:
            try:
                step = self._runbook.step(r["step_id"])
            except KeyError:
                continue
            if not self.wants(r, step) or (not r["override_reason"] and self._runbook
                                           .unmet_requirements(step.id, states[r["run_id"]])):
                continue
            fresh.plans[r["id"]] = self.compute(
                run={"id": r["run_id"], "rc_tag": r["rc_tag"], "facts": r["facts"]},
                step=step, params=step_params(step, r["params"]))
        return fresh

    def claim_digest(self, exe: Mapping[str, Any], approval: Mapping[str, Any],
                     fresh: Fresh | None) -> str | None:
        """The digest the claim binds in the hash it compares: the fresh part's, when the
        approval bound one (None: it bound none, or there is no fresh part this round)."""
        if not approval["params"].get("plan") or fresh is None:
            return None
        plan = fresh.plans.get(exe["id"])
        return self.digest(plan, exe["step_id"]) if plan is not None else None

    def drift(self, conn: psycopg.Connection, exe: Mapping[str, Any],
              fresh: Fresh | None) -> list[PlanChange]:
        """What moved in the step's part since its approval (empty: nothing, or not known)."""
        plan = fresh.plans.get(exe["id"]) if fresh is not None else None
        old = self.approved(conn, exe.get("approval_id"))
        if plan is None or old is None:
            return []
        changes = diff(old.step(exe["step_id"]), plan.step(exe["step_id"]))
        for field_ in ("rc_tag", "runbook_version", "target"):
            if getattr(old, field_) != getattr(plan, field_):
                changes.append(PlanChange(field_, getattr(old, field_), getattr(plan, field_)))
        return changes

    def blind_fresh(self, exe: Mapping[str, Any], fresh: Fresh) -> list[str]:
        """What the step's fresh part could not resolve that its certification needs (fail
        safe: an approved step whose plan is blind does not start)."""
        plan = fresh.plans.get(exe["id"])
        return self.blind(plan, exe["step_id"]) if plan is not None else []

    def void_text(self, changes: list[PlanChange], blind: list[str]) -> str:
        """What the card says of an approval the plan voided (PlanChange strings)."""
        if changes:
            shown = "; ".join(str(c) for c in changes[:8])
            more = f"; and {len(changes) - 8} more" if len(changes) > 8 else ""
            return mask(f"approval void: the plan moved since it was approved: {shown}{more}. "
                        "Request it again to approve the new values", self._secrets)
        return mask("approval void: the step's plan is not resolved ("
                    + "; ".join(blind[:3])
                    + "), so it was approved blind. Request it again once it resolves",
                    self._secrets)

    # ------------------------------------------------------------------ certification
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
            approved = self.approved(conn, exe.get("approval_id"))
        plan, against = (approved, "approved") if approved is not None else (fresh(), "start")
        if plan is None:
            cert = Certification(step.id)
            cert.differences.append(Difference("plan", "computed", "no plan to certify "
                                               "against"))
            return cert, "none"
        sp = plan.step(step.id)
        blind = self.blind(plan, step.id)
        if blind:
            cert = Certification(step.id)
            cert.differences += [Difference("plan", "resolved", f"unresolved: {b}")
                                 for b in blind]
            return cert, against
        url, _ = self._database_url()
        try:
            cert = self._certify(self._target, sp, params, database_url=url)
        except Exception as e:  # noqa: BLE001 - never certified on a guess
            cert = Certification(step.id)
            cert.differences.append(Difference("certification", "ran", mask(
                f"could not run: {type(e).__name__}: {e}", self._secrets)[:300]))
        return cert, against

    def not_certified(self, cert: Certification) -> str:
        """The failed step's error: every difference, from what was planned to what runs."""
        shown = "; ".join(str(d) for d in cert.differences[:8])
        return mask(f"effect not certified: {shown}", self._secrets)

    def fact(self, cert: Certification, against: str) -> dict[str, Any]:
        """The audit row's detail: what was compared and with which plan."""
        return {**cert.as_fact(), "against": against}  # the audit trail masks it
