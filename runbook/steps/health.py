"""``health``: health JSON, admin login and dashboard, retried until the step deadline."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

from runbook.adapters import stepkit
from runbook.adapters.http import (
    MismatchStreak,
    ProbeError,
    check_admin_login,
    check_dashboard,
    check_health,
    client,
    describe_health,
    login_session,
)
from runbook.steps.base import StepContext, StepFailed, StepResult, step_kind
from runbook.target import TargetConfig


def base_url(ctx: StepContext, target: TargetConfig) -> str:
    """``params.via = "public"`` probes through the ingress; default is the app directly."""
    via = str(ctx.params.get("via", "internal")).lower()
    if via not in ("internal", "public"):
        raise StepFailed(f"health via must be 'internal' or 'public', got {via!r}")
    url = target.public_url if via == "public" else target.internal_url
    if not url:
        raise StepFailed(f"[target] {via}_url is not set: set it to the stack's URL")
    return url


def run_checks(ctx: StepContext, target: TargetConfig,
               checks: list[tuple[str, Callable[[], str]]]) -> list[str]:
    """Run each check with retries until the step deadline; one summary line per check."""
    lines: list[str] = []
    retry = stepkit.retrier(ctx, target)
    for name, check in checks:
        ctx.progress(f"checking {name}")
        try:
            result = retry.run(check, on_retry=lambda n, e, name=name: ctx.progress(
                f"{name}: attempt {n} failed ({e}); retrying"))
        except ProbeError as e:
            passed = "\n".join(lines)
            raise StepFailed(
                f"{name} not green after {retry.attempts_made} attempt(s): {e}"
                + (f"\npassed before it:\n{passed}" if passed else "")
            ) from None
        lines.append(f"{name}: ok ({result})")
        ctx.progress(lines[-1])
    return lines


def _secrets(ctx: StepContext) -> MutableMapping[str, str] | None:
    """Where a login registers its token for masking (the masked step's own dict)."""
    return ctx.secrets if isinstance(ctx.secrets, MutableMapping) else None


def health_checks(ctx: StepContext, target: TargetConfig, http, base: str
                  ) -> list[tuple[str, Callable[[], str]]]:
    """The health contract and (when configured) the login, as named checks."""
    h = target.health
    if not h.path:
        raise StepFailed("no health path configured: set [target.health] path (and the "
                         "contract: expect, version_field, revision_field, schema_field)")
    tag = ctx.facts.get("deployed_tag") if h.expect_version_from_tag else None
    rev = ctx.facts.get("deployed_revision") if h.expect_revision_from_deploy else None
    schema = ctx.facts.get("alembic_after")
    streak = MismatchStreak(h.mismatch_repeats)

    def health() -> str:
        return describe_health(check_health(http, base, h, expect_version=tag,
                                            expect_revision=rev, expect_schema=schema,
                                            streak=streak), h)

    checks = [(f"health {h.path}", health)]
    login = target.admin_login
    if login.path:
        checks.append((f"admin login {login.path}",
                       lambda: check_admin_login(http, base, login, _secrets(ctx))))
    return checks


@step_kind("health", description="Health JSON, admin login and dashboard until the deadline")
@stepkit.masked_step
def run(ctx: StepContext) -> StepResult:
    target = stepkit.target_of(ctx)
    base = base_url(ctx, target)
    with client(target.probe) as http:
        checks = health_checks(ctx, target, http, base)
        login = target.admin_login

        def dashboard() -> str:
            login_session(http, base, login, "dashboard", _secrets(ctx))
            return check_dashboard(http, base, target.dashboard)

        if target.dashboard.path:
            checks.append((f"dashboard {target.dashboard.path}", dashboard))
        lines = run_checks(ctx, target, checks)
    return StepResult(summary="\n".join(lines), facts={"health": "green"}, detail="\n".join(lines))
