"""Polling for a condition with a deadline (the database has no change notification to wait on)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def wait_until(what: str, fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``fn`` until it returns something truthy and return that; AssertionError names
    ``what`` when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        threading.Event().wait(0.05)
