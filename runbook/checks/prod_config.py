"""Check 2, prod config: the target's environment against the team's rules
(``[[preflight.prod_config.rules]]``): set, equals, not_equals, one_of, matches, not_matches,
and the built-in tests ``networks`` (strict IP networks), ``database`` (answers a read-only
query) and ``stripe_livemode``. No rule is built in: the sample stack's (live PSP keys, strict
trusted proxies, bootstrap off) are its config. Findings show a secret's last 4 characters at
most."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import httpx

from runbook.adapters import envsource
from runbook.checks.base import CheckContext, CheckFailed, PreflightResult, Status, last4, worst
from runbook.checks.sections.prod_config import SECRET_NAME, EnvRule, ProdConfigConfig

NAME = "prod_config"
Rule = tuple[Status, str]


def check_stripe_livemode(api_url: str, secret_key: str, timeout: float) -> Rule:
    """Ask Stripe (read-only GET /v1/balance) whether the secret key is in live mode."""
    try:
        r = httpx.get(api_url.rstrip("/") + "/v1/balance", timeout=timeout,
                      headers={"Authorization": f"Bearer {secret_key}"})
    except httpx.HTTPError as e:
        return Status.FAIL, f"Stripe API unreachable at {api_url}: {type(e).__name__}"
    if r.status_code != 200:
        return Status.FAIL, f"Stripe refused the secret key (HTTP {r.status_code})"
    try:
        live = r.json().get("livemode")
    except ValueError:
        return Status.FAIL, "Stripe's answer is not JSON"
    if live is True:
        return Status.OK, "Stripe confirms livemode: true"
    return Status.FAIL, f"Stripe says livemode: {str(live).lower()} for the secret key"


def check_trusted_proxies(name: str, value: str) -> Rule:
    """Every entry a network under strict parsing; no wildcard, catch-all or hostname."""
    entries = [e for e in re.split(r"[,\s]+", value.strip()) if e]
    if not entries:
        return Status.FAIL, f"{name} is empty or not set (list the proxies' networks)"
    bad: list[str] = []
    for e in entries:
        if e == "*":
            bad.append("* (trusts everyone)")
            continue
        try:
            net = ipaddress.ip_network(e, strict=True)
        except ValueError:
            bad.append(f"{e} (not a network: hostnames and host bits are not allowed)")
            continue
        if net.prefixlen == 0:
            bad.append(f"{e} (trusts every address)")
    if bad:
        return Status.FAIL, f"{name}: {', '.join(bad)}"
    return Status.OK, f"{name}: {len(entries)} network(s), all strict ({', '.join(entries)})"


def check_database(name: str, url: str, timeout: float, probe: bool) -> Rule:
    if not url:
        return Status.FAIL, f"{name} is not set"
    try:
        parts = urlsplit(url)
        ok = parts.scheme.split("+")[0] in ("postgres", "postgresql") and bool(parts.hostname) \
            and parts.path.strip("/") != ""
        _ = parts.port
    except ValueError:
        ok = False
    if not ok:
        return Status.FAIL, f"{name} does not parse as postgresql://user@host:port/dbname"
    if not probe:
        return Status.OK, f"{name} parses ({parts.hostname}/{parts.path.strip('/')})"
    import psycopg

    plain = re.sub(r"^postgres(?:ql)?(\+\w+)?://", "postgresql://", url)
    try:
        with psycopg.connect(plain, connect_timeout=max(1, int(timeout)),
                             options="-c default_transaction_read_only=on") as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [""])[0][:160]
        return Status.FAIL, f"{name}: the database does not answer a read-only query: {first}"
    return Status.OK, (f"{name} answers a read-only query ({parts.hostname}/" \
                      f"{parts.path.strip('/')})")


def read_env(cfg: ProdConfigConfig, timeout: float) -> dict[str, str]:
    try:
        if cfg.source == "env_file" and cfg.env_file is not None:
            return envsource.from_file(cfg.env_file)
        if cfg.source == "container" and cfg.container:
            return envsource.from_container(cfg.container, cfg.docker_host, timeout)
        return envsource.from_process()
    except envsource.EnvSourceError as e:
        raise CheckFailed(f"cannot read the target's environment: {e}") from None


def _clip(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def evaluate(rule: EnvRule, value: str | None, timeout: float) -> Rule:
    """One rule against the variable's value: (status, one line; a secret shows its last 4)."""
    name = rule.key
    secret = rule.is_secret
    hint = f" (expected {rule.hint})" if rule.hint else ""
    if not value:
        if rule.required:
            return Status.FAIL, f"{name} is not set{hint}"
        return Status.OK, f"{name} is not set (optional)"
    shown = last4(value) if secret else _clip(value)

    def said(v: str) -> str:
        return "the configured value" if secret else repr(v)

    problems: list[str] = []
    if rule.equals is not None and value != rule.equals:
        problems.append(f"must be {said(rule.equals)}")
    if rule.not_equals is not None and value == rule.not_equals:
        problems.append(f"must not be {said(rule.not_equals)}")
    if rule.one_of is not None and value not in rule.one_of:
        problems.append("must be one of " + ("the configured values" if secret
                                             else ", ".join(map(repr, rule.one_of))))
    if rule.matches is not None and not re.search(rule.matches, value):
        problems.append(f"does not match {rule.matches}")
    if rule.not_matches is not None and re.search(rule.not_matches, value):
        problems.append(f"matches {rule.not_matches}, which it must not")
    if problems:
        return Status.FAIL, f"{name} {' and '.join(problems)} (it is {shown}){hint}"
    if rule.check == "networks":
        return check_trusted_proxies(name, value)
    if rule.check == "database":
        return check_database(name, value, timeout, True)
    if rule.check == "stripe_livemode":
        return check_stripe_livemode(rule.api_url or "", value, timeout)
    return Status.OK, f"{name} as required ({shown})"


def run(ctx: CheckContext) -> PreflightResult:
    """Verify the target's environment against the team's rules."""
    cfg: ProdConfigConfig = ctx.require_config(NAME)
    if not cfg.rules:
        raise CheckFailed("no rules to check: add [[preflight.prod_config.rules]] entries "
                          '(key = "VAR" with required / equals / not_equals / one_of / matches / '
                          "not_matches / check; see golive.example.toml)")
    env = read_env(cfg, min(10.0, ctx.remaining()))
    shown_plain = {r.key for r in cfg.rules if r.secret is False}
    secret_keys = {r.key for r in cfg.rules if r.is_secret}
    for k, v in env.items():
        if k in secret_keys or (SECRET_NAME.search(k) and k not in shown_plain):
            ctx.add_secret(f"env.{k}", v)
    ctx.say(f"read {len(env)} variables from the {cfg.source.replace('_', ' ')}")
    rules = [evaluate(rule, env.get(rule.key), min(10.0, ctx.remaining())) for rule in cfg.rules]
    status = worst([s for s, _ in rules])
    failed = [m for s, m in rules if s != Status.OK]
    finding = (f"all {len(rules)} rules pass" if not failed else
               "; ".join(failed[:3]) + (f" (+{len(failed) - 3} more)" if len(failed) > 3 else ""))
    details = [f"{'✅' if s == Status.OK else '❌'} {m}" for s, m in rules]
    return PreflightResult(NAME, status, finding, details, facts={"prod_config_source": cfg.source})
