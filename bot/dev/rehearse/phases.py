"""The runbook's phases as the scripted people play them, in order: preflight, the cutover
with every approval, the watches, the canary with real money on the sample stack, the
sign-off, and (``--with-rollback``) a payout-failure spike that fires the rollback trigger and
the rollback it starts. Each raises PhaseFailed with what was seen instead."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from typing import Any

import httpx

from bot.dev.rehearse.people import (
    APPROVERS,
    CUTOVER,
    REQUESTER,
    SIGNERS,
    People,
    public,
    text_of,
)
from bot.dev.rehearse.sample import SampleStack
from bot.dev.rehearse.timeline import PhaseFailed, RehearsalTimeline
from bot.ids import Action

CHECK_LINE = re.compile(r"^\s*(✅|⚠️|❌|❔|⏳)\s*\*?(\w+)\*?:?\s*(.*)$")
WATCHES = ("Health", "Webhook signatures", "Error budget", "Payout failure rate",
           "Ledger invariants")


class Paybox:
    """The sample app's own HTTP API: money moves, signed webhooks, failure knobs."""

    def __init__(self, stack: SampleStack) -> None:
        self.stack = stack

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
             ) -> dict[str, Any]:
        r = httpx.post(self.stack.internal_url + path, json=body, headers=headers, timeout=10)
        if r.status_code not in (200, 201):
            raise PhaseFailed(f"paybox {path} answered {r.status_code}: {r.text[:200]}")
        return r.json()

    def deposit(self, account: str, cents: int, ref: str) -> dict[str, Any]:
        return self.post("/api/deposits", {"account": account, "amount_cents": cents,
                                           "idempotency_key": ref})

    def payout(self, account: str, cents: int, ref: str) -> dict[str, Any]:
        return self.post("/api/payouts", {"account": account, "amount_cents": cents,
                                          "idempotency_key": ref})

    def webhook(self, kind: str, ref: str) -> None:
        raw = json.dumps({"type": kind, "id": ref}).encode()
        sig = hmac.new(self.stack.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
        r = httpx.post(self.stack.internal_url + "/webhooks/psp", content=raw, timeout=10,
                       headers={"Content-Type": "application/json",
                                "X-Paybox-Signature": f"sha256={sig}"})
        if r.status_code != 200:
            raise PhaseFailed(f"paybox refused the {kind} webhook: {r.status_code}")

    def knobs(self, **knobs: Any) -> None:
        self.post("/ops/knobs", knobs, headers={"X-Ops-Token": self.stack.ops_token})


def preflight(p: People, t: RehearsalTimeline, sha: str) -> None:
    answer = p.command(REQUESTER, f"start v2 {sha}")
    p.expect(answer, "started cutover run", what="/golive start")
    t.note(f"{REQUESTER} started the run for v2 pinned to {sha[:12]}")
    # The night's plan, once, right after the start: stored, audited, in the evidence pack.
    planned = p.command(REQUESTER, "plan")
    p.expect(planned, "Plan for v2: digest", what="/golive plan")
    t.note(planned.split(". The summary")[0][:140])
    after = p.seq()
    p.expect(p.command(REQUESTER, "preflight"), "Queued", what="/golive preflight")
    preflight_card(p, t, after)


def preflight_card(p: People, t: RehearsalTimeline, after: int) -> None:
    """The preflight card posted after ``after``: its check lines, green or PhaseFailed."""
    card = p.card("Preflight", after=after, showing=("step `preflight`",), in_thread=True)
    done = p.card_showing(card, "preflight checks", ("— succeeded", "— failed"), timeout=300)
    for line in done.splitlines():
        m = CHECK_LINE.match(line)
        if m and m.group(2) != "Preflight":
            t.note(f"{m.group(1)} {m.group(2)}: {m.group(3)[:110]}", ok=m.group(1) != "❌")
    if "— succeeded" not in done:
        raise PhaseFailed("the preflight is red (the ❌ lines above say why)")


def cutover(p: People, t: RehearsalTimeline) -> None:
    bob, carol = APPROVERS
    for text, title, step, approver in (
            ("maintenance on", "Maintenance mode on", "maintenance-on", bob),
            ("deploy v2", "Deploy", "deploy", carol),
            ("migrate", "Migrations", "migrate", None),
            ("health", "Health", "health", None),
            ("smoke", "Smoke", "smoke", None),
            ("traffic open", "Open traffic", "traffic-open", bob)):
        started = t.elapsed()
        done = p.run_step(text, title, step, approver=approver)
        head = next((ln for ln in done.splitlines() if "succeeded" in ln), "succeeded")
        t.note(f"{title}: {head.strip()[:110]}", seconds=t.elapsed() - started)


def _watch_lines(p: People) -> dict[str, str]:
    answer = p.command(REQUESTER, "watch list")
    return {name: line.strip() for line in answer.splitlines()
            for name in WATCHES if f"*{name}" in line}


def watches(p: People, t: RehearsalTimeline, *, timeout: float = 90) -> None:
    """Every watch measured at least once, none breached."""
    seen: dict[str, str] = {}

    def measured() -> dict[str, str] | None:
        seen.update(_watch_lines(p))
        return seen if len(seen) == len(WATCHES) and not any(
            line.startswith("⏳") for line in seen.values()) else None
    t.wait("the watches' first measurements", measured, timeout=timeout, poll=2.0,
           status=lambda: f"{sum(not v.startswith('⏳') for v in seen.values())}/"
                          f"{len(WATCHES)} measured")
    for line in seen.values():
        t.note(line[:130], ok=not line.startswith(("🔴", "⛔")))
    if any(line.startswith(("🔴", "⛔")) for line in seen.values()):
        raise PhaseFailed("a watch breached or cannot run (the lines above)")


def canary(p: People, t: RehearsalTimeline, app: Paybox, account: str) -> tuple[Any, Any]:
    """Open the canary, move $10 in and out through paybox, report both; the checks pass."""
    after = p.seq()
    p.expect(p.command(REQUESTER, "canary"), "Canary opened", what="/golive canary")
    msg = p.card("Report deposit", after=after)
    signoff = p.t.wait("the sign-off reply", lambda: p.find(
        CUTOVER, after=after, contains="Sign-off",
        where=lambda m: public(m) and m.thread_ts == msg.ts and m.ts != msg.ts), timeout=20)
    t.note(f"{REQUESTER} opened the canary on account `{account}`")
    dep, pay = f"dep-{secrets.token_hex(4)}", f"pay-{secrets.token_hex(4)}"
    body = app.deposit(account, 1000, dep)
    app.webhook("deposit.succeeded", dep)
    t.note(f"deposited $10.00 through paybox (ref {dep}, transaction {body['transaction_id']})")
    mark = p.report(msg, "deposit", dep, "10.00")
    _ok(p.in_thread(msg, "Deposit:", after=mark), "the deposit", t)
    body = app.payout(account, 1000, pay)
    if body.get("status") != "settled":
        raise PhaseFailed(f"the withdrawal did not settle: {body}")
    app.webhook("payout.settled", pay)
    t.note(f"withdrew $10.00 through paybox (ref {pay}, {body['status']})")
    mark = p.report(msg, "withdrawal", pay, "10.00")
    _ok(p.in_thread(msg, "Withdraw:", after=mark), "the withdrawal", t)
    for title in ("Ledger check:", "Webhook evidence:", "Error budget:"):
        _ok(p.in_thread(msg, title, after=mark, timeout=60), title.rstrip(":").lower(), t)
    return msg, signoff


def _ok(text: str, what: str, t: RehearsalTimeline) -> None:
    line = text.strip().splitlines()[0][:120]
    if "✅" not in text:
        raise PhaseFailed(f"{what} did not pass: {line}")
    t.note(line)


def signoff(p: People, t: RehearsalTimeline, msg: Any, reply: Any) -> bytes:
    """Both signers sign; the canary is GO; the report file the bot uploaded."""
    eng, fin = SIGNERS
    p.sign(reply, eng, "ledger matches the deposit and the withdrawal")
    t.note(f"{eng} signed for engineering")
    mark = p.sign(reply, fin, "")
    t.note(f"{fin} signed for finance")
    go = p.in_thread(msg, "*GO*", after=mark)
    t.note(go.splitlines()[0][:120])
    report = p.t.wait("the canary report file", lambda: next(
        (f for f in list(p.ws.files.values()) if f.name.startswith("canary-report")
         and f.name.endswith(".md") and f.content), None),
        timeout=30)
    t.note(f"the bot uploaded the canary report ({report.name}, {len(report.content)} bytes)")
    return report.content


def finish(p: People, t: RehearsalTimeline, *, completed: bool) -> str:
    """`/golive finish`: the run closes (``completed``: every cutover step succeeded; after a
    rollback it closes as it stands)."""
    answer = p.command(REQUESTER, "finish")
    want = "completed" if completed else "closed run"
    t.note(answer.splitlines()[0][:130] if answer else "(no answer)", ok=want in answer)
    if want not in answer:
        raise PhaseFailed(f"/golive finish: {answer[:300]}")
    return answer


def rollback(p: People, t: RehearsalTimeline, app: Paybox) -> None:
    """Payouts start failing; the payout watch fires the trigger; alice starts the rollback
    from the alert, bob approves, every rollback step succeeds."""
    after = p.seq()
    app.knobs(payout_fail_rate=1.0)
    t.note("turned the sample app's knob: payout_fail_rate = 100 %")
    load = f"rehearse-load-{secrets.token_hex(3)}"
    app.deposit(load, 500, f"seed-{load}")
    failed = sum(app.payout(load, 100, f"{load}-{i}").get("status") == "failed"
                 for i in range(4))
    t.note(f"4 payouts attempted through paybox, {failed} failed at the PSP")
    alert = p.t.wait("the rollback-trigger alert", lambda: p.find(
        CUTOVER, after=after, contains="Start rollback",
        where=lambda m: public(m) and not m.is_reply), timeout=90)
    t.note("🔴 " + next((ln for ln in text_of(alert).splitlines() if ln.strip()),
                        "rollback trigger")[:120])
    mark = p.seq()
    p.click(REQUESTER, alert, Action.ALERT_ROLLBACK)
    card = p.card("Rollback requested", after=mark, showing=("Approve",))
    t.note(f"{REQUESTER} pressed Start rollback on the alert")
    p.click(APPROVERS[0], card, Action.APPROVE)
    t.note(f"{APPROVERS[0]} approved the rollback")
    steps = ("rb-maintenance-on", "rb-revert-deploy", "rb-restore-or-downgrade", "rb-verify",
             "rb-traffic-open")
    seen: dict[str, str] = {}

    def finished() -> dict[str, str] | None:
        status = p.command(REQUESTER, "status")
        for step in steps:
            m = re.search(rf"`{step}`(?: 🔒)? (\w+)", status)
            seen[step] = m.group(1) if m else "not started"
        done = all(seen[s] == "succeeded" for s in steps)
        stuck = any(v in ("failed", "interrupted", "cancelled") for v in seen.values())
        return seen if done or stuck else None
    p.t.wait("the rollback steps", finished, timeout=300, poll=3.0,
             status=lambda: " · ".join(f"{k[3:]} {v}" for k, v in seen.items()))
    for step in steps:
        ok = seen[step] == "succeeded"
        t.note(f"{step}: {seen[step]}", ok=ok)
    if not all(seen[s] == "succeeded" for s in steps):
        raise PhaseFailed("the rollback did not finish: " + ", ".join(
            f"{k} {v}" for k, v in seen.items()))
    health = httpx.get(app.stack.public_url + "/api/health", timeout=10)
    version = health.json().get("version") if health.status_code == 200 else None
    t.note(f"public health after the rollback: {health.status_code}, version {version}",
           ok=health.status_code == 200 and version == "v1")
    if version != "v1":
        raise PhaseFailed(f"after the rollback the app answers {health.status_code} "
                          f"version {version}, not v1")

