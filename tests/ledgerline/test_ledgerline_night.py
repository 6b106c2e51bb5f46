"""The whole night on Ledgerline, a stack golive was not written for (examples/ledgerline:
services api and gateway, nested health JSON, a JSON login with a bearer token, its own alembic
version table, a PUT drain switch with a bearer header, a Python smoke script, a git repository
instead of GitHub), driven through the real bot and the Slack sandbox with the team's own
golive.toml, unchanged.

The night runs once per module (``night``): start, preflight (no override), maintenance on,
deploy v2, migrate, health, smoke, traffic open, the watches, a rollback to v1. Each test then
asserts one thing a person on the channel (or on the stack) would notice; when the night stopped
early, the tests past that point fail with the step and its error. `golive config check` on the
same config comes first, on the v1 stack.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from bot.ids import Action
from tests.ledgerline.conftest import V1_SCHEMA, V2_SCHEMA, Ledgerline, config_text
from tests.support import pg
from tests.support.cli import golive
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, Bot, bot_environ, text_of
from tests.support.night import request_and_approve, run_ungated
from tests.support.poll import wait_until

# The night runs in the module's fixture (about 2.5 min on 2 shared cores): its setup counts
# toward the first test's timeout.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("ledgerline"), pytest.mark.timeout(900)]

WATCH_NAMES = ("Health", "Webhook signatures", "Error budget", "Payout failure rate",
               "Ledger invariants")
MEASURED = ("Health", "Ledger invariants")          # a source is configured for these
OFF = ("Webhook signatures", "Error budget", "Payout failure rate")  # and not for these


@pytest.fixture
def sandbox():
    s = SandboxServer(Workspace.default_demo(), signing_secret=SIGNING_SECRET,
                      bot_token=BOT_TOKEN).start()
    yield s
    s.stop()


def test_config_check_on_the_ledgerline_config_is_all_green(stack, clean_db, tmp_path,
                                                            sandbox):
    ll = stack
    environ = bot_environ(sandbox, clean_db, tmp_path, config_text(tmp_path), ll.env())
    r = golive("config", "check", url=None, key=None, env=environ)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    for secret in ll.secret_values:
        assert secret not in out, f"a secret was printed:\n{out}"
    lines = out.splitlines()
    assert not [x for x in lines if x.startswith(("❌", "⚠️"))], out  # ➖: off and unused
    assert r.returncode == 0, out
    good = "\n".join(x for x in lines if x.startswith("✅"))
    for what in ("compose file", "services api", "/healthz", "/auth/session", "/_gateway/drain",
                 "smoke.py", "migrations", "ll_0001_journal"):
        assert what in good, f"no ✅ line for {what!r}:\n{out}"
    # read-only: nothing was switched or migrated by the check
    assert ll.schema_revision() == V1_SCHEMA
    code, body = ll.http("GET", f"{ll.public_url}/_gateway/drain")
    assert code == 200 and '"draining": false' in body, body


def test_health_fails_fast_when_the_nested_release_is_not_the_deployed_one(stack, tmp_path):
    """The contract is read at the dotted paths the config names: v1 answers build.release
    "v1", so a health step expecting v2 fails, after the same body repeated, without waiting
    for its deadline (the clock moves only when the step sleeps)."""
    from bot.settings import parse_config
    from runbook.context import StepContext
    from runbook.steps.base import StepFailed
    from runbook.steps.health import run as health

    ll = stack
    target = parse_config(config_text(tmp_path), environ=ll.env()).target
    now = [0.0]
    lines: list[str] = []
    ctx = StepContext(
        run_id=1, step_id="health", params={}, target=target, progress=lines.append,
        facts={"deployed_tag": "v2", "deployed_revision": ll.releases["v2"],
               "alembic_after": V2_SCHEMA},
        deadline=600.0, clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s), secrets=target.secrets())
    with pytest.raises(StepFailed) as failed:
        health(ctx)
    message = failed.value.message
    assert "build.release" in message and "v1" in message, message
    assert now[0] < 60, f"gave up only after {now[0]:.0f} s of retries:\n{message}"
    for secret in ll.secret_values:
        assert secret not in message + "\n".join(lines)


# ------------------------------------------------------------------------------- the night
def public(m) -> bool:
    return m.ephemeral_to is None and not m.via_response_url and not m.is_reply


@dataclass
class Night:
    ll: Ledgerline
    seen: dict[str, Any] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    stopped: str = ""

    def step(self, name: str, fn: Callable[[], Any]) -> None:
        """Run one part of the night unless an earlier one failed; record what it showed."""
        if self.stopped:
            return
        t0 = time.monotonic()
        try:
            self.seen[name] = fn()
            self.done.append(name)
        except Exception as e:  # noqa: BLE001 - recorded: the tests past it fail with it
            self.stopped = f"the night stopped at {name}: {type(e).__name__}: {e}"[:4000]
        self.seconds[name] = round(time.monotonic() - t0, 1)

    def get(self, name: str) -> Any:
        assert name in self.done, self.stopped or f"{name} did not run"
        return self.seen[name]


def ask_rollback(bot: Bot, words: str) -> None:
    """`/golive <words>` from #incident, approved there by bob."""
    after = bot.seq()
    reply = bot.command("alice", words, channel="C_INCIDENT")
    assert "Rollback requested" in reply, reply
    card = bot.workspace.wait_for_message(
        "C_INCIDENT", contains="Rollback requested", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None and not m.via_response_url)
    bot.sandbox.click("bob", card, action_id=Action.APPROVE)


