"""The canary report (runbook/canary/report.py, the shipped template) lists the run's skipped
steps: which, who asked, who approved, why, when; a secret in the reason is masked even when
making it a table cell would have changed it."""

from __future__ import annotations

from datetime import UTC, datetime

from runbook.canary.config import CanaryConfig
from runbook.canary.report import SkippedStep, _sample, load_template, render_report

AT = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)
SECRET = "pw|with\npipe-9f2c"  # a cell escapes "|" and joins lines: masked before that


def report(skipped: list[SkippedStep]) -> str:
    return render_report(_sample("GO"), load_template(CanaryConfig().template_file()),
                         secrets={"LEDGER_PASSWORD": SECRET}, skipped=skipped,
                         names={"U_ALICE": "alice", "U_BOB": "bob"})


def test_a_skipped_step_is_listed_with_who_asked_who_approved_why_and_when() -> None:
    text = report([SkippedStep(step_id="smoke", title="Smoke tests", asked_by="U_ALICE",
                               approved_by="U_BOB", at=AT,
                               reason=f"ran by hand | with {SECRET}\nall green")])
    row = next((ln for ln in text.splitlines() if ln.startswith("| `smoke`")), None)
    assert row == ("| `smoke` Smoke tests | @alice (U_ALICE) | @bob (U_BOB) | ran by hand \\| "
                   "with **** all green | 2026-12-08 01:30:00 UTC |"), f"{row!r}\n{text}"
    assert "pw|with" not in text and "pipe-9f2c" not in text, text


def test_a_run_without_skips_says_so() -> None:
    text = report([])
    section = text.split("## Skipped steps", 1)[1].split("\n## ", 1)[0]
    assert "None: no step of this run was skipped." in section, section


def test_a_teams_template_that_does_not_place_skips_still_lists_them() -> None:
    # A team's own template (the sample stack's has no skipped table) never drops a deviation.
    team = "# Our canary: {{ canary.outcome }}\n\n## Sign-off\n- ok\n"
    skip = SkippedStep(step_id="smoke", title="Smoke tests", asked_by="U_ALICE",
                       approved_by="U_BOB", at=AT, reason="ran by hand")
    text = render_report(_sample("GO"), team, skipped=[skip],
                         names={"U_ALICE": "alice", "U_BOB": "bob"})
    assert text.startswith("# Our canary: GO"), text
    assert "| `smoke` Smoke tests | @alice (U_ALICE) | @bob (U_BOB) | ran by hand |" in text, text
    assert "Skipped" not in render_report(_sample("GO"), team, skipped=[]), "none: unchanged"
