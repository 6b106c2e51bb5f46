"""Preflight step kinds: ``check.all`` runs every check of ``[preflight]`` concurrently as ONE
step (``params.check`` narrows it to one check, merged with the run's earlier results); each
``check.<name>`` kind (the older one-step-per-check runbook shape) runs its one check.

Each finished check goes to the engine at once through ``ctx.emit("check", result)``, so the
checklist card updates as checks finish, and a check's result survives even if a slower one is
killed. The step succeeds only when the merged preflight is green (no check failed or unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbook.checks import KIND_TO_CHECK, build_specs
from runbook.checks.base import Status
from runbook.checks.config import PreflightConfig, normalise_check
from runbook.checks.runner import run_checks
from runbook.steps.base import REGISTRY, Registered, StepContext, StepFailed, StepResult

ALL = "check.all"
FACTS_KEY = "preflight"
"""Run fact: ``{"rc_sha": ..., "checks": {name: status}}``, the merged verdict so far."""
MARGIN_S = 5.0  # a check's timeout ends this long before the step's own deadline
RED = (Status.FAIL.value, Status.UNKNOWN.value)


def is_preflight_kind(kind: str) -> bool:
    """Whether ``kind`` is a preflight step kind (its results gate the cutover)."""
    return kind == ALL or kind in KIND_TO_CHECK


def config_of(config: Any) -> PreflightConfig:
    """The ``[preflight]`` section of the team config (empty when there is none)."""
    cfg = getattr(config, "preflight", None)
    return cfg if isinstance(cfg, PreflightConfig) else PreflightConfig()


def check_name(word: str) -> str:
    """A check's name as typed (``prod-config`` or ``prod_config``); ValueError if unknown."""
    try:
        return normalise_check(word)
    except ValueError as e:
        raise ValueError(f"no preflight check `{word}`; {str(e).partition('(')[2].rstrip(')')}"
                         ) from None


def expected_checks(cfg: PreflightConfig, kind: str) -> list[str]:
    """The checks a green verdict of a ``kind`` step needs (``check.all``: the ones
    ``[preflight] checks`` selects)."""
    if kind == ALL:
        return cfg.selected()
    return [KIND_TO_CHECK[kind]]


def not_configured(cfg: PreflightConfig, kind: str) -> list[str]:
    """The checks a ``kind`` step leaves out because ``[preflight] checks`` does not list them
    (shown as not configured, never as failing)."""
    return cfg.not_selected() if kind == ALL else []


def planned_checks(cfg: PreflightConfig, kind: str, params: Mapping[str, Any]) -> list[str]:
    """The checks one execution runs (``params.check``: just that one)."""
    if kind == ALL and params.get("check"):
        name = check_name(str(params["check"]))
        if name not in cfg.selected():
            raise ValueError(f"`{name}` is not one of this preflight's checks ([preflight] "
                             f"checks: {', '.join(cfg.selected())}); add it there to run it")
        return [name]
    return expected_checks(cfg, kind)


def _make(kind: str):
    def run(ctx: StepContext) -> StepResult:
        cfg = config_of(ctx.config)
        try:
            names = planned_checks(cfg, kind, ctx.params)
        except ValueError as e:
            raise StepFailed(str(e)) from None
        specs = build_specs(cfg, names)
        budget = max(1.0, ctx.remaining() - MARGIN_S)
        for spec in specs:  # every check reports before the step's own deadline kills it
            spec.timeout_s = min(spec.timeout_s, budget)
        rc_sha = ctx.facts.get("rc_sha")
        report = run_checks(
            specs, rc_tag=ctx.facts.get("rc_tag"), rc_sha=rc_sha, secrets=dict(ctx.secrets),
            on_result=lambda r: ctx.emit("check", {**r.as_dict(), "rc_sha": rc_sha}),
            progress=lambda name, msg: ctx.progress(f"{name}: {msg}"))
        sha = report.rc_sha
        if sha != rc_sha:  # resolved from the tag while the checks ran: tie them all to it
            ctx.emit("rc_sha", {"rc_sha": sha})
        prior = ctx.facts.get(FACTS_KEY) or {}
        statuses = dict(prior.get("checks") or {}) if prior.get("rc_sha") == sha else {}
        statuses.update({n: r.status.value for n, r in report.results.items()})
        expected = expected_checks(cfg, kind)
        merged = {n: statuses[n] for n in expected if n in statuses}
        facts = {**report.facts, "rc_sha": sha, FACTS_KEY: {"rc_sha": sha, "checks": merged}}
        counts = {s: sum(1 for r in report.results.values() if r.status is s) for s in Status}
        slowest = max(report.results.values(), key=lambda r: r.duration_s, default=None)
        tally = " ".join(f"{n} {s.icon}" for s, n in counts.items() if n)
        took = f"{report.duration_s:.1f} s" + (
            f", slowest {slowest.name} {slowest.duration_s:.1f} s" if slowest else "")
        red = [r.line for r in report.results.values() if r.status.value in RED]
        red += [f"❌ {n}: failed in an earlier run of this preflight" for n in expected
                if n not in report.results and merged.get(n) in RED]
        missing = [n for n in expected if n not in merged]
        if red or missing:
            why = "; ".join(red + ([f"not run yet for this RC: {', '.join(missing)}"]
                                   if missing else []))
            raise StepFailed(f"preflight is red: {why}", facts=facts)
        off = not_configured(cfg, kind)
        return StepResult(summary=f"preflight green: {len(report.results)} check(s) "
                                  f"({tally}) in {took}" + (
                                      f"; not configured (not in [preflight] checks): "
                                      f"{', '.join(off)}" if off else ""), facts=facts)

    run.__doc__ = f"Preflight: {kind}"
    return run


def _register() -> None:
    REGISTRY[ALL] = Registered(ALL, _make(ALL), True,
                               "every preflight check, concurrently, as one step")
    for kind, name in KIND_TO_CHECK.items():
        REGISTRY[kind] = Registered(kind, _make(kind), True, f"the {name} preflight check")


_register()
