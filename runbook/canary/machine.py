"""The canary's checklist and threaded sign-off, as a pure state machine (runbook 2C).

Every transition takes the state and returns ``Transition(state, reply, ...)``; nothing is written
here. The shell persists ``step.state.to_json()`` (a jsonb column) in the same transaction as
the audit row, posts ``step.reply``, and runs ``step.verify`` (a ledger query) when asked to,
feeding the result back through :func:`record`. A restart reloads the JSON and re-runs the
items still ``checking`` (:func:`pending_checks`). The state and what the shell exchanges
with it are ``runbook.canary.state``.

Sign-off eligibility is :func:`runbook.rules.approvals.is_eligible` (account flags, membership); the
caller resolves each role's members into a :class:`runbook.rules.approvals.Policy` whose groups are the
role names (:func:`signoff_policy`). Rules on top: N distinct signers, each role's minimum,
nobody signs twice, the opener is never the only signer, one Reject from an eligible signer
makes it NO-GO and offers rollback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from runbook.canary.inputs import InputError, parse_amount, validate_reference
from runbook.canary.state import (
    CHECKS,
    ITEMS,
    MARKS,
    MAX_LOG,
    MAX_SAMPLES,
    TITLES,
    Balances,
    CanaryState,
    CheckResult,
    Item,
    LogEntry,
    Sample,
    Signature,
    Verify,
)
from runbook.rules.approvals import Actor, Policy, Refusal, is_eligible


@dataclass(frozen=True)
class Transition:
    state: CanaryState
    reply: str
    changed: bool = True
    """Whether the shell has something to persist (False: bad input or a refusal)."""
    verify: Verify | None = None
    refusal: Refusal | None = None
    offer_rollback: bool = False


def open_canary(config: Any, *, opened_by: str, now: datetime, run_id: int | None = None,
                traffic_opened_at: datetime | None = None, versions: Mapping[str, str] | None = None,
                opening_balances: Balances | None = None) -> CanaryState:
    """A fresh canary from ``config`` (a :class:`CanaryConfig`); every item pending."""
    _aware(now)
    cents = config.cents
    return CanaryState(
        run_id=run_id, opened_by=opened_by, opened_at=now, traffic_opened_at=traffic_opened_at,
        account=config.account, currency=config.currency, minor_units=config.minor_units,
        deposit_cents=cents(config.deposit_amount), withdraw_cents=cents(config.withdraw_amount),
        fee_cents=cents(config.fee), required_signoffs=config.required_signoffs,
        role_minimums={name: r.min for name, r in config.roles.items()},
        items={k: Item(key=k) for k in ITEMS}, versions=dict(versions or {}),
        opening_balances=opening_balances,
        log=(LogEntry(at=now, user=opened_by, text="opened the canary"),))


def checklist(state: CanaryState) -> list[str]:
    """One line per item: mark, title, what it needs or what was measured."""
    need = {"deposit": f"deposit {state.money(state.deposit_cents)} (real money)",
            "withdrawal": f"withdraw {state.money(state.withdraw_cents)}"
                          + (f" (fee {state.money(state.fee_cents)})" if state.fee_cents else ""),
            "ledger": "held back to 0, available reduced correctly, invariants hold",
            "webhooks": "Signature Verified for the canary's webhooks",
            "error_budget": "5xx since traffic opened within the budget",
            "signoff": _signoff_needs(state)}
    out = []
    for key in ITEMS:
        it = state.items[key]
        out.append(f"{MARKS[it.status]} {TITLES[key]}: {it.summary or need[key]}")
    return out


def report(state: CanaryState, item: str, reference: str | None, amount: str | None, *,
           by: str, now: datetime) -> Transition:
    """Someone reports a deposit's or withdrawal's reference; bad input changes nothing."""
    if item not in ("deposit", "withdrawal"):
        raise ValueError(f"only deposit and withdrawal take a reference, not {item!r}")
    if state.outcome != "open":
        return _refuse(state, _decided(state))
    current = state.items[item]
    if current.status == "ok":
        return _refuse(state, f"The {TITLES[item].lower()} is already verified "
                              f"({current.reference}).")
    if item == "withdrawal" and state.items["deposit"].status != "ok":
        return _refuse(state, "Report the withdrawal after the deposit checks out: its "
                              "balance after is the withdrawal's balance before.")
    try:
        ref = validate_reference(reference)
        reported = parse_amount(amount, currency=state.currency, minor_units=state.minor_units)
    except InputError as e:
        return _refuse(state, f"{e} The {TITLES[item].lower()} is still open; try again.")
    expected = state.deposit_cents if item == "deposit" else state.withdraw_cents
    before = (state.opening_balances if item == "deposit"
              else _balances(state.items["deposit"].details.get("after")))
    new_item = current.model_copy(update={
        "status": "checking", "reference": ref, "reported_cents": reported, "by": by, "at": now,
        "attempts": current.attempts + 1, "summary": f"checking {ref}…"})
    st = _log(_put(state, new_item), now, by, f"reported {item} {ref}"
              + (f" ({state.money(reported)})" if reported is not None else ""))
    return Transition(st, f"Checking {item} `{ref}` in the ledger…",
                verify=Verify(item, ref, state.account, expected, reported,
                              state.fee_cents if item == "withdrawal" else 0, before))


def record(state: CanaryState, item: str, result: CheckResult, *, now: datetime,
           by: str | None = None) -> Transition:
    """Fold a verification's result into ``item`` (ok or failed, with its numbers)."""
    if item not in CHECKS:
        raise ValueError(f"unknown check {item!r}")
    if state.outcome != "open":
        return _refuse(state, _decided(state))
    cur = state.items[item]
    new_item = cur.model_copy(update={
        "status": "ok" if result.ok else "failed", "summary": result.summary,
        "details": dict(result.details), "at": now, "by": by or cur.by,
        "attempts": cur.attempts + (0 if item in ("deposit", "withdrawal") else 1)})
    st = _log(_put(state, new_item), now, by,
              f"{TITLES[item]} {'ok' if result.ok else 'FAILED'}: {result.summary}")
    mark = MARKS["ok" if result.ok else "failed"]
    tail = "" if result.ok else " Fix it and report again, or Reject the canary."
    return Transition(st, f"{mark} {TITLES[item]}: {result.summary}{tail}")


