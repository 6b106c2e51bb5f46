"""Tail the app's logs (a container's log stream through the Docker SDK, or a file) and count
matching lines per second, so watches can ask "how many in the last N seconds".

A tail runs in one daemon thread and never raises: when the stream breaks or ends (the
container was replaced by a deploy, the file rotated, the engine restarted) it records the
error, reconnects with capped backoff and resumes after the last line it saw.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Opener = Callable[[str | None], Iterator[bytes]]
"""Given the last timestamp seen (docker) or None, yields raw chunks; b"" means idle."""


class LineCounter:
    """Per-second counts of classified lines, kept for ``keep_s`` seconds."""

    def __init__(self, classify: Callable[[str], Iterable[str]], keep_s: float = 3600.0):
        self.classify = classify
        self.keep_s = keep_s
        self._buckets: deque[tuple[int, Counter[str]]] = deque()
        self._lock = threading.Lock()

    def feed(self, lines: list[str], at: float) -> None:
        """Count ``lines`` received at ``at`` (seconds since the epoch)."""
        c: Counter[str] = Counter()
        for line in lines:
            c.update(self.classify(line))
        if not c:
            return
        sec = int(at)
        with self._lock:
            if self._buckets and self._buckets[-1][0] == sec:
                self._buckets[-1][1].update(c)
            else:
                self._buckets.append((sec, c))
            while self._buckets and self._buckets[0][0] < sec - self.keep_s:
                self._buckets.popleft()

    def count(self, window_s: float, now: float) -> Counter[str]:
        """Counts over the last ``window_s`` seconds up to ``now``."""
        lo = now - window_s
        out: Counter[str] = Counter()
        with self._lock:
            for sec, c in reversed(self._buckets):
                if sec + 1 <= lo:
                    break
                if sec <= now:
                    out.update(c)
        return out


def pattern_classifier(patterns: dict[str, str]) -> Callable[[str], list[str]]:
    """Classify a line by which named regular expressions it matches."""
    compiled = [(name, re.compile(p)) for name, p in patterns.items()]

    def classify(line: str) -> list[str]:
        return [name for name, rx in compiled if rx.search(line)]

    return classify


def status_classifier(pattern: str) -> Callable[[str], list[str]]:
    """Classify access-log lines as ``total`` and, for 5xx, ``errors`` (group ``status``)."""
    rx = re.compile(pattern)

    def classify(line: str) -> list[str]:
        m = rx.search(line)
        if not m:
            return []
        return ["total", "errors"] if m.group("status").startswith("5") else ["total"]

    return classify


class LogTail:
    """One reconnecting reader feeding every subscribed counter."""

    def __init__(self, name: str, opener: Opener, *, reconnect_max_s: float = 5.0,
                 clock: Callable[[], float] = time.time):
        self.name = name
        self.opener = opener
        self.reconnect_max_s = reconnect_max_s
        self.clock = clock
        self.counters: list[LineCounter] = []
        self.connected = False
        self.last_error: str | None = None
        self.down_since: float | None = None
        self.reconnects = 0
        self.lines = 0
        self._last_ts: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None

    def subscribe(self, counter: LineCounter) -> LineCounter:
        self.counters.append(counter)
        return counter

    def start(self) -> None:
        if self._thread is None:
            self.down_since = self.clock()
            self._thread = threading.Thread(target=self._run, name=f"logtail-{self.name}",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None and hasattr(stream, "close"):
            try:
                stream.close()
            except Exception:  # noqa: BLE001, S110 - closing a dead stream may fail; we are leaving
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def problem(self) -> str | None:
        """Why the stream cannot be trusted right now (None when it is connected)."""
        if self.connected:
            return None
        since = datetime.fromtimestamp(self.down_since or self.clock(), UTC)
        return (f"log stream {self.name} down since {since:%H:%M:%S} UTC"
                + (f": {self.last_error}" if self.last_error else " (connecting)"))

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._stream = self.opener(self._last_ts)
                self._consume(self._stream)
                self.last_error = "stream ended"
            except Exception as e:  # noqa: BLE001 - any failure means: reconnect
                self.last_error = f"{type(e).__name__}: {str(e)[:200]}"
            if self.connected:
                self.connected = False
                self.down_since = self.clock()
                backoff = 0.2
            if self._stop.is_set():
                break
            log.warning("log tail %s: %s; reconnecting in %.1f s", self.name, self.last_error,
                        backoff)
            self.reconnects += 1
            self._stop.wait(backoff)
            backoff = min(self.reconnect_max_s, backoff * 2)

    def _consume(self, stream: Iterator[bytes]) -> None:
        pending = b""
        for chunk in stream:
            if not self.connected:
                self.connected, self.last_error, self.down_since = True, None, None
            if self._stop.is_set():
                return
            if not chunk:
                continue
            pending += chunk
            if b"\n" not in pending:
                continue
            body, _, pending = pending.rpartition(b"\n")
            lines = body.decode("utf-8", "replace").split("\n")
            lines = self._dedupe(lines)
            self.lines += len(lines)
            now = self.clock()
            for counter in self.counters:
                counter.feed(lines, now)

    def _dedupe(self, lines: list[str]) -> list[str]:
        # docker lines carry a fixed-width RFC 3339 timestamp: after a reconnect, skip what
        # was already counted (the stream restarts at `since`, to the second)
        if not lines or not _TS.match(lines[0]):
            return lines
        out = []
        last = self._last_ts
        for line in lines:
            ts, _, rest = line.partition(" ")
            if last is not None and ts <= last:
                continue
            out.append(rest)
            last = ts
        self._last_ts = last
        return out


_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ")


def file_opener(path: Path, *, poll_s: float = 0.05, stop: threading.Event | None = None
                ) -> Opener:
    """Follow a file from its end, like ``tail -F``: reopen it when rotated or truncated."""
    state = {"first": True}

    def open_(_last: str | None) -> Iterator[bytes]:
        fh = open(path, "rb")  # noqa: SIM115 - closed in the generator's finally
        try:
            st = os.fstat(fh.fileno())
            if state["first"]:
                fh.seek(0, os.SEEK_END)  # a watch counts what happens from now on
                state["first"] = False
            while stop is None or not stop.is_set():
                chunk = fh.read(1 << 20)
                if chunk:
                    yield chunk
                    continue
                try:
                    cur = os.stat(path)
                except FileNotFoundError:
                    raise ConnectionError(f"{path} disappeared") from None
                if cur.st_ino != st.st_ino or cur.st_size < fh.tell():
                    raise ConnectionError(f"{path} was rotated or truncated")
                yield b""
                time.sleep(poll_s)
        finally:
            fh.close()

    return open_


def docker_opener(container: str | Callable[[], str], *, docker_host: str | None = None
                  ) -> Opener:
    """Follow a container's stdout+stderr through the Docker SDK, re-resolving the container
    on every reconnect (a deploy replaces it)."""

    def open_(last_ts: str | None) -> Iterator[bytes]:
        return _DockerStream(docker_host, container() if callable(container) else container,
                             last_ts)

    return open_


class _DockerStream:
    """A container's log stream that another thread may ``close()`` to unblock the reader."""

    def __init__(self, docker_host: str | None, name: str, last_ts: str | None):
        import docker

        self.client = (docker.DockerClient(base_url=docker_host, timeout=10) if docker_host
                       else docker.from_env(timeout=10))
        try:
            c = self.client.containers.get(name)
            since = _ts_to_epoch(last_ts) if last_ts else int(time.time())
            self.stream = c.logs(stream=True, follow=True, timestamps=True, since=since)
        except Exception:
            self.client.close()
            raise

    def __iter__(self) -> Iterator[bytes]:
        yield b""  # connected, even before the first line
        try:
            yield from self.stream
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001, S110 - already closed
            pass
        self.client.close()


def compose_container(project: str, service: str, docker_host: str | None = None
                      ) -> Callable[[], str]:
    """A resolver for a compose service's running container (by compose labels)."""
    import docker

    def resolve() -> str:
        client = (docker.DockerClient(base_url=docker_host, timeout=10) if docker_host
                  else docker.from_env(timeout=10))
        try:
            found = client.containers.list(filters={"label": [
                f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]})
        finally:
            client.close()
        if not found:
            raise LookupError(f"no running container for compose service {project}/{service}")
        return found[0].id

    return resolve


def _ts_to_epoch(ts: str) -> float:
    whole, _, frac = ts.rstrip("Z").partition(".")
    dt = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return dt.timestamp() + float("0." + (frac or "0"))
