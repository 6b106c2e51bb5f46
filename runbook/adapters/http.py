"""HTTP probes of the target: health JSON, admin login, dashboard, maintenance page.

Every check raises ``ProbeError`` with a one-line reason; ``retry`` repeats a check with
exponential backoff and jitter until it passes, the attempts run out or the deadline passes.
The clock, sleep and randomness are parameters so tests never wait for real.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from runbook.health_contract import MISSING, compact, dig, leaves, show, subset_mismatches
from runbook.target import AdminLogin, Dashboard, HealthCheck, Probe
from runbook.target_fields import header_value
from runbook.target_switches import MaintenancePage

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
                if getattr(e, "final", False):
                    raise
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


class ContractMismatch(ProbeError):
    """The health endpoint answered 200 with JSON that breaks the contract."""

    def __init__(self, message: str, body_text: str):
        super().__init__(message)
        self.body_text = body_text


class GaveUp(ProbeError):
    """A check that cannot pass by waiting: the retrier stops at once."""

    final = True


@dataclass
class MismatchStreak:
    """Counts identical contract mismatches in a row; at ``limit`` (0: never) it gives up."""

    limit: int
    last: str | None = None
    count: int = 0

    def see(self, e: ContractMismatch) -> None:
        self.count = self.count + 1 if e.body_text == self.last else 1
        self.last = e.body_text
        if self.limit and self.count >= self.limit:
            raise GaveUp(f"{e}; the same answer {self.count} times in a row, so waiting will "
                         f"not fix it: {compact_text(e.body_text)}") from None

    def clear(self) -> None:
        self.last, self.count = None, 0


def compact_text(raw: str, limit: int = 400) -> str:
    try:
        return compact(json.loads(raw), limit)
    except ValueError:
        return raw[:limit]


def check_health(
    http: httpx.Client,
    base_url: str,
    cfg: HealthCheck,
    *,
    expect_version: str | None = None,
    expect_revision: str | None = None,
    expect_schema: str | None = None,
    streak: MismatchStreak | None = None,
) -> dict[str, Any]:
    """GET the health endpoint: HTTP 200, JSON, the ``expect`` subset and (when their fields
    are configured and the values given) version, revision and schema. A contract mismatch
    raises ``ContractMismatch``; with ``streak``, the same answer ``cfg.mismatch_repeats``
    times in a row raises ``GaveUp`` (the retrier stops)."""
    if not cfg.path:
        raise GaveUp("no health path configured: set [target.health] path")
    url = base_url + cfg.path
    r = _get(http, url)
    if r.status_code != 200:
        if streak:
            streak.clear()
        raise ProbeError(f"{cfg.path}: HTTP {r.status_code} (expected 200){_why(r)}")
    try:
        body = r.json()
    except ValueError:
        raise ProbeError(f"{cfg.path}: answered 200 but not JSON") from None
    wrong = [f"{path}={show(got)!r} (expected {show(want)!r})" if got is not MISSING
             else f"{path} missing (expected {show(want)!r})"
             for path, got, want in contract_mismatches(cfg, body, expect_version,
                                                        expect_revision, expect_schema)]
    if wrong:
        e = ContractMismatch(f"{cfg.path}: " + ", ".join(wrong), r.text)
        if streak:
            streak.see(e)
        raise e
    if streak:
        streak.clear()
    return body


def contract_mismatches(cfg: HealthCheck, body: Any, expect_version: str | None = None,
                        expect_revision: str | None = None, expect_schema: str | None = None
                        ) -> list[tuple[str, Any, Any]]:
    """``(field path, found, expected)`` for each part of the contract ``body`` breaks: the
    ``expect`` subset, and the version, revision and schema fields (each checked only when
    its field is configured and its expected value is given)."""
    wrong = subset_mismatches(cfg.expect, body)
    for field_path, want in ((cfg.version_field, expect_version),
                             (cfg.schema_field, expect_schema)):
        if field_path and want is not None:
            got = dig(body, field_path)
            if got is MISSING or str(got) != str(want):
                wrong.append((field_path, got, want))
    if cfg.revision_field and expect_revision:
        got = dig(body, cfg.revision_field)
        text = "" if got is MISSING or got is None else str(got)
        if not (len(text) >= 7 and (text.startswith(expect_revision[:7])
                                    or expect_revision.startswith(text))):
            wrong.append((cfg.revision_field, got if got is MISSING else text[:10],
                          expect_revision[:10]))
    return wrong


def _why(r: httpx.Response) -> str:
    """The start of a JSON error body (mask before showing), if the answer has one."""
    try:
        body = r.json()
    except ValueError:
        return ""
    return f": {compact(body, 300)}" if body not in (None, "", {}, []) else ""


def describe_health(body: Any, cfg: HealthCheck | None = None) -> str:
    """One line of what the contract checked, in the team's own field names."""
    if cfg is None:
        return "HTTP 200, JSON"
    parts = [f"{path} {show(dig(body, path))}" for path, _ in leaves(cfg.expect)]
    for label, field_path in (("version", cfg.version_field), ("revision", cfg.revision_field),
                              ("schema", cfg.schema_field)):
        if field_path:
            got = dig(body, field_path)
            value = str(got)[:7] if label == "revision" and isinstance(got, str) else show(got)
            name = label if field_path == label else f"{label} ({field_path})"
            parts.append(f"{name} {value}")
    return ", ".join(parts) or "HTTP 200, JSON"


