"""Run `golive socket` as a real separate process (crash and order tests over Socket Mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from bot.dev.sandbox.socketmode import SocketModeServer
from tests.support.procs import kill_group


class SocketProcess:
    """`golive socket` in its own process group; ready once it has opened its link."""

    def __init__(self, environ: dict[str, str], log: Path, links: SocketModeServer):
        self.links = links
        self.log = log
        self._after = len(links.links)
        self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "socket"],
                                     env={**os.environ, **environ}, stdout=log.open("ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> SocketProcess:
        """Until the process has opened a new link (its runtime started before it)."""
        try:
            self.links.wait_for_link(after=self._after, timeout=timeout,
                                     alive=lambda: self.proc.poll() is None)
        except TimeoutError:
            raise RuntimeError(f"golive socket did not connect: "
                               f"{self.log.read_text(errors='replace')[-2000:]}") from None
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup code runs, the link just drops."""
        kill_group(self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