def pending_checks(state: CanaryState) -> list[Verify]:
    """Verifications interrupted by a restart (items left ``checking``), to run again."""
    out = []
    for key in ("deposit", "withdrawal"):
        it = state.items[key]
        if state.outcome == "open" and it.status == "checking" and it.reference:
            before = (state.opening_balances if key == "deposit"
                      else _balances(state.items["deposit"].details.get("after")))
            out.append(Verify(key, it.reference, state.account,
                              state.deposit_cents if key == "deposit" else state.withdraw_cents,
                              it.reported_cents, state.fee_cents if key == "withdrawal" else 0,
                              before))
    return out


def set_opening_balances(state: CanaryState, balances: Balances) -> CanaryState:
    """Record the account's balances before the deposit (taken when the canary opens)."""
    return state.model_copy(update={"opening_balances": balances})


def add_sample(state: CanaryState, sample: Sample) -> CanaryState:
    """Append a health sample to the window's history (oldest dropped past the cap)."""
    return state.model_copy(update={"samples": (*state.samples, sample)[-MAX_SAMPLES:]})


def signoff_policy(role_members: Mapping[str, Iterable[str]]) -> Policy:
    """An eligibility policy whose groups are the roles (members resolved by the caller)."""
    return Policy(groups={r: frozenset(m) for r, m in role_members.items()})


def sign(state: CanaryState, actor: Actor, policy: Policy, *, now: datetime,
         decision: Literal["sign", "reject"] = "sign", note: str = "",
         role: str | None = None) -> Transition:
    """A Sign or Reject click (with an optional note) from ``actor``."""
    _aware(now)
    if state.outcome != "open":
        return _refuse(state, _decided(state))
    uid = actor.user_id
    refusal = is_eligible(actor, policy)
    if refusal is not None:
        return _refuse(state, _refusal_text(refusal, state), refusal)
    roles = [r for r in state.role_minimums if uid in policy.groups.get(r, frozenset())]
    if state.role_minimums and not roles:
        return _refuse(state, _refusal_text(Refusal.NOT_AN_APPROVER, state),
                       Refusal.NOT_AN_APPROVER)
    if role is not None and role not in roles:
        return _refuse(state, f"You are not a `{role}` signer.", Refusal.NOT_IN_GROUP)
    note = note.strip()[:500]
    if decision == "reject":
        sig = Signature(user_id=uid, decision="reject", at=now, role=role or _first(roles),
                        note=note)
        why = f": {note}" if note else ""
        item = state.items["signoff"].model_copy(update={
            "status": "failed", "summary": f"rejected by <@{uid}>{why}", "by": uid, "at": now})
        st = _put(state, item).model_copy(update={
            "signatures": (*state.signatures, sig), "outcome": "NO-GO", "decided_at": now,
            "rollback_offered": True})
        st = _log(st, now, uid, f"rejected the canary{why}")
        return Transition(st, f"*NO-GO* — rejected by <@{uid}> at {_hm(now)}{why}. "
                        "Rollback is offered.", offer_rollback=True)
    if uid in {s.user_id for s in state.signers()}:
        return _refuse(state, "You already signed this canary; someone else must sign.",
                       Refusal.ALREADY_VOTED)
    open_items = [TITLES[k] for k in CHECKS if state.items[k].status != "ok"]
    if open_items:
        return _refuse(state, "Sign-off opens once every check is ✅; still open: "
                              + ", ".join(open_items) + ". You can Reject at any time.")
    sig = Signature(user_id=uid, decision="sign", at=now, note=note,
                    role=role or _pick_role(state, roles))
    st = state.model_copy(update={"signatures": (*state.signatures, sig)})
    st = _log(st, now, uid, "signed off" + (f" as {sig.role}" if sig.role else "")
              + (f": {note}" if note else ""))
    missing = _missing(st)
    if missing:
        item = st.items["signoff"].model_copy(update={"summary": _signoff_needs(st)})
        st = _put(st, item)
        return Transition(st, f"Signed by <@{uid}> ({len(st.signers())} of "
                        f"{st.required_signoffs}); still needed: {missing}.")
    names = ", ".join(f"<@{s.user_id}>" for s in st.signers())
    item = st.items["signoff"].model_copy(update={
        "status": "ok", "summary": f"signed by {names}", "by": uid, "at": now})
    st = _put(st, item).model_copy(update={"outcome": "GO", "decided_at": now})
    st = _log(st, now, None, "GO")
    return Transition(st, f"*GO* — signed by {outcome_signers(st)}.")


