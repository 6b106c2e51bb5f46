"""One daemon thread running one loop until told to stop: the lifecycle the inbox's recovery
(bot/inbox.py) and the handoff (bot/handoff.py) share."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Loop:
    """``start(body)`` runs ``body`` on a daemon thread (once); ``stop()`` asks it to end
    (``stopping`` is set) and waits up to ``join_s`` for it."""

    def __init__(self, name: str, *, join_s: float = 5.0) -> None:
        self.name = name
        self.join_s = join_s
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, body: Callable[[], None]) -> None:
        if self._thread is None:
            self.stopping.clear()
            self._thread = threading.Thread(target=body, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(self.join_s)
            self._thread = None
