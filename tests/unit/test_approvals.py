"""runbook/rules/approvals.py: the two-person rule, with an injected clock."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from runbook.model import Gate
from runbook.rules.approvals import (
    Actor,
    ApprovalClick,
    Decision,
    DecisionOutcome,
    Policy,
    Refusal,
    Request,
    decide,
    is_eligible,
    params_hash,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
REQUESTER = "UREQ"
POLICY = Policy(
    approvers=frozenset({"UALICE", "UBOB", "UCAROL", REQUESTER}),
    groups={"sre": frozenset({"USRE1", "UALICE"}), "dba": frozenset({"UDBA"})},
)
PARAMS = {"tag": "v2.3.1"}


ONE = Gate(1, ())


def new_request(*, id: str, run_id: int, action: str, params, requester: str,
                now: datetime, policy: Policy, gate: Gate | None) -> Request:
    """A pending request as the engine reads one from its row (bot/engine: the request is
    written in SQL; only ``decide`` is the pure rule)."""
    return Request(id=id, run_id=run_id, action=action, params=dict(params),
                   params_hash=params_hash(run_id, action, params), requester=requester,
                   created_at=now, expires_at=now + policy.expiry, status="pending",
                   required=gate.approvals if gate else 1,
                   groups=tuple(gate.groups) if gate else (), approvals=())


def apply(request: Request, decision: Decision, actor: str) -> Request:
    """The request after ``decision``, as the engine persists it."""
    leaves = request.status == "pending" and decision.new_status != "pending"
    return replace(request, status=decision.new_status, approvals=decision.approvals,
                   decided_by=actor if leaves else request.decided_by)


def req(gate: Gate | None = ONE, params=PARAMS, action="deploy"):
    return new_request(id="r1", run_id=7, action=action, params=params, requester=REQUESTER,
                       now=T0, policy=POLICY, gate=gate)


def click(kind: str, user: str, request=None, **actor) -> ApprovalClick:
    h = (request or req()).params_hash
    return ApprovalClick(kind=kind, actor=Actor(user, **actor), current_params_hash=h)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_single_approval_by_another_approver():
    d = decide(req(), click("approve", "UALICE"), at(1), POLICY)
    assert d.outcome is DecisionOutcome.APPROVED and d.refusal is None, d
    assert d.new_status == "approved" and d.approvals == ("UALICE",), d


def test_self_approval_refused():
    d = decide(req(), click("approve", REQUESTER), at(1), POLICY)
    assert (d.outcome, d.refusal) == (DecisionOutcome.REFUSED, Refusal.SELF_APPROVAL), d
    assert d.message == "You requested this deploy, so someone else must approve it.", d.message
    assert d.new_status == "pending" and d.approvals == (), "a refusal must not change the request"


def test_requester_cannot_reject_either():
    d = decide(req(), click("reject", REQUESTER), at(1), POLICY)
    assert d.refusal is Refusal.SELF_APPROVAL and "Cancel" in d.message, d


def test_non_member_refused():
    d = decide(req(), click("approve", "UMALLORY"), at(1), POLICY)
    assert (d.outcome, d.refusal) == (DecisionOutcome.REFUSED, Refusal.NOT_AN_APPROVER), d
    assert "not an approver" in d.message


def test_group_member_counts_as_approver_without_being_listed():
    d = decide(req(), click("approve", "UDBA"), at(1), POLICY)
    assert d.outcome is DecisionOutcome.APPROVED, f"members of policy groups are approvers: {d}"


def test_group_check_when_request_names_groups():
    r = req(Gate(1, ("sre",)))
    d = decide(r, click("approve", "UBOB", r), at(1), POLICY)
    assert (d.outcome, d.refusal) == (DecisionOutcome.REFUSED, Refusal.NOT_IN_GROUP), (
        f"an approver outside the named group must be refused: {d}")
    assert "`sre`" in d.message, d.message
    d = decide(r, click("approve", "USRE1", r), at(1), POLICY)
    assert d.outcome is DecisionOutcome.APPROVED, f"a member of the named group approves: {d}"
    d = decide(r, click("approve", "UDBA", r), at(1), POLICY)
    assert d.refusal is Refusal.NOT_IN_GROUP, f"a member of another group is refused: {d}"


def test_unknown_group_has_no_members():
    r = req(Gate(1, ("ghost",)))
    d = decide(r, click("approve", "UALICE", r), at(1), POLICY)
    assert d.refusal is Refusal.NOT_IN_GROUP, d


@pytest.mark.parametrize("flags, refusal", [
    ({"deleted": True}, Refusal.DEACTIVATED),
    ({"is_bot": True}, Refusal.BOT_ACCOUNT),
    ({"is_guest": True}, Refusal.GUEST_ACCOUNT),
    ({"deleted": True, "is_bot": True, "is_guest": True}, Refusal.DEACTIVATED),
])
def test_deleted_bot_guest_refused(flags, refusal):
    d = decide(req(), click("approve", "UALICE", **flags), at(1), POLICY)
    assert (d.outcome, d.refusal) == (DecisionOutcome.REFUSED, refusal), f"{flags}: {d}"


def test_expired_by_injected_clock():
    r = req()
    ok = decide(r, click("approve", "UALICE"), at(14.99), POLICY)
    assert ok.outcome is DecisionOutcome.APPROVED, f"just before expiry still approves: {ok}"
    d = decide(r, click("approve", "UALICE"), T0 + timedelta(minutes=15), POLICY)
    assert d.outcome is DecisionOutcome.EXPIRED and d.new_status == "expired", (
        f"now == expires_at must count as expired: {d}")
    short = Policy(approvers=POLICY.approvers, expiry=timedelta(seconds=30))
    r2 = new_request(id="r2", run_id=7, action="deploy", params=PARAMS, requester=REQUESTER,
                     now=T0, policy=short, gate=None)
    assert decide(r2, click("approve", "UALICE"), at(1), short).outcome is DecisionOutcome.EXPIRED


def test_changed_params_void_the_request():
    r = req()
    changed = ApprovalClick("approve", Actor("UALICE"), params_hash(7, "deploy", {"tag": "v2.3.2"}))
    d = decide(r, changed, at(1), POLICY)
    assert (d.outcome, d.refusal, d.new_status) == (
        DecisionOutcome.REFUSED, Refusal.PARAMS_CHANGED, "void"), d
    assert d.changed, "void must be persisted"
    again = decide(apply(r, d, "UALICE"), click("approve", "UBOB"), at(2), POLICY)
    assert again.outcome is DecisionOutcome.ALREADY_DECIDED and "void" in again.message, again


def test_two_of_three():
    policy = Policy(approvers=frozenset(), groups={"leads": frozenset({"U1", "U2", "U3"})})
    r = new_request(id="r", run_id=1, action="traffic open", params={}, requester=REQUESTER,
                    now=T0, policy=policy, gate=Gate(2, ("leads",)))
    d1 = decide(r, click("approve", "U1", r), at(1), policy)
    assert d1.outcome is DecisionOutcome.PARTIAL and d1.new_status == "pending", d1
    assert d1.approvals == ("U1",) and "1 of 2" in d1.message, d1
    r = apply(r, d1, "U1")
    dup = decide(r, click("approve", "U1", r), at(2), policy)
    assert (dup.outcome, dup.refusal) == (DecisionOutcome.REFUSED, Refusal.ALREADY_VOTED), (
        f"the same person twice must not count twice: {dup}")
    assert dup.approvals == ("U1",)
    d2 = decide(r, click("approve", "U3", r), at(3), policy)
    assert d2.outcome is DecisionOutcome.APPROVED and d2.approvals == ("U1", "U3"), d2
    r = apply(r, d2, "U3")
    late = decide(r, click("approve", "U2", r), at(4), policy)
    assert late.outcome is DecisionOutcome.ALREADY_DECIDED, late
    assert late.message == "Already approved by <@U3>.", late.message


def test_reject_by_eligible_approver_even_after_partial():
    r = req(Gate(2, ()))
    r = apply(r, decide(r, click("approve", "UALICE", r), at(1), POLICY), "UALICE")
    c = ApprovalClick("reject", Actor("UBOB"), r.params_hash, reason="wrong tag")
    d = decide(r, c, at(2), POLICY)
    assert d.outcome is DecisionOutcome.REJECTED and d.new_status == "rejected", d
    assert "wrong tag" in d.message, d.message
    assert decide(r, click("reject", "UMALLORY", r), at(2), POLICY).refusal is (
        Refusal.NOT_AN_APPROVER), "a non-approver cannot reject"


def test_cancel_only_by_requester():
    r = req()
    d = decide(r, click("cancel", "UALICE"), at(1), POLICY)
    assert (d.outcome, d.refusal) == (DecisionOutcome.REFUSED, Refusal.NOT_REQUESTER), d
    assert d.new_status == "pending", d
    d = decide(r, click("cancel", REQUESTER), at(1), POLICY)
    assert d.outcome is DecisionOutcome.CANCELLED and d.new_status == "cancelled", d


@pytest.mark.parametrize("status, text", [
    ("approved", "Already approved."),
    ("rejected", "Already rejected."),
    ("cancelled", "Already cancelled."),
    ("expired", "expired"),
])
def test_already_decided(status, text):
    from dataclasses import replace
    r = replace(req(), status=status)
    for kind in ("approve", "reject", "cancel"):
        d = decide(r, click(kind, "UALICE"), at(1), POLICY)
        assert d.outcome is DecisionOutcome.ALREADY_DECIDED and d.new_status == status, (kind, d)
        assert text in d.message, d.message
        assert not d.changed


def test_check_order_is_deterministic():
    """Already-decided beats expiry, which beats changed params, which beats who clicks."""
    from dataclasses import replace
    late = at(60)
    stale = ApprovalClick("approve", Actor(REQUESTER, is_bot=True), "f" * 64)
    assert decide(replace(req(), status="approved"), stale, late, POLICY).outcome is (
        DecisionOutcome.ALREADY_DECIDED)
    assert decide(req(), stale, late, POLICY).outcome is DecisionOutcome.EXPIRED
    assert decide(req(), stale, at(1), POLICY).refusal is Refusal.PARAMS_CHANGED
    fresh = ApprovalClick("approve", Actor(REQUESTER, is_bot=True), req().params_hash)
    assert decide(req(), fresh, at(1), POLICY).refusal is Refusal.SELF_APPROVAL


def test_is_eligible_dry_run():
    assert is_eligible(Actor("UALICE"), POLICY) is None
    assert is_eligible(Actor("UBOB"), POLICY, ("sre",)) is Refusal.NOT_IN_GROUP
    assert is_eligible(Actor("UX"), POLICY) is Refusal.NOT_AN_APPROVER
    assert is_eligible(Actor("UALICE", is_guest=True), POLICY) is Refusal.GUEST_ACCOUNT
    assert is_eligible(Actor(REQUESTER), POLICY, requester=REQUESTER) is Refusal.SELF_APPROVAL


def test_params_hash_stable_and_type_sensitive():
    a = params_hash(1, "deploy", {"tag": "v1", "opts": {"x": 1, "y": [1, 2]}})
    b = params_hash(1, "deploy", {"opts": {"y": [1, 2], "x": 1}, "tag": "v1"})
    assert a == b, "dict ordering must not change the hash"
    assert len(a) == 64 and int(a, 16) >= 0
    assert params_hash(1, "deploy", {"n": 1}) != params_hash(1, "deploy", {"n": "1"}), (
        '"1" and 1 must hash differently')
    assert params_hash(1, "deploy", {}) != params_hash(2, "deploy", {}), "run is part of it"
    assert params_hash(1, "deploy", {}) != params_hash(1, "migrate", {}), "action is part"
    assert params_hash(1, "x", {"t": ("a",)}) == params_hash(1, "x", {"t": ["a"]})
    canonical = '{"action":"deploy","params":{"tag":"v1"},"run":1}'
    assert params_hash(1, "deploy", {"tag": "v1"}) == hashlib.sha256(
        canonical.encode()).hexdigest(), "the canonical form is persisted: it must not drift"
    with pytest.raises(TypeError):
        params_hash(1, "x", {1: "int key"})
    with pytest.raises(TypeError):
        params_hash(1, "x", {"when": T0})


def test_naive_clock_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(req(), click("approve", "UALICE"), datetime(2024, 5, 1, 12, 1), POLICY)


def test_a_reject_reason_is_echoed_as_text_never_as_a_mention():
    r = req(Gate(2, ()))
    c = ApprovalClick("reject", Actor("UBOB"), r.params_hash, reason="<!channel> see <@U1|x> & co")
    d = decide(r, c, at(2), POLICY)
    assert d.outcome is DecisionOutcome.REJECTED, d
    assert "<!channel>" not in d.message and "<@U1" not in d.message, d.message
    assert "&lt;!channel&gt; see &lt;@U1|x&gt; &amp; co" in d.message, d.message
