"""What every try of `golive config check` shares: the settings it reads, the timeouts, the
"off" line of a section that is not configured, and the rule that a try that raises is one ❌."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bot.checkline import Check
from bot.settings import Settings

HTTP_TIMEOUT_S = 5.0
DB_TIMEOUT_S = 5
DOCKER_TIMEOUT_S = 15.0
COMPOSE_TIMEOUT_S = 30.0
MIGRATION_TIMEOUT_S = 90.0
SENTINEL_TAG = "golive-config-check"
"""What the tag variables are set to while the compose file is parsed: the configured
services' images must then end in it (proof the file reads the variable)."""

Try = Callable[[], list[Check]]


def first(e: BaseException | str) -> str:
    text = str(e).strip()
    return (text.splitlines() or [type(e).__name__])[0][:300]


def off(what: str, needed: bool, where: str) -> Check:
    """A section that is not configured: ⚠️ when the runbook needs it, else a plain "off"."""
    if needed:
        return Check(True, f"{what}: off — the runbook needs it; add {where}", warn=True)
    return Check(True, f"{what}: off (not configured)", off=True)


def safe(fn: Try) -> list[Check]:
    """A try that raises is one ❌ line, never a traceback."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - an unexpected error is a finding, not a crash
        name = getattr(fn, "__name__", "try").replace("_", " ")
        return [Check(False, f"{name}: could not be tried ({type(e).__name__}: {first(e)})",
                      "correct that section of the config")]


class ReadsContext:
    """What every group of tries reads from its one context (the target, the config, where the
    config is, the secrets, the URLs that did not answer), kept on the context, not copied."""

    def __init__(self, ctx: TryContext) -> None:
        self.ctx = ctx

    @property
    def target(self) -> Any:
        return self.ctx.target

    @property
    def cfg(self) -> Any:
        return self.ctx.cfg

    @property
    def where(self) -> Any:
        return self.ctx.where

    @property
    def secrets(self) -> Any:
        return self.ctx.secrets

    @property
    def down(self) -> set[str]:
        return self.ctx.down


class TryContext:
    """One settings object as the tries read it: the target, the runbook's step kinds, the
    target URLs that did not answer, and the secrets."""

    def __init__(self, settings: Settings, kinds: Iterable[str] = (),
                 down: Iterable[str] = ()) -> None:
        self.settings = settings
        self.down = set(down)
        """``public_url`` / ``internal_url`` when it did not answer (already one ❌)."""
        self.cfg = settings.config
        self.target = settings.config.target
        self.where = settings.config_path or "the config"
        self.kinds = set(kinds)
        self.secrets = settings.secrets()

    def needs(self, *kinds: str) -> bool:
        return any(k in self.kinds or any(x.startswith(k + ".") for x in self.kinds)
                   for k in kinds)

    def compose_deployer(self) -> Any | None:
        from runbook.target_deployers import ComposeDeployerConfig

        d = getattr(self.target, "deployer", None)
        return d if isinstance(d, ComposeDeployerConfig) else None

    def http(self):
        from runbook.adapters.http import client

        probe = self.target.probe.model_copy(update={"timeout_s": min(
            self.target.probe.timeout_s, HTTP_TIMEOUT_S)})
        return client(probe)
