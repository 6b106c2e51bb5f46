"""Mask secret values before any text leaves a step (progress, summaries, details, errors)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote, urlsplit

MASK = "****"

# scheme://user:password@host -> scheme://user:****@host
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)")
# Slack tokens: bot, app-level, user, refresh, config tokens.
_SLACK_TOKEN = re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{6,}")
_SLACK_APP_TOKEN = re.compile(r"\bxapp-[A-Za-z0-9-]{6,}")
# Shorter values are not masked: replacing every "1234" or "admin" would garble ordinary output,
# and values that short are not worth hiding (README, "Secrets").
MIN_SECRET_LEN = 6


def _variants(value: str) -> set[str]:
    """The forms a secret can take in output: as is, URL-quoted, and a URL's password part."""
    out = {value, quote(value, safe=""), unquote(value)}
    try:
        parts = urlsplit(value)
        if parts.password:
            out.add(parts.password)
            out.add(unquote(parts.password))
    except ValueError:
        pass
    return {v for v in out if len(v) >= MIN_SECRET_LEN}


def mask(text: str, secrets: Mapping[str, str] | Iterable[str] | None = None) -> str:
    """Return ``text`` with every secret value, URL password and Slack token replaced by ****."""
    if not text:
        return text
    values = secrets.values() if isinstance(secrets, Mapping) else (secrets or ())
    needles: set[str] = set()
    for value in values:
        if value:
            needles |= _variants(str(value))
    # Longest first so a URL is masked whole before its password part is looked for.
    for needle in sorted(needles, key=len, reverse=True):
        text = text.replace(needle, MASK)
    text = _URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK, text)
    text = _SLACK_TOKEN.sub(MASK, text)
    text = _SLACK_APP_TOKEN.sub(MASK, text)
    return text


def tail(text: str, lines: int = 20, chars: int = 2500) -> str:
    """The last ``lines`` lines of ``text``, at most ``chars`` characters."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]
