"""The mask computed once per set of secrets masks exactly as the per-call computation did.

``_reference`` is ``runbook.adapters.redact.mask`` as it was before the variants were
precomputed (every call recomputed every secret's variants); the masker, ``mask`` and
``mask_payload`` must give the same text for every input, tricky ones included.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, unquote, urlsplit

import pytest

from bot.slack.client import mask_payload
from runbook.adapters import redact
from runbook.adapters.redact import MASK, Masker, mask

SECRETS = {
    "db": "postgresql://ledger:p%40ss-w0rd!@db.internal:5432/ledger",
    "token": "s3cr3t/with+plus=",
    "short": "abc12",  # under MIN_SECRET_LEN: never masked
    "nested": "s3cr3t/with+plus=-and-more",  # contains another secret
    "empty": "",
    "pw": "hunter2hunter2",
}


def _reference(text, secrets):
    if not text:
        return text
    values = secrets.values() if isinstance(secrets, dict) else (secrets or ())
    needles = set()
    for value in values:
        if not value:
            continue
        value = str(value)
        out = {value, quote(value, safe=""), unquote(value)}
        try:
            parts = urlsplit(value)
            if parts.password:
                out.add(parts.password)
                out.add(unquote(parts.password))
        except ValueError:
            pass
        needles |= {v for v in out if len(v) >= redact.MIN_SECRET_LEN}
    for needle in sorted(needles, key=len, reverse=True):
        text = text.replace(needle, MASK)
    text = redact._URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK, text)
    text = redact._SLACK_TOKEN.sub(MASK, text)
    return redact._SLACK_APP_TOKEN.sub(MASK, text)


TRICKY = [
    "",
    "nothing secret here",
    f"dsn={SECRETS['db']}",
    f"encoded: {quote(SECRETS['db'], safe='')}",
    "password part only: p@ss-w0rd! and p%40ss-w0rd!",
    f"token {SECRETS['token']} and quoted {quote(SECRETS['token'], safe='')}",
    f"longer first: {SECRETS['nested']} then {SECRETS['token']}",
    "substring: s3cr3t/with+plu (one short) and xs3cr3t/with+plus=x (inside a word)",
    f"base64: {base64.b64encode(SECRETS['pw'].encode()).decode()}",
    f"base64 of the dsn: {base64.b64encode(SECRETS['db'].encode()).decode()}",
    "short values stay: abc12 abc123",
    "url with another password: https://deploy:other-pass@registry:5000/v2/",
    "slack tokens: xoxb-1234567890-abcdef xapp-1-A0-123456 xoxp-short xox-nope",
    "a bot token inside text:xoxb-123456-abcdefXYZ.",
    f"twice: {SECRETS['pw']}{SECRETS['pw']} overlapping hunter2hunter2hunter2",
    "multiline\n" + SECRETS["pw"] + "\n\tp%40ss-w0rd!\n",
    "unicode: пароль hunter2hunter2 ✓ ://",
    "****",
    "scheme-ish without a password: http://host/path?x=y and ftp://user@host",
]


@pytest.mark.parametrize("text", TRICKY)
def test_masker_and_mask_give_the_reference_text(text):
    expected = _reference(text, SECRETS)
    assert Masker(SECRETS)(text) == expected
    assert mask(text, SECRETS) == expected
    assert mask(text, Masker(SECRETS)) == expected
    assert mask(text, list(SECRETS.values())) == _reference(text, list(SECRETS.values()))


def test_what_a_reader_sees():
    m = Masker(SECRETS)
    assert SECRETS["pw"] not in m("login hunter2hunter2 ok")
    assert m(f"dsn={SECRETS['db']}") == f"dsn={MASK}"
    assert m(quote(SECRETS["db"], safe="")) == MASK
    assert m("p@ss-w0rd!") == MASK  # the URL's password alone
    assert m("abc12") == "abc12"  # too short to mask
    assert m("xoxb-1234567890-abcdef") == MASK
    assert m("https://u:p4ss@h/") == f"https://u:{MASK}@h/"
    # The base64 of a secret is not one of its variants: not masked, before or after.
    b64 = base64.b64encode(SECRETS["pw"].encode()).decode()
    assert m(b64) == b64


def test_no_secrets_masks_only_the_patterns():
    for secrets in (None, {}, [], Masker(None)):
        assert mask("xoxb-1234567890-abcdef and hunter2hunter2", secrets) == \
            f"{MASK} and hunter2hunter2"


def test_a_masker_keeps_no_reference_to_a_changed_mapping():
    secrets = dict(SECRETS)
    m = Masker(secrets)
    secrets["pw"] = "something-else-entirely"
    assert m("hunter2hunter2") == MASK
    assert mask("something-else-entirely", secrets) == MASK  # mask() sees the new value


def test_mask_payload_with_a_masker_equals_with_the_mapping():
    payload = {"text": f"dsn {SECRETS['db']}", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "pw hunter2hunter2"}},
        ("tuple", quote(SECRETS["token"], safe=""), 3, None, True)],
        "n": 7}
    by_mapping = mask_payload(payload, SECRETS)
    assert mask_payload(payload, Masker(SECRETS)) == by_mapping
    assert by_mapping == {"text": f"dsn {MASK}", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"pw {MASK}"}},
        ["tuple", MASK, 3, None, True]], "n": 7}
