"""Container images as the deploy sees them: what a service runs (reference, image id, the
revision label), a pull's layer events folded into one percentage, and a failed pull's reason
in words a channel can read. Pure: no Docker calls here (``runbook.adapters.docker`` makes them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REVISION_LABEL = "org.opencontainers.image.revision"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageInfo:
    """What a service runs (or will run): reference, local image id and revision label."""

    image: str
    image_id: str | None
    revision: str | None

    @property
    def tag(self) -> str | None:
        last = self.image.rsplit("/", 1)[-1]
        return last.split(":", 1)[1].split("@", 1)[0] if ":" in last else None

    def as_fact(self) -> dict[str, Any]:
        return {"image": self.image, "image_id": self.image_id, "revision": self.revision,
                "tag": self.tag}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> ImageInfo:
        return cls(fact["image"], fact.get("image_id"), fact.get("revision"))


def short(sha: str | None, n: int = 10) -> str:
    return (sha or "?")[:n]


class PullProgress:
    """Folds the per-layer pull event stream into one percentage, reported in 10% steps."""

    def __init__(self, image: str, report: Progress, step: int = 10):
        self.image = image
        self.report = report
        self.step = step
        self.layers: dict[str, float] = {}
        """Layers that need downloading -> fraction done (download 80%, extract 20%)."""
        self.present: set[str] = set()
        self.last_bucket = -1

    def percent(self) -> int:
        if not self.layers:
            return 100 if self.present else 0
        return int(100 * sum(self.layers.values()) / len(self.layers))

    def feed(self, event: Mapping[str, Any]) -> None:
        status = str(event.get("status", ""))
        layer = event.get("id")
        detail = event.get("progressDetail") or {}
        if not layer or status.startswith(("Pulling from", "Digest:", "Status:")):
            return
        if status == "Already exists":
            self.present.add(layer)
            return
        cur, total = detail.get("current") or 0, detail.get("total") or 0
        frac = self.layers.get(layer, 0.0)
        if status == "Pull complete":
            frac = 1.0
        elif status == "Downloading" and total:
            frac = 0.8 * min(1.0, cur / total)
        elif status in ("Download complete", "Verifying Checksum"):
            frac = 0.8
        elif status == "Extracting" and total:
            frac = 0.8 + 0.2 * min(1.0, cur / total)
        self.layers[layer] = max(frac, self.layers.get(layer, 0.0))
        pct = self.percent()
        bucket = pct // self.step
        if bucket > self.last_bucket:
            self.last_bucket = bucket
            self.report(f"pulling {self.image}: {pct}% ({self.describe()})")

    def describe(self) -> str:
        if not self.layers and not self.present:
            return "image up to date"
        done = sum(1 for f in self.layers.values() if f >= 1.0)
        out = f"{done}/{len(self.layers)} layers downloaded"
        return out + (f", {len(self.present)} already present" if self.present else "")


def classify_pull_error(message: str, image: str, registry: str) -> str:
    """A channel-readable reason for a failed pull."""
    low = message.lower()
    if "manifest unknown" in low or ("manifest for" in low and "not found" in low) or (
        "not found" in low and "repository" in low
    ):
        return f"tag not found in registry: {image} (manifest unknown)"
    unreachable = ("connection refused", "no such host", "i/o timeout", "dial tcp",
                   "connection reset", "tls handshake", "server gave http response",
                   "context deadline exceeded", "network is unreachable")
    if any(u in low for u in unreachable):
        return f"registry {registry} unreachable while pulling {image}: {message.strip()[:200]}"
    if "unauthorized" in low or "denied" in low:
        return f"registry {registry} refused {image} (unauthorized / access denied)"
    return f"pull of {image} failed: {message.strip()[:300]}"
