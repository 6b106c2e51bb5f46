"""What people type in the canary thread: amounts, references and short commands. Pure.

Every problem is an ``InputError`` whose message is the reply the person sees; the item it
concerns stays as it was, so they can simply try again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:#/-]{0,127}$")
_AMOUNT = re.compile(r"^\s*(?:[$€£]\s*)?(?P<num>[0-9][0-9,]*(?:\.[0-9]+)?)\s*(?P<cur>[A-Za-z]{3})?\s*$")


class InputError(ValueError):
    """Input a person can correct; the message says how."""


def fmt_money(cents: int | None, currency: str, minor_units: int = 2) -> str:
    """``1000`` -> ``10.00 USD`` (``-`` when unknown)."""
    if cents is None:
        return "-"
    value = Decimal(cents).scaleb(-minor_units)
    return f"{value:,.{minor_units}f} {currency}"


def parse_amount(text: str | None, *, currency: str, minor_units: int = 2) -> int | None:
    """Minor units from ``10``, ``10.00``, ``$10``, ``10 USD``; None when ``text`` is empty."""
    if text is None or not text.strip():
        return None
    m = _AMOUNT.match(text)
    if not m:
        raise InputError(f"`{text.strip()[:40]}` is not an amount: write it like `10.00` "
                         f"(in {currency}).")
    cur = (m.group("cur") or currency).upper()
    if cur != currency:
        raise InputError(f"The canary is in {currency}, not {cur}.")
    try:
        value = Decimal(m.group("num").replace(",", ""))
    except InvalidOperation:
        raise InputError(f"`{text.strip()[:40]}` is not an amount.") from None
    scaled = value.scaleb(minor_units)
    if scaled != scaled.to_integral_value():
        raise InputError(f"{value} {currency} has more than {minor_units} decimals.")
    if scaled <= 0:
        raise InputError("The amount must be more than zero.")
    return int(scaled)


def validate_reference(text: str | None) -> str:
    """A transaction or PSP reference: 1-128 characters, letters, digits and ``_.:#/-``."""
    ref = (text or "").strip()
    if not ref:
        raise InputError("The reference is empty: paste the transaction or PSP reference.")
    if not _REFERENCE.match(ref):
        shown = ref[:40] + ("…" if len(ref) > 40 else "")
        raise InputError(f"`{shown}` does not look like a transaction reference: use letters, "
                         "digits and `_ . : # / -` only (at most 128 characters).")
    return ref


@dataclass(frozen=True)
class CanaryCommand:
    """A thread reply understood as a canary command."""

    kind: str
    """``deposit`` | ``withdrawal`` | ``sign`` | ``reject`` | ``status``."""
    reference: str | None = None
    amount: str | None = None
    note: str = ""


_KINDS = {"deposit": "deposit", "deposited": "deposit", "withdraw": "withdrawal",
          "withdrawal": "withdrawal", "withdrew": "withdrawal", "payout": "withdrawal",
          "sign": "sign", "signoff": "sign", "sign-off": "sign", "reject": "reject",
          "status": "status"}

USAGE = ("Reply with `deposit <reference> [amount]`, `withdraw <reference> [amount]`, "
         "`sign [note]`, `reject <reason>` or `status`.")


def parse_command(text: str) -> CanaryCommand:
    """Parse a thread reply such as ``deposit dep_123 10.00``; InputError says the usage."""
    words = (text or "").strip().split(maxsplit=1)
    if not words:
        raise InputError(USAGE)
    kind = _KINDS.get(words[0].lower().lstrip("/"))
    rest = words[1].strip() if len(words) > 1 else ""
    if kind is None:
        raise InputError(f"I don't know `{words[0][:30]}`. {USAGE}")
    if kind in ("sign", "reject", "status"):
        return CanaryCommand(kind, note=rest)
    parts = rest.split(maxsplit=1)
    if not parts:
        raise InputError(f"Which {kind}? {USAGE}")
    return CanaryCommand(kind, reference=parts[0], amount=parts[1] if len(parts) > 1 else None)
