"""The plan's pure parts: digests over content, the per-step diff, durations, the Markdown and
the summary card within Slack's limits (a golden check on a 50-step plan), and no secret in
either."""

from __future__ import annotations

import json
from dataclasses import replace

from bot.slack.plan_blocks import plan_card
from runbook.plan.digest import diff, plan_digest, step_digest
from runbook.plan.model import (
    FieldChange,
    MigrationPlan,
    Plan,
    PlanCheck,
    ServiceChange,
    StepPlan,
    Unresolved,
    median_duration,
    plan_from_dict,
    plan_to_dict,
)
from runbook.plan.render import fmt_duration, render_markdown

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def _plan(**kw) -> Plan:
    deploy = StepPlan(
        step_id="deploy", title="Deploy", kind="deploy", command="deploy", gated=True,
        approvals=1, does=("deploys v2 to 1 service(s) (app)",),
        services=(ServiceChange("app", "reg/app:v2", B, "reg/app:v1", A,
                                changes=(FieldChange("environment.NEW_FLAG", "(unset)",
                                                     "set (value masked)"),)),),
        way_back="`rb-revert-deploy` runs each service on what runs now",
        expected_s=12.0, history=3)
    migrate = StepPlan(
        step_id="migrate", title="Migrate", kind="migrate",
        migration=MigrationPlan("0001", "0002", ("0002",), "ALTER TABLE t ADD c int;\n",
                                ("line 2: adding-field-with-default",), "ALTER TABLE t DROP c;"),
        unresolved=(Unresolved("squawk", "not installed"),))
    traffic = StepPlan(step_id="traffic-open", title="Open", kind="traffic",
                       checks=(PlanCheck("public health", "http://x/api/health", "HTTP 200"),))
    base = Plan(runbook="rb", runbook_version="v" * 64, target="paybox", rc_tag="v2", run_id=3,
                steps=(deploy, migrate, traffic), computed_at="2026-12-08T00:00:00+00:00")
    return replace(base, **kw)


def test_the_digest_covers_content_not_timing_or_rendering():
    p = _plan()
    again = _plan(computed_at="2027-01-01T00:00:00+00:00",
                  steps=tuple(replace(s, expected_s=99.0, history=9) for s in p.steps))
    assert plan_digest(again) == plan_digest(p), "when and how long are no part of the digest"
    moved = _plan(steps=(replace(p.steps[0], services=(replace(p.steps[0].services[0],
                                                               digest=C),)), *p.steps[1:]))
    assert plan_digest(moved) != plan_digest(p)
    assert step_digest(moved, "deploy") != step_digest(p, "deploy")
    assert step_digest(moved, "migrate") == step_digest(p, "migrate"), "per step"
    assert plan_from_dict(json.loads(json.dumps(plan_to_dict(p)))) == p, "stored and read back"


def test_diff_names_what_moved_from_what_to_what():
    p = _plan()
    d = p.step("deploy")
    moved = replace(d, services=(replace(d.services[0], digest=C, changes=()),),
                    expected_s=1.0)
    changes = {c.path: c for c in diff(d, moved)}
    assert str(changes["services[app].digest"]) == f"services[app].digest: {B} → {C}"
    assert "services[app].changes[environment.NEW_FLAG].after" in changes
    assert all("expected" not in p for p in changes), "timing is no drift"
    assert diff(d, replace(d, expected_s=3.0)) == []
    m = p.step("migrate")
    moved_db = replace(m, migration=replace(m.migration, current="0002"))
    assert [str(c) for c in diff(m, moved_db)] == ["migration.current: 0001 → 0002"]


def test_durations_are_the_median_of_the_recorded_attempts():
    assert median_duration([]) is None
    assert median_duration([10, 30, 12]) == 12
    assert fmt_duration(None) == "no history"
    assert fmt_duration(125) == "2 min 05 s"
    p = _plan()
    assert p.expected_total_s == 12.0 and p.steps_without_history == ["migrate", "traffic-open"]


def test_markdown_has_the_digests_sql_and_what_is_unresolved():
    p = _plan()
    md = render_markdown(p)
    for needed in (plan_digest(p), A, B, "ALTER TABLE t ADD c int;", "ALTER TABLE t DROP c;",
                   "squawk: not installed", "environment.NEW_FLAG: (unset) → set (value masked)",
                   "http://x/api/health", step_digest(p, "deploy"), "no history"):
        assert needed in md, needed


def test_card_of_a_50_step_plan_stays_within_slacks_limits():
    """Golden: 50 steps, each with a long line and an unresolved item: at most 50 blocks,
    every section under 3,000 characters, the rest said to be in the file."""
    steps = tuple(StepPlan(step_id=f"s{i:02d}", title="x" * 200, kind="health",
                           does=("checks " + "y" * 150,),
                           unresolved=(Unresolved("thing", "z" * 200),)) for i in range(50))
    p = _plan(steps=(*_plan().steps, *steps))
    text, blocks = plan_card(p, plan_digest(p), filename="plan-v2-1.md")
    assert len(blocks) <= 50
    for b in blocks:
        assert len(json.dumps(b.get("text", {}).get("text", ""))) < 3000, b
    body = json.dumps(blocks)
    assert "more: see `plan-v2-1.md`" in body
    assert plan_digest(p) in body and "Expected duration" in body
    assert [b["type"] for b in blocks[:2]] == ["header", "section"]
    assert "Plan for v2" in text


def test_compose_changes_name_env_keys_never_values():
    """What the deploy changes in a service's compose configuration: keys, never values (a
    changed password shows as "another value (masked)"); a secret in a healthcheck is masked."""
    from runbook.plan.services import compose_changes

    pw_old, pw_new = "old-pass-4242424242", "new-pass-9191919191"
    before = {"image": "reg/app:v1", "environment": {"DB_PASSWORD": pw_old, "GONE": "x"},
              "ports": [{"published": "8080", "target": 80}],
              "healthcheck": {"test": ["CMD", "curl", f"http://u:{pw_old}@h/health"]}}
    after = {"image": "reg/app:v2", "environment": {"DB_PASSWORD": pw_new, "NEW": "y"},
             "ports": [{"published": "8081", "target": 80}],
             "healthcheck": {"test": ["CMD", "curl", f"http://u:{pw_new}@h/health"]}}
    changes = compose_changes(before, after, {"a": pw_old, "b": pw_new})
    fields = {c.field: (c.before, c.after) for c in changes}
    assert fields["environment.DB_PASSWORD"] == ("value masked", "another value (masked)")
    assert fields["environment.GONE"] == ("set (value masked)", "(unset)")
    assert fields["environment.NEW"] == ("(unset)", "set (value masked)")
    assert fields["ports"] == ("8080:80/tcp", "8081:80/tcp")
    assert fields["image"] == ("reg/app:v1", "reg/app:v2")
    p = _plan(steps=(replace(_plan().steps[0], services=(replace(
        _plan().steps[0].services[0], changes=tuple(changes)),)),))
    text, blocks = plan_card(p, plan_digest(p), filename="f.md")
    for out in (text, json.dumps(blocks), render_markdown(p)):
        assert pw_old not in out and pw_new not in out and "x" != out
    assert "environment.DB_PASSWORD" in render_markdown(p)
