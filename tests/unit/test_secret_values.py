"""Which config values are secret, and how the masker treats short ones and Slack's escapes."""

from __future__ import annotations

import pytest

from bot.settings import ConfigError, parse_config
from commands.base import tokenize
from runbook.adapters.redact import mask

CONFIG = """
secrets = ["SIGNING_KEY", "PIN"]
[channels]
cutover = "C_X"
[approvers]
[target.smoke]
path = "smoke.sh"
env = { GREETING = "hello ${PIN}", KEY = "${SIGNING_KEY}", SHOWN = "${VISIBLE}" }
[target.admin_login]
password = "${ADMIN}"
"""
ENV = {"SIGNING_KEY": "Sg7k3yQ1xZ9v", "PIN": "q7Zk2w", "VISIBLE": "not-a-secret-value",
       "ADMIN": "adm1n-secret"}


def test_values_of_listed_variables_and_secret_fields_are_secret_and_nothing_else():
    values = set(parse_config(CONFIG, environ=ENV).secret_values().values())
    assert values == {"Sg7k3yQ1xZ9v", "q7Zk2w", "adm1n-secret"}, values


def test_a_secrets_entry_must_be_a_variable_name():
    with pytest.raises(ConfigError, match="not environment variable names: \\$\\{PIN\\}"):
        parse_config(CONFIG.replace('"PIN"]', '"${PIN}"]'), environ=ENV)


def test_values_of_six_characters_are_masked_shorter_ones_are_not():
    assert mask("pin q7Zk2w, code 12345", {"a": "q7Zk2w", "b": "12345"}) == (
        "pin ****, code 12345")


@pytest.mark.parametrize("sent,typed", [
    ("a &amp;lt; b", "a &lt; b"),          # the user typed the entity itself
    ("a &lt; b &amp;&amp; c &gt; d", "a < b && c > d"),
    ("&amp;amp;", "&amp;"),
])
def test_slacks_three_escapes_are_undone_once(sent, typed):
    inv = tokenize(f'maintenance on --override "{sent}"')
    assert inv.override == typed
