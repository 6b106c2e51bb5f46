"""``smoke``: run the configured smoke script against the target; fail on a non-zero exit."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

from runbook.adapters import stepkit
from runbook.adapters.redact import mask, tail
from runbook.steps.base import StepContext, StepFailed, StepResult, step_kind


def _cannot_run(e: OSError, script: Path, interpreter: list[str]) -> str:
    """Why the script did not start, and what to change."""
    if interpreter:
        return (f"smoke script cannot run: interpreter {interpreter[0]!r}: "
                f"{e.strerror or e}; fix [target.smoke] interpreter")
    if e.errno == errno.ENOEXEC:
        return (f"smoke script {script} has no shebang line (e.g. #!/usr/bin/env python3): add "
                "one, or set [target.smoke] interpreter")
    first = ""
    try:
        with script.open("rb") as f:
            first = f.readline(200).decode(errors="replace").strip()
    except OSError:
        pass
    shebang = f" (its shebang: {first})" if first.startswith("#!") else ""
    return (f"smoke script {script} cannot run: {e.strerror or e}{shebang}; is its "
            "interpreter installed on the bot's host? Or set [target.smoke] interpreter")


@step_kind("smoke", description="Run the smoke script (params.optional allows none configured)")
@stepkit.masked_step
def run(ctx: StepContext) -> StepResult:
    target = stepkit.target_of(ctx)
    smoke = target.smoke
    if smoke is None:
        if stepkit.param_bool(ctx, "optional"):
            return StepResult(summary="no smoke script configured (step is optional)",
                              facts={"smoke": "skipped"})
        raise StepFailed("no smoke script configured: add [target.smoke] "
                         "(or set params.optional = true on this step)")
    script = Path(smoke.path)
    if not script.is_file():
        raise StepFailed(f"smoke script not found: {script}")
    fill = {"public_url": target.public_url, "internal_url": target.internal_url,
            "deployed_tag": str(ctx.facts.get("deployed_tag") or "")}
    try:
        args = [a.format(**fill) for a in smoke.args]
        extra_env = {k: v.format(**fill) for k, v in smoke.env.items()}
    except (KeyError, IndexError, ValueError) as e:
        raise StepFailed(f"smoke args/env: unknown placeholder {e}") from None
    if not smoke.interpreter and not os.access(script, os.X_OK):
        raise StepFailed(f"smoke script {script} is not executable: make it executable "
                         "(chmod +x; it runs by its shebang line) or set [target.smoke] "
                         "interpreter, e.g. [\"bash\"]")
    argv = [*smoke.interpreter, str(script), *args]
    timeout = min(smoke.timeout_s, stepkit.remaining_or_fail(ctx, "the smoke script"))
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update({k: v for k, v in extra_env.items() if v != ""})
    ctx.progress(f"running {script.name} {' '.join(args)} (timeout {timeout:.0f}s)")
    try:
        r = subprocess.run(argv, capture_output=True, text=True, shell=False, timeout=timeout,
                           env=env, check=False)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise StepFailed(mask(f"smoke script timed out after {timeout:.0f}s:\n"
                              f"{tail(out, 8, 1000)}", ctx.secrets)) from None
    except OSError as e:
        raise StepFailed(mask(_cannot_run(e, script, smoke.interpreter), ctx.secrets)) from None
    output = mask((r.stdout or "") + (("\n" + r.stderr) if r.stderr else ""), ctx.secrets)
    if r.returncode != 0:
        raise StepFailed(f"smoke script exited {r.returncode}:\n{tail(output, 8, 1200)}",
                         facts={"smoke": "failed"})
    last = tail(output, 1, 200) or "no output"
    return StepResult(summary=f"smoke passed: {last}", facts={"smoke": "passed"},
                      detail=tail(output, 60, 6000))