def log_in(http: httpx.Client, base_url: str, cfg: AdminLogin,
           secrets: Mapping[str, str] | None = None) -> str:
    """Log in on this client and keep the session on it: the cookie jar (``session =
    'cookie'``) or the token header on every later request (``'bearer'``). Earlier sessions
    are dropped first so an old one cannot make a login look good. Credentials and the token
    are never echoed; the token is added to ``secrets`` (masked in all output)."""
    if not cfg.path:
        raise GaveUp("no login configured: set [target.admin_login] path and username")
    http.cookies.clear()
    http.headers.pop(cfg.token_header, None)
    creds = {**cfg.extra_fields, cfg.username_field: cfg.username or "",
             cfg.password_field: cfg.password.get_secret_value()}
    try:
        r = (http.post(base_url + cfg.path, json=creds) if cfg.body == "json"
             else http.post(base_url + cfg.path, data=creds))
    except httpx.TimeoutException:
        raise ProbeError(f"POST {cfg.path}: timed out") from None
    except httpx.HTTPError as e:
        raise ProbeError(f"POST {cfg.path}: {type(e).__name__}") from None
    if r.status_code != cfg.success_status:
        raise ProbeError(f"admin login: HTTP {r.status_code} (expected {cfg.success_status})")
    if cfg.session == "cookie":
        cookie = "session cookie set" if r.headers.get_list("set-cookie") else "no cookie"
        return f"HTTP {r.status_code}, {cookie}"
    try:
        answer = r.json()
    except ValueError:
        raise ProbeError(f"admin login: HTTP {r.status_code} but the answer is not JSON, so "
                         f"there is no token at {cfg.token_field!r}") from None
    token = dig(answer, cfg.token_field or "")
    if not isinstance(token, str) or not token:
        keys = ", ".join(sorted(answer)) if isinstance(answer, dict) else type(answer).__name__
        raise ProbeError(f"admin login: HTTP {r.status_code} but no token at "
                         f"{cfg.token_field!r} in the answer (its keys: {keys})")
    if isinstance(secrets, MutableMapping):  # every token seen stays masked, not only the last
        secrets[f"admin_login.token.{sum(k.startswith('admin_login.token') for k in secrets)}"] \
            = token
    http.headers[cfg.token_header] = header_value(cfg.token_header, cfg.token_format, token)
    return f"HTTP {r.status_code}, bearer token from {cfg.token_field}"


def check_admin_login(http: httpx.Client, base_url: str, cfg: AdminLogin,
                      secrets: Mapping[str, str] | None = None) -> str:
    """POST the login; pass on the configured status with the configured session."""
    return log_in(http, base_url, cfg, secrets)


def check_page(http: httpx.Client, base_url: str, path: str, expect_text: str | None = None,
               expect_status: int = 200) -> str:
    r = _get(http, base_url + path)
    if r.status_code != expect_status:
        raise ProbeError(f"{path}: HTTP {r.status_code} (expected {expect_status})")
    if expect_text and expect_text not in r.text:
        raise ProbeError(f"{path}: HTTP {r.status_code} but the page lacks {expect_text!r}")
    return f"HTTP {r.status_code}" + (f", found {expect_text!r}" if expect_text else "")


def login_session(http: httpx.Client, base_url: str, cfg: AdminLogin, before: str,
                  secrets: Mapping[str, str] | None = None) -> None:
    """Log in on this client ahead of a protected page (nothing when no login is configured):
    later requests carry the session (cookie jar or token header)."""
    if not cfg.path:
        return
    try:
        log_in(http, base_url, cfg, secrets)
    except ProbeError as e:
        raise ProbeError(f"login before {before}: {e}") from None
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        raise ProbeError(f"login before {before}: {type(e).__name__}") from None


def check_dashboard(http: httpx.Client, base_url: str, cfg: Dashboard) -> str:
    if not cfg.path:
        raise GaveUp("no dashboard configured: set [target.dashboard] path")
    return check_page(http, base_url, cfg.path, cfg.expect_text)


def check_maintenance_page(http: httpx.Client, public_url: str, cfg: MaintenancePage) -> str:
    """The public URL answers the maintenance status and page text."""
    return check_page(http, public_url, cfg.path, cfg.expect_text, cfg.status)


def _health_path(health_path: str | None) -> str:
    if not health_path:
        raise GaveUp("no health path configured: set [target.health] path (it is how golive "
                     "sees that the public URL serves traffic)")
    return health_path


def check_public_open(http: httpx.Client, public_url: str, health_path: str | None) -> str:
    """The public health endpoint answers 200 (traffic flows)."""
    health_path = _health_path(health_path)
    r = _get(http, public_url + health_path)
    if r.status_code != 200:
        raise ProbeError(f"public {health_path}: HTTP {r.status_code} (expected 200)")
    return f"public {health_path}: HTTP 200"


def check_public_closed(http: httpx.Client, public_url: str, health_path: str | None) -> str:
    """The public health endpoint does not answer 200 (traffic blocked)."""
    health_path = _health_path(health_path)
    try:
        r = http.get(public_url + health_path)
    except httpx.HTTPError:
        return "public endpoint not reachable"
    if r.status_code == 200:
        raise ProbeError(f"public {health_path} still answers 200")
    return f"public {health_path}: HTTP {r.status_code}"
