"""How many SQL statements one command and one click send (issue 19: read each row once per
request). The numbers are pinned: a change that reads the same rows again shows up here; a
change that needs more must say why and move the pin."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.engine import Requester
from tests.scenario.test_guarded_protections import RC_SHA, green_preflight
from tests.support.harness import BASE_CONFIG, Bot, is_run_card
from tests.support.poll import wait_until
from tests.support.sql_count import statements

# Measured at the engine's facade (the command's engine call, the click's decision), this
# thread only, leaving out the audit chain's append (its own statements, one append per row,
# are the chain's business). Before issue 19 part 2 (at 3fb9721): maintenance on 7, one
# approval click 19 (the request's executions read four times, its card touched three times).
# Since: maintenance on +2 for the plan an approval binds (issue 20: the run read before the
# transaction, where the plan's I/O runs, and the step_plans row). Since issue 21 item 4, +3
# per step card touched: whether the run card exists (where the step card goes) and the run
# card's own touch and notify (its "Now" line shows the change).
MAINTENANCE_ON = 12
APPROVE_CLICK = 15


def _count(seen: list[str], pattern: str) -> int:
    return sum(1 for s in seen if re.search(pattern, s))


def _engine(seen: list[str]) -> list[str]:
    return [s for s in seen if not re.search(r"\baudit_(log|head)\b", s)]


@pytest.fixture
def bot(clean_db, tmp_path, toy):
    b = Bot(clean_db, tmp_path, config=BASE_CONFIG + toy.config(), worker=False)
    yield b
    b.stop()


def test_maintenance_on_and_its_approval_send_a_pinned_number_of_statements(bot, clean_db):
    assert "started cutover run #1" in bot.command("alice", f"start v2 {RC_SHA}")
    green_preflight(bot, clean_db, sha=RC_SHA, age=timedelta(minutes=5))
    alice = Requester("U_ALICE", "C_CUTOVER")
    with statements() as seen:
        lines = bot.engine.request(actor=alice, command="maintenance on")
    assert "Approval requested" in lines[0], lines
    # The run's latest executions and its preflight results are read once.
    assert _count(seen, r"DISTINCT ON \(step_id\)") <= 1, seen
    assert len(_engine(seen)) == MAINTENANCE_ON, "\n".join(seen)

    card = bot.workspace.wait_for_message("C_CUTOVER", contains="Maintenance mode on",
                                          predicate=lambda m: m.ephemeral_to is None and not is_run_card(m))
    approval_id = int(bot.sandbox.buttons(card)[0].value)
    wait_until("the card's ts is recorded",
               lambda: not bot.engine.landing("C_CUTOVER", card.ts), timeout=10)
    with statements() as seen:
        decision = bot.engine.click(approval_id=approval_id, kind="approve", user_id="U_BOB",
                                    channel="C_CUTOVER", message_ts=card.ts)
    assert str(decision.outcome).endswith("approved"), decision
    # The request's executions are read once; its card's outbox row is touched once (and
    # the run card's once).
    assert _count(seen, r"FROM step_executions WHERE approval_id") <= 1, "\n".join(seen)
    assert _count(seen, r"INSERT INTO outbox") == 2, "\n".join(seen)
    assert len(_engine(seen)) == APPROVE_CLICK, "\n".join(seen)
