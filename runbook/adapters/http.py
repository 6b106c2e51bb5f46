"""HTTP probes of the target: health JSON, admin login, dashboard, maintenance page.

Every check raises ``ProbeError`` with a one-line reason; ``retry`` repeats a check with
exponential backoff and jitter until it passes, the attempts run out or the deadline passes.
The clock, sleep and randomness are parameters so tests never wait for real.
"""

from __future__ import annotations

import os
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from runbook.target import AdminLogin, Dashboard, HealthCheck, MaintenancePage, Probe

T = TypeVar("T")


class ProbeError(Exception):
    """A check did not pass; the message is safe to show (no credentials)."""


@dataclass
class Retrier:
    """Exponential backoff with jitter, bounded by a deadline on an injectable clock."""

    probe: Probe
    deadline: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    attempts_made: int = field(default=0, init=False)

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def delay(self, attempt: int) -> float:
        base = min(self.probe.backoff_max_s, self.probe.backoff_initial_s * (2 ** (attempt - 1)))
        spread = base * self.probe.jitter
        return max(0.0, base - spread + 2 * spread * self.rand())

    def run(
        self,
        check: Callable[[], T],
        *,
        attempts: int | None = None,
        on_retry: Callable[[int, ProbeError], None] | None = None,
    ) -> T:
        """Call ``check`` until it returns; re-raise its last ``ProbeError`` when out of time."""
        attempt = 0
        while True:
            attempt += 1
            self.attempts_made += 1
            try:
                return check()
            except ProbeError as e:
                if attempts is not None and attempt >= attempts:
                    raise
                wait = self.delay(attempt)
                if self.remaining() <= 0:
                    raise
                if on_retry:
                    on_retry(attempt, e)
                self.sleep(min(wait, self.remaining()))


# TLS contexts for step processes, built by the worker before it forks them (``before_fork``):
# otherwise every httpx client a step makes loads the CA bundle again (~50 ms each, in every
# step process). Only forked children use them, never the process that built them, so none of
# its threads can be inside one (holding an OpenSSL lock) when it forks.
_FORK_TLS: dict[bool, ssl.SSLContext] = {}
_FORK_TLS_PID: int | None = None


def before_fork() -> None:
    """Build the contexts httpx would build (same CA settings, read now) for the children this
    process is about to fork. Idempotent; cheap after the first call."""
    global _FORK_TLS_PID
    if _FORK_TLS_PID == os.getpid():
        return
    _FORK_TLS.clear()
    for verify in (True, False):
        _FORK_TLS[verify] = httpx.create_ssl_context(verify=verify)
    _FORK_TLS_PID = os.getpid()


def tls(verify: bool = True) -> ssl.SSLContext | bool:
    """httpx's ``verify``: in a forked step process the context its parent built, else
    ``verify`` itself (httpx builds its own)."""
    if _FORK_TLS_PID is not None and os.getpid() != _FORK_TLS_PID:
        return _FORK_TLS.get(bool(verify), verify)
    return verify


def client(probe: Probe, **kw: Any) -> httpx.Client:
    return httpx.Client(timeout=probe.timeout_s, follow_redirects=False,
                        verify=tls(probe.verify_tls), **kw)


def _get(http: httpx.Client, url: str, timeout: float | None = None) -> httpx.Response:
    try:
        return http.get(url, timeout=timeout) if timeout else http.get(url)
    except httpx.TimeoutException:
        raise ProbeError(f"GET {url}: timed out") from None
    except httpx.HTTPError as e:
        raise ProbeError(f"GET {url}: {type(e).__name__}: {_first_line(str(e))}") from None


def _first_line(s: str) -> str:
    return (s.strip().splitlines() or [""])[0][:200]


def check_health(
    http: httpx.Client,
    base_url: str,
    cfg: HealthCheck,
    *,
    expect_version: str | None = None,
    expect_revision: str | None = None,
    expect_schema: str | None = None,
) -> dict[str, Any]:
    """GET the health endpoint: 200, JSON, the expected subset and (if given) version/revision."""
    url = base_url + cfg.path
    r = _get(http, url)
    if r.status_code != 200:
        raise ProbeError(f"{cfg.path}: HTTP {r.status_code} (expected 200){_why(r)}")
    try:
        body = r.json()
    except ValueError:
        raise ProbeError(f"{cfg.path}: answered 200 but not JSON") from None
    if not isinstance(body, dict):
        raise ProbeError(f"{cfg.path}: JSON is not an object")
    expected: dict[str, Any] = dict(cfg.expect)
    if expect_version is not None:
        expected["version"] = expect_version
    if expect_schema is not None:
        expected["schema"] = expect_schema
    wrong = [
        f"{k}={body.get(k)!r} (expected {v!r})" for k, v in expected.items() if body.get(k) != v
    ]
    if expect_revision and not str(body.get("revision") or "").startswith(expect_revision[:7]):
        wrong.append(f"revision={str(body.get('revision'))[:10]!r} "
                     f"(expected {expect_revision[:10]!r})")
    if wrong:
        raise ProbeError(f"{cfg.path}: " + ", ".join(wrong))
    return body


