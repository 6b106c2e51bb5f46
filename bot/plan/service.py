"""The plan service: compute the night's plan for a run (or an RC tag), store it, audit it,
and have the channel shown its summary card and its Markdown file (through the outbox).

Computing reads the real systems (``runbook.plan.sources``) and takes seconds; it happens
before the one short transaction that records the plan: the ``plans`` row, the audit row
``plan`` (the digest and the file's sha256) and the outbox rows ``card:plan:N`` (the summary
card) and ``upload:plan:N`` (the Markdown, in the card's thread). A command's handling runs
inside the inbox's transaction (``Database.ambient``), so the plan's rows commit with the
command's "done" mark, exactly once.

For the later hooks (issue 20 items 2 and 3): :meth:`PlanService.step_plan` recomputes one
step's part from the same sources, :meth:`PlanService.drift` compares it with an approved
one (``runbook.plan.digest.diff``); ``runbook.plan.certify.certify_step`` certifies a step's
effect against the approved step plan.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bot.slack.blocks import Content, message, upload
from bot.slack.plan_blocks import plan_card
from bot.store import repo
from runbook.adapters.redact import mask
from runbook.model import Runbook
from runbook.plan.digest import PlanChange, diff, plan_digest
from runbook.plan.inputs import PlanInputs
from runbook.plan.model import Plan, PlanError, StepPlan, plan_from_dict, plan_to_dict
from runbook.plan.render import render_markdown
from runbook.plan.sources import compute
from runbook.target import TargetConfig

CARD, FILE = "card:plan", "upload:plan"


@dataclass(frozen=True)
class StoredPlan:
    id: int
    digest: str
    plan: Plan
    markdown: str

    @property
    def file_sha256(self) -> str:
        return hashlib.sha256(self.markdown.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return plan_filename(self.plan, self.id)


log = logging.getLogger(__name__)
PREPARED_FOR_S = 60.0
"""A plan prepared before a request's transaction is taken by it within this time, else
computed again (the values it shows are today's, not a minute old)."""


def plan_filename(plan: Plan, plan_id: int | None = None) -> str:
    tag = "".join(c if c.isalnum() or c in "._-" else "_" for c in (plan.rc_tag or "notag"))
    return f"plan-{tag}" + (f"-{plan_id}" if plan_id is not None else "") + ".md"


class PlanService:
    def __init__(self, *, db: Any, runbook: Runbook, target: TargetConfig, config: Any = None,
                 secrets: Mapping[str, str] | None = None, audit_key: bytes,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), outbox: Any = None,
                 compute_plan: Callable[..., Plan] = compute):
        self.db = db
        self.runbook = runbook
        self.target = target
        self.config = config
        self.secrets = {**target.secrets(), **dict(secrets or {})}
        self.audit_key = audit_key
        self.now = now
        self.outbox = outbox
        self._compute = compute_plan
        # Plans computed before a request's transaction (``prepare``), by (run id, tag):
        # (when, the plan); each is taken once, within PREPARED_FOR_S.
        self._prepared: dict[tuple[int | None, str], tuple[float, Plan]] = {}
        self._prepared_lock = threading.Lock()

    # -- computing -----------------------------------------------------------------------------
    def _run(self, conn: psycopg.Connection, run_id: int | None) -> dict[str, Any] | None:
        if run_id is not None:
            run = repo.get_run(conn, run_id=run_id)
            if run is None:
                raise PlanError(f"there is no run {run_id}")
            return run
        return repo.active_run(conn)

    def inputs(self, *, run_id: int | None = None, rc_tag: str | None = None) -> PlanInputs:
        """What the plan is computed for: the run (given, else the active one) and its tag,
        its facts, and the recorded durations."""
        with self.db.connection() as conn:
            run = self._run(conn, run_id)
            history = repo.succeeded_durations(conn)
        tag = rc_tag or (run["rc_tag"] if run else None)
        if not tag:
            raise PlanError("no release candidate to plan for: start a run with "
                            "`/golive start <rc-tag>` (or pass --tag on the command line)")
        mc = getattr(getattr(self.config, "preflight", None), "migration_check", None)
        db_url = mc.database_url.get_secret_value() if mc is not None and mc.database_url \
            else None
        return PlanInputs(rc_tag=tag, run_id=run["id"] if run else None,
                          run_facts=dict(run["facts"] or {}) if run else {},
                          history=history, secrets=self.secrets,
                          url_variable=mc.url_variable if mc is not None else None,
                          database_url=db_url, now=self.now)

    def compute(self, *, run_id: int | None = None, rc_tag: str | None = None) -> Plan:
        """The plan, computed now (nothing stored)."""
        return self._compute(self.runbook, self.target,
                             self.inputs(run_id=run_id, rc_tag=rc_tag))

    # -- recording -----------------------------------------------------------------------------
    def record(self, plan: Plan, *, actor: str, channel: str | None,
               conn: psycopg.Connection | None = None) -> StoredPlan:
        """Store the plan, audit it and (with a channel) have its card and file posted."""
        if conn is None:
            with self.db.connection() as c:
                return self.record(plan, actor=actor, channel=channel, conn=c)
        digest = plan_digest(plan)
        markdown = mask(render_markdown(plan, digest), self.secrets)
        row = conn.execute(
            "INSERT INTO plans (run_id, rc_tag, channel, requested_by, digest, plan, markdown,"
            " created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
            (plan.run_id, plan.rc_tag, channel, actor, digest,
             Jsonb(plan_to_dict(plan)), markdown, self.now())).fetchone()
        assert row is not None
        stored = StoredPlan(row["id"], digest, plan, markdown)
        unresolved = [f"{sid or 'plan'}: {u.what}: {u.why}" for sid, u in plan.all_unresolved()]
        repo.append_audit(
            conn, key=self.audit_key, now=self.now(), actor=actor, action="plan",
            outcome="ok", run_id=plan.run_id, channel=channel,
            detail={"plan_id": stored.id, "digest": digest, "rc_tag": plan.rc_tag,
                    "file": stored.filename, "file_sha256": stored.file_sha256,
                    "unresolved": unresolved[:20]},
            mask=lambda d: json.loads(mask(json.dumps(d), self.secrets)))
        if channel and self.outbox is not None:
            self.outbox.touch(conn, key=f"{CARD}:{stored.id}", channel=channel, final=True)
            self.outbox.touch(conn, key=f"{FILE}:{stored.id}", channel=channel,
                              thread_key=f"{CARD}:{stored.id}", final=True)
        return stored

    def prepare(self, *, rc_tag: str | None = None) -> None:
        """Compute the plan `/golive plan` is about to ask for, before its transaction opens
        (the inbox's handling has a 10 s deadline; a plan reads the registry, compose, the
        database and the RC image). Never raises: ``plan_for`` computes what is missing."""
        try:
            plan = self.compute(rc_tag=rc_tag)
        except Exception as e:  # noqa: BLE001 - plan_for says what is wrong
            log.info("plan not prepared: %s", type(e).__name__)
            return
        with self._prepared_lock:
            now = time.monotonic()
            self._prepared = {k: v for k, v in self._prepared.items()
                              if now - v[0] < PREPARED_FOR_S}
            self._prepared[(plan.run_id, plan.rc_tag)] = (now, plan)

    def _take_prepared(self, inputs: PlanInputs) -> Plan | None:
        with self._prepared_lock:
            got = self._prepared.pop((inputs.run_id, inputs.rc_tag), None)
        if got is None or time.monotonic() - got[0] >= PREPARED_FOR_S:
            return None
        return got[1]

    def plan_for(self, *, actor: str, channel: str | None, run_id: int | None = None,
                 rc_tag: str | None = None) -> StoredPlan:
        """Compute (or take the one prepared), store, audit and post: `/golive plan`."""
        inputs = self.inputs(run_id=run_id, rc_tag=rc_tag)  # one read: which plan, and for
        plan = self._take_prepared(inputs) or self._compute(self.runbook, self.target, inputs)
        return self.record(plan, actor=actor, channel=channel)

    def get(self, conn: psycopg.Connection, plan_id: int) -> StoredPlan | None:
        row = conn.execute("SELECT * FROM plans WHERE id = %s", (plan_id,)).fetchone()
        if row is None:
            return None
        return StoredPlan(row["id"], row["digest"], plan_from_dict(row["plan"]), row["markdown"])

    def latest(self, conn: psycopg.Connection, *, run_id: int) -> StoredPlan | None:
        row = conn.execute("SELECT id FROM plans WHERE run_id = %s ORDER BY id DESC LIMIT 1",
                           (run_id,)).fetchone()
        return self.get(conn, row["id"]) if row else None

    # -- drift (for the claim's recheck, not hooked yet) ----------------------------------------
    def step_plan(self, *, run_id: int, step_id: str) -> StepPlan:
        """One step's part of the plan, recomputed now from the same sources."""
        return self.compute(run_id=run_id).step(step_id)

    def drift(self, approved: StepPlan, *, run_id: int) -> list[PlanChange]:
        """What moved since ``approved`` was computed (empty: the approval still holds)."""
        return diff(approved, self.step_plan(run_id=run_id, step_id=approved.step_id))

    # -- the outbox's renderers -----------------------------------------------------------------
    def register_cards(self, sender: Any) -> None:
        sender.register(CARD, self.render_card)
        sender.register(FILE, self.render_file, upload=True)

    def render_card(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        stored = self.get(conn, int(ref))
        if stored is None:
            return None
        text, blocks = plan_card(stored.plan, stored.digest, filename=stored.filename)
        return message(mask(text, self.secrets),
                       json.loads(mask(json.dumps(blocks), self.secrets)))

    def render_file(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        stored = self.get(conn, int(ref))
        if stored is None:
            return None
        return upload(stored.filename, mask(stored.markdown, self.secrets),
                      f"Plan for {stored.plan.rc_tag}: {stored.digest[:12]}")
