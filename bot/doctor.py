"""`golive config check`: a pre-flight of the bot itself, one ✅/❌ line per check with the fix.

The TOML and the runbook first (all `--offline` does), then the environment, the database
(reachable, migrated), the Slack token (auth.test), each channel as the bot sees it, each
approver and operator group, the target's URLs, and then what the night will do, tried
read-only (`bot/tries/`): compose file, smoke script, health contract, login, switches,
migrations, preflight sources, watch and canary queries, the Docker engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from bot.checkline import Check, database_where
from bot.settings import ConfigError, Env, Settings, load_settings

SLACK_TIMEOUT_S = 5
HTTP_TIMEOUT_S = 3.0


def _problem(p: str, config_path: str | None) -> Check:
    """A settings problem as a failed check, with the place to fix it."""
    if p.startswith("GOLIVE_CONFIG"):
        return Check(False, p, "point GOLIVE_CONFIG at your TOML (start from golive.example.toml)")
    if config_path and p.startswith(config_path):
        if "is not set in the environment" in p:
            return Check(False, p, "export the variable, or change the value in the TOML")
        return Check(False, p, f"edit {config_path} (golive.example.toml documents each key)")
    return Check(False, p, "correct the environment variable")


def offline_checks(environ: Mapping[str, str]) -> tuple[list[Check], Settings | None]:
    """The TOML and the runbook, without Slack tokens or a database."""
    path = environ.get("GOLIVE_CONFIG")
    try:
        settings = load_settings(require_slack=False, require_db=False,
                                 require_audit_key=False, environ=dict(environ))
    except ConfigError as e:
        return [_problem(p, path) for p in e.problems], None
    cfg = settings.config
    checks = [Check(True, f"config {settings.config_path}: valid (cutover channel "
                          f"{cfg.channels.cutover}, {len(cfg.channels.incident)} incident "
                          f"channel(s), environment {cfg.environment})")]
    from runbook.model import RunbookError

    try:
        from bot.runtime import runbook_for
        from commands import build_commands

        rb = runbook_for(settings)
        build_commands(rb)  # a step command clashing with the bot's own is a runbook problem
    except RunbookError as e:
        where = cfg.runbook or "the built-in runbook"
        checks += [Check(False, f"runbook: {p}", f"edit {where}") for p in e.problems]
    else:
        checks.append(Check(True, f"runbook {rb.name} (version {str(rb.version)[:12]}): "
                                  f"{len(rb.all_steps())} steps"))
    return checks + canary_template_checks(settings), settings


def canary_template_checks(settings: Settings) -> list[Check]:
    """The canary report template renders (no unknown placeholder): found now, not mid-canary."""
    from runbook.canary.report import check_template_file

    cfg = settings.config.canary
    if not cfg.enabled:
        return []
    path = cfg.template_file(settings.config_path.parent if settings.config_path else None)
    problems = check_template_file(path)
    if problems:
        return [Check(False, p, f"fix the template, or point `[canary] template` at another "
                                f"(in {settings.config_path})") for p in problems]
    return [Check(True, f"canary report template {path}: every placeholder is known")]


def environment_checks(env: Env, settings: Settings | None) -> list[Check]:
    """The variables the bot needs to start (values never shown)."""
    needed = [("SLACK_BOT_TOKEN", env.slack_bot_token,
               "set it to the app's Bot User OAuth Token (xoxb-…, OAuth & Permissions)"),
              ("SLACK_SIGNING_SECRET", env.slack_signing_secret,
               "set it from Basic Information → App Credentials → Signing Secret"),
              ("DATABASE_URL", env.database_url,
               "set it to postgresql://golive_runtime:…@host:5432/dbname")]
    if settings is not None and settings.config.environment == "production":
        needed.append(("GOLIVE_AUDIT_KEY", env.golive_audit_key,
                       "set it to 32+ random characters (openssl rand -hex 32), kept apart"))
    missing = [Check(False, f"{name} is not set", fix) for name, value, fix in needed
               if value is None or not value.get_secret_value()]
    if missing:
        return missing
    return [Check(True, "environment: " + ", ".join(n for n, _, _ in needed)
                  + " set (values not shown)")]


def door_checks(url: str) -> list[Check]:
    """The door's role (GOLIVE_DOOR_DATABASE_URL, else DATABASE_URL) may write an inbox row:
    without it every request is refused before its ack."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            role, ok = conn.execute("SELECT current_user, has_table_privilege('inbox', 'INSERT')"
                                    ).fetchone()
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return [Check(False, f"door database: not reachable ({first})",
                      "correct GOLIVE_DOOR_DATABASE_URL")]
    if not ok:
        return [Check(False, f"door role {role}: may not write the inbox",
                      "set GOLIVE_DOOR_DATABASE_URL to the door role's URL "
                      "(postgresql://golive_door:…@host:5432/dbname)")]
    return [Check(True, f"door role {role}: may write the inbox")]


