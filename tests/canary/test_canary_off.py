"""Without the team's ledger (account and queries), the canary is off: `/golive canary` says
which keys to set, and never runs the sample's queries against the team's database."""

from __future__ import annotations


def test_canary_without_its_ledger_config_says_what_to_set(toybot):
    toybot.command("alice", "start v2")
    reply = toybot.command("alice", "canary")
    assert "The canary is off until its ledger is configured" in reply, reply
    for key in ("[canary] account", "[canary.queries] balances", "[canary.queries] deposit",
                "[canary.queries] withdrawal"):
        assert key in reply, reply
