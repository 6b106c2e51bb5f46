"""The application's tries: the smoke script can run, the health path answers 2xx and its
contract holds (and the health watch's URL answers), one login and its dashboard, the
maintenance and traffic switches answer (never toggled)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from bot.checkline import Check
from bot.tries.common import ReadsContext, TryContext, first, off
from bot.tries.deployer import DeployerTries


class AppTries(ReadsContext):
    """The running application and its switches, read-only."""

    def __init__(self, ctx: TryContext, deployer: DeployerTries) -> None:
        super().__init__(ctx)
        self.deployer = deployer

    def smoke(self) -> list[Check]:
        s = self.target.smoke
        if s is None:
            return [off("smoke script", self.ctx.needs("smoke"), "[target.smoke]")]
        path = Path(s.path)
        shown = path if path.is_absolute() else f"{path} (from {Path.cwd()})"
        if not path.is_file():
            return [Check(False, f"smoke script {shown}: no such file",
                          f"correct [target.smoke] path in {self.where}")]
        interpreter = list(getattr(s, "interpreter", None) or [])
        if interpreter:
            found = shutil.which(interpreter[0])
            if found is None:
                return [Check(False, f"smoke script {shown}: its interpreter "
                                     f"{interpreter[0]!r} is not on the bot's PATH",
                              f"install it, or correct [target.smoke] interpreter in "
                              f"{self.where}")]
            return [Check(True, f"smoke script {shown}: exists, runs with {found}")]
        if not os.access(path, os.X_OK):
            return [Check(False, f"smoke script {shown}: not executable",
                          f"`chmod +x {path}` (with a #! line), or set [target.smoke] "
                          "interpreter")]
        with path.open("rb") as f:
            head = f.readline(200)
        if head.startswith(b"#!"):
            argv = head[2:].decode(errors="replace").split()
            if argv and not (Path(argv[0]).is_file() and os.access(argv[0], os.X_OK)):
                return [Check(False, f"smoke script {shown}: its #! interpreter {argv[0]} "
                                     "does not exist on the bot's host",
                              "correct the #! line, or set [target.smoke] interpreter")]
            how = " ".join(argv)
        else:
            how = "itself (a binary)"
        return [Check(True, f"smoke script {shown}: exists and is executable (runs by {how})")]

    def health(self) -> list[Check]:
        import httpx

        h = getattr(self.target, "health", None)
        if h is None or not getattr(h, "path", None):
            return [off("health", self.ctx.needs("health"), "[target.health]")]
        base = self.target.internal_url
        url = base + h.path
        if "internal_url" in self.down:
            return [Check(False, f"health {url}: not tried (internal_url does not answer)",
                          skipped=True)]
        with self.ctx.http() as http:
            try:
                r = http.get(url)
            except httpx.HTTPError as e:
                return [Check(False, f"health {url}: does not answer ({type(e).__name__})",
                              f"start the stack, or correct [target] internal_url in "
                              f"{self.where}")]
            if r.status_code == 404:
                return [Check(False, f"health {url}: HTTP 404, no such path",
                              f"correct [target.health] path in {self.where} (the app's "
                              "health endpoint, e.g. /healthz)")]
            if not 200 <= r.status_code < 300:
                return [Check(False, f"health {url}: HTTP {r.status_code} (expected 2xx)",
                              "make the app healthy, or correct [target.health] path")]
            problem = health_contract(http, base, h)
        if problem:
            return [Check(False, f"health {url}: answers HTTP {r.status_code}, but the contract "
                                 f"does not hold: {problem}",
                          f"correct [target.health] (expect, fields) in {self.where} to match "
                          "what the app answers")]
        checks = [Check(True, f"health {url}: HTTP {r.status_code}, the contract holds")]
        watch = getattr(self.cfg.watches, "health", None)
        if watch is not None and watch.enabled:  # after the health line: one cause, one ❌
            checks.append(self._health_watch(watch))
        return checks

    def login(self) -> list[Check]:
        from runbook.adapters.http import ProbeError, check_admin_login

        login = getattr(self.target, "admin_login", None)
        if login is None or not getattr(login, "path", None):
            return [off("login", False, "[target.admin_login]")]
        url = self.target.internal_url + login.path
        if "internal_url" in self.down:
            return [Check(False, f"login {url}: not tried (internal_url does not answer)",
                          skipped=True)]
        with self.ctx.http() as http:
            try:
                how = check_admin_login(http, self.target.internal_url, login,
                                        secrets=self.secrets)
            except ProbeError as e:
                return [Check(False, f"login {url}: {first(e)}",
                              f"correct [target.admin_login] (path, username, the password's "
                              f"variable) in {self.where}")]
        return [Check(True, f"login {url}: {how}")] + self.dashboard()

    def dashboard(self) -> list[Check]:
        """The protected page the health step opens with the login's session."""
        from runbook.adapters.http import ProbeError, check_dashboard, login_session

        dash = getattr(self.target, "dashboard", None)
        if dash is None or not getattr(dash, "path", None):
            return []
        base = self.target.internal_url
        with self.ctx.http() as http:
            try:
                login_session(http, base, self.target.admin_login, "dashboard",
                              secrets=self.secrets)
                how = check_dashboard(http, base, dash)
            except ProbeError as e:
                return [Check(False, f"dashboard {base + dash.path}: {first(e)}",
                              f"correct [target.dashboard] (path, expect_text) in "
                              f"{self.where}")]
        return [Check(True, f"dashboard {base + dash.path}: {how}")]

    def switches(self) -> list[Check]:
        out = [self._switch("maintenance", self.target.maintenance, self.ctx.needs("maintenance"))]
        if self.target.traffic is not None:
            out.append(self._switch("traffic", self.target.traffic, False))
        return out

    def _switch(self, label: str, switch: Any, needed: bool) -> Check:
        import httpx

        from runbook.target_switches import CommandSwitch, ComposeServiceSwitch, HttpSwitch

        if switch is None:
            if label == "maintenance":
                return off("maintenance switch", needed, "[target.maintenance]")
            return Check(True, "traffic switch: off (opening traffic turns maintenance off)",
                         off=True)
        if isinstance(switch, HttpSwitch):
            try:
                with self.ctx.http() as http:
                    r = http.get(switch.url)
            except httpx.HTTPError as e:
                return Check(False, f"{label} switch {switch.url}: does not answer "
                                    f"({type(e).__name__})",
                             f"start the stack, or correct [target.{label}] url in {self.where}")
            if r.status_code == 404 or r.status_code >= 500:
                return Check(False, f"{label} switch {switch.url}: GET answers HTTP "
                                    f"{r.status_code}",
                             f"correct [target.{label}] url in {self.where}")
            return Check(True, f"{label} switch {switch.url}: answers (GET: HTTP "
                               f"{r.status_code}; not toggled)")
        if isinstance(switch, CommandSwitch):
            for state, argv in (("on", switch.on), ("off", switch.off)):
                exe = argv[0] if argv else ""
                if not exe or not (shutil.which(exe) or (Path(exe).is_file()
                                                         and os.access(exe, os.X_OK))):
                    return Check(False, f"{label} switch: the {state} command {exe!r} cannot "
                                        "be run on the bot's host",
                                 f"install it, or correct [target.{label}] {state} in "
                                 f"{self.where}")
            return Check(True, f"{label} switch: commands {switch.on[0]} / {switch.off[0]} "
                               "found (not run)")
        if isinstance(switch, ComposeServiceSwitch):
            services = self.deployer.compose_services()
            if services is None:
                return Check(False, f"{label} switch: compose service {switch.service!r} not "
                                    "checked (the compose file did not parse)", skipped=True)
            if switch.service not in services:
                return Check(False, f"{label} switch: the compose file has no service "
                                    f"{switch.service!r}",
                             f"correct [target.{label}] service in {self.where}")
            return Check(True, f"{label} switch: compose service {switch.service!r} exists "
                               "(not started)")
        return Check(True, f"{label} switch: kind {getattr(switch, 'kind', '?')} (not tried)")

    def _health_watch(self, watch: Any) -> Check:
        """The health watch's URL (through the ingress by default) answers 2xx today."""
        import httpx

        path = getattr(watch, "path", None) or getattr(self.target.health, "path", None)
        if not path:
            return off("watch health", False, "[watches.health] path or [target.health] path")
        base = getattr(watch, "base", "public")
        if f"{base}_url" in self.down:
            return Check(False, f"watch health: not tried ({base}_url does not answer)",
                         skipped=True)
        url = (self.target.public_url if base == "public" else self.target.internal_url) + path
        try:
            with self.ctx.http() as http:
                r = http.get(url)
        except httpx.HTTPError as e:
            return Check(False, f"watch health {url}: does not answer ({type(e).__name__})",
                         f"correct [watches.health] base / path, or [target] {base}_url, in "
                         f"{self.where}")
        if not 200 <= r.status_code < 300:
            return Check(False, f"watch health {url}: HTTP {r.status_code} (expected 2xx)",
                         f"correct [watches.health] base / path in {self.where} (the "
                         f"{base} URL must route to the health endpoint)")
        return Check(True, f"watch health {url}: HTTP {r.status_code}")


def health_contract(http: Any, base: str, cfg: Any) -> str:
    """The health step's own contract check against today's answer ('' when it holds).

    Today's answer is the release that runs now, so the deploy-time expectations (version from
    the tag, revision from the image) are not applied; the configured fields and ``expect`` are.
    """
    from runbook.adapters.http import ProbeError, check_health
    from runbook.health_contract import MISSING, compact, dig

    try:
        body = check_health(http, base, cfg)
    except ProbeError as e:
        return first(e)
    absent = [f"{name} {path!r}" for name in ("version_field", "revision_field", "schema_field")
              if (path := getattr(cfg, name, None)) and dig(body, path) is MISSING]
    if absent:
        return (f"{', '.join(absent)} not in today's answer {compact(body, 200)} (the night "
                "compares the deployed release there)")
    return ""