def database_checks(url: str) -> list[Check]:
    """Reachable within a few seconds, and at the schema this version needs."""
    import psycopg

    from bot.store import db

    where = database_where(url)
    try:
        current = db.current_revision(url)
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return [Check(False, f"database {where}: not reachable ({first})",
                      "start PostgreSQL, or correct DATABASE_URL")]
    head = db.head_revision()
    if current != head:
        return [Check(False, f"database {where}: reachable, schema at "
                             f"{current or 'nothing (empty database)'}, this version needs {head}",
                      "run `golive db upgrade` (as the owner role, "
                      "GOLIVE_MIGRATIONS_DATABASE_URL)")]
    return [Check(True, f"database {where}: reachable, schema at {head}")]


def slack_checks(env: Env, settings: Settings | None) -> list[Check]:
    """auth.test, then each channel and each group as the bot's token sees them."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    if env.slack_bot_token is None:
        return []
    client = WebClient(token=env.slack_bot_token.get_secret_value(),
                       base_url=env.slack_api_url, timeout=SLACK_TIMEOUT_S)

    def call(method: Callable[..., object], **kw) -> tuple[dict | None, str]:
        try:
            return dict(method(**kw).data), ""  # type: ignore[attr-defined]
        except SlackApiError as e:
            return None, str(e.response.get("error") or "error")
        except Exception as e:  # noqa: BLE001 - the API is down or unreachable: say so
            return None, f"not reachable: {type(e).__name__}"

    me, err = call(client.auth_test)
    if me is None:
        fix = ("check SLACK_API_URL and the network" if err.startswith("not reachable")
               else "set SLACK_BOT_TOKEN to the installed app's current Bot User OAuth Token "
                    "(xoxb-…); reinstall the app if it was revoked")
        return [Check(False, f"Slack token: auth.test at {env.slack_api_url} says {err}", fix),
                Check(False, "channels and groups: not checked until the token works",
                      skipped=True)]
    checks = [Check(True, f"Slack token: valid, bot @{me.get('user')} in {me.get('team')}")]
    if settings is None:
        return checks
    cfg, path = settings.config, settings.config_path
    for role, channel in [("cutover", cfg.channels.cutover)] + [
            ("incident", c) for c in cfg.channels.incident]:
        _, err = call(client.conversations_history, channel=channel, limit=1)
        if not err:
            checks.append(Check(True, f"{role} channel {channel}: visible to the bot"))
        elif err in ("not_in_channel", "channel_not_found"):
            checks.append(Check(False, f"{role} channel {channel}: the bot cannot see it "
                                       f"({err})",
                                f"invite the bot there (/invite @{me.get('user')}), or correct "
                                f"[channels] in {path}"))
        else:
            checks.append(Check(False, f"{role} channel {channel}: {err}",
                                "grant the scopes `golive manifest` lists and reinstall"))
    groups = {f"approver group {name}": gid for name, gid in cfg.approvers.groups.items()}
    ops = cfg.operators.groups if cfg.operators else []
    groups.update({f"operator group {gid}": gid for gid in ops if gid not in groups.values()})
    for label, gid in groups.items():
        data, err = call(client.usergroups_users_list, usergroup=gid)
        if data is not None:
            checks.append(Check(True, f"{label} ({gid}): {len(data.get('users') or [])} "
                                      "member(s)"))
        else:
            checks.append(Check(False, f"{label} ({gid}): cannot be resolved ({err})",
                                f"use the group's ID (S…, in its URL) in {path}, and grant "
                                "usergroups:read"))
    return checks


def target_checks(settings: Settings) -> list[Check]:
    """The target's public and internal URLs are reachable (any status: the stack is there)."""
    import httpx

    t = settings.config.target
    checks = []
    for name, url in (("public_url", t.public_url), ("internal_url", t.internal_url)):
        try:
            r = httpx.get(url, timeout=HTTP_TIMEOUT_S)
        except httpx.HTTPError as e:
            checks.append(Check(False, f"target {name} {url}: does not answer "
                                       f"({type(e).__name__})",
                                f"start the target stack, or correct [target] {name} in "
                                f"{settings.config_path}"))
        else:
            # Only that something answers there: any status will do for the bare URL (an API
            # may 404 at /); the health, login and switch lines below try the real paths.
            checks.append(Check(True, f"target {name} {url}: reachable (HTTP {r.status_code} "
                                      "at the bare URL)"))
    return checks


