"""Run `golive serve` as real separate processes (replicas, crash tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bot.dev.sandbox import SandboxServer
from bot.dev.sandbox.blocks import iter_buttons
from bot.dev.sandbox.workspace import Message
from tests.support.harness import free_socket


class BotProcess:
    """`golive serve` in its own process group, so SIGKILL takes its children with it."""

    def __init__(self, environ: dict[str, str], log: Path):
        self.log = log
        self.env = {**os.environ, **environ}
        self._launch()

    def _launch(self) -> None:
        """Start it on a port free a moment ago (another test may take it first: see
        ``wait_ready``)."""
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1",
             "--port", str(self.port)], env=self.env, stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> BotProcess:
        deadline = time.monotonic() + timeout
        relaunched = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = self.log.read_bytes()[self._log_from:].decode(errors="replace")
                if "address already in use" in said and relaunched < 3:
                    relaunched += 1  # the port went to another test between pick and bind
                    self._launch()
                    continue
                raise RuntimeError(f"golive serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # waiting for a child process to bind; no event to wait on
        raise TimeoutError(f"golive serve not ready: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup code runs."""
        kill_group(self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def stale_click(sandbox: SandboxServer, user_id: str, message: Message, action_id: str,
                bot_url: str):
    """Click a button of the message *as it was* (a stale card), delivered to ``bot_url``.

    This is what happens in Slack when several people have the card open and click at once.
    """
    ws = sandbox.workspace
    button = next(b for b in iter_buttons(message.blocks) if b.action_id == action_id)
    chan = ws.channels[message.channel]
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": ws.users[user_id].name,
                 "name": ws.users[user_id].name, "team_id": ws.team_id},
        "api_app_id": "A0GOLIVE", "token": sandbox.verification_token,
        "container": {"type": "message", "message_ts": message.ts, "channel_id": chan.id,
                      "is_ephemeral": False},
        "trigger_id": sandbox.api.issue_trigger(user_id),
        "team": {"id": ws.team_id, "domain": ws.team_domain},
        "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": chan.id, "name": chan.name},
        "message": message.to_api(ws.team_id, ws.files),
        "state": {"values": {}},
        "response_url": sandbox.api.issue_response_url(user_id, chan.id, message.ts),
        "actions": [{"action_id": button.action_id, "block_id": button.block_id,
                     "text": {"type": "plain_text", "text": button.text},
                     "value": button.value, "type": "button", "action_ts": str(time.time())}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sandbox.sign(body)}
    saved = sandbox.bot_url
    try:
        return httpx.post(bot_url, content=body, headers=headers, timeout=10)
    finally:
        sandbox.bot_url = saved


def parent_of(pid: int) -> int | None:
    """The parent of a live process (None when it is gone): `golive serve`'s work process is
    its child (bot/supervise.py)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s whole process group (it leads one) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
