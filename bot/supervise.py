"""``golive serve``'s work process: started, watched and restarted by the web process.

The web process is the door: it verifies, records and acks (bot/server.py), and nothing else
runs on its interpreter, so an ack never queues behind a status view, an audit row, a step's
log or a watch. Everything else runs in one work process (``golive work``: the inbox's
handler, the step worker, the outbox sender, the watches, the canary), at a lower CPU
priority, so on a busy machine the kernel prefers the door too.

- The child reports ``ready`` on a pipe once its runtime has started; until then, and while
  it is down, ``status()`` says so and /healthz answers 503 (requests still land in the
  inbox and are handled when it is back: nothing acked is lost).
- A child that exits is started again, after 1 s, doubling to 30 s while it keeps failing.
- The child dies with the web process (``PR_SET_PDEATHSIG``), even on ``kill -9``; both are
  in one process group, so a platform's stop of the group stops both.
- A stop that hangs does not keep a process alive (``exit_on_signals``): the first SIGTERM or
  SIGINT asks for a clean stop and arms a hard exit ``STOP_GRACE_S`` later; a second one
  exits at once. Nothing is lost by it: every effect sits behind a persisted transition, and
  a process that exits mid-stop is recovered as a crash is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's; read by bot/metrics.py
NICENESS = 10  # CFS weight 110 against the door's 1024
BACKOFF_S = (1.0, 30.0)
STABLE_AFTER_S = 60.0  # a child that ran this long resets the backoff
STOP_GRACE_S = 10.0
DOOR_URL_ENV = "GOLIVE_DOOR_DATABASE_URL"
"""The door role's URL: the work process does not get it (only the door writes inbox rows)."""


def exit_on_signals(stop: threading.Event, *, grace_s: float = STOP_GRACE_S * 2,
                    exit: Callable[[int], object] = os._exit,
                    timer: Callable[..., threading.Timer] = threading.Timer
                    ) -> Callable[[int, object], None]:
    """Install SIGTERM and SIGINT: the first sets ``stop`` (the caller stops cleanly) and arms
    an exit after ``grace_s``; a second exits at once. Returns the handler."""
    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            log.warning("signal %s during the stop: exiting now", signum)
            exit(128 + signum)
            return
        stop.set()

        def too_long() -> None:
            log.error("the stop took over %.0f s: exiting without finishing it", grace_s)
            exit(128 + signum)
        t = timer(grace_s, too_long)
        t.daemon = True
        t.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return handler


class WorkProcess:
    """See the module docstring."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.argv = argv or [sys.executable, "-m", "bot.cli", "work"]
        self._proc: subprocess.Popen | None = None
        self._state = "starting"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def status(self) -> str | None:
        """None while the work process is up, else what it is doing (``starting``, ``down``)."""
        return None if self._state == "up" else self._state

    def start(self) -> WorkProcess:
        self._thread = threading.Thread(target=self._supervise, name="golive-work-supervisor",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._thread is not None:
            self._thread.join(5)

    def _supervise(self) -> None:
        delay = BACKOFF_S[0]
        while not self._stop.is_set():
            began = time.monotonic()
            code = self._run_once()
            if self._stop.is_set():
                return
            self._state = "down"
            log.error("the work process exited (code %s); starting it again in %.0f s",
                      code, delay)
            if time.monotonic() - began > STABLE_AFTER_S:
                delay = BACKOFF_S[0]
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_S[1])

    def _run_once(self) -> int | None:
        read, write = os.pipe()
        try:
            with self._lock:
                if self._stop.is_set():
                    return None
                self._state = "starting"
                self._proc = subprocess.Popen(
                    [*self.argv, "--ready-fd", str(write), "--parent", str(os.getpid())],
                    pass_fds=(write,), stdin=subprocess.DEVNULL,
                    env={k: v for k, v in os.environ.items() if k != DOOR_URL_ENV})
        except OSError as e:
            os.close(read)
            os.close(write)
            log.error("could not start the work process: %s", e)
            return None
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            if pipe.readline().strip() == b"ready":
                self._state = "up"
                log.info("the work process is up (pid %s)", self._proc.pid)
        return self._proc.wait()


def become_work_process(parent: int | None, niceness: int = NICENESS) -> None:
    """In the child: die with the web process, and yield the CPU to it."""
    if parent is not None and sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(0)
    with contextlib.suppress(OSError):
        os.nice(niceness)


def report_ready(fd: int | None) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, b"ready\n")
        os.close(fd)


def share_metrics() -> str | None:
    """Make this process and its children count into one prometheus-client multiprocess
    directory (bot/metrics.py). Must run before anything imports prometheus_client (the
    client picks its mode then). Returns the directory it made (the caller removes it), or
    None when one was set already."""
    if os.environ.get(MULTIPROC_ENV) or "prometheus_client" in sys.modules:
        return None  # shared already, or too late to share (this process counts alone)
    path = tempfile.mkdtemp(prefix="golive-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path
