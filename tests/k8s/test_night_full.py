"""The WHOLE night on the cluster, as the rehearsal plays it on compose (bot/dev/rehearse),
through the bot and the sandbox Slack: preflight green with no override, maintenance on,
deploy v2, migrate (a Job), health, smoke, traffic open, every watch measuring and none
breached (the log-fed ones follow the app's log file on the node, which paybox.yaml writes),
the real-money canary (a deposit and a withdrawal through paybox, reported in its thread, the
ledger, webhook and error-budget evidence, two sign-offs, GO, the report file), then the
rollback from #incident to v1."""

from __future__ import annotations

import base64
import io
import re
import uuid
from typing import Any

import httpx
import pytest
from rich.console import Console

from bot.dev.rehearse import phases
from bot.dev.rehearse.people import SIGNERS, People, public, workspace
from bot.dev.rehearse.sample import FakeGitHub, SampleStack, preflight_toml, watches_toml
from bot.dev.rehearse.timeline import RehearsalTimeline
from tests.k8s.fixtures_deploy import Stack, k8s_stack_fixture  # noqa: F401
from tests.k8s.test_deployer import IMAGES, app_in_cluster, version_answered
from tests.k8s.test_deployer_night import rollback_from_incident, schema, v1_running
from tests.support.harness import BASE_CONFIG, Bot
from tests.support.toml_out import target_table

pytestmark = [pytest.mark.k8s, pytest.mark.docker, pytest.mark.slow]
WATCHES = phases.WATCHES
LOG_FED = re.compile(r'^logs = \{ kind = "docker", service = "app" \}\n', re.MULTILINE)


def sample_of(stack: Stack) -> SampleStack:
    """The rehearsal's view of the stack on the cluster (its ports, ledger, the Secret's
    values, read back from the cluster as the operator created it)."""
    from kubernetes import client

    secret = client.CoreV1Api(stack.api).read_namespaced_secret("paybox-secrets",
                                                                stack.namespace)
    webhook = base64.b64decode(secret.data["PAYBOX_WEBHOOK_SECRET"]).decode()
    return SampleStack(project=stack.namespace, edge_port=stack.edge_port,
                       app_port=stack.app_port, database_url=stack.database_url,
                       ops_token=stack.ops_token, admin_password=stack.admin_password,
                       webhook_secret=webhook)


def night_config(stack: Stack, sample: SampleStack, github: FakeGitHub, work: Any,
                 account: str) -> str:
    """Every preflight check pointed at the stack; the watches and the canary, the log-fed
    ones reading the app's log file on the node (paybox.yaml's hostPath, this test's own)."""
    log = stack.manifests / "app-log" / "app.log"
    watches = LOG_FED.sub(f"logs = {{ kind = \"file\", path = \"{log}\" }}\n", watches_toml(
        interval_s=2, canary_account=account, signers=tuple(f"U_{n.upper()}" for n in SIGNERS)))
    assert watches.count(str(log)) == 2, watches
    return (target_table(stack.night_target()) + BASE_CONFIG
            + preflight_toml(sample, github_url=github.url, work=work) + watches)


def test_the_whole_night_on_the_cluster_preflight_watches_canary_then_rollback(
        k8s_stack: Stack, clean_db: str, tmp_path: Any):
    v1_running(k8s_stack)
    sample = sample_of(k8s_stack)
    github = FakeGitHub()
    assert not github.problem, github.problem
    account = f"canary-{uuid.uuid4().hex[:8]}"
    (tmp_path / "work").mkdir()
    cfg = night_config(k8s_stack, sample, github, tmp_path / "work", account)
    bot = Bot(clean_db, tmp_path, config=cfg, workspace=workspace())
    timeline = RehearsalTimeline(Console(file=io.StringIO(), width=200))
    people = People(bot.sandbox, timeline)
    edge = f"http://127.0.0.1:{k8s_stack.edge_port}"
    try:
        # Preflight: every check ✅ or ⚠️, the card succeeded; no --override anywhere after.
        phases.preflight(people, timeline, IMAGES["app:v2"]["revision"])
        assert not any(e.what.startswith("❌") for e in timeline.entries), timeline.entries
        checks = [e.what for e in timeline.entries if e.what[:1] in "✅⚠"]
        assert len(checks) >= 5, checks
        # The cutover, each gated step approved by a second person.
        phases.cutover(people, timeline)
        assert httpx.get(f"{edge}/api/health").json()["version"] == "v2"
        assert ":v2@sha256:" in app_in_cluster(k8s_stack)[0]

        # The watches: all five measured on the cluster, none breached, none off.
        phases.watches(people, timeline)
        lines = [e.what for e in timeline.entries if any(f"*{n}" in e.what for n in WATCHES)]
        assert len(lines) == len(WATCHES), lines
        assert not any("*off*" in ln or ln.startswith(("🔴", "⛔", "⚠")) for ln in lines), lines

        # The canary: $10 in and out through paybox on the cluster, both reported in the
        # thread and verified against the ledger; two sign-offs; GO and the report file.
        money = phases.Paybox(sample)
        mark = people.seq()
        people.expect(people.command("alice", "canary"), "Canary opened", what="canary")
        msg = people.card("Report deposit", after=mark)
        signoff = timeline.wait("the sign-off reply", lambda: people.find(
            "C_CUTOVER", after=mark, contains="Sign-off",
            where=lambda m: public(m) and m.thread_ts == msg.ts and m.ts != msg.ts),
            timeout=20)
        dep, pay = f"dep-{uuid.uuid4().hex[:8]}", f"pay-{uuid.uuid4().hex[:8]}"
        money.deposit(account, 1000, dep)
        money.webhook("deposit.succeeded", dep)
        after = people.report(msg, "deposit", dep, "10.00")
        deposit = people.in_thread(msg, "Deposit:", after=after)
        assert "✅" in deposit and "10.00" in deposit, deposit
        assert money.payout(account, 1000, pay)["status"] == "settled"
        money.webhook("payout.settled", pay)
        after = people.report(msg, "withdrawal", pay, "10.00")
        withdraw = people.in_thread(msg, "Withdraw:", after=after)
        assert "✅" in withdraw and "10.00" in withdraw, withdraw
        for title in ("Ledger check:", "Webhook evidence:", "Error budget:"):
            evidence = people.in_thread(msg, title, after=after, timeout=60)
            assert "✅" in evidence, evidence
        report = phases.signoff(people, timeline, msg, signoff)
        assert b"GO" in report and account.encode() in report
        assert sample.webhook_secret.encode() not in report
        assert sample.ops_token.encode() not in report

        timeline_text = rollback_from_incident(bot, "rollback drill after the canary")
        for title in ("Revert to the previous image", "Data:", "Re-open traffic"):
            assert title in timeline_text, timeline_text
    finally:
        bot.stop()
        github.stop()
    image, _ = app_in_cluster(k8s_stack)
    assert image.startswith("127.0.0.1:5000/paybox/app:v1@"), image
    assert version_answered(k8s_stack) == "v1"
    assert schema(k8s_stack) == "0001_ledger"
    assert httpx.get(f"{edge}/api/health").status_code == 200, "traffic open again"
