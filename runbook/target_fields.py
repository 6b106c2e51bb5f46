"""What every ``[target]`` table shares: a frozen table that refuses unknown keys
(:class:`TargetTable`), the names its values must be (environment variables, dotted field
paths, token formats), which environment names look secret, and the two references built from
config: a release image's (:func:`image_ref`) and an auth header's value (:func:`header_value`).
Pure.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

SECRET_ENV_NAME = re.compile(
    r"(PASSWORD|PASSWD|TOKEN|SECRET|DATABASE_URL|DSN|API_KEY|PRIVATE)", re.IGNORECASE
)
"""An environment variable whose name says its value is secret (masked in all output)."""
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TargetTable(BaseModel):
    """A table of ``[target]``: frozen, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def env_name(v: str) -> str:
    """``v``, when it is an environment variable's name (else a ValueError naming it)."""
    if not ENV_NAME.fullmatch(v):
        raise ValueError(f"{v!r} is not an environment variable name")
    return v


def dotted(v: str | None) -> str | None:
    """``v``, when it is a dotted field path like ``build.release`` (or None)."""
    if v is not None and (not v or any(not part for part in v.split("."))):
        raise ValueError(f"{v!r} is not a dotted field path like 'build.release'")
    return v


def token_format(v: str | None) -> str | None:
    """``v``, when it is a header format holding ``{token}`` and nothing else (or None)."""
    if v is None:
        return v
    if "{token}" not in v:
        raise ValueError("the format must contain {token}, e.g. 'Bearer {token}'")
    try:
        v.format(token="x")
    except (KeyError, IndexError, ValueError):
        raise ValueError("the format may contain only the placeholder {token}") from None
    return v


def header_value(header: str, fmt: str | None, token: str) -> str:
    """The auth header's value: ``fmt`` with the token, or by default ``Bearer <token>`` in
    ``Authorization`` and the bare token in any other header (e.g. ``X-Ops-Token``)."""
    if fmt is None:
        fmt = "Bearer {token}" if header.lower() == "authorization" else "{token}"
    return fmt.format(token=token)


def image_ref(registry: str, repository: str, tag: str) -> str:
    """The release image's reference, one rule for every deployer."""
    return f"{registry}/{repository}:{tag}"
