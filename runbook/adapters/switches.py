"""Maintenance and traffic switches: flip (HTTP call, command, compose service), then verify."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from runbook.adapters.http import (
    ProbeError,
    Retrier,
    check_maintenance_page,
    check_public_closed,
    check_public_open,
    client,
    tls,
)
from runbook.adapters.redact import mask, tail
from runbook.errors import StepFailed
from runbook.target import TargetConfig
from runbook.target_switches import CommandSwitch, ComposeServiceSwitch, HttpSwitch, SwitchConfig

Progress = Callable[[str], None]


def flip(
    switch: SwitchConfig,
    on: bool,
    *,
    label: str,
    progress: Progress,
    secrets: Mapping[str, str],
    timeout: float,
    deployer_factory: Callable[[], Any] | None = None,
    http: httpx.Client | None = None,
) -> str:
    """Turn ``switch`` on or off; return what was done. Raises ``StepFailed``."""
    state = "on" if on else "off"
    if isinstance(switch, HttpSwitch):
        method = switch.method if on or switch.off_method is None else switch.off_method
        body = (switch.on_body if on else switch.off_body) if switch.send_body else None
        own = http is None
        http = http or httpx.Client(timeout=min(30.0, max(1.0, timeout)), verify=tls())
        try:
            r = http.request(method, switch.url, json=body, headers=switch.auth_headers())
        except httpx.HTTPError as e:
            raise StepFailed(mask(f"{label} switch {switch.url} unreachable: "
                                  f"{type(e).__name__}: {e}", secrets)) from None
        finally:
            if own:
                http.close()
        ok = (r.status_code in switch.success_status if switch.success_status
              else 200 <= r.status_code < 300)
        if not ok and r.status_code in (401, 403):
            how = (f"the ops token in the {switch.token_header} header"
                   if switch.token is not None else "a request without a token (set token)")
            raise StepFailed(f"{label} switch {method} {switch.url} refused {how} "
                             f"(HTTP {r.status_code})")
        if not ok:
            want = (", ".join(map(str, switch.success_status)) if switch.success_status
                    else "2xx")
            raise StepFailed(mask(f"{label} switch {method} {switch.url} answered HTTP "
                                  f"{r.status_code} (expected {want}): {r.text[:200]}", secrets))
        progress(f"{label} {state}: {method} {switch.url} -> HTTP {r.status_code}")
        return f"{method} {switch.url} -> {r.status_code}"
    if isinstance(switch, CommandSwitch):
        argv = switch.on if on else switch.off
        try:
            r2 = subprocess.run(argv, capture_output=True, text=True, shell=False, check=False,
                                timeout=max(1.0, min(switch.timeout_s, timeout)))
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{label} {state} command timed out: {argv[0]}") from None
        except OSError as e:
            raise StepFailed(mask(f"{label} {state} command cannot run: {e}", secrets)) from None
        if r2.returncode != 0:
            out = tail((r2.stdout or "") + (r2.stderr or ""), 8, 800)
            raise StepFailed(mask(f"{label} {state} command exited {r2.returncode}:\n{out}",
                                  secrets))
        progress(f"{label} {state}: command {argv[0]} exited 0")
        return f"command {argv[0]} exited 0"
    if isinstance(switch, ComposeServiceSwitch):
        if deployer_factory is None:
            raise StepFailed(f"{label}: compose-service switch needs a compose deployer")
        deployer = deployer_factory()
        if on:
            deployer.start_service(switch.service, progress, timeout=timeout)
            return f"compose service {switch.service} started"
        deployer.stop_service(switch.service, progress, timeout=timeout)
        return f"compose service {switch.service} stopped"
    raise StepFailed(f"{label}: unknown switch kind")


def verify_maintenance(target: TargetConfig, retry: Retrier, on: bool, progress: Progress,
                       http: httpx.Client | None = None) -> str:
    """On: the public URL shows the maintenance page. Off: public health answers 200."""
    if not target.public_url:
        raise StepFailed("cannot verify maintenance: set [target] public_url")
    own = http is None
    http = http or client(target.probe)
    try:
        if on:
            def check() -> str:
                return check_maintenance_page(http, target.public_url, target.maintenance_page)
        else:
            def check() -> str:
                return check_public_open(http, target.public_url, target.health.path)
        try:
            return retry.run(check, on_retry=lambda n, e: progress(f"verifying: {e}"))
        except ProbeError as e:
            what = "maintenance page" if on else "public health"
            raise StepFailed(f"{what} not verified: {e}") from None
    finally:
        if own:
            http.close()


def verify_traffic(target: TargetConfig, retry: Retrier, open_: bool, progress: Progress) -> str:
    """Open: public health answers 200. Closed: it does not (maintenance page if configured)."""
    if target.traffic is None:
        return verify_maintenance(target, retry, not open_, progress)
    if not target.public_url:
        raise StepFailed("cannot verify traffic: set [target] public_url")
    with client(target.probe) as http:
        def check() -> str:
            if open_:
                return check_public_open(http, target.public_url, target.health.path)
            return check_public_closed(http, target.public_url, target.health.path)
        try:
            return retry.run(check, on_retry=lambda n, e: progress(f"verifying: {e}"))
        except ProbeError as e:
            raise StepFailed(f"traffic {'open' if open_ else 'closed'} not verified: {e}") from None
