"""Mask secret values before any text leaves a step (progress, summaries, details, errors)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
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


class Masker:
    """``mask`` for one set of secrets, with every secret's variants computed once.

    ``Masker(secrets)(text) == mask(text, secrets)`` for every text: the same needles in the
    same order (longest first), then the same URL-password and Slack-token patterns.
    """

    __slots__ = ("needles",)

    def __init__(self, secrets: Mapping[str, str] | Iterable[str] | None = None):
        values = secrets.values() if isinstance(secrets, Mapping) else (secrets or ())
        self.needles = _needles(tuple(str(v) for v in values if v))

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for needle in self.needles:
            text = text.replace(needle, MASK)
        # Each pattern needs its literal ("://", "xox", "xapp-"): skip the scan without it.
        if "://" in text:
            text = _URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK, text)
        if "xox" in text:
            text = _SLACK_TOKEN.sub(MASK, text)
        if "xapp-" in text:
            text = _SLACK_APP_TOKEN.sub(MASK, text)
        return text


@lru_cache(maxsize=64)
def _needles(values: tuple[str, ...]) -> tuple[str, ...]:
    needles: set[str] = set()
    for value in values:
        needles |= _variants(value)
    # Longest first so a URL is masked whole before its password part is looked for.
    return tuple(sorted(needles, key=len, reverse=True))


def mask(text: str, secrets: Mapping[str, str] | Iterable[str] | Masker | None = None) -> str:
    """Return ``text`` with every secret value, URL password and Slack token replaced by ****.

    The variants of a set of secrets are computed once (cached by value); a caller on a hot
    path may pass a ``Masker`` built once instead of the secrets.
    """
    if not text:
        return text
    return (secrets if isinstance(secrets, Masker) else Masker(secrets))(text)


def tail(text: str, lines: int = 20, chars: int = 2500) -> str:
    """The last ``lines`` lines of ``text``, at most ``chars`` characters."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]
