"""What every ``[preflight.<check>]`` section shares: unknown keys are refused, and a key an
older golive accepted gets a clear error that says what replaced it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def renamed(data: Any, section: str, moved: dict[str, str]) -> Any:
    """A clear error for keys an older golive accepted in ``section`` (not a bare 'extra')."""
    if isinstance(data, dict):
        old = [k for k in moved if k in data]
        if old:
            raise ValueError("; ".join(f"{k} is no longer a key of {section}: {moved[k]}"
                                       for k in old) + " (see golive.example.toml)")
    return data


class Section(BaseModel):
    """A section of ``[preflight]``: unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")
