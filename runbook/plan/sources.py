"""Fill the plan from the real systems, changing nothing.

Every value comes from the team's config (``TargetConfig``) and the systems it names: a
deploy's from the registry and the compose project or the Kubernetes Deployments
(``runbook.plan.services``), a migration's from the target database and the RC image
(``runbook.plan.migrations``); each step's part says what its kind does with them
(``runbook.plan.kinds``). Whatever cannot be found out becomes an ``Unresolved`` entry with why;
nothing raises. Secret values are masked before they reach the plan.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from runbook.model import Runbook
from runbook.plan.inputs import Found, PlanInputs
from runbook.plan.kinds import step_plan, way_back
from runbook.plan.migrations import migration_plan
from runbook.plan.model import Plan, StepPlan, Unresolved, with_durations
from runbook.plan.services import compose_services, kubernetes_services, why
from runbook.target import TargetConfig
from runbook.target_deployers import ComposeDeployerConfig, KubernetesDeployerConfig


def compute(runbook: Runbook, target: TargetConfig, inputs: PlanInputs, *,
            deployer: Any = None, runner: Any = None,
            timings: dict[str, float] | None = None, only: str | None = None) -> Plan:
    """The whole night, from the real sources, changing nothing. ``timings``: filled with
    how long the services (registry, compose) and the migrations (database, image) took.
    ``only``: a step id; the plan then holds that step alone, and only the sources its kind
    needs are read (what an approval binds and the claim recomputes: :func:`compute_step`)."""
    secrets = {**target.secrets(), **dict(inputs.secrets)}
    found = Found()
    plan_unresolved: list[Unresolved] = []
    tag = inputs.rc_tag
    kinds = {s.kind for s in runbook.all_steps()} if only is None else \
        {runbook.step(only).kind}
    t0 = time.monotonic()

    def services() -> None:
        t = time.monotonic()
        if not tag:
            found.deploy_unresolved.append(Unresolved("release images", "no RC tag: start a "
                                                      "run or pass --tag"))
        elif isinstance(target.deployer, ComposeDeployerConfig):
            try:
                found.services, found.deploy_unresolved = compose_services(
                    target, tag, secrets, deployer=deployer)
            except Exception as e:  # noqa: BLE001
                found.deploy_unresolved.append(Unresolved("compose project", why(e, secrets)))
        elif isinstance(target.deployer, KubernetesDeployerConfig):
            found.services, found.deploy_unresolved = kubernetes_services(
                target, tag, secrets, deployer=deployer)
        else:
            found.deploy_unresolved.append(Unresolved("deployer", "no [target.deployer]"))
        found.timings["services_s"] = time.monotonic() - t

    def migrations() -> None:
        t = time.monotonic()
        try:
            found.migration, found.migration_unresolved = migration_plan(
                target, inputs, secrets, runner=runner, deployer=deployer)
        except Exception as e:  # noqa: BLE001
            found.migration_unresolved.append(Unresolved("migrations", why(e, secrets)))
        found.timings["migrations_s"] = time.monotonic() - t

    with ThreadPoolExecutor(2, thread_name_prefix="plan") as pool:
        jobs = []
        if kinds & {"deploy", "rollback.revert_deploy"}:
            jobs.append(pool.submit(services))
        if kinds & {"migrate", "rollback.data", "health"}:
            jobs.append(pool.submit(migrations))
        for j in jobs:
            j.result()
    steps: list[StepPlan] = []
    for step in runbook.all_steps():
        if only is not None and step.id != only:
            continue
        rollback = step in runbook.rollback
        sp = step_plan(step, runbook, target, inputs, found, rollback)
        steps.append(sp)
    by_id = {s.step_id: s for s in steps}
    steps = [replace(s, way_back=way_back(runbook.step(s.step_id), runbook, by_id,
                                          inputs.run_facts)) for s in steps]
    found.timings["total_s"] = time.monotonic() - t0
    if timings is not None:
        timings.update(found.timings)
    return Plan(runbook=runbook.name, runbook_version=runbook.version,
                target=target.name or (target.deployer.kind if target.deployer else ""),
                rc_tag=tag, run_id=inputs.run_id,
                steps=with_durations(steps, inputs.history),
                unresolved=tuple(plan_unresolved),
                computed_at=inputs.now().isoformat(timespec="seconds"))


def compute_step(runbook: Runbook, target: TargetConfig, inputs: PlanInputs, step_id: str, *,
                 deployer: Any = None, runner: Any = None) -> Plan:
    """One step's part of the plan (a plan holding that step alone), from the sources its
    kind needs: the registry and compose for a deploy, the database and the RC image for a
    migration, nothing but the config for a switch. ``step_digest(plan, step_id)`` of it is
    what an approval binds; the claim computes it again and compares."""
    return compute(runbook, target, inputs, deployer=deployer, runner=runner, only=step_id)
