"""``maintenance``: turn the maintenance page on or off, then verify what the public sees."""

from __future__ import annotations

from runbook.adapters import stepkit
from runbook.adapters.switches import flip, verify_maintenance
from runbook.steps.base import StepContext, StepFailed, StepResult, step_kind


def set_maintenance(ctx: StepContext, on: bool) -> StepResult:
    """Flip the maintenance switch and verify it (shared with ``traffic``)."""
    target = stepkit.target_of(ctx)
    if target.maintenance is None:
        raise StepFailed("no maintenance switch configured: add [target.maintenance]")
    state = "on" if on else "off"
    ctx.progress(f"turning maintenance {state}")
    did = flip(target.maintenance, on, label="maintenance", progress=ctx.progress,
               secrets=ctx.secrets, timeout=stepkit.remaining_or_fail(ctx, "the switch"),
               deployer_factory=lambda: stepkit.make_deployer(ctx))
    verified = verify_maintenance(target, stepkit.retrier(ctx, target), on, ctx.progress)
    return StepResult(
        summary=f"maintenance {state}: {verified}",
        facts={"maintenance": state},
        detail=f"{did}\nverified: {verified}",
    )


@step_kind("maintenance", description="Maintenance page on/off (param mode), verified publicly")
@stepkit.masked_step
def run(ctx: StepContext) -> StepResult:
    mode = str(ctx.params.get("mode", "")).lower()
    if mode not in ("on", "off"):
        raise StepFailed(f"maintenance mode must be 'on' or 'off', got {mode or 'nothing'!r}")
    return set_maintenance(ctx, mode == "on")
