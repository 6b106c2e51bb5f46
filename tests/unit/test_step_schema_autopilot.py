"""The step schema's `idempotent` and `deadline`, and [approvers]' deadline defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import runbook.steps.catalog  # noqa: F401  (the registry complete)
from bot.team_config import Approvers
from runbook.model import RunbookError, default_runbook_path, load_runbook
from runbook.steps.base import REGISTRY

TEXT = default_runbook_path().read_text()


def shipped(text: str = TEXT):
    return load_runbook(text, known_kinds=REGISTRY.keys())


def test_defaults_per_kind_retry_only_where_a_second_run_is_safe():
    rb = shipped()
    safe = {s.id for s in rb.all_steps() if s.idempotent}
    assert {"maintenance-on", "deploy", "health", "smoke", "traffic-open", "preflight",
            "webhook-watch", "rb-revert-deploy"} <= safe
    assert {"migrate", "canary", "rb-restore-or-downgrade"}.isdisjoint(safe)
    assert all(s.deadline_s is None for s in rb.all_steps())


def test_a_step_says_idempotent_and_deadline():
    text = TEXT.replace('command = "migrate"', 'command = "migrate"\nidempotent = true\n'
                        'deadline = "1h30m"', 1)
    step = shipped(text).step("migrate")
    assert step.idempotent is True and step.deadline_s == 5400
    assert shipped(text).version != shipped().version


@pytest.mark.parametrize("bad", ['20', '"20x"', '"0m"', '"7h"', "true"])
def test_a_bad_deadline_is_one_clear_line(bad):
    text = TEXT.replace('command = "migrate"', f'command = "migrate"\ndeadline = {bad}', 1)
    with pytest.raises(RunbookError) as e:
        shipped(text)
    assert e.value.problems == [(f"<runbook>: step 'migrate': bad deadline {_shown(bad)}: "
                                 'must be a duration like "20m", "1h" or "90s", more than 0 '
                                 "and at most 6 h")]


def _shown(bad: str) -> str:
    return repr(bad.strip('"')) if bad.startswith('"') else {"true": "True"}.get(bad, bad)


def test_idempotent_must_be_a_boolean():
    text = TEXT.replace('command = "migrate"', 'command = "migrate"\nidempotent = "yes"', 1)
    with pytest.raises(RunbookError) as e:
        shipped(text)
    assert "'idempotent' must be true or false, got 'yes'" in str(e.value)


def test_approvers_deadlines_default_to_the_expiry_and_the_backup_must_be_a_group():
    assert Approvers().deadline == 15 and Approvers(expiry_minutes=20).deadline == 20
    assert Approvers(deadline_minutes=5).deadline == 5
    assert Approvers().decision_deadline_minutes == 30 and Approvers().backup_group is None
    assert Approvers(groups={"leads": "S0LEADS"}, backup_group="leads").backup_group == "leads"
    with pytest.raises(ValidationError, match="backup_group 'ops' is not one of the approver"):
        Approvers(groups={"leads": "S0LEADS"}, backup_group="ops")
