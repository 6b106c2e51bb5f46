"""Every step has a timeout: a step that ignores its deadline is abandoned as interrupted."""

from __future__ import annotations

import threading

import pytest

from bot.ids import Action
from runbook.model import default_runbook_path
from runbook.steps.base import REGISTRY, StepResult, step_kind
from tests.support.harness import BASE_CONFIG, Bot, text_of

release = threading.Event()


@pytest.fixture
def hanging_kind():
    @step_kind("test.hang", description="a step that ignores its deadline")
    def hang(ctx):
        release.wait(30)  # a stuck subprocess, a hung socket…
        return StepResult(summary="finally done")

    yield
    release.set()
    REGISTRY.pop("test.hang", None)


def test_a_step_past_its_timeout_becomes_interrupted_and_the_channel_is_told(
        clean_db, tmp_path, toy, hanging_kind):
    rb = default_runbook_path().read_text().replace(
        'kind = "maintenance"\nparams = { mode = "on" }',
        'kind = "test.hang"\ntimeout = 1\nparams = { mode = "on" }', 1)
    assert "test.hang" in rb
    (tmp_path / "rb.toml").write_text(rb)
    bot = Bot(clean_db, tmp_path, config=f'runbook = "{tmp_path / "rb.toml"}"\n' + BASE_CONFIG
              + toy.config())
    bot.engine.deps.step_grace = 0.5
    try:
        bot.command("alice", "start v2")
        after = bot.seq()
        card = bot.request("alice", 'maintenance on --override "drill"')
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        notice = bot.workspace.wait_for_message("C_CUTOVER", contains="was interrupted",
                                                after_seq=after, timeout=15)
        assert bot.sandbox.buttons(notice)[0].text == "Retry"
        status = bot.command("carol", "status")
        assert "interrupted: outcome unknown" in status
        assert "timed out after 1s" in status, status
        assert "finally done" not in text_of(bot.workspace.message("C_CUTOVER", card.ts))
    finally:
        release.set()
        bot.stop()
