"""Start `golive serve` processes fast: a parent that has only imported the bot's modules
forks each one, which then runs ``bot.cli.main(["serve", ...])`` in a fresh session.

A restart costs the runtime's start-up, not the ~2 s (more on a loaded machine) of importing
Python modules again: the crash test restarts the bot 20 times. Each child is a real process
of its own (its own process group, its own database connections, threads and step children,
built after the fork: the parent never runs any of the bot's code), so ``kill -9`` of its
group is a crash like any other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.harness import free_socket
from tests.support.procs import kill_group

_MODULES = ("bot.cli", "bot.server", "bot.runtime", "bot.app", "uvicorn", "slack_bolt",
            "psycopg", "apscheduler.schedulers.background", "runbook.steps")


def _serve_forks() -> None:
    """The parent: import, then fork one `golive serve` per line read (JSON: env, port, log)."""
    import importlib

    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the bot waits for its children
            os.setsid()
            fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.environ.clear()
            os.environ.update(req["env"])
            code = 1
            try:
                from bot.cli import main

                code = main(["serve", "--host", "127.0.0.1", "--port", str(req["port"])])
            finally:
                os._exit(code)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()


class Zygote:
    """The forking parent, as a child of the test process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tests.support.zygote import _serve_forks as f; f()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the zygote did not start")

    def spawn(self, environ: dict[str, str], log: Path) -> ForkedBot:
        sock = free_socket()
        port = sock.getsockname()[1]
        sock.close()
        env = {**os.environ, **environ}
        self.proc.stdin.write(json.dumps({"env": env, "port": port, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        pid = int(self.proc.stdout.readline())
        return ForkedBot(pid, port, log)

    def stop(self) -> None:
        kill_group(self.proc)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ForkedBot:
    """One `golive serve` forked by the zygote: ``kill`` and ``stop`` as for BotProcess."""

    def __init__(self, pid: int, port: int, log: Path):
        self.pid, self.port, self.log = pid, port, log
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 30.0) -> ForkedBot:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(self.pid):
                raise RuntimeError(f"golive serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # waiting for a process to bind; no event to wait on
        raise TimeoutError(f"golive serve not ready: {self.log.read_text()[-2000:]}")

    def _signal_and_wait(self, sig: int, timeout: float) -> bool:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while _alive(self.pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)  # not our child: no wait() to block on
        return True

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup code runs."""
        self._signal_and_wait(signal.SIGKILL, 10)

    def stop(self) -> None:
        if not self._signal_and_wait(signal.SIGTERM, 10):
            self.kill()
