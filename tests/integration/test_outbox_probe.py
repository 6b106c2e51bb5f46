"""The outbox's outage probe against the sandbox and a real PostgreSQL, on a ManualClock.

After a run of 5xx the sender sends one call at a time to find out whether Slack is back. If
that probe were always the same row (the earliest due), one message Slack keeps failing (here
the run card's update, which changes on every step) would hold up every other message for
good: an approval card would never appear.
"""

from __future__ import annotations

import pytest

from bot.dev.sandbox.faults import Fault
from bot.dev.sandbox.workspace import message_text
from bot.outbox.sender import OUTAGE_STREAK
from tests.support.outbox_rig import Rig, pump_until


@pytest.fixture
def rig(runtime_db):
    r = Rig(runtime_db)
    yield r
    r.close()


def test_a_message_slack_keeps_failing_does_not_hold_up_new_cards_which_keep_their_order(rig):
    s = rig.sender()
    rig.touch("card:run:1", "Run card: started")
    pump_until(rig, s, lambda: rig.showing("Run card"))
    (run,) = rig.showing("Run card")
    rig.server.api.inject(Fault("chat.update", params={"ts": run.ts}))  # fails for good
    rig.touch("card:run:1", "Run card: maintenance on requested")

    def failed_updates() -> int:
        return sum(1 for c in rig.calls("chat.update") if c.status >= 500)

    pump_until(rig, s, lambda: failed_updates() >= OUTAGE_STREAK)  # the sender thinks: outage
    rig.server.api.fail_next("chat.postMessage")  # the first new card's first post fails too
    rig.touch("card:exe:1", "Approval: maintenance on")
    rig.touch("card:exe:2", "Approval: deploy v2")
    took = pump_until(rig, s, lambda: rig.showing("Approval: deploy v2"), limit=30)
    assert took <= 15, f"the new cards waited {took:.1f}s behind a message Slack keeps failing"
    shown = [message_text(m).splitlines()[0] for m in rig.messages()]
    assert shown == ["Run card: started", "Approval: maintenance on", "Approval: deploy v2"], \
        f"the channel shows, in order: {shown}"
