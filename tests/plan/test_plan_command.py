"""`/golive plan` through the sandbox, without Docker: who may ask (the policy), what the
channel gets (the summary card, the Markdown file in its thread), what the store and the audit
keep (the plan, its digest, the file's sha256)."""

from __future__ import annotations

import hashlib

import pytest

from tests.scenario.test_who_may import answer, rows, workspace
from tests.support.harness import Bot, text_of


@pytest.fixture
def pbot(clean_db, tmp_path):
    b = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    yield b
    b.stop()


RC_SHA = "0123456789abcdef0123456789abcdef01234567"


def test_plan_asks_the_policy(pbot, clean_db):
    assert "started cutover run #1" in answer(pbot, "alice", f"start v2 {RC_SHA}")
    assert "Guest accounts" in answer(pbot, "dave", "plan")
    assert "only in the cutover channel <#C_CUTOVER>" in answer(pbot, "alice", "plan",
                                                                channel="C_INCIDENT")
    assert "only in the cutover channel" in answer(pbot, "bob", "plan", channel="C_GENERAL")
    assert rows(clean_db, "SELECT count(*) FROM plans") == [(0,)], "nothing computed"
    refusals = rows(clean_db, "SELECT detail->>'refusal' FROM audit_log WHERE outcome ="
                              " 'refused' ORDER BY id")
    assert [r for (r,) in refusals] == ["guest_account", "wrong_channel", "wrong_channel"]
    # Not an operator, but an active account in the cutover channel: may read the plan.
    assert "Plan for v2: digest" in answer(pbot, "frank", "plan")


def test_plan_posts_its_card_and_file_and_audits_the_digest(pbot, clean_db):
    assert "no release candidate" in answer(pbot, "alice", "plan").lower()
    assert "at most one word" in answer(pbot, "alice", "plan v2 v3")
    assert "started cutover run #1" in answer(pbot, "alice", f"start v2 {RC_SHA}")
    after = pbot.seq()
    reply = answer(pbot, "carol", "plan")
    ((pid, digest, markdown),) = rows(clean_db, "SELECT id, digest, markdown FROM plans")
    assert f"digest `{digest}`" in reply, reply
    (audit,) = rows(clean_db, "SELECT actor, detail FROM audit_log WHERE action = 'plan'")
    assert audit[0] == "U_CAROL"
    assert audit[1]["digest"] == digest and audit[1]["plan_id"] == pid
    assert audit[1]["file_sha256"] == hashlib.sha256(markdown.encode()).hexdigest()
    card = pbot.workspace.wait_for_message(
        "C_CUTOVER", contains="Plan: v2", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None)
    assert digest in text_of(card)
    assert len(card.blocks or []) <= 50
    assert "Not resolved" in text_of(card), "no deployer here: the card says what is missing"

    def the_file():
        return [f for f in list(pbot.workspace.files.values())
                if f.name == f"plan-v2-{pid}.md" and f.completed and f.message_ts]
    the_file.__qualname__ = "the plan's Markdown uploaded in the card's thread"
    (f,) = pbot.workspace.wait_for(the_file, 15)
    assert (f.content or b"").decode() == markdown
    thread = pbot.workspace.thread("C_CUTOVER", card.ts)
    assert any(f.id in m.files for m in thread), "the file belongs in the card's thread"
