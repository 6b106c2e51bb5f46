"""What each step kind's part of the plan says (what it will do, what it checks, its gate, its
way back), from the config and the values the sources found (``Found``). Pure: it reads no
system.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runbook.model import Runbook, Step
from runbook.plan.inputs import Found, PlanInputs
from runbook.plan.model import MigrationPlan, PlanCheck, ServiceChange, StepPlan, Unresolved
from runbook.target import TargetConfig
from runbook.target_switches import CommandSwitch, ComposeServiceSwitch, HttpSwitch


def _switch_lines(switch: Any, on: bool, label: str) -> list[str]:
    state = "on" if on else "off"
    if isinstance(switch, HttpSwitch):
        method = switch.method if on or not switch.off_method else switch.off_method
        body = (json.dumps(switch.on_body if on else switch.off_body, sort_keys=True)
                if switch.send_body else "no body")
        auth = f" with {switch.token_header} (masked)" if switch.token else ""
        return [f"{label} {state}: {method} {switch.url} {body}{auth}"]
    if isinstance(switch, CommandSwitch):
        return [f"{label} {state}: runs {' '.join(switch.on if on else switch.off)}"]
    if isinstance(switch, ComposeServiceSwitch):
        return [(f"{label} {state}: {'starts' if on else 'stops'} compose service "
                f"{switch.service}")]
    return []


def _maintenance(target: TargetConfig, on: bool) -> tuple[list[str], list[PlanCheck],
                                                           list[Unresolved]]:
    if target.maintenance is None:
        return [], [], [Unresolved("maintenance switch", "no [target.maintenance] configured")]
    page = target.maintenance_page
    checks = ([PlanCheck("maintenance page", f"{target.public_url}{page.path}",
                     f"HTTP {page.status}" + (f" with {page.expect_text!r}"
                                              if page.expect_text else ""))] if on else
              [PlanCheck("public health", f"{target.public_url}{target.health.path or ''}",
                     "HTTP 200")])
    return _switch_lines(target.maintenance, on, "maintenance"), checks, []


def _traffic(target: TargetConfig, open_: bool) -> tuple[list[str], list[PlanCheck],
                                                         list[Unresolved]]:
    if target.traffic is None:
        does, checks, un = _maintenance(target, not open_)
        return [f"traffic {'open' if open_ else 'closed'} through the maintenance switch",
                *does], checks, un
    does = _switch_lines(target.traffic, open_, "traffic")
    if open_ and target.maintenance is not None:
        does += _switch_lines(target.maintenance, False, "maintenance")
    return does, [PlanCheck("public health", f"{target.public_url}{target.health.path or ''}",
                        "HTTP 200" if open_ else "not 200")], []


def _health(target: TargetConfig, tag: str | None, head: str | None
            ) -> tuple[list[str], list[PlanCheck], list[Unresolved]]:
    h = target.health
    if not h.path:
        return [], [], [Unresolved("health path", "[target.health] path is unset")]
    expect = [json.dumps(h.expect, sort_keys=True)] if h.expect else ["HTTP 200, JSON"]
    if h.version_field and h.expect_version_from_tag and tag:
        expect.append(f"{h.version_field} = {tag}")
    if h.schema_field and head:
        expect.append(f"{h.schema_field} = {head}")
    checks = [PlanCheck("health", f"{target.internal_url}{h.path}", "; ".join(expect))]
    if target.admin_login.path:
        checks.append(PlanCheck("admin login", f"{target.internal_url}{target.admin_login.path}",
                            f"user {target.admin_login.username}, password masked"))
    if target.dashboard.path:
        checks.append(PlanCheck("dashboard", f"{target.internal_url}{target.dashboard.path}",
                            repr(target.dashboard.expect_text or "HTTP 200")))
    return [f"checks {c.name} at {c.target}" for c in checks], checks, []


def _smoke(target: TargetConfig, tag: str | None) -> tuple[list[str], list[PlanCheck],
                                                          list[Unresolved]]:
    s = target.smoke
    if s is None:
        return [], [], [Unresolved("smoke script", "no [target.smoke] configured")]
    args = [a.replace("{public_url}", target.public_url)
            .replace("{internal_url}", target.internal_url)
            .replace("{deployed_tag}", tag or "") for a in s.args]
    argv = " ".join([*s.interpreter, str(s.path), *args])
    keys = ", ".join(sorted(s.env)) or "none"
    return ([f"runs {argv} (timeout {s.timeout_s:.0f} s; environment keys: {keys})"],
            [PlanCheck("smoke script", argv)], [])


def way_back(step: Step, runbook: Runbook, plan_steps: Mapping[str, StepPlan],
              facts: Mapping[str, Any]) -> str:
    """Which rollback step undoes ``step`` (and the data option, with its snapshot time);
    empty: nothing to say."""
    rb = {s.kind: s for s in runbook.rollback}
    if step.kind == "deploy" and "rollback.revert_deploy" in rb:
        return f"`{rb['rollback.revert_deploy'].id}` runs each service on what runs now"
    if step.kind == "migrate" and "rollback.data" in rb:
        data = rb["rollback.data"]
        if str(data.params.get("strategy", "downgrade")) == "restore":
            when = facts.get("snapshot_taken_at")
            return (f"`{data.id}` restores the preflight snapshot"
                    + (f" taken at {when} (data written since is set aside)" if when else
                       " (no snapshot recorded yet: the backup drill takes it)"))
        return f"`{data.id}` runs alembic downgrade back to the revision before (SQL below)"
    if step.kind == "maintenance" and str(step.params.get("mode")) == "on":
        off = [s.id for s in runbook.all_steps() if s.kind == "maintenance"
               and str(s.params.get("mode")) == "off"]
        return f"`{off[0]}` turns it off" if off else "turn the switch off"
    if step.kind == "traffic" and str(step.params.get("action")) == "open" and not (
            step in runbook.rollback):
        first = runbook.rollback[0].id if runbook.rollback else None
        return f"`/golive rollback` starts with `{first}`" if first else ""
    if step in runbook.rollback:
        return ""
    return "read-only: nothing to undo" if step.kind in (
        "health", "smoke", "check.all") or step.kind.startswith("watch.") else ""


def step_plan(step: Step, runbook: Runbook, target: TargetConfig, inputs: PlanInputs,
          found: Found, rollback: bool) -> StepPlan:
    """The step's part of the plan: what it will do with today's values, its checks and
    gate, from the config and what the sources found."""
    gate = step.gate if not rollback else runbook.rollback_gate
    tag = inputs.rc_tag
    does: list[str] = []
    checks: list[PlanCheck] = []
    services: list[ServiceChange] = []
    migration: MigrationPlan | None = None
    unresolved: list[Unresolved] = []
    kind = step.kind
    head = found.migration.head if found.migration else None
    if kind == "maintenance":
        does, checks, unresolved = _maintenance(target, str(step.params.get("mode")) == "on")
    elif kind == "traffic":
        does, checks, unresolved = _traffic(target, str(step.params.get("action")) == "open")
    elif kind == "deploy":
        services, unresolved = list(found.services), list(found.deploy_unresolved)
        does = [f"deploys {tag} to {len(services)} service(s) "
                f"({', '.join(s.service for s in services)})" if tag else "deploys (no tag)"]
    elif kind == "migrate":
        migration, unresolved = found.migration, list(found.migration_unresolved)
        does = [f"alembic upgrade head on the target database ({target.migrations.mode})"]
    elif kind == "health":
        does, checks, unresolved = _health(target, tag, head)
    elif kind == "smoke":
        does, checks, unresolved = _smoke(target, tag)
    elif kind == "rollback.revert_deploy":
        does = ["runs each service again on " + (", ".join(
            f"{s.service}={s.current_image or '?'}" for s in found.services) or "what ran "
            "before the deploy")]
        services = [ServiceChange(s.service, s.current_image or "(unknown)", s.current_digest,
                                  s.image, s.digest) for s in found.services]
    elif kind == "rollback.data":
        strategy = str(step.params.get("strategy", "downgrade"))
        if strategy == "restore":
            when = inputs.run_facts.get("snapshot_taken_at")
            does = ["restores the preflight snapshot"
                    + (f" taken at {when}" if when else "")]
            if not when:
                unresolved = [Unresolved("snapshot time", "no snapshot recorded for this run "
                                         "yet (the backup drill takes it)")]
        elif found.migration is not None:
            mig = found.migration
            does = [f"alembic downgrade {mig.head} → {mig.current or 'base'}"]
            migration = MigrationPlan(current=mig.head, head=mig.current,
                                      sql=mig.down_sql)
    elif kind == "rollback.verify_readonly":
        paths = [target.health.path or "", target.admin_login.path or "", *target.readonly_paths]
        checks = [PlanCheck("read-only page", f"{target.internal_url}{p}") for p in paths if p]
        does = [f"loads {len(checks)} page(s) on the old version"]
    elif kind == "check.all":
        does = [("runs the pre-cutover checks together (freeze, prod config, backup drill, "
                "migration dry run, RC evidence)")]
    else:
        does = [f"{kind}: as configured in the golive config"]
    return StepPlan(
        step_id=step.id, title=step.title, kind=kind, command=step.command, rollback=rollback,
        does=tuple(does), checks=tuple(checks), services=tuple(services), migration=migration,
        gated=gate is not None, approvals=gate.approvals if gate else 0,
        groups=tuple(gate.groups) if gate else (), unresolved=tuple(unresolved))