def outcome_signers(state: CanaryState) -> str:
    """Who signed (or rejected) and when, for the final message and the status line."""
    return ", ".join(f"<@{s.user_id}>" + (f" ({s.role})" if s.role else "") + f" at {_hm(s.at)}"
                     for s in state.signatures)


def outcome_text(state: CanaryState) -> str:
    """``GO``/``NO-GO`` with who signed and when; ``open`` with what it waits for."""
    if state.outcome == "open":
        return "canary open: " + _signoff_needs(state)
    return f"{state.outcome} — {outcome_signers(state)}"


# ----------------------------------------------------------------------------- helpers

def _missing(state: CanaryState) -> str:
    """What the sign-off still lacks (empty when it is complete)."""
    signers = state.signers()
    parts, role_short = [], 0
    for role, need in state.role_minimums.items():
        lack = need - sum(1 for s in signers if s.role == role)
        if lack > 0:
            parts.append(f"{lack} {role}")
            role_short += lack
    short = state.required_signoffs - len(signers)
    if short > role_short:
        parts.append(f"{short - role_short} more signer(s)")
    if not parts and signers and all(s.user_id == state.opened_by for s in signers):
        parts.append("a signer other than the opener")
    return ", ".join(parts)


def _signoff_needs(state: CanaryState) -> str:
    have = len(state.signers())
    roles = (" (" + ", ".join(f"{n} {r}" for r, n in state.role_minimums.items() if n) + ")"
             if any(state.role_minimums.values()) else "")
    base = f"{have} of {state.required_signoffs} signatures{roles}"
    missing = _missing(state) if have else ""
    return base + (f"; needs {missing}" if missing else "")


def _pick_role(state: CanaryState, roles: list[str]) -> str | None:
    """The first of the signer's roles still short of its minimum, else their first role."""
    signers = state.signers()
    for r in roles:
        if sum(1 for s in signers if s.role == r) < state.role_minimums.get(r, 0):
            return r
    return _first(roles)


def _first(roles: list[str]) -> str | None:
    return roles[0] if roles else None


def _refusal_text(refusal: Refusal, state: CanaryState) -> str:
    if refusal is Refusal.NOT_AN_APPROVER:
        who = (" or ".join(f"`{r}`" for r in state.role_minimums) if state.role_minimums
               else "the approvers")
        return f"You are not a signer for this canary; sign-off is for {who}."
    return {Refusal.DEACTIVATED: "Deactivated accounts cannot sign.",
            Refusal.BOT_ACCOUNT: "Bot accounts cannot sign.",
            Refusal.GUEST_ACCOUNT: "Guest accounts cannot sign."}.get(refusal, "Refused.")


def _refuse(state: CanaryState, text: str, refusal: Refusal | None = None) -> Transition:
    return Transition(state, text, changed=False, refusal=refusal)


def _decided(state: CanaryState) -> str:
    return f"This canary is already decided: {outcome_text(state)}."


def _put(state: CanaryState, item: Item) -> CanaryState:
    return state.model_copy(update={"items": {**state.items, item.key: item}})


def _log(state: CanaryState, at: datetime, user: str | None, text: str) -> CanaryState:
    return state.model_copy(update={"log": (*state.log, LogEntry(at=at, user=user,
                                                                 text=text))[-MAX_LOG:]})


def _balances(raw: Any) -> Balances | None:
    return Balances.model_validate(raw) if isinstance(raw, Mapping) else None


def _hm(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
