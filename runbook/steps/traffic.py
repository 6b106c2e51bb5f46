"""``traffic``: open or close public traffic, then verify what the public sees."""

from __future__ import annotations

from runbook.adapters import stepkit
from runbook.adapters.switches import flip, verify_traffic
from runbook.steps.base import StepContext, StepFailed, StepResult, step_kind
from runbook.steps.maintenance import set_maintenance


@step_kind("traffic", description="Open/close public traffic (param action), verified publicly")
@stepkit.masked_step
def run(ctx: StepContext) -> StepResult:
    action = str(ctx.params.get("action", "")).lower()
    if action not in ("open", "close"):
        raise StepFailed(f"traffic action must be 'open' or 'close', got {action or 'nothing'!r}")
    open_ = action == "open"
    target = stepkit.target_of(ctx)
    if target.traffic is None:
        # No separate ingress switch: traffic flows exactly when maintenance is off.
        res = set_maintenance(ctx, not open_)
        return StepResult(
            summary=f"traffic {'open' if open_ else 'closed'} (maintenance "
                    f"{'off' if open_ else 'on'}): {res.summary.split(': ', 1)[-1]}",
            facts={**res.facts, "traffic": "open" if open_ else "closed"},
            detail=res.detail,
        )
    ctx.progress(f"{'opening' if open_ else 'closing'} traffic")
    did = flip(target.traffic, open_, label="traffic", progress=ctx.progress,
               secrets=ctx.secrets, timeout=stepkit.remaining_or_fail(ctx, "the switch"),
               deployer_factory=lambda: stepkit.make_deployer(ctx))
    facts = {"traffic": "open" if open_ else "closed"}
    if open_ and target.maintenance is not None:
        # Nothing else lifts the maintenance page the cutover (or rollback) put up: with the
        # page still on, open ingress would only show it. Ingress first, so the switch that
        # lifts the page can live behind it (an edge that serves the page often does).
        did += "\n" + flip(target.maintenance, False, label="maintenance",
                           progress=ctx.progress, secrets=ctx.secrets,
                           timeout=stepkit.remaining_or_fail(ctx, "the maintenance switch"),
                           deployer_factory=lambda: stepkit.make_deployer(ctx))
        facts["maintenance"] = "off"
    verified = verify_traffic(target, stepkit.retrier(ctx, target), open_, ctx.progress)
    return StepResult(
        summary=f"traffic {'open' if open_ else 'closed'}: {verified}",
        facts=facts,
        detail=f"{did}\nverified: {verified}",
    )
