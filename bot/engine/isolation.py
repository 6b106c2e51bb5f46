"""Each step runs in a child process that the worker can stop for certain.

The child is forked (step kinds registered at run time come along), leads its own process group
(so the docker CLI, scripts and every other subprocess it starts die with it), sends progress
lines and its result back over a pipe, and fences itself: a watchdog thread in the child kills
the whole group when the worker dies (the lifeline pipe reads EOF) or stops renewing the
step's lease (no renewal for ``fence_s`` seconds of the machine's monotonic clock, which parent
and child share). So the step's side effects stop before anyone else may take the step for
dead, and the worker only records an outcome after the group is killed and reaped.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import struct
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from runbook.steps.base import StepContext, StepFailed, StepNotAvailable

_STAMP = struct.Struct("!d")


@dataclasses.dataclass
class Ended:
    """How the child ended: ``kind`` is result, failed, not_available, crashed or vanished."""

    kind: str
    value: Any = None
    message: str = ""
    facts: dict = dataclasses.field(default_factory=dict)


class StepProcess:
    """One step in its own process group; see the module docstring."""

    def __init__(self, fn: Any, ctx: StepContext, *, fence_s: float, renewed_at: float):
        self.ended: Ended | None = None
        out_r, out_w = os.pipe()
        life_r, life_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(out_r)
            os.close(life_w)
            _child(fn, ctx, Connection(out_w), life_r, fence_s, renewed_at)
        os.close(out_w)
        os.close(life_r)
        try:
            os.setpgid(self.pid, self.pid)  # also from here: no window where killpg misses it
        except OSError:
            pass  # the child already did it (or is gone)
        self._out = Connection(out_r)
        self._life = life_w
        self._reaped = False

    def next(self, timeout: float) -> tuple | Ended | None:
        """A ("progress", line), a ("record", kind, payload) from ``ctx.emit``, the child's
        Ended, or None when nothing came in ``timeout``."""
        if self.ended is not None:
            return self.ended
        if not self._out.poll(max(0.0, timeout)):
            return None
        try:
            msg = self._out.recv()
        except (EOFError, OSError):
            self.ended = Ended("vanished", message="the step process ended without a result")
            return self.ended
        if msg[0] in ("progress", "record"):
            return msg
        self.ended = Ended(*msg)
        return self.ended

    def renew(self, renewed_at: float) -> None:
        """Tell the child its lease was renewed at ``renewed_at`` (time.monotonic)."""
        try:
            os.write(self._life, _STAMP.pack(renewed_at))
        except OSError:
            pass  # the child is gone; kill() reaps it

    def kill(self) -> None:
        """Kill the whole process group and reap the child; returns once it is gone."""
        if self._reaped:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        self._reaped = True
        self._out.close()
        os.close(self._life)


def _child(fn: Any, ctx: StepContext, out: Connection, life_r: int, fence_s: float,
           renewed_at: float) -> None:
    code = 0
    try:
        os.setpgid(0, 0)
        threading.Thread(target=_fence, args=(life_r, fence_s, renewed_at), daemon=True).start()
        sending = threading.Lock()  # a step's threads (preflight checks) share the pipe

        def send(msg: tuple) -> None:
            with sending:
                out.send(msg)

        step_ctx = dataclasses.replace(
            ctx, progress=lambda text: send(("progress", str(text))),
            emit=lambda kind, record: send(("record", str(kind), dict(record))))
        try:
            msg: tuple = ("result", fn(step_ctx))
        except StepNotAvailable as e:
            msg = ("not_available", None, e.message)
        except StepFailed as e:
            msg = ("failed", None, e.message, dict(e.facts))
        except BaseException as e:  # noqa: BLE001 - a bug in a step is reported, not raised
            msg = ("crashed", None, f"{type(e).__name__}: {e}")
        try:
            send(msg)
        except Exception as e:  # noqa: BLE001 - e.g. a result that does not pickle
            send(("crashed", None, f"the step's result could not be sent back: {e}"))
    except BaseException:  # noqa: BLE001 - nothing may unwind into the parent's code
        code = 1
    finally:
        os._exit(code)  # no atexit, no finalizers: the parent's connections are not ours


def _fence(life_r: int, fence_s: float, renewed_at: float) -> None:
    """Kill our own process group when the worker dies or stops renewing the lease."""
    deadline = renewed_at + fence_s
    while True:
        wait = deadline - time.monotonic()
        if wait <= 0:
            break
        ready, _, _ = select.select([life_r], [], [], wait)
        if not ready:
            continue
        data = os.read(life_r, 4096)
        if not data:
            break  # the worker is gone
        # Stamps are written whole (8 bytes < PIPE_BUF), so the newest is the last 8 bytes.
        (stamp,) = _STAMP.unpack(data[-_STAMP.size:])
        deadline = max(deadline, stamp + fence_s)
    os.killpg(0, signal.SIGKILL)
