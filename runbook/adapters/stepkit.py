"""Glue shared by the step kinds: masked context, target lookup, deployer/prober factories."""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runbook.adapters import http
from runbook.adapters.compose import compose_cli
from runbook.adapters.docker import ComposeDeployer
from runbook.adapters.http import Retrier
from runbook.adapters.redact import mask
from runbook.context import StepContext, StepResult
from runbook.errors import StepFailed, StepNotAvailable
from runbook.target import TargetConfig
from runbook.target_deployers import ComposeDeployerConfig, KubernetesDeployerConfig

# Tests (and a future kubernetes deployer) may swap how deployers are built.
DeployerFactory = Callable[[TargetConfig, StepContext], Any]


def target_of(ctx: StepContext) -> TargetConfig:
    t = ctx.target
    if isinstance(t, TargetConfig):
        return t
    if isinstance(t, dict):
        return TargetConfig.model_validate(t)
    raise StepFailed("no target configured: add a [target] table to the golive config")


def secrets_of(ctx: StepContext) -> dict[str, str]:
    out = dict(ctx.secrets or {})
    if isinstance(ctx.target, TargetConfig):
        out.update(ctx.target.secrets())
    return out


def masked_step(fn: Callable[[StepContext], StepResult]) -> Callable[[StepContext], StepResult]:
    """Mask secrets in progress, result and failure messages of a step."""

    @functools.wraps(fn)
    def run(ctx: StepContext) -> StepResult:
        secrets = secrets_of(ctx)
        raw_progress = ctx.progress

        def progress(line: str) -> None:
            raw_progress(mask(line, secrets))

        safe = dataclasses.replace(ctx, progress=progress, secrets=secrets)
        try:
            result = fn(safe)
        except StepNotAvailable:
            raise
        except StepFailed as e:
            raise type(e)(mask(e.message, secrets), facts=e.facts) from None
        except Exception as e:  # noqa: BLE001 - an adapter bug must not leak a secret
            raise StepFailed(mask(f"{type(e).__name__}: {e}", secrets)[:500]) from None
        return StepResult(mask(result.summary, secrets), result.facts,
                          mask(result.detail, secrets))

    return run


def compose_deployer(target: TargetConfig, ctx: StepContext) -> ComposeDeployer:
    if target.deployer is None:
        raise StepFailed("no deployer configured: add a [target.deployer] table (compose_file, "
                         "project, registry and the services that take the release image)")
    if not isinstance(target.deployer, ComposeDeployerConfig):
        raise StepFailed(f"deployer kind {target.deployer.kind!r} is not available yet")
    return ComposeDeployer(target.deployer, secrets=secrets_of(ctx), clock=ctx.clock,
                           sleep=ctx.sleep, cwd=Path.cwd())


deployer_factory: DeployerFactory = compose_deployer


def kubernetes_deployer(target: TargetConfig, ctx: StepContext) -> Any:
    from runbook.adapters.kubernetes.deployer import KubernetesDeployer

    assert isinstance(target.deployer, KubernetesDeployerConfig)
    return KubernetesDeployer(target.deployer, secrets=secrets_of(ctx), clock=ctx.clock,
                              sleep=ctx.sleep, cwd=Path.cwd())


def is_kubernetes(ctx: StepContext) -> bool:
    return isinstance(target_of(ctx).deployer, KubernetesDeployerConfig)


def make_deployer(ctx: StepContext) -> Any:
    target = target_of(ctx)
    if isinstance(target.deployer, KubernetesDeployerConfig):
        return kubernetes_deployer(target, ctx)
    return deployer_factory(target, ctx)


def prepare_step_processes(target: Any) -> None:
    """In the process that forks step processes, before it forks them: what each of them
    would otherwise work out for itself, so they inherit it. The TLS contexts of the probes
    (~50 ms a client, ``http.before_fork``: call it on the thread that forks) and, in a
    thread of its own, which compose CLI works (``docker compose version``, ~0.1 s a step).
    A failure raises or is dropped: a step process then finds out for itself."""
    http.before_fork()
    t = TargetConfig.model_validate(target) if isinstance(target, dict) else target
    deployer = getattr(t, "deployer", None)
    if isinstance(deployer, ComposeDeployerConfig) and not deployer.compose_command:
        def look_up() -> None:
            try:
                compose_cli(deployer.docker_host)
            except StepFailed:
                pass  # the step says so when it runs

        threading.Thread(target=look_up, name="golive-compose-lookup", daemon=True).start()


def retrier(ctx: StepContext, target: TargetConfig) -> Retrier:
    return Retrier(target.probe, ctx.deadline, clock=ctx.clock, sleep=ctx.sleep)


def param_bool(ctx: StepContext, name: str, default: bool = False) -> bool:
    v = ctx.params.get(name, default)
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


def remaining_or_fail(ctx: StepContext, what: str) -> float:
    left = ctx.remaining()
    if left <= 0:
        raise StepFailed(f"step timed out before {what}")
    return left


def make_migrator(ctx: StepContext, target: TargetConfig) -> Any:
    """The configured migrator; compose-run uses the image that is deployed now."""
    from runbook.adapters.migrations import AlembicApiMigrator, ComposeRunMigrator

    m = target.migrations
    if m.mode == "kubernetes-job" or (m.mode != "alembic-api" and isinstance(
            target.deployer, KubernetesDeployerConfig)):
        from runbook.adapters.kubernetes.jobs import KubernetesJobMigrator

        if not isinstance(target.deployer, KubernetesDeployerConfig):
            raise StepFailed("migrations.mode = 'kubernetes-job' needs a [target.deployer] "
                             "of kind 'kubernetes'")
        return KubernetesJobMigrator(m, make_deployer(ctx), dict(ctx.facts), ctx.remaining,
                                     ctx.progress)
    if m.mode == "alembic-api":
        url = m.database_url.get_secret_value() if m.database_url else ""
        if not url:
            raise StepFailed("migrations.mode = 'alembic-api' needs migrations.database_url")
        return AlembicApiMigrator(m, url, secrets_of(ctx))
    deployer = make_deployer(ctx)
    tag = ctx.facts.get("deployed_tag")
    tag_env = deployer.tag_env(str(tag)) if tag else deployer.current_tag_env()
    return ComposeRunMigrator(m, deployer, tag_env, ctx.remaining)
