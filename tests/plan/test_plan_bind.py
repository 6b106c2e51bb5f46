"""Approvals bound to the plan, drift at the claim and effect certification (issue 20 items 2
and 3), through the sandbox on the sample stack: the real registry, compose and PostgreSQL.

The registry's tags are shared with other tests: the drift test pushes a tag of its own and
moves that one, never v1 or v2."""

from __future__ import annotations

import re
import secrets
import subprocess
import urllib.request
from urllib.parse import urlparse

import psycopg
import pytest

from bot.ids import Action
from tests.integration.conftest import paybox, stack  # noqa: F401  (fixtures)
from tests.integration.test_full_cutover import config_for
from tests.support.harness import Bot, text_of
from tests.support.paybox_env import REGISTRY

pytestmark = pytest.mark.docker

DONE = ("succeeded", "failed", "cancelled", "interrupted")
OVERRIDE = '--override "plan binding test"'


def _digest(repo: str, tag: str) -> str:
    req = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD",
        headers={"Accept": "application/vnd.oci.image.index.v1+json, "
                 "application/vnd.docker.distribution.manifest.list.v2+json, "
                 "application/vnd.oci.image.manifest.v1+json, "
                 "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["Docker-Content-Digest"]


def _push(source_tag: str, tag: str) -> str:
    """Point ``paybox/app:<tag>`` at the image of ``source_tag`` in the registry."""
    src, dst = f"{REGISTRY}/paybox/app:{source_tag}", f"{REGISTRY}/paybox/app:{tag}"
    for argv in (["docker", "pull", "-q", src], ["docker", "tag", src, dst],
                 ["docker", "push", "-q", dst]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr[-800:]}"
    return _digest("paybox/app", tag)


def _rows(db: str, sql: str, *args) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def _card(bot: Bot, requester: str, text: str, title: str):
    return bot.request(requester, text, contains=title, reply="Approval requested")


def _scan(bot: Bot, stack) -> None:  # noqa: F811
    """The suite's secret scan: no secret of the stack in anything the bot sent to Slack
    (messages, cards, files) nor in any message the workspace holds."""
    password = urlparse(stack.database_url).password
    values = [v for v in (stack.ops_token, stack.admin_password, password) if v]
    ws = bot.workspace
    assert len(ws.api_calls) > 3, "the scan must have had payloads to look at"
    for secret in values:
        assert not ws.find_in_outgoing(secret), "a secret reached Slack"
        for m in ws.all_messages():
            assert secret not in text_of(m), text_of(m)[:200]
        for f in ws.files.values():
            assert secret.encode() not in (f.content or b""), f.name


def test_a_tag_moved_between_approval_and_claim_voids_the_approval_naming_both_digests(
        stack, clean_db, tmp_path):  # noqa: F811
    tag = f"b2drift-{secrets.token_hex(3)}"
    v1, v2 = _digest("paybox/app", "v1"), _push("v2", tag)
    bot = Bot(clean_db, tmp_path, config=config_for(stack))
    binding = bot.engine.plan_binding
    taken: list = []
    prepared = binding.prepared

    def spy(**kw):
        taken.append(prepared(**kw))
        return taken[-1]
    binding.prepared = spy  # which part the request bound: the one computed before its transaction
    try:
        assert "started cutover run" in bot.command("alice", f"start {tag}")
        card = _card(bot, "alice", f"deploy {tag} {OVERRIDE}", "Deploy")
        assert len(taken) == 1 and taken[0] is not None, taken
        shown = text_of(card)
        assert "What this approves (the plan)" in shown, shown
        assert f"new `{v2}`" in shown and f"replaces `{v1}`" in shown, shown
        assert len(card.blocks or []) <= 50
        # Behind the bot's back, after the card was shown and before the claim: the tag now
        # names another image (v1's).
        assert _push("v1", tag) == v1
        bot.sandbox.click("carol", card, action_id=Action.APPROVE)
        void = text_of(bot.card_showing(card, *DONE, timeout=120))
        assert "cancelled" in void, void
        assert "approval void: the plan moved" in void, void
        assert f"services[app].digest: {v2} → {v1}" in void, void
        assert stack.running_image("app")["image"].endswith("paybox/app:v1")
        (why,) = _rows(clean_db, "SELECT detail->>'why' FROM audit_log WHERE action ="
                                 " 'step.cancelled'")
        assert v1 in why[0] and v2 in why[0], why
        # Asked again: the new card shows the new value, and the approval runs.
        again = _card(bot, "alice", f"deploy {tag} {OVERRIDE}", "Deploy")
        assert f"new `{v1}`" in text_of(again), text_of(again)
        bot.sandbox.click("carol", again, action_id=Action.APPROVE)
        done = text_of(bot.card_showing(again, *DONE, timeout=240))
        assert "succeeded" in done, done
        certified = _rows(clean_db, "SELECT outcome, detail FROM audit_log WHERE action ="
                                    " 'step.certified'")
        assert [o for o, _ in certified] == ["certified"], certified
        assert certified[0][1]["against"] == "approved"
        assert any(v1 in c for c in certified[0][1]["compared"]), certified
    finally:
        bot.stop()
    _scan(bot, stack)


def test_a_database_revision_moved_behind_the_bots_back_voids_the_migrate_approval(
        stack, clean_db, tmp_path):  # noqa: F811
    bot = Bot(clean_db, tmp_path, config=config_for(stack))
    try:
        assert "started cutover run" in bot.command("alice", "start v2")
        # The migration runs in the deployed app's container: v2 first.
        deploy = _card(bot, "alice", f"deploy v2 {OVERRIDE}", "Deploy")
        bot.sandbox.click("carol", deploy, action_id=Action.APPROVE)
        assert "succeeded" in text_of(bot.card_showing(deploy, *DONE, timeout=240))
        card = _card(bot, "alice", f"migrate {OVERRIDE}", "Migrations")
        shown = text_of(card)
        assert "0001_ledger → 0002_payout_idempotency" in shown, shown
        assert "SQL statement(s)" in shown and "squawk" in shown, shown
        assert "in this card's thread" in shown, "no /golive plan yet: the step's own file"
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = '0002_payout_idempotency'")
        try:
            bot.sandbox.click("bob", card, action_id=Action.APPROVE)
            void = text_of(bot.card_showing(card, *DONE, timeout=120))
        finally:
            with psycopg.connect(stack.database_url, autocommit=True) as conn:
                conn.execute("UPDATE alembic_version SET version_num = '0001_ledger'")
        assert "cancelled" in void and "approval void: the plan moved" in void, void
        assert "migration.current: 0001_ledger → 0002_payout_idempotency" in void, void
        assert stack.alembic_revision() == "0001_ledger", "nothing ran"
        # Back where it was: asked again, approved, it runs and is certified at the head.
        again = _card(bot, "alice", f"migrate {OVERRIDE}", "Migrations")
        assert "0001_ledger → 0002_payout_idempotency" in text_of(again)
        bot.sandbox.click("bob", again, action_id=Action.APPROVE)
        done = text_of(bot.card_showing(again, *DONE, timeout=240))
        assert "succeeded" in done, done
        assert stack.alembic_revision() == "0002_payout_idempotency"
        files = [f for f in bot.workspace.files.values() if f.name.startswith("plan-migrate")]
        assert files, "the step's plan file (with its SQL) in the card's thread"
        assert "0002_payout_idempotency" in (files[0].content or b"").decode()
    finally:
        bot.stop()
    _scan(bot, stack)


def test_a_container_replaced_before_the_certification_fails_the_deploy(
        stack, clean_db, tmp_path):  # noqa: F811
    v1, v2 = _digest("paybox/app", "v1"), _digest("paybox/app", "v2")
    bot = Bot(clean_db, tmp_path, config=config_for(stack))
    replaced: list[str] = []

    def replace_behind_the_bots_back(exe, step) -> None:
        # Between the step's end and its certification (where metrics would be recorded):
        # the app is put back on v1.
        stack.compose("up", "-d", "--no-deps", "--wait", "app", tag="v1")
        replaced.append(step.id)

    bot.engine.plan_certifier.after_step.append(replace_behind_the_bots_back)
    try:
        assert "started cutover run" in bot.command("alice", "start v2")
        card = _card(bot, "alice", f"deploy v2 {OVERRIDE}", "Deploy")
        bot.sandbox.click("carol", card, action_id=Action.APPROVE)
        failed = bot.card_showing(card, *DONE, timeout=240)
        text = text_of(failed)
        assert replaced == ["deploy"]
        assert "failed" in text and "succeeded" not in text.split("\n")[0], text
        assert f"effect not certified: app digest: expected {v2}, found {v1}" in text, text
        actions = [e.get("action_id") for b in failed.blocks or [] if b.get("type") == "actions"
                   for e in b.get("elements", [])]
        assert Action.RETRY in actions or any("retry" in str(a) for a in actions), actions
        ((outcome, detail),) = _rows(clean_db, "SELECT outcome, detail FROM audit_log WHERE"
                                               " action = 'step.certified'")
        assert outcome == "not_certified" and detail["certified"] is False
        assert any(v1 in d and v2 in d for d in detail["differences"]), detail
        assert _rows(clean_db, "SELECT state FROM step_executions WHERE step_id = 'deploy'") \
            == [("failed",)]
    finally:
        bot.stop()


def test_a_compose_environment_changed_between_approval_and_claim_voids_the_approval(
        stack, clean_db, tmp_path):  # noqa: F811
    from tests.support.harness import BASE_CONFIG
    from tests.support.paybox_env import PAYBOX
    from tests.support.toml_out import target_table

    compose = tmp_path / "compose.yaml"
    compose.write_text((PAYBOX / "compose.yaml").read_text())
    bot = Bot(clean_db, tmp_path, config=target_table(stack.target(compose_file=compose))
              + BASE_CONFIG)
    try:
        assert "started cutover run" in bot.command("alice", "start v2")
        card = _card(bot, "alice", f"deploy v2 {OVERRIDE}", "Deploy")
        before = text_of(card)
        assert "What this approves (the plan)" in before, before
        # Behind the bot's back: the app's compose environment gains a variable.
        text = compose.read_text()
        compose.write_text(text.replace("      PAYBOX_KNOBS: ${PAYBOX_KNOBS:-}\n",
                                        "      PAYBOX_KNOBS: ${PAYBOX_KNOBS:-}\n"
                                        "      PAYBOX_FEATURE_DRIFT: \"on\"\n", 1))
        assert compose.read_text() != text
        bot.sandbox.click("carol", card, action_id=Action.APPROVE)
        void = text_of(bot.card_showing(card, *DONE, timeout=120))
        assert "cancelled" in void and "approval void: the plan moved" in void, void
        assert "services[app].config_sha256" in void, void
        assert "PAYBOX_FEATURE_DRIFT" not in void or '"on"' not in void, \
            "a value of the environment is never shown"
        assert stack.running_image("app")["image"].endswith("paybox/app:v1"), "nothing ran"
        again = _card(bot, "alice", f"deploy v2 {OVERRIDE}", "Deploy")
        bound = re.findall(r"Plan digest `([0-9a-f]{16})`", text_of(again))
        assert bound and bound[0] not in before, "the new card binds the new configuration"
    finally:
        bot.stop()
    _scan(bot, stack)
