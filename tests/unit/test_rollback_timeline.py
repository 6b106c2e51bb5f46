"""The final rollback timeline from the store's rows: order, approvers, durations, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runbook.timeline import build_timeline

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STEPS = ["rb-maintenance-on", "rb-revert-deploy", "rb-restore-or-downgrade", "rb-verify",
         "rb-traffic-open"]
TITLES = {"rb-maintenance-on": "Maintenance mode on", "rb-revert-deploy": "Revert",
          "rb-restore-or-downgrade": "Data", "rb-verify": "Verify",
          "rb-traffic-open": "Re-open traffic"}


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def execution(id_, step, start, end, state="succeeded", attempt=1, approval=None, **kw):
    return {"id": id_, "run_id": 1, "step_id": step, "attempt": attempt, "state": state,
            "requested_by": "U0ALICE", "approval_id": approval, "override_reason": None,
            "summary": f"{step} done", "error": None, "created_at": at(start - 1),
            "queued_at": at(start - 0.5), "started_at": at(start) if start is not None else None,
            "finished_at": at(end) if end is not None else None, **kw}


APPROVAL = {"id": 9, "run_id": 1, "step_id": "rb-maintenance-on", "status": "approved",
            "requester": "U0ALICE", "decided_by": "U0BOB", "created_at": at(-20),
            "reason": "payout failures at 40%", "kind": "step"}


def full_rollback():
    return [
        execution(1, "rb-maintenance-on", 0, 2, approval=9),
        execution(2, "rb-revert-deploy", 3, 15),
        execution(3, "rb-restore-or-downgrade", 16, 20, state="failed", error="lock timeout",
                  summary=None),
        execution(4, "rb-restore-or-downgrade", 30, 33, attempt=2),
        execution(5, "rb-verify", 34, 36),
        execution(6, "rb-traffic-open", 37, 38),
        execution(7, "deploy", -100, -90),  # a cutover step: not part of the rollback
    ]


def test_every_attempt_in_order_with_who_and_how_long():
    tl = build_timeline(full_rollback(), [APPROVAL], step_ids=STEPS, titles=TITLES,
                        votes={9: [{"approval_id": 9, "user_id": "U0BOB", "vote": "approve",
                                    "at": at(-5)}]})
    assert [(e.step_id, e.attempt) for e in tl.entries] == [
        ("rb-maintenance-on", 1), ("rb-revert-deploy", 1), ("rb-restore-or-downgrade", 1),
        ("rb-restore-or-downgrade", 2), ("rb-verify", 1), ("rb-traffic-open", 1)]
    first = tl.entries[0]
    assert first.approved_by == ("U0BOB",) and first.approval == "approved"
    assert first.duration_s == 2 and first.waited_s == 20
    assert first.reason == "payout failures at 40%"
    assert tl.entries[2].state == "failed" and tl.entries[2].outcome == "lock timeout"
    assert tl.outcome == "completed"
    assert tl.started_at == at(-20) and tl.finished_at == at(38) and tl.total_s == 58


def test_text_reads_as_a_timeline():
    text = build_timeline(full_rollback(), [APPROVAL], step_ids=STEPS, titles=TITLES).text()
    lines = text.splitlines()
    assert lines[0] == "Rollback timeline: completed, 58.0 s in all"
    assert lines[1].startswith("12:00:00 Maintenance mode on: succeeded in 2.0 s; asked by "
                               "U0ALICE, approved by U0BOB; reason: payout failures at 40%")
    assert "Data (attempt 2): succeeded in 3.0 s" in text
    assert "Data: failed in 4.0 s" in text and "lock timeout" in text
    assert "deploy" not in text.lower().replace("deploy done", ""), "cutover steps stay out"


def test_a_failed_last_attempt_stops_the_timeline():
    rows = [execution(1, "rb-maintenance-on", 0, 2),
            execution(2, "rb-revert-deploy", 3, 5, state="interrupted", summary=None)]
    tl = build_timeline(rows, [], step_ids=STEPS, titles=TITLES)
    assert tl.outcome == "stopped at Revert: interrupted"
    assert tl.entries[0].approval == "not gated"


def test_in_progress_and_not_started():
    rows = [execution(1, "rb-maintenance-on", 0, 2), execution(2, "rb-revert-deploy", 3, None,
                                                               state="running")]
    tl = build_timeline(rows, [], step_ids=STEPS)
    assert tl.outcome == "in progress" and tl.finished_at is None
    assert tl.entries[1].duration_s is None
    assert build_timeline([], [], step_ids=STEPS).outcome == "not started"


def test_break_glass_approval_is_named_and_json_ready():
    glass = {**APPROVAL, "kind": "break_glass", "status": "approved", "decided_by": "U0ALICE",
             "reason": "security incident: token leaked"}
    tl = build_timeline([execution(1, "rb-maintenance-on", 0, 2, approval=9)], [glass],
                        step_ids=STEPS, titles=TITLES)
    assert tl.entries[0].approval == "break-glass"
    assert "break-glass by U0ALICE" in tl.text()
    import json
    data = json.loads(json.dumps(tl.as_dict()))
    assert data["entries"][0]["approved_by"] == ["U0ALICE"]
    assert data["entries"][0]["started_at"] == at(0).isoformat()
