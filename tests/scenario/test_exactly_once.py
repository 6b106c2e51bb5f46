"""Exactly once across processes: two replicas racing on clicks, and a worker killed mid-step."""

from __future__ import annotations

import concurrent.futures

import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from bot.ids import Action
from tests.support.harness import BASE_CONFIG, BOT_TOKEN, SIGNING_SECRET, text_of
from tests.support.procs import BotProcess, stale_click

pytestmark = pytest.mark.slow
OVERRIDE = 'maintenance on --override "preflight checks are not built yet"'


def workspace_with_three_approvers() -> Workspace:
    ws = Workspace.default_demo()
    data = {
        "team": {"id": "T0SANDBOX", "domain": "sandbox"},
        "users": [{"id": u.id, "name": u.name, "real_name": u.real_name,
                   "is_restricted": u.is_restricted, "deleted": u.deleted}
                  for u in ws.users.values() if not u.is_bot]
        + [{"id": "U_FRANK", "name": "frank", "real_name": "Frank Fisher"}],
        "usergroups": [{"id": "S_APPROVERS", "handle": "golive-approvers",
                        "users": ["U_BOB", "U_CAROL", "U_FRANK"]}],
        "channels": [{"id": "C_CUTOVER", "name": "cutover"},
                     {"id": "C_INCIDENT", "name": "incident"}],
    }
    return Workspace(data)


@pytest.fixture
def stack(clean_db, tmp_path, toy):
    ws = workspace_with_three_approvers()
    sandbox = SandboxServer(ws, signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN).start()
    cfg = tmp_path / "golive.toml"
    cfg.write_text(BASE_CONFIG + toy.config(), encoding="utf-8")
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": sandbox.api_url, "DATABASE_URL": clean_db,
           "GOLIVE_CONFIG": str(cfg), "GOLIVE_LOG_LEVEL": "WARNING"}
    procs: list[BotProcess] = []

    def spawn(name: str) -> BotProcess:
        p = BotProcess(env, tmp_path / f"{name}.log").wait_ready()
        procs.append(p)
        return p

    yield sandbox, spawn
    for p in procs:
        p.stop()
    sandbox.stop()


def command(sandbox: SandboxServer, bot: BotProcess, user: str, text: str) -> str:
    ws = sandbox.workspace
    uid = ws.user(user).id
    sandbox.bot_url = bot.url + "/slack/events"
    after = ws.seq
    assert sandbox.slash(user, text).status == 200
    return text_of(ws.wait_for_message("C_CUTOVER", after_seq=after, predicate=lambda m:
                                       m.via_response_url and m.ephemeral_to in (None, uid)))


def maintenance_card(sandbox: SandboxServer, bot: BotProcess):
    """Open a run and request maintenance on; returns the approval card."""
    ws = sandbox.workspace
    command(sandbox, bot, "alice", "start v2")
    after = ws.seq
    command(sandbox, bot, "alice", OVERRIDE)
    return ws.wait_for_message("C_CUTOVER", contains="Approve", after_seq=after,
                               predicate=lambda m: m.ephemeral_to is None)


def test_two_replicas_twenty_parallel_approvals_execute_once(stack, toy):
    sandbox, spawn = stack
    a, b = spawn("a"), spawn("b")
    ws = sandbox.workspace
    card = maintenance_card(sandbox, a)
    mark = ws.seq
    clickers = ["U_BOB", "U_CAROL", "U_FRANK"] * 7
    clickers = clickers[:20]
    urls = [a.url + "/slack/events", b.url + "/slack/events"]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(
            lambda i: stale_click(sandbox, clickers[i], card, Action.APPROVE, urls[i % 2]),
            range(20)))
    assert [r.status_code for r in results] == [200] * 20

    def replies():
        got = [m for m in ws.messages("C_CUTOVER", after_seq=mark)
               if m.via_response_url and m.ephemeral_to]
        return got if len(got) >= 20 else None
    got = ws.wait_for(replies, 20)
    texts = [text_of(m) for m in got]
    winners = [t for t in texts if t.startswith("Approved the")]
    assert len(winners) == 1, texts
    assert all("Already approved" in t for t in texts if t not in winners), texts
    ws.wait_for(lambda: toy.executions() or None, 20)
    def card_done():
        m = ws.message("C_CUTOVER", card.ts)
        return m if m and "succeeded" in text_of(m) else None
    final = ws.wait_for(card_done, 20)
    assert "Approved by" in text_of(final)
    assert toy.executions() == ["on"], "one approval must run the step exactly once"


def test_sigkill_mid_step_leaves_it_interrupted_and_never_reruns_it(stack, toy, tmp_path):
    sandbox, spawn = stack
    slow = tmp_path / "slow-switch"
    # The switch takes a while: long enough to kill the worker in the middle of it.
    slow.write_text(f"#!/bin/sh\necho started >> {toy.counter}\nsleep 20\ntouch {toy.flag}\n")
    slow.chmod(0o755)
    cfg = tmp_path / "golive.toml"
    cfg.write_text(cfg.read_text().replace('on = ["sh", "-c", "echo on', f'on = ["{slow}"]\n#'))
    a = spawn("a")
    ws = sandbox.workspace
    card = maintenance_card(sandbox, a)
    sandbox.bot_url = a.url + "/slack/events"
    after = ws.seq
    sandbox.click("bob", card, action_id=Action.APPROVE)
    ws.wait_for(lambda: toy.executions() == ["started"] or None, 20)
    a.kill()

    b = spawn("b")
    notice = ws.wait_for_message("C_CUTOVER", contains="was interrupted", after_seq=after,
                                 timeout=20)
    labels = [btn.text for btn in sandbox.buttons(notice)]
    assert labels == ["Retry", "Mark done…", "Start rollback"], labels
    ws.wait_for(lambda: "interrupted" in text_of(ws.message("C_CUTOVER", card.ts)) or None, 20)
    sandbox.bot_url = b.url + "/slack/events"
    status = command(sandbox, b, "carol", "status")
    assert "`maintenance-on`" in status and "interrupted: outcome unknown" in status
    # Nothing re-ran it: still one start, and the killed child never finished.
    assert toy.executions() == ["started"]
    assert not toy.flag.exists()
