"""The `golive` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bot.settings import ConfigError, Settings, load_settings

MANIFEST_SCOPES = ["commands", "chat:write", "chat:write.public", "reactions:write",
                   "users:read", "usergroups:read", "channels:history", "groups:history",
                   "files:write"]


def _settings(**kw) -> Settings:
    try:
        return load_settings(**kw)
    except ConfigError as e:
        print("golive: cannot start; fix these settings:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        raise SystemExit(2) from None


def _runtime(settings: Settings):
    """Build the process; an invalid runbook or an old schema stops start-up clearly."""
    from bot.runtime import build_runtime
    from bot.store import db
    from runbook.model import RunbookError

    try:
        current, head = db.current_revision(settings.database_url), db.head_revision()
    except Exception:  # noqa: BLE001 - the database is down: start anyway, /healthz says so
        current = head = None
    if current != head:
        print(f"golive: cannot start; the bot's database schema is at "
              f"{current or 'nothing (empty database)'}, this version needs {head}. "
              "Run `golive db upgrade` (the Procfile's release phase) first.", file=sys.stderr)
        raise SystemExit(2)

    try:
        return build_runtime(settings)
    except RunbookError as e:
        print("golive: cannot start; the runbook is invalid:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging(settings: Settings) -> None:
    from bot.logs import configure

    configure(settings.env.golive_log_level, settings.secrets())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.server import build_asgi, tune_gc

    settings = _settings()
    _logging(settings)
    runtime = _runtime(settings)
    port = args.port if args.port is not None else settings.env.port
    tune_gc()  # this process only serves the bot: tune its collector for ack latency
    uvicorn.run(build_asgi(runtime), host=args.host, port=port, log_level="warning",
                access_log=False)
    return 0


def cmd_socket(args: argparse.Namespace) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    settings = _settings()
    if not settings.env.slack_app_token:
        print("golive: SLACK_APP_TOKEN (xapp-...) is required for Socket Mode", file=sys.stderr)
        return 2
    _logging(settings)
    runtime = _runtime(settings)
    runtime.start()
    try:
        SocketModeHandler(runtime.app,
                          settings.env.slack_app_token.get_secret_value()).start()
    finally:
        runtime.stop()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from bot.store import db

    settings = _settings(require_slack=False, require_config=False)
    url = settings.database_url
    try:
        if args.action == "upgrade":
            db.upgrade(url, args.revision or "head")
            print(f"bot schema at {db.current_revision(url)}")
        elif args.action == "downgrade":
            db.downgrade(url, args.revision or "base")
            print(f"bot schema at {db.current_revision(url) or 'base (empty)'}")
        else:
            cur = db.current_revision(url)
            head = db.head_revision()
            print(f"{cur or 'base (empty)'}" + ("" if cur == head else f" (head is {head})"))
    except Exception as e:  # an outage is one line, not a traceback  # noqa: BLE001 - error boundary
        from runbook.adapters.redact import mask

        print(f"golive: database error: {mask(str(e).splitlines()[0], settings.secrets())}",
              file=sys.stderr)
        return 1
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from runbook.adapters.redact import mask
    from runbook.model import RunbookError

    settings = _settings()
    try:
        from bot.runtime import runbook_for

        rb = runbook_for(settings)
    except RunbookError as e:
        print("golive: the runbook is invalid:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        return 2
    secrets = settings.secrets()
    print(f"config: {settings.config_path}")
    print(f"slack api: {settings.env.slack_api_url}")
    others = {k: v for k, v in secrets.items() if k != "DATABASE_URL"}
    # Show where the database is; the URL's password is masked by pattern.
    print(f"database: {mask(settings.database_url, others) if settings.database_url else '-'}")
    for name in sorted(secrets):
        print(f"secret {name}: set ({len(secrets[name])} chars, shown as ****)")
    cfg = settings.config
    print(f"cutover channel: {cfg.channels.cutover}; incident: {', '.join(cfg.channels.incident)}")
    print(f"approvers: users {', '.join(cfg.approvers.users) or '-'}; groups "
          f"{', '.join(f'{k}={v}' for k, v in cfg.approvers.groups.items()) or '-'}")
    print(f"runbook: {rb.name} v{rb.version}: {len(rb.all_steps())} steps")
    print("ok")
    return 0


def manifest(*, url: str | None, socket: bool) -> dict:
    """A Slack app manifest for /golive (HTTP mode with a request URL, or Socket Mode)."""
    settings_ = {"interactivity": {"is_enabled": True}, "org_deploy_enabled": False,
                 "socket_mode_enabled": socket, "token_rotation_enabled": False}
    command = {"command": "/golive", "description": "Run the go-live cutover",
               "usage_hint": "help | status | deploy <tag> | rollback", "should_escape": False}
    if not socket:
        endpoint = (url or "https://golive.example.com").rstrip("/") + "/slack/events"
        command["url"] = endpoint
        settings_["interactivity"]["request_url"] = endpoint
    return {"display_information": {"name": "golive",
                                    "description": "Go-live cutover chat-ops"},
            "features": {"bot_user": {"display_name": "golive", "always_online": True},
                         "slash_commands": [command]},
            "oauth_config": {"scopes": {"bot": MANIFEST_SCOPES}},
            "settings": settings_}


def cmd_manifest(args: argparse.Namespace) -> int:
    print(json.dumps(manifest(url=args.url, socket=args.socket), indent=2))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from bot import audit
    from bot.store import repo
    from bot.store.db import Database

    if args.action == "verify" and args.file:
        problems = audit.verify_export(Path(args.file).read_text(encoding="utf-8"))
        print("\n".join(problems) if problems else f"{args.file}: export verifies")
        return 1 if problems else 0
    settings = _settings(require_slack=False, require_config=False)
    database = Database(settings.database_url, min_size=1, max_size=2)
    database.open(wait=True)
    try:
        with database.connection() as conn:
            if args.action == "verify":
                rows = [_audit_row(r) for r in repo.audit_rows(conn)]
                head = repo.audit_head(conn)
                problems = audit.verify_chain(rows, head=head["last_hash"] if rows else None)
                if args.head:  # a hash kept outside the database (e.g. posted by /golive finish)
                    upto = [i for i, r in enumerate(rows) if r.hash == args.head]
                    if not upto:
                        problems.append(f"no audit row has the hash {args.head}: the log was "
                                        "rewritten or truncated since it was recorded")
                print("\n".join(problems) if problems else
                      f"audit log verifies: {len(rows)} rows, head {head['last_hash'][:16]}…")
                return 1 if problems else 0
            run_rows = repo.audit_rows(conn, run_id=args.run)
            if not run_rows:
                print(f"no audit rows for run {args.run}", file=sys.stderr)
                return 1
            stretch = conn.execute("SELECT * FROM audit_log WHERE id >= %s ORDER BY id",
                                   (run_rows[0]["id"],)).fetchall()
            lines = audit.export_lines([_audit_row(r) for r in stretch], args.run)
            out = Path(args.out or f"golive-audit-run-{args.run}.jsonl")
            out.write_text("\n".join(lines) + "\n", encoding="utf-8")
            print(f"wrote {out} ({len(run_rows)} rows of run {args.run}); "
                  f"verify offline with `golive audit verify --file {out}`")
            return 0
    finally:
        database.close()


def _audit_row(r: dict):
    from bot import audit

    return audit.AuditRow(id=r["id"], at=r["at"], run_id=r["run_id"], actor=r["actor"],
                          channel=r["channel"], action=r["action"], detail=r["detail"],
                          outcome=r["outcome"], prev_hash=r["prev_hash"], hash=r["hash"])


def cmd_console(args: argparse.Namespace) -> int:
    from bot.demo import console_main

    return console_main(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import demo_main

    return demo_main(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="golive", description="Slack chat-ops for a go-live cutover.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="serve HTTP mode (/slack/events, /healthz, /metrics)")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=None, help="default: $PORT or 3000")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("socket", help="run in Socket Mode (needs SLACK_APP_TOKEN)")
    s.set_defaults(fn=cmd_socket)

    s = sub.add_parser("db", help="the bot's own schema")
    s.add_argument("action", choices=["upgrade", "current", "downgrade"])
    s.add_argument("revision", nargs="?", help="default: head (upgrade) / base (downgrade)")
    s.set_defaults(fn=cmd_db)

    s = sub.add_parser("config", help="validate the settings and config (secrets masked)")
    s.add_argument("action", choices=["check"])
    s.set_defaults(fn=cmd_config_check)

    s = sub.add_parser("manifest", help="print a Slack app manifest")
    s.add_argument("--url", help="public base URL of `golive serve` (HTTP mode)")
    s.add_argument("--socket", action="store_true", help="Socket Mode instead of HTTP")
    s.set_defaults(fn=cmd_manifest)

    s = sub.add_parser("audit", help="verify or export the hash-chained audit log")
    s.add_argument("action", choices=["verify", "export"])
    s.add_argument("--run", type=int, help="run id (export)")
    s.add_argument("--file", help="verify an exported JSONL file offline")
    s.add_argument("--head", help="a chain hash recorded elsewhere (verify): must still be in "
                                  "the chain")
    s.add_argument("--out", help="output path (export)")
    s.set_defaults(fn=cmd_audit)

    for name, fn, what in (("console", cmd_console, "a terminal onto the sandbox workspace"),
                           ("demo", cmd_demo, "sandbox + bot + console on an embedded database")):
        s = sub.add_parser(name, help=what)
        s.add_argument("--as", dest="user", default="alice", help="start as this user")
        s.add_argument("--data-dir", type=Path, help="embedded database and demo files")
        s.set_defaults(fn=fn)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.cmd == "audit" and args.action == "export" and args.run is None:
        print("golive: audit export needs --run ID", file=sys.stderr)
        return 2
    logging.captureWarnings(True)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
