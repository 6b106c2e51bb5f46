"""The demo console's `/knob name value`: turn the sample app's failure knobs (examples/paybox
``POST /ops/knobs``) so a newcomer can watch a breach and its alert happen."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from runbook.target_switches import HttpSwitch


def paybox_knobs(target: Any) -> Callable[[str, str], str] | None:
    """A knob setter for the configured target, or None when it has no ops token switch."""
    switch = getattr(target, "maintenance", None)
    if not isinstance(switch, HttpSwitch) or switch.token is None:
        return None
    headers = switch.auth_headers()  # the switch's header in its configured format
    url = target.internal_url.rstrip("/") + "/ops/knobs"

    def set_knob(name: str, value: str) -> str:
        parsed: Any = {"true": True, "false": False}.get(value.lower())
        if parsed is None:
            try:
                parsed = float(value)
            except ValueError:
                return f"! {name}: {value!r} is not a number or true/false"
        try:
            r = httpx.post(url, json={name: parsed}, headers=headers, timeout=5)
        except httpx.HTTPError as e:
            return f"! the sample app is not reachable ({type(e).__name__})"
        if r.status_code != 200:
            return f"! the sample app refused: {r.text[:200]}"
        return "knobs now " + json.dumps(r.json(), sort_keys=True)
    return set_knob