def _why(r: httpx.Response) -> str:
    """A short reason from a JSON error body (status, db, knob, error fields), if any."""
    try:
        body = r.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    keys = ("status", "db", "db_error", "schema_state", "knob", "error")
    parts = [f"{k}={body[k]}" for k in keys if body.get(k) not in (None, "")]
    return f": {', '.join(parts)}"[:200] if parts else ""


def describe_health(body: Mapping[str, Any]) -> str:
    parts = [f"status {body.get('status')}"]
    if body.get("version"):
        parts.append(f"version {body['version']}")
    if body.get("revision"):
        parts.append(f"sha {str(body['revision'])[:7]}")
    if body.get("db"):
        parts.append(f"db {body['db']}")
    if body.get("schema"):
        parts.append(f"schema {body['schema']}")
    return ", ".join(parts)


def check_admin_login(http: httpx.Client, base_url: str, cfg: AdminLogin) -> str:
    """POST the login form; pass on the configured status. Credentials are never echoed."""
    url = base_url + cfg.path
    form = {cfg.username_field: cfg.username,
            cfg.password_field: cfg.password.get_secret_value()}
    try:
        # Drop earlier sessions so an old cookie cannot make a login look good.
        http.cookies.clear()
        r = http.post(url, data=form)
    except httpx.TimeoutException:
        raise ProbeError(f"POST {cfg.path}: timed out") from None
    except httpx.HTTPError as e:
        raise ProbeError(f"POST {cfg.path}: {type(e).__name__}") from None
    if r.status_code != cfg.success_status:
        raise ProbeError(f"admin login: HTTP {r.status_code} (expected {cfg.success_status})")
    cookie = "session cookie set" if r.headers.get_list("set-cookie") else "no cookie"
    return f"HTTP {r.status_code}, {cookie}"


def check_page(http: httpx.Client, base_url: str, path: str, expect_text: str | None = None,
               expect_status: int = 200) -> str:
    r = _get(http, base_url + path)
    if r.status_code != expect_status:
        raise ProbeError(f"{path}: HTTP {r.status_code} (expected {expect_status})")
    if expect_text and expect_text not in r.text:
        raise ProbeError(f"{path}: HTTP {r.status_code} but the page lacks {expect_text!r}")
    return f"HTTP {r.status_code}" + (f", found {expect_text!r}" if expect_text else "")


def login_session(http: httpx.Client, base_url: str, cfg: AdminLogin, before: str) -> None:
    """Log in on this client (its cookie jar keeps the session) ahead of a protected page."""
    form = {cfg.username_field: cfg.username,
            cfg.password_field: cfg.password.get_secret_value()}
    try:
        http.post(base_url + cfg.path, data=form)
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        raise ProbeError(f"login before {before}: {type(e).__name__}") from None


def check_dashboard(http: httpx.Client, base_url: str, cfg: Dashboard) -> str:
    return check_page(http, base_url, cfg.path, cfg.expect_text)


def check_maintenance_page(http: httpx.Client, public_url: str, cfg: MaintenancePage) -> str:
    """The public URL answers the maintenance status and page text."""
    return check_page(http, public_url, cfg.path, cfg.expect_text, cfg.status)


def check_public_open(http: httpx.Client, public_url: str, health_path: str) -> str:
    """The public health endpoint answers 200 (traffic flows)."""
    r = _get(http, public_url + health_path)
    if r.status_code != 200:
        raise ProbeError(f"public {health_path}: HTTP {r.status_code} (expected 200)")
    return f"public {health_path}: HTTP 200"


def check_public_closed(http: httpx.Client, public_url: str, health_path: str) -> str:
    """The public health endpoint does not answer 200 (traffic blocked)."""
    try:
        r = http.get(public_url + health_path)
    except httpx.HTTPError:
        return "public endpoint not reachable"
    if r.status_code == 200:
        raise ProbeError(f"public {health_path} still answers 200")
    return f"public {health_path}: HTTP {r.status_code}"
