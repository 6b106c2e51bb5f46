"""The team's health contract, applied to a parsed JSON answer: dotted field paths and a
nested subset match. Pure functions, shared by the health step, the health watch and
``golive config check``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
"""What ``dig`` returns for a path the body does not have (shown as ``<missing>``)."""


def dig(body: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``build.release``; a numeric part indexes a list), or
    ``MISSING``."""
    node = body
    for part in path.split("."):
        if isinstance(node, Mapping):
            if part not in node:
                return MISSING
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            i = int(part)
            if not -len(node) <= i < len(node):
                return MISSING
            node = node[i]
        else:
            return MISSING
    return node


def subset_mismatches(expect: Mapping[str, Any], body: Any, prefix: str = ""
                      ) -> list[tuple[str, Any, Any]]:
    """Where ``body`` does not contain ``expect``: tables match recursively (the body may
    hold more keys), anything else (lists included) must be equal. Returns
    ``(dotted path, found, expected)`` for each difference, found ``MISSING`` when absent."""
    out: list[tuple[str, Any, Any]] = []
    for key, want in expect.items():
        path = f"{prefix}{key}"
        got = body.get(key, MISSING) if isinstance(body, Mapping) else MISSING
        if isinstance(want, Mapping) and isinstance(got, Mapping):
            out += subset_mismatches(want, got, path + ".")
        elif got is MISSING or not _equal(got, want):
            out.append((path, got, want))
    return out


def _equal(got: Any, want: Any) -> bool:
    # TOML has no null, JSON's true is not 1: compare types strictly for booleans.
    if isinstance(got, bool) != isinstance(want, bool):
        return False
    return bool(got == want)


def leaves(expect: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``expect`` flattened to ``(dotted path, value)`` pairs, for a one-line summary."""
    out: list[tuple[str, Any]] = []
    for key, want in expect.items():
        if isinstance(want, Mapping) and want:
            out += leaves(want, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", want))
    return out


def show(value: Any, limit: int = 60) -> str:
    """A value as the team would read it in a result line: strings bare, the rest as JSON."""
    if value is MISSING:
        return "<missing>"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compact(body: Any, limit: int = 400) -> str:
    """A JSON body on one line, cut at ``limit`` characters (mask it before showing)."""
    try:
        text = json.dumps(body, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        text = repr(body)
    return text if len(text) <= limit else text[: limit - 1] + "…"
