"""Check 2, prod config: the target's environment has live PSP keys, well-formed webhook
secrets, a reachable database, strict trusted proxies and bootstrap off (the team's
``scripts/verify_prod_env.py``). Findings show a secret's last 4 characters at most."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from runbook.adapters import envsource
from runbook.checks.base import CheckContext, CheckFailed, CheckResult, Status, last4, worst
from runbook.checks.config import ProdConfigConfig

NAME = "prod_config"
DEFAULT_VARS = {
    "STRIPE_SECRET_KEY": "STRIPE_SECRET_KEY",
    "STRIPE_RESTRICTED_KEY": "STRIPE_RESTRICTED_KEY",
    "STRIPE_PUBLISHABLE_KEY": "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET": "STRIPE_WEBHOOK_SECRET",
    "ADYEN_API_KEY": "ADYEN_API_KEY",
    "ADYEN_CHECKOUT_URL": "ADYEN_CHECKOUT_URL",
    "ADYEN_CLIENT_KEY": "ADYEN_CLIENT_KEY",
    "ADYEN_HMAC_KEY": "ADYEN_HMAC_KEY",
    "DATABASE_URL": "DATABASE_URL",
    "TRUSTED_PROXIES": "TRUSTED_PROXIES",
    "BOOTSTRAP_ENABLED": "BOOTSTRAP_ENABLED",
}
_SECRETISH = re.compile(r"SECRET|TOKEN|PASSWORD|API_KEY|PRIVATE|HMAC|DATABASE_URL|DSN|_KEY$")
_ADYEN_LIVE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*-checkout-live\.adyenpayments\.com$")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
Rule = tuple[Status, str]


def _shown(value: str, prefix_len: int = 0) -> str:
    """A key as the checklist may show it: its (non-secret) type prefix and last 4."""
    head = value[:prefix_len] if prefix_len and len(value) > prefix_len + 8 else ""
    return head + last4(value)


def _prefix(value: str) -> str:
    m = re.match(r"^([a-z]{2,5}_(?:live|test)_)", value)
    return m.group(1) if m else ""


def check_stripe(env: dict[str, str], var: Callable[[str], str]) -> list[Rule]:
    out: list[Rule] = []
    for key, allowed in (("STRIPE_SECRET_KEY", ("sk_live_", "rk_live_")),
                         ("STRIPE_RESTRICTED_KEY", ("rk_live_",)),
                         ("STRIPE_PUBLISHABLE_KEY", ("pk_live_",))):
        name, value = var(key), env.get(var(key), "")
        if not value:
            if key != "STRIPE_RESTRICTED_KEY":
                out.append((Status.FAIL, f"{name} is not set"))
            continue
        shown = _shown(value, len(_prefix(value)))
        if value.startswith(allowed):
            out.append((Status.OK, f"{name} is a live key ({shown})"))
        elif "_test_" in value[:10]:
            out.append((Status.FAIL, (f"{name} is a TEST key ({shown}): prod needs "
                        f"{' or '.join(allowed)}")))
        else:
            out.append((Status.FAIL, (f"{name} is not a live Stripe key ({shown}): expected "
                        f"{' or '.join(allowed)}")))
    name, value = var("STRIPE_WEBHOOK_SECRET"), env.get(var("STRIPE_WEBHOOK_SECRET"), "")
    if not value:
        out.append((Status.FAIL, f"{name} is not set"))
    elif not value.startswith("whsec_") or len(value) == len("whsec_"):
        out.append((Status.FAIL, (f"{name} is not a Stripe signing secret (whsec_…) "
                    f"({last4(value)})")))
    else:
        out.append((Status.OK, f"{name} well formed (whsec_{last4(value)})"))
    return out


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


def check_adyen(env: dict[str, str], var: Callable[[str], str]) -> list[Rule]:
    out: list[Rule] = []
    name = var("ADYEN_API_KEY")
    out.append((Status.OK, f"{name} present ({last4(env[name])})") if env.get(name)
               else (Status.FAIL, f"{name} is not set"))
    name, url = var("ADYEN_CHECKOUT_URL"), env.get(var("ADYEN_CHECKOUT_URL"), "")
    try:
        parts = urlsplit(url)
        host_ok = (parts.scheme == "https" and not parts.username and parts.port is None
                   and bool(_ADYEN_LIVE.match(parts.hostname or "")))
    except ValueError:
        host_ok = False
    if not url:
        out.append((Status.FAIL, f"{name} is not set"))
    elif host_ok:
        out.append((Status.OK, f"{name} is a live endpoint ({parts.hostname})"))
    else:
        out.append((Status.FAIL, (f"{name} is not a live Adyen checkout endpoint "
                    f"(https://<prefix>-checkout-live.adyenpayments.com/…): {url[:80]}")))
    name, value = var("ADYEN_CLIENT_KEY"), env.get(var("ADYEN_CLIENT_KEY"), "")
    if not value:
        out.append((Status.FAIL, f"{name} is not set"))
    elif value.startswith("live_"):
        out.append((Status.OK, f"{name} is a live client key (live_{last4(value)})"))
    else:
        out.append((Status.FAIL, (f"{name} is not a live client key (must start with live_; "
                    f"{'test_' if value.startswith('test_') else ''}{last4(value)})")))
    name, value = var("ADYEN_HMAC_KEY"), env.get(var("ADYEN_HMAC_KEY"), "")
    if not value:
        out.append((Status.FAIL, f"{name} is not set"))
    elif _HEX.match(value):
        out.append((Status.OK, f"{name} is a hex HMAC key ({last4(value)})"))
    else:
        out.append((Status.FAIL, f"{name} is not a hex HMAC key ({last4(value)})"))
    return out


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
        if cfg.source == "env_file":
            if cfg.env_file is None:
                raise CheckFailed("[preflight.prod_config] source = \"env_file\" needs env_file")
            return envsource.from_file(cfg.env_file)
        if cfg.source == "container":
            if not cfg.container:
                raise CheckFailed("[preflight.prod_config] source = \"container\" needs container")
            return envsource.from_container(cfg.container, cfg.docker_host, timeout)
        return envsource.from_process()
    except envsource.EnvSourceError as e:
        raise CheckFailed(f"cannot read the target's environment: {e}") from None


def run(ctx: CheckContext) -> CheckResult:
    """Verify the target's production environment."""
    cfg: ProdConfigConfig = ctx.require_config(NAME)
    env = read_env(cfg, min(10.0, ctx.remaining()))
    names = {**DEFAULT_VARS, **cfg.variables}
    var: Callable[[str], str] = lambda key: names.get(key, key)
    secret_rules = {r.name for r in cfg.rules if r.secret}
    for k, v in env.items():
        if _SECRETISH.search(k) or k in secret_rules or k in {var(n) for n in DEFAULT_VARS
                                                            if n.startswith(("STRIPE", "ADYEN"))}:
            ctx.add_secret(f"env.{k}", v)
    ctx.say(f"read {len(env)} variables from the {cfg.source.replace('_', ' ')}")
    rules: list[Rule] = []
    if "stripe" in cfg.psps:
        rules += check_stripe(env, var)
        sk = env.get(var("STRIPE_SECRET_KEY"), "")
        if cfg.stripe_api_url and sk:
            rules.append(check_stripe_livemode(cfg.stripe_api_url, sk, min(10.0, ctx.remaining())))
    if "adyen" in cfg.psps:
        rules += check_adyen(env, var)
    rules.append(check_database(var("DATABASE_URL"), env.get(var("DATABASE_URL"), ""),
                                min(5.0, ctx.remaining()), cfg.check_database))
    rules.append(check_trusted_proxies(var("TRUSTED_PROXIES"), env.get(var("TRUSTED_PROXIES"), "")))
    name, value = var("BOOTSTRAP_ENABLED"), env.get(var("BOOTSTRAP_ENABLED"))
    rules.append((Status.OK, f"{name}=false") if (value or "").strip().lower() == "false" else
                 (Status.FAIL, f"{name} must be false (it is {value if value else 'not set'})"))
    for rule in cfg.rules:
        value = env.get(rule.name)
        shown = last4(value) if rule.secret else repr(value)
        if rule.set and not value:
            rules.append((Status.FAIL, f"{rule.name} must be set"))
        elif rule.equals is not None and value != rule.equals:
            rules.append((Status.FAIL, (f"{rule.name} must be {'the configured value' if rule.secret else repr(rule.equals)} "
                          f"(it is {shown if value is not None else 'not set'})")))
        else:
            rules.append((Status.OK, f"{rule.name} as required"))
    status = worst([s for s, _ in rules])
    failed = [m for s, m in rules if s != Status.OK]
    finding = (f"all {len(rules)} rules pass" if not failed else
               "; ".join(failed[:3]) + (f" (+{len(failed) - 3} more)" if len(failed) > 3 else ""))
    details = [f"{'✅' if s == Status.OK else '❌'} {m}" for s, m in rules]
    return CheckResult(NAME, status, finding, details, facts={"prod_config_source": cfg.source})
