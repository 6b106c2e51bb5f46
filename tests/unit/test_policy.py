"""The policy: who may do what, where (pure; no Slack, no database)."""

from __future__ import annotations

import pytest

from runbook.rules import approvals
from runbook.rules.policy import (
    RULES,
    ActorFacts,
    EntryPoint,
    PolicyRefusal,
    Rules,
    Who,
    command_action,
    decide,
    needs_account,
    needs_operator,
    where_text,
)

RULES_ = Rules(cutover="C_CUT", incident=frozenset({"C_INC"}))
OPERATOR = ActorFacts(approvals.Actor("U_OP"), operator=True)
MEMBER = ActorFacts(approvals.Actor("U_MEMBER"), operator=False)
GUEST_OP = ActorFacts(approvals.Actor("U_G", is_guest=True), operator=True)
BOT_OP = ActorFacts(approvals.Actor("U_B", is_bot=True), operator=True)
GONE_OP = ActorFacts(approvals.Actor("U_D", deleted=True), operator=True)
UNKNOWN = ActorFacts(approvals.Actor("U_X"), operator=None)

COMMANDS = [a for a in EntryPoint if command_action(a.value) is a]
OPERATOR_ONLY = [a for a in EntryPoint if RULES[a].who is Who.OPERATOR]
INCIDENT_OK = {EntryPoint.ROLLBACK, EntryPoint.START_ROLLBACK, EntryPoint.STATUS, EntryPoint.HELP,
               EntryPoint.INCIDENT, EntryPoint.CANARY_ROLLBACK}


def verdict(action, actor=OPERATOR, channel="C_CUT", **kw):
    return decide(action=action, actor=actor, channel=channel, rules=RULES_, **kw)


def test_every_entry_point_has_a_rule():
    assert set(RULES) == set(EntryPoint)


@pytest.mark.parametrize("action", list(EntryPoint))
def test_everything_works_in_the_cutover_channel_for_an_operator(action):
    assert verdict(action).allowed, action


@pytest.mark.parametrize("action", list(EntryPoint))
def test_only_rollback_status_and_help_work_in_an_incident_channel(action):
    v = verdict(action, channel="C_INC")
    assert v.allowed == (action in INCIDENT_OK), action
    if not v.allowed:
        assert v.refusal is PolicyRefusal.WRONG_CHANNEL and "<#C_CUT>" in v.reason, v.reason


@pytest.mark.parametrize("action", [a for a in EntryPoint if a is not EntryPoint.HELP])
def test_nothing_but_help_works_anywhere_else_and_the_refusal_names_the_channel(action):
    v = verdict(action, channel="C_RANDOM")
    assert not v.allowed and v.refusal is PolicyRefusal.WRONG_CHANNEL
    assert "<#C_CUT>" in v.reason
    if action in INCIDENT_OK:
        assert "<#C_INC>" in v.reason, "rollback, status and help also name the incident channel"


@pytest.mark.parametrize("channel", ["C_RANDOM", "D_ALICE"])
@pytest.mark.parametrize("actor", [MEMBER, GUEST_OP, UNKNOWN])
def test_help_works_in_every_channel_and_a_dm_for_anyone(channel, actor):
    assert verdict(EntryPoint.HELP, actor=actor, channel=channel).allowed


def test_where_text_names_the_cutover_and_incident_channels_and_help_anywhere():
    text = where_text(RULES_)
    assert text.startswith("Subcommands work in the cutover channel <#C_CUT>;"), text
    assert "`/golive status`, `/golive rollback`, `/golive incident` also in an incident " \
        "channel (<#C_INC>)" in text, text
    assert "`/golive help` works anywhere" in text, text
    assert "incident" not in where_text(Rules(cutover="C_CUT")), "no incident channels here"


def test_start_from_the_incident_channel_is_refused_naming_the_cutover_channel():
    v = verdict(EntryPoint.START, channel="C_INC")
    assert not v.allowed and "`/golive start` works only in the cutover channel <#C_CUT>" \
        in v.reason


@pytest.mark.parametrize("action", OPERATOR_ONLY)
def test_non_operators_are_refused_what_operators_may_do(action):
    v = verdict(action, actor=MEMBER)
    assert not v.allowed and v.refusal is PolicyRefusal.NOT_AN_OPERATOR, action
    assert "operator" in v.reason


def test_operators_are_needed_for_start_finish_steps_rollback_retry_and_mark_done():
    assert set(OPERATOR_ONLY) == {
        EntryPoint.START, EntryPoint.FINISH, EntryPoint.STEP, EntryPoint.ROLLBACK, EntryPoint.START_ROLLBACK,
        EntryPoint.RETRY, EntryPoint.MARK_DONE, EntryPoint.MARK_DONE_SUBMIT, EntryPoint.WATCH, EntryPoint.INCIDENT,
        EntryPoint.CANARY, EntryPoint.CANARY_ROLLBACK, EntryPoint.GO, EntryPoint.PAUSE,
        # guided failure (issue 21): every option on a decision card but the skip's approval
        EntryPoint.DECISION_TAKE, EntryPoint.DECISION_RETRY, EntryPoint.DECISION_SKIP,
        EntryPoint.DECISION_SKIP_SUBMIT, EntryPoint.DECISION_ROLLBACK, EntryPoint.DECISION_HOLD,
        EntryPoint.DECISION_ABORT, EntryPoint.DECISION_ABORT_SUBMIT}


