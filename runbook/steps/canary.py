"""The ``canary`` step kind: run by people in a Slack thread, not by the worker.

``/golive canary`` opens the canary (bot/canary/); its GO or NO-GO is recorded as this step's
execution (succeeded or failed), so the steps that require ``canary`` wait for a GO. Listed
as available so status shows it as the next step, never as "not built".
"""

from runbook.steps.base import StepContext, StepFailed, StepResult, step_kind


@step_kind("canary", description="real-money canary with a threaded sign-off (/golive canary)")
def canary(ctx: StepContext) -> StepResult:
    """Never queued by the bot; refuse clearly if something queues it anyway."""
    raise StepFailed("the canary runs in its Slack thread: open it with `/golive canary`")
