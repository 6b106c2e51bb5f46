"""Check 6, the team's own scripts (e.g. ``scripts/verify_prod_env.py``) as extra checks, on
the host or in the app container: the exit code and the tail of the output, secrets masked.

On the host a script gets its configured ``env``, the bot's variables it names in
``env_passthrough``, and PATH, HOME, LANG, LC_ALL, TZ and TMPDIR: never the bot's whole
environment (its tokens and database URLs)."""

from __future__ import annotations

import os
import subprocess

from runbook.adapters.redact import tail
from runbook.checks.base import CheckContext, CheckFailed, PreflightResult, Status, worst
from runbook.checks.sections.team_scripts import TeamScript

NAME = "team_scripts"
_ENV_SECRET = ("PASSWORD", "TOKEN", "SECRET", "DSN", "API_KEY", "PRIVATE", "DATABASE_URL")
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def script_env(script: TeamScript, environ: dict[str, str] | None = None) -> dict[str, str]:
    """What a host script's environment holds: the base names, its passthrough, its env."""
    source = os.environ if environ is None else environ
    names = (*BASE_ENV, *script.env_passthrough)
    return {**{n: source[n] for n in names if n in source}, **script.env}


def run_script(script: TeamScript, timeout: float) -> tuple[int | None, str]:
    """(exit code or None on timeout, combined output)."""
    if script.where == "container":
        return _in_container(script, timeout)
    env = script_env(script)
    try:
        r = subprocess.run(script.command, env=env, capture_output=True, text=True,
                           timeout=timeout, check=False, cwd=script.cwd)
    except subprocess.TimeoutExpired as e:
        out = e.stdout or b""
        return None, out.decode(errors="replace") if isinstance(out, bytes) else out
    except OSError as e:
        return 127, f"cannot run {script.command[0]}: {e.strerror or e}"
    return r.returncode, (r.stdout or "") + (r.stderr or "")


def _in_container(script: TeamScript, timeout: float) -> tuple[int | None, str]:
    import docker
    from docker.errors import DockerException, NotFound

    try:
        client = (docker.DockerClient(base_url=script.docker_host, timeout=int(timeout) + 5)
                  if script.docker_host else docker.from_env(timeout=int(timeout) + 5))
        try:
            container = client.containers.get(script.container or "")
            r = container.exec_run(script.command, environment=script.env, demux=False)
        finally:
            client.close()
    except NotFound:
        return 2, f"no container named {script.container}"
    except DockerException as e:
        return 2, f"Docker: {str(e)[:200]}"
    out = r.output.decode(errors="replace") if isinstance(r.output, bytes) else str(r.output)
    return r.exit_code, out


def run(ctx: CheckContext) -> PreflightResult:
    """Run each configured script; fail on a non-zero exit or a timeout."""
    scripts: list[TeamScript] = ctx.config or []
    if not scripts:
        raise CheckFailed("not configured: add [[preflight.team_scripts]] entries (name, "
                          "command) to the golive config (see golive.example.toml), or leave "
                          "team_scripts out of [preflight] checks")
    parts: list[tuple[Status, str]] = []
    details: list[str] = []
    for s in scripts:
        for k, v in s.env.items():
            if any(w in k.upper() for w in _ENV_SECRET):
                ctx.add_secret(f"team_scripts.{s.name}.{k}", v)
        ctx.say(f"running {s.name}")
        code, out = run_script(s, min(s.timeout_s, ctx.remaining()))
        shown = ctx.mask(tail(out, 15, 1500))
        if code is None:
            parts.append((Status.FAIL, f"{s.name} timed out after {s.timeout_s:g} s"))
        elif code != 0:
            last = (shown.strip().splitlines() or [""])[-1][:160]
            parts.append((Status.FAIL, f"{s.name} exited {code}" + (f": {last}" if last else "")))
        else:
            parts.append((Status.OK, f"{s.name} ok"))
        details.append(f"{s.name} ({s.where}): exit {code if code is not None else 'timeout'}")
        details += [f"  {line}" for line in shown.splitlines()]
    status = worst([p for p, _ in parts])
    shown_parts = [f for p, f in parts if p != Status.OK] or [f for _, f in parts]
    return PreflightResult(NAME, status, "; ".join(shown_parts), details)