@pytest.mark.parametrize("actor", [MEMBER, GUEST_OP, BOT_OP, GONE_OP, UNKNOWN])
@pytest.mark.parametrize("action", [EntryPoint.STATUS, EntryPoint.HELP])
def test_status_and_help_are_open_to_everyone(action, actor):
    assert verdict(action, actor=actor).allowed
    assert verdict(action, actor=actor, channel="C_INC").allowed
    assert not needs_account(action) and not needs_operator(action)


@pytest.mark.parametrize("actor,refusal", [(GUEST_OP, PolicyRefusal.GUEST_ACCOUNT),
                                           (BOT_OP, PolicyRefusal.BOT_ACCOUNT),
                                           (GONE_OP, PolicyRefusal.DEACTIVATED)])
@pytest.mark.parametrize("action", [a for a in EntryPoint if a not in (EntryPoint.STATUS, EntryPoint.HELP)])
def test_guests_bots_and_deactivated_accounts_are_refused_even_when_listed(action, actor,
                                                                           refusal):
    v = verdict(action, actor=actor)
    assert not v.allowed and v.refusal is refusal, (action, v)


def test_a_failed_membership_lookup_refuses():
    v = verdict(EntryPoint.START, actor=UNKNOWN)
    assert not v.allowed and v.refusal is PolicyRefusal.UNKNOWN_MEMBERSHIP
    assert verdict(EntryPoint.APPROVE, actor=UNKNOWN).allowed, "votes do not need operators"


def test_the_start_rollback_button_obeys_exactly_the_command_rules():
    assert RULES[EntryPoint.START_ROLLBACK] is RULES[EntryPoint.ROLLBACK]
    for actor in (OPERATOR, MEMBER, GUEST_OP, UNKNOWN):
        for channel in ("C_CUT", "C_INC", "C_RANDOM"):
            a = verdict(EntryPoint.ROLLBACK, actor=actor, channel=channel)
            b = verdict(EntryPoint.START_ROLLBACK, actor=actor, channel=channel)
            assert (a.allowed, a.refusal) == (b.allowed, b.refusal), (actor, channel)


def test_votes_on_a_rollback_card_also_work_in_an_incident_channel():
    for action in (EntryPoint.APPROVE, EntryPoint.REJECT, EntryPoint.REJECT_SUBMIT, EntryPoint.CANCEL):
        assert not verdict(action, actor=MEMBER, channel="C_INC").allowed
        assert verdict(action, actor=MEMBER, channel="C_INC", about_rollback=True).allowed
        assert not verdict(action, actor=MEMBER, channel="C_X", about_rollback=True).allowed
    assert not verdict(EntryPoint.RETRY, channel="C_INC", about_rollback=True).allowed


def test_channel_is_checked_before_the_person():
    v = verdict(EntryPoint.START, actor=GUEST_OP, channel="C_RANDOM")
    assert v.refusal is PolicyRefusal.WRONG_CHANNEL


def test_command_action_maps_subcommands_only():
    assert command_action("start") is EntryPoint.START
    assert command_action("button.retry") is None and command_action("nope") is None
    assert command_action("step") is None, "STEP is no subcommand name of its own"
    assert command_action("deploy", runbook_step=True) is EntryPoint.STEP
    assert command_action("cache", runbook_step=True) is EntryPoint.STEP
    assert set(COMMANDS) == {EntryPoint.HELP, EntryPoint.STATUS, EntryPoint.START, EntryPoint.FINISH,
                             EntryPoint.ROLLBACK, EntryPoint.WATCH, EntryPoint.INCIDENT, EntryPoint.CANARY,
                             EntryPoint.GO, EntryPoint.PAUSE, EntryPoint.PLAN}


def test_every_subcommand_has_an_action():
    import runbook.steps.catalog  # noqa: F401 - registers the step kinds
    from commands import build_commands
    from runbook.model import default_runbook_path, load_runbook
    from runbook.steps.base import REGISTRY

    table = build_commands(load_runbook(default_runbook_path(), known_kinds=REGISTRY.keys()))
    assert {n for n, c in table.items() if c.from_runbook} >= {"deploy", "maintenance"}, table
    assert all(command_action(n, runbook_step=c.from_runbook) is not None
               for n, c in table.items()), list(table)


def test_a_step_refusal_names_the_subcommand_asked_for():
    v = verdict(EntryPoint.STEP, channel="C_INC", what="`/golive deploy`")
    assert not v.allowed and "`/golive deploy` works only in the cutover channel <#C_CUT>" \
        in v.reason, v.reason
    v = verdict(EntryPoint.STEP, actor=MEMBER, what="`/golive cache`")
    assert "Only operators can use `/golive cache`" in v.reason, v.reason
