"""Every step has a timeout: a step that ignores its deadline is abandoned as interrupted."""

from __future__ import annotations

import os
import threading

import pytest

from bot.ids import Action
from bot.runtime import Tuning
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
              + toy.config(), tuning=Tuning(step_grace=0.5))
    try:
        bot.command("alice", "start v2")
        after = bot.seq()
        card = bot.request("alice", 'maintenance on --override "drill"')
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        notice = bot.workspace.wait_for_message("C_CUTOVER", contains="was interrupted",
                                                after_seq=after, timeout=30)
        assert bot.sandbox.buttons(notice)[0].text == "Retry"
        status = bot.command("carol", "status")
        assert "interrupted: outcome unknown" in status
        assert "timed out after 1s" in status, status
        assert "finally done" not in text_of(bot.workspace.message("C_CUTOVER", card.ts))
    finally:
        release.set()
        bot.stop()


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie awaiting its reaper."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def subprocess_kind(tmp_path):
    pids = tmp_path / "pids"

    @step_kind("test.stuck-subprocess", description="a step stuck on a subprocess")
    def stuck(ctx):
        import subprocess

        child = subprocess.Popen(["sleep", "60"])
        pids.write_text(f"{os.getpid()} {child.pid}")
        child.wait()
        return StepResult(summary="finally done")

    yield pids
    REGISTRY.pop("test.stuck-subprocess", None)


def test_a_timed_out_step_and_its_subprocesses_are_gone_before_it_is_marked_interrupted(
        clean_db, tmp_path, toy, subprocess_kind):
    """The invariant behind Retry: by the time the channel can start the step again, nothing
    of the first execution runs any more (no abandoned thread, no orphaned subprocess)."""
    rb = default_runbook_path().read_text().replace(
        'kind = "maintenance"\nparams = { mode = "on" }',
        'kind = "test.stuck-subprocess"\ntimeout = 1\nparams = { mode = "on" }', 1)
    (tmp_path / "rb.toml").write_text(rb)
    bot = Bot(clean_db, tmp_path, config=f'runbook = "{tmp_path / "rb.toml"}"\n' + BASE_CONFIG
              + toy.config(), tuning=Tuning(step_grace=0.5))
    try:
        bot.command("alice", "start v2")
        after = bot.seq()
        card = bot.request("alice", 'maintenance on --override "drill"')
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        bot.workspace.wait_for_message("C_CUTOVER", contains="was interrupted",
                                       after_seq=after, timeout=30)
        pids = [int(p) for p in subprocess_kind.read_text().split()]
        assert pids and pids[0] != os.getpid(), "the step runs in its own process"
        alive = [p for p in pids if _alive(p)]
        assert not alive, f"still running after the step was marked interrupted: {alive}"
    finally:
        bot.stop()
