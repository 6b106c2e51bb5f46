"""PlanGuard's parts that need no stack: a request's plan part is given up after its budget
(a hung registry must not hold the command's handling), and a part that cannot be computed
says why instead of raising."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import runbook.steps.catalog  # noqa: F401 - registers the step kinds
from bot.engine.plan_guard import PlanGuard
from runbook.model import default_runbook_path, load_runbook
from runbook.steps.base import REGISTRY as KINDS
from runbook.target import TargetConfig


def _guard(compute) -> PlanGuard:
    rb = load_runbook(default_runbook_path(), known_kinds=KINDS.keys())
    target = TargetConfig.model_validate({"deployer": {
        "kind": "compose", "compose_file": "compose.yaml", "project": "p",
        "registry": "127.0.0.1:5000", "services": [{"service": "app", "repository": "a/app",
                                                     "tag_variable": "APP_TAG"}]}})
    return PlanGuard(db=None, runbook=rb, target=target, now=lambda: datetime.now(UTC),
                     notices=None, compute=compute)  # type: ignore[arg-type]


def test_a_part_not_computed_within_its_budget_is_unresolved_and_blind():
    release = threading.Event()

    def hung(runbook, target, inputs, step_id):
        release.wait(30)  # a registry that does not answer
        raise AssertionError("too late to matter")

    guard = _guard(hung)
    rb_step = guard._runbook.step("deploy")
    try:
        plan = guard.compute_within(0.2, run={"id": 1, "rc_tag": "v2", "facts": {}},
                                    step=rb_step, params={"tag": "v2"})
    finally:
        release.set()
    (u,) = plan.step("deploy").unresolved
    assert u.what == "plan" and "not computed within" in u.why, u
    assert plan.rc_tag == "v2" and plan.run_id == 1
    assert guard.blind(plan, "deploy"), "a deploy without digests never starts"


def test_a_part_whose_sources_raise_says_why():
    def broken(runbook, target, inputs, step_id):
        raise RuntimeError("registry said 503\nmore")

    guard = _guard(broken)
    plan = guard.compute(run={"id": 3, "rc_tag": "v2", "facts": {}},
                         step=guard._runbook.step("deploy"), params={})
    (u,) = plan.step("deploy").unresolved
    assert u.why == "registry said 503"
    assert guard.blind(plan, "deploy") == ["plan: registry said 503"]


def test_a_part_prepared_before_the_transaction_is_taken_once_by_its_own_request():
    def unused(runbook, target, inputs, step_id):
        raise AssertionError("computed again")

    guard = _guard(unused)
    step = guard._runbook.step("deploy")
    run = {"id": 1, "rc_tag": "v2", "facts": {}}
    kept = guard.compute(run=run, step=step, params={"tag": "v2"})  # says why: unused raised
    guard.keep(run=run, step=step, params={"tag": "v2"}, plan=kept)
    assert guard.prepared(run=run, step=step, params={"tag": "v3"}) is None, "other params"
    assert guard.prepared(run={**run, "id": 2}, step=step, params={"tag": "v2"}) is None
    assert guard.prepared(run=run, step=step, params={"tag": "v2"}) is kept
    assert guard.prepared(run=run, step=step, params={"tag": "v2"}) is None, "taken once"