def watch_lines(bot: Bot) -> dict[str, str]:
    answer = bot.command("alice", "watch list")
    return {name: line.strip() for line in answer.splitlines()
            for name in WATCH_NAMES if f"*{name}" in line}


def run_preflight(bot: Bot) -> str:
    after = bot.seq()
    assert "Queued" in bot.command("alice", "preflight")
    card = bot.workspace.wait_for_message(  # in the run card's thread (issue 21)
        "C_CUTOVER", contains="step `preflight`", after_seq=after, timeout=30,
        predicate=lambda m: m.ephemeral_to is None and not m.via_response_url)
    return text_of(bot.card_showing(card, "— succeeded", "— failed", timeout=300))


@pytest.fixture(scope="module")
def night(ledgerline: Ledgerline, bot_db_url: str, tmp_path_factory) -> Iterator[Night]:
    ll = ledgerline
    ll.reset_v1()
    pg.reset_state(bot_db_url)
    n = Night(ll)
    n.seen["gateway"] = ll.container("gateway")["id"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ll.env().items():  # the bot's own environment holds them
            mp.setenv(key, value)
        folder = tmp_path_factory.mktemp("night")
        bot = Bot(bot_db_url, folder, config=config_text(folder), env=ll.env())
        sha = ll.releases["v2"]
        try:
            n.step("start", lambda: bot.command("alice", f"start v2 {sha}"))
            n.step("preflight", lambda: (run_preflight(bot), ll.schema_revision()))
            n.step("maintenance on", lambda: (
                request_and_approve(bot, "alice", "maintenance on", "bob",
                                    "Maintenance mode on"),
                ll.http("GET", f"{ll.public_url}/healthz")))
            n.step("deploy", lambda: (
                request_and_approve(bot, "alice", "deploy v2", "carol", "Deploy"),
                ll.container("api"), ll.container("gateway")["id"]))
            n.step("migrate", lambda: (run_ungated(bot, "migrate", "Migrations"),
                                       ll.schema_revision()))
            n.step("health", lambda: run_ungated(bot, "health", "Health"))
            n.step("smoke", lambda: run_ungated(bot, "smoke", "Smoke"))
            n.step("traffic open", lambda: (
                request_and_approve(bot, "alice", "traffic open", "bob", "Open traffic"),
                ll.http("GET", f"{ll.public_url}/healthz")))

            def watches() -> dict[str, str]:
                lines: dict[str, str] = {}

                def measured() -> bool:
                    lines.update(watch_lines(bot))
                    return all(w in lines and not lines[w].startswith("⏳") for w in MEASURED)
                try:
                    wait_until("the health and ledger watches' first measurements", measured,
                               120)
                except AssertionError as e:
                    raise AssertionError(f"{e}: {lines}") from None
                return lines
            n.step("watches", watches)

            def rollback() -> str:
                after = bot.seq()
                ask_rollback(bot, "rollback ledgerline drill: back to v1")
                ended = re.compile(r"Rollback of run #1: (completed|stopped at)")
                return text_of(bot.workspace.wait_for_message(
                    "C_CUTOVER", after_seq=after, timeout=300,
                    predicate=lambda m: bool(ended.search(text_of(m)))))
            n.step("rollback", rollback)
            n.step("status", lambda: bot.command("carol", "status"))
            n.step("after rollback", lambda: (ll.container("api"), ll.schema_revision(),
                                              ll.container("gateway")["id"],
                                              ll.http("GET", f"{ll.public_url}/healthz")))
            n.seen["leaked"] = [s[:6] + "…" for s in ll.secret_values
                                if bot.workspace.find_in_outgoing(s)]
        finally:
            bot.stop()
    print(f"\nledgerline night: {n.seconds} " + (n.stopped or "(whole night ran)"))
    yield n


def test_the_run_starts_pinned_to_the_rc_commit(night):
    assert "started cutover run" in night.get("start")


def test_preflight_is_green_without_an_override(night):
    checklist, _ = night.get("preflight")
    assert "— succeeded" in checklist and "❌" not in checklist, checklist
    for check in ("release_freeze", "prod_config", "backup_drill", "migration_check",
                  "rc_evidence"):
        assert re.search(rf"(✅|⚠️)\s*\*?{check}", checklist), f"{check}:\n{checklist}"


def test_the_migration_dry_run_left_production_alone(night):
    # The team's env.py reads LL_DB_DSN, and the bot holds the production LL_DB_DSN: the dry
    # run must have migrated only the scratch copy.
    _, schema_after_preflight = night.get("preflight")
    assert schema_after_preflight == V1_SCHEMA, "the preflight migrated production"


def test_maintenance_on_drains_the_gateway_through_its_put_switch(night):
    card, (code, body) = night.get("maintenance on")
    assert "succeeded" in card
    assert code == 503 and "paused for an upgrade" in body, (code, body)


def test_the_deploy_recreates_only_the_api(night):
    card, api, gateway = night.get("deploy")
    assert api["image"].endswith("ledgerline/api:v2"), api
    assert api["revision"] == night.ll.releases["v2"], api
    assert gateway == night.seen["gateway"], f"the deploy recreated the gateway:\n{card}"


def test_migrate_moves_the_teams_version_table(night):
    card, schema = night.get("migrate")
    assert V2_SCHEMA in card, card
    assert schema == V2_SCHEMA


def test_health_reads_the_nested_fields_and_the_bearer_console(night):
    card = night.get("health")
    for seen in ("build.release", "v2", "build.commit", night.ll.releases["v2"][:7],
                 "checks.schema", V2_SCHEMA, "/auth/session", "/console"):
        assert seen in card, f"{seen!r} not in the health result:\n{card}"


def test_smoke_runs_the_python_script(night):
    card = night.get("smoke")  # a bash run of smoke.py fails on its first line
    assert f"all checks passed against {night.ll.internal_url}" in card, card


def test_traffic_opens_on_v2(night):
    _, (code, body) = night.get("traffic open")
    assert code == 200 and '"release": "v2"' in body, (code, body)


def test_the_watches_with_a_source_measure_green(night):
    lines = night.get("watches")
    for name in MEASURED:
        assert lines[name].startswith("🟢"), lines


def test_the_watches_without_a_source_are_listed_off(night):
    lines = night.get("watches")
    for name in OFF:
        assert name in lines and "off" in lines[name].lower(), f"{name}: {lines}"


def test_the_rollback_returns_to_v1_with_the_schema_and_traffic(night):
    timeline = night.get("rollback")
    api, schema, gateway, (code, body) = night.get("after rollback")
    assert "Rollback of run #1: completed" in timeline, timeline
    for title in ("Maintenance mode on", "Revert to the previous image", "Data:",
                  "Verify login", "Re-open traffic"):
        assert title in timeline, timeline
    assert api["image"].endswith("ledgerline/api:v1"), api
    assert api["revision"] == night.ll.releases["v1"], api
    assert schema == V1_SCHEMA, "ll_schema_version is back on the v1 revision"
    assert gateway == night.seen["gateway"], "the rollback recreated the gateway"
    assert code == 200 and '"release": "v1"' in body, (code, body)


def test_status_after_the_rollback_says_where_the_stack_ended(night):
    status = night.get("status")
    for said in ("Rolled back:", "`api` `v1`", f"schema at `{V1_SCHEMA}`", "traffic open",
                 "the run was rolled back"):
        assert said in status, f"{said!r} not in status:\n{status}"
    assert "Next:* `preflight`" not in status and "Next: preflight" not in status, status


def test_no_secret_of_the_team_reached_slack(night):
    assert "leaked" in night.seen, night.stopped
    assert night.seen["leaked"] == [], f"secrets in Slack messages: {night.seen['leaked']}"
