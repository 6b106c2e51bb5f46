"""Canonical JSON: one byte-exact form for hashing (approval binding, audit chain). Pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def plain(value: Any, what: str = "value") -> Any:
    """``value`` as plain JSON types (tuples become lists); TypeError names ``what`` is off."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{what} keys must be strings, got {k!r}")
            out[k] = plain(v, what)
        return out
    if isinstance(value, list | tuple):
        return [plain(v, what) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{what} value {value!r} ({type(value).__name__}) is not JSON")


def canonical_json(value: Any, what: str = "value") -> str:
    """Sorted keys, no spaces, ASCII only, no NaN: the same bytes for the same data."""
    return json.dumps(plain(value, what), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()
