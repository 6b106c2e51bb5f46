"""A cutover step as a person drives it through the sandbox: request it, have someone else
approve it when it is gated, and read its card once it has finished (shared by the nights on
paybox, ledgerline and the Kubernetes cluster)."""

from __future__ import annotations

from bot.ids import Action
from tests.support.harness import Bot, text_of

DONE = ("succeeded", "failed", "interrupted")


def request_and_approve(bot: Bot, requester: str, text: str, approver: str, title: str) -> str:
    """A gated step: requested, approved by someone else; its card once it has finished."""
    card = bot.request(requester, text, contains=title, reply="Approval requested")
    bot.sandbox.click(approver, card, action_id=Action.APPROVE)
    done = text_of(bot.card_showing(card, *DONE, timeout=240))
    assert "succeeded" in done, done
    return done


def run_ungated(bot: Bot, text: str, title: str) -> str:
    """An ungated step, requested by alice; its card once it has finished."""
    card = bot.request("alice", text, contains=title, reply="Queued")
    done = text_of(bot.card_showing(card, *DONE, timeout=240))
    assert "succeeded" in done, done
    return done
