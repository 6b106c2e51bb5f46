"""The approval card's plan part (bot/slack/plan_blocks.step_part_blocks), pure: what an
approver reads at 02:00, within Slack's limits, and the fail-safe line when it is blind."""

from __future__ import annotations

from bot.slack.blocks import SECTION_MAX
from bot.slack.plan_blocks import step_part_blocks
from runbook.plan.digest import step_digest
from runbook.plan.model import (
    FieldChange,
    MigrationPlan,
    Plan,
    ServiceChange,
    StepPlan,
    Unresolved,
)

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def _plan(step: StepPlan) -> Plan:
    return Plan(runbook="r", runbook_version="1", target="t", rc_tag="v2", run_id=1,
                steps=(step,))


def _text(blocks: list[dict]) -> str:
    out = []
    for b in blocks:
        if b["type"] == "section":
            out.append(b["text"]["text"])
        elif b["type"] == "context":
            out += [e["text"] for e in b["elements"]]
    return "\n".join(out)


def test_a_deploy_part_names_each_image_its_new_digest_and_the_one_it_replaces():
    step = StepPlan("deploy", "Deploy", "deploy", services=(ServiceChange(
        "app", "reg/app:v2", B, current_image="reg/app:v1", current_digest=A,
        changes=(FieldChange("environment", "3 keys", "4 keys (+FEATURE)"),)),))
    plan = _plan(step)
    blocks = step_part_blocks(plan, "deploy", digest=step_digest(plan, "deploy"), blind=[])
    text = _text(blocks)
    assert "*app*: `reg/app:v2`" in text and f"new `{B}`" in text
    assert f"replaces `{A}` (reg/app:v1)" in text
    assert "environment: 3 keys → 4 keys (+FEATURE)" in text
    assert step_digest(plan, "deploy")[:16] in text
    assert "Not resolved" not in text


def test_a_migration_part_is_the_chain_the_statement_count_and_squawk_within_limits():
    sql = "\n".join(f"ALTER TABLE t{i} ADD COLUMN c int;" for i in range(400))
    step = StepPlan("migrate", "Migrate", "migrate", migration=MigrationPlan(
        current="0001", head="0002", chain=("0002",), sql=sql,
        findings=tuple(f"finding {i}: adding-not-nullable-field" for i in range(9))))
    plan = _plan(step)
    blocks = step_part_blocks(plan, "migrate", digest=step_digest(plan, "migrate"), blind=[],
                              file_note="`plan-v2-3.md`")
    text = _text(blocks)
    assert "`0001 → 0002`" in text and "400 SQL statement(s), squawk: 9 finding(s)" in text
    assert "Full SQL in the plan file: `plan-v2-3.md`" in text
    assert len(blocks) <= 3
    assert all(len(b["text"]["text"]) <= SECTION_MAX for b in blocks if b["type"] == "section")


def test_many_services_are_cut_to_one_section_naming_the_rest():
    services = tuple(ServiceChange(f"svc{i:03d}", f"reg/svc{i:03d}:v2", B, current_digest=A)
                     for i in range(60))
    plan = _plan(StepPlan("deploy", "Deploy", "deploy", services=services))
    blocks = step_part_blocks(plan, "deploy", digest="d" * 64, blind=[],
                              file_note="`plan-v2-1.md`")
    section = blocks[0]["text"]["text"]
    assert len(section) <= SECTION_MAX and "more line(s): `plan-v2-1.md`" in section


def test_a_blind_part_says_what_is_unresolved_and_that_it_will_not_start():
    step = StepPlan("deploy", "Deploy", "deploy", services=(ServiceChange(
        "app", "reg/app:v2", None),), unresolved=(Unresolved("app digest", "registry down"),))
    plan = _plan(step)
    text = _text(step_part_blocks(plan, "deploy", digest="d" * 64,
                                  blind=["app digest: registry down"]))
    assert "app digest: registry down" in text and "new `(unknown)`" in text
    assert "will not start while its plan is unresolved" in text
