"""The plan parts that need no stack: a request's plan part is given up after its budget
(a hung registry must not hold the command's handling), a part that cannot be computed says
why instead of raising, and a part prepared before a request's transaction is its own."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import runbook.steps.catalog  # noqa: F401 - registers the step kinds
from bot.engine.plan_binding import PlanBinding
from bot.engine.plan_parts import PlanParts
from runbook.model import Runbook, default_runbook_path, load_runbook
from runbook.steps.base import REGISTRY as KINDS
from runbook.target import TargetConfig


def _runbook() -> Runbook:
    return load_runbook(default_runbook_path(), known_kinds=KINDS.keys())


def _parts(rb: Runbook, compute) -> PlanParts:
    target = TargetConfig.model_validate({"deployer": {
        "kind": "compose", "compose_file": "compose.yaml", "project": "p",
        "registry": "127.0.0.1:5000", "services": [{"service": "app", "repository": "a/app",
                                                     "tag_variable": "APP_TAG"}]}})
    return PlanParts(runbook=rb, target=target, now=lambda: datetime.now(UTC), compute=compute)


def test_a_part_not_computed_within_its_budget_is_unresolved_and_blind():
    release = threading.Event()

    def hung(runbook, target, inputs, step_id):
        release.wait(30)  # a registry that does not answer
        raise AssertionError("too late to matter")

    rb = _runbook()
    parts = _parts(rb, hung)
    try:
        plan = parts.compute_within(0.2, run={"id": 1, "rc_tag": "v2", "facts": {}},
                                    step=rb.step("deploy"), params={"tag": "v2"})
    finally:
        release.set()
    (u,) = plan.step("deploy").unresolved
    assert u.what == "plan" and "not computed within" in u.why, u
    assert plan.rc_tag == "v2" and plan.run_id == 1
    assert parts.blind(plan, "deploy"), "a deploy without digests never starts"


def test_a_part_whose_sources_raise_says_why():
    def broken(runbook, target, inputs, step_id):
        raise RuntimeError("registry said 503\nmore")

    rb = _runbook()
    parts = _parts(rb, broken)
    plan = parts.compute(run={"id": 3, "rc_tag": "v2", "facts": {}}, step=rb.step("deploy"),
                         params={})
    (u,) = plan.step("deploy").unresolved
    assert u.why == "registry said 503"
    assert parts.blind(plan, "deploy") == ["plan: registry said 503"]


def test_a_part_prepared_before_the_transaction_is_taken_once_by_its_own_request():
    computed: list[str] = []

    def counted(runbook, target, inputs, step_id):
        computed.append(step_id)
        raise RuntimeError("registry said 503")

    rb = _runbook()
    binding = PlanBinding(parts=_parts(rb, counted), now=lambda: datetime.now(UTC))
    step = rb.step("deploy")
    run = {"id": 1, "rc_tag": "v2", "facts": {}}
    kept = binding.part(run=run, step=step, params={"tag": "v2"}, prepare=True)
    assert computed == ["deploy"]
    assert binding.prepared(run=run, step=step, params={"tag": "v3"}) is None, "other params"
    assert binding.prepared(run={**run, "id": 2}, step=step, params={"tag": "v2"}) is None
    assert binding.part(run=run, step=step, params={"tag": "v2"}) is kept
    assert computed == ["deploy"], "the request took the prepared part, not a new one"
    assert binding.prepared(run=run, step=step, params={"tag": "v2"}) is None, "taken once"
