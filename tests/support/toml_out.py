"""Write a [target] table as TOML from a TargetConfig (tests build configs from fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def target_table(target: Any) -> str:
    """`target = { ... }` for a TargetConfig, secrets included (test configs only)."""
    data = _plain(dict(target))
    data = {k: _plain(v.model_dump() if hasattr(v, "model_dump") else v)
            for k, v in data.items()}
    return "target = " + _inline(data) + "\n"
