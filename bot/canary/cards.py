"""What the channel sees of a canary, rendered from the database when the sender sends it.

``canary:N`` the checklist with the Report / Refresh buttons; ``canary-signoff:N`` the sign-off
message in its thread (Sign / Reject); ``canary-reply:N:*`` one thread reply each;
``canary-final:N`` GO or NO-GO (with Start rollback on a NO-GO); ``canary-summary:N`` the
report's summary; ``canary-report:N`` and ``canary-chart:N`` the report and its PNG chart,
uploaded as files in the thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import psycopg
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject

from bot.canary import store
from bot.ids import Action
from bot.slack.blocks import Content, context, esc, message, section, upload
from runbook.canary import machine
from runbook.canary.chart import render_chart
from runbook.canary.report import summary_lines
from runbook.canary.state import CanaryState

_MENTION = re.compile(r"&lt;@([UW][A-Z0-9_]+)&gt;")


def chart_name(run_id: int) -> str:
    """The chart's file name: the upload's, and the one the report links it by."""
    return f"canary-chart-run{run_id}.png"


def _people(st: CanaryState) -> set[str]:
    """Who the canary's own texts mention: its opener, signers and reporters."""
    return {st.opened_by, *(s.user_id for s in st.signatures),
            *(it.by for it in st.items.values() if it.by)}


def _mentions_only(text: str, people: set[str]) -> str:
    """The machine's mrkdwn carries people's text (a reference, a NO-GO reason) inline: escape
    it all, then give back the mentions of the canary's own people (and the one a thread reply
    opens with, whom the bot addresses), so `<!channel>`, a link or someone else's mention
    typed into a modal never pings or links."""
    out = esc(text)
    lead = _MENTION.match(out)
    keep = people | ({lead.group(1)} if lead else set())
    return _MENTION.sub(lambda m: f"<@{m.group(1)}>" if m.group(1) in keep else m.group(0), out)


def _button(text: str, action: str, value: str, **kw: Any) -> ButtonElement:
    return ButtonElement(text=text, action_id=action, value=value, **kw)


class CanaryCards:
    """The renderers, registered on the outbox sender by the composition root."""

    def __init__(self, secrets: Mapping[str, str]):
        self.secrets = dict(secrets)

    def register(self, sender: Any) -> None:
        """Tell the sender how to render each canary message."""
        sender.register("canary", self.render_canary)
        sender.register("canary-signoff", self.render_signoff)
        sender.register("canary-reply", self.render_reply)
        sender.register("canary-final", self.render_final)
        sender.register("canary-summary", self.render_summary)
        sender.register("canary-report", self.render_report_file, upload=True)
        sender.register("canary-chart", self.render_chart_file, upload=True)

    @staticmethod
    def _load(conn: psycopg.Connection, ref: str) -> tuple[dict, CanaryState] | None:
        cid = ref.split(":", 1)[0]
        row = store.get(conn, int(cid)) if cid.isdigit() else None
        return (row, store.state_of(row)) if row is not None else None

    def render_canary(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        """The canary message: outcome, checklist, who opened it, the buttons while open."""
        found = self._load(conn, ref)
        if found is None:
            return None
        row, st = found
        head = {"open": "🐤 *Canary* — in progress", "GO": "✅ *Canary: GO*",
                "NO-GO": "❌ *Canary: NO-GO*"}[st.outcome]
        # the machine's own text: mentions must stay mentions, typed text must not ping
        lines = _mentions_only("\n".join(machine.checklist(st)), _people(st))
        blocks: list[Any] = [
            section(f"{head} (run #{row['run_id']})"), section(lines),
            context(f"Opened by <@{st.opened_by}> · account `{esc(st.account)}` · "
                    f"deposit {st.money(st.deposit_cents)}, withdraw "
                    f"{st.money(st.withdraw_cents)}"
                    + (f" (fee {st.money(st.fee_cents)})" if st.fee_cents else "")
                    + " · replies and sign-off in the thread")]
        if st.outcome == "open":
            v = str(row["id"])
            blocks.append(ActionsBlock(elements=[
                _button("Report deposit…", Action.CANARY_DEPOSIT, v),
                _button("Report withdrawal…", Action.CANARY_WITHDRAWAL, v),
                _button("Refresh evidence", Action.CANARY_EVIDENCE, v)]))
        text = f"Canary (run #{row['run_id']}): {st.outcome}"
        return message(text, blocks)

    def render_signoff(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        """The sign-off message in the thread: who signed, what is missing, Sign / Reject."""
        found = self._load(conn, ref)
        if found is None:
            return None
        row, st = found
        sigs = "\n".join(
            f"{'✍️' if s.decision == 'sign' else '⛔'} <@{s.user_id}>"
            + (f" ({esc(s.role)})" if s.role else "") + f" · {s.at:%H:%M:%S} UTC"
            + (f" · _{esc(s.note)}_" if s.note else "") for s in st.signatures)
        blocks: list[Any] = [section(f"*Sign-off*: {_mentions_only(machine.outcome_text(st), _people(st))}"
                                     + (f"\n{sigs}" if sigs else ""))]
        if st.outcome == "open":
            v = str(row["id"])
            blocks.append(ActionsBlock(elements=[
                _button("Sign…", Action.CANARY_SIGN, v, style="primary"),
                _button("Reject…", Action.CANARY_REJECT, v, style="danger")]))
        return message(f"Canary sign-off: {machine.outcome_text(st)}", blocks)

    def render_reply(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        found = self._load(conn, ref)
        text = _mentions_only((data or {}).get("text") or "", _people(found[1]) if found else set())
        return message(text, [section(text)]) if text else None

    def render_final(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        """GO or NO-GO with who signed and when; a NO-GO offers the rollback."""
        found = self._load(conn, ref)
        if found is None or found[1].outcome == "open":
            return None
        row, st = found
        notes = "".join(f"\n<@{s.user_id}>: _{esc(s.note)}_" for s in st.signatures if s.note)
        text = f"*{st.outcome}* — {machine.outcome_signers(st)}{notes}"
        blocks: list[Any] = [section(("✅ " if st.outcome == "GO" else "❌ ") + text)]
        if st.outcome == "NO-GO":
            blocks.append(ActionsBlock(elements=[_button(
                "Start rollback", Action.CANARY_ROLLBACK, str(row["id"]), style="danger",
                confirm=ConfirmObject(title="Start rollback?",
                                      text="Request the rollback plan (needs approval).",
                                      confirm="Request rollback", deny="Back"))]))
        return message(f"Canary {st.outcome}", blocks)

    def render_summary(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        found = self._load(conn, ref)
        if found is None:
            return None
        people = _people(found[1])
        lines = [_mentions_only(x, people) for x in summary_lines(found[1], secrets=self.secrets)]
        return message(lines[0], [section("\n".join(lines)),
                                  context("The full report and the chart are attached below.")])

    def render_report_file(self, conn: psycopg.Connection, ref: str, data: Any
                           ) -> Content | None:
        found = self._load(conn, ref)
        if found is None or not found[0]["report"]:
            return None
        row, st = found
        return upload(f"canary-report-run{row['run_id']}.md", row["report"],
                      f"Canary report: {st.outcome}")

    def render_chart_file(self, conn: psycopg.Connection, ref: str, data: Any
                          ) -> Content | None:
        found = self._load(conn, ref)
        if found is None:
            return None
        row, st = found
        return upload(chart_name(row["run_id"]),
                      render_chart(st.samples, title=f"Canary window, run #{row['run_id']}"),
                      "Canary window: health latency and 5xx rate")