def tries_checks(settings: Settings, *, down: set[str] = frozenset()) -> list[Check]:
    """What the night will do, tried read-only; ``down`` names the target URLs
    (``public_url``, ``internal_url``) that did not answer, whose tries are not repeated."""
    from bot.tries.stack import stack_checks

    try:
        from bot.runtime import runbook_for

        kinds = {s.kind for s in runbook_for(settings).all_steps()}
    except Exception:  # noqa: BLE001 - an invalid runbook is reported by offline_checks
        kinds = set()
    return stack_checks(settings, kinds, down=down)


def run(*, offline: bool = False, environ: Mapping[str, str] | None = None,
        out: Callable[[str], None] = print) -> int:
    """Run every check, print one line each (secrets masked); 0 when all passed, else 1."""
    from pydantic import ValidationError

    from runbook.adapters.redact import mask

    environ = dict(os.environ if environ is None else environ)
    checks, settings = offline_checks(environ)
    if not offline:
        try:
            env = Env(_env_file=None, **{k.lower(): v for k, v in environ.items()
                                         if k.lower() in Env.model_fields})
        except ValidationError:
            env = None  # already reported, one line per variable, by offline_checks
        if env is not None:
            checks += environment_checks(env, settings)
            if env.database_url is not None:
                checks += (db := database_checks(env.database_url.get_secret_value()))
                if all(c.ok for c in db):
                    door = env.golive_door_database_url or env.database_url
                    checks += door_checks(door.get_secret_value())
            checks += slack_checks(env, settings)
        if settings is not None:
            reach = target_checks(settings)
            checks += reach + tries_checks(settings, down={
                c.what.split()[1] for c in reach if not c.ok})
    secrets = settings.secrets() if settings is not None else {
        k: v for k, v in environ.items() if k in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
                                                  "DATABASE_URL", "GOLIVE_DOOR_DATABASE_URL",
                                                  "GOLIVE_AUDIT_KEY")}
    for check in checks:
        out(mask(check.line(), secrets))
    failed = sum(1 for c in checks if not c.ok and not c.skipped)
    warned = sum(1 for c in checks if c.ok and c.warn)
    off = sum(1 for c in checks if c.ok and c.off and not c.warn)
    passed = sum(1 for c in checks if c.ok and not c.warn and not c.off)
    scope = "TOML and runbook only (--offline)" if offline else "pre-flight"
    warnings = (f", {warned} warning(s) (⚠️: off, but the runbook uses it)" if warned else "") + (
        f", {off} off (➖: not configured, not used)" if off else "")
    out(f"{scope}: {passed} passed, {failed} failed{warnings}" if failed
        else f"{scope}: all {passed} checks passed{warnings}")
    return 1 if failed else 0

