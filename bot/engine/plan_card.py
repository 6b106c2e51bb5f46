"""The plan on an approval card (issue 20, item 2): the part its approval binds, shown above
its buttons, and the step's plan as a file in the card's thread when the run has no
`/golive plan` file yet and the part holds SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from bot.engine.notices import Notices
from bot.engine.plan_parts import PlanParts
from bot.slack.blocks import MAX_BLOCKS, Content, upload
from bot.slack.plan_blocks import step_part_blocks
from runbook.plan.digest import step_digest
from runbook.plan.model import Plan
from runbook.plan.render import render_markdown

STEP_FILE = "upload:stepplan"


class PlanCard:
    """See the module docstring. Built by the facade; the request path (the file) and the
    cards (the part) are given it."""

    def __init__(self, *, parts: PlanParts, notices: Notices):
        self._parts = parts
        self._notices = notices

    def with_plan_part(self, conn: psycopg.Connection, card: list[dict],
                       approval: Mapping[str, Any]) -> list[dict]:
        """The card with the part its approval binds, above its buttons (unchanged when the
        approval bound none). At most 50 blocks."""
        plan = self._parts.approved(conn, approval["id"])
        if plan is None:
            return card
        step_id = approval["step_id"]
        part = step_part_blocks(plan, step_id, digest=step_digest(plan, step_id),
                                blind=self._parts.blind(plan, step_id),
                                file_note=self._file_note(conn, approval))
        at = next((i for i, b in enumerate(card) if b.get("type") == "actions"), len(card))
        out = [*card[:at], *part, *card[at:]]
        return out[:MAX_BLOCKS]

    def _file_note(self, conn: psycopg.Connection, approval: Mapping[str, Any]) -> str:
        """Where the full plan (the SQL) is: the run's latest `/golive plan` file, else the
        step's own file posted in the card's thread."""
        row = conn.execute("SELECT id, rc_tag FROM plans WHERE run_id = %s ORDER BY id DESC"
                           " LIMIT 1", (approval["run_id"],)).fetchone()
        if row is not None:
            tag = "".join(c if c.isalnum() or c in "._-" else "_" for c in (row["rc_tag"]
                                                                           or "notag"))
            return f"`plan-{tag}-{row['id']}.md` (the latest `/golive plan`)"
        return f"`{filename(approval)}` in this card's thread"

    def post_file(self, conn: psycopg.Connection, *, approval: Mapping[str, Any],
                  exe: Mapping[str, Any], plan: Plan) -> None:
        """Post the step's part as a file in its card's thread when the run has no plan file
        yet and the part holds SQL (the card shows its size, the file the statements)."""
        sp = plan.step(approval["step_id"])
        if sp.migration is None or not sp.migration.sql:
            return
        if conn.execute("SELECT 1 FROM plans WHERE run_id = %s LIMIT 1",
                        (approval["run_id"],)).fetchone() is not None:
            return
        self._notices.touch(conn, key=f"{STEP_FILE}:{approval['id']}", channel=exe["channel"],
                            thread_key=f"card:exe:{exe['id']}", final=True)

    def register(self, sender: Any) -> None:
        """Give the sender the step's plan file to render."""
        sender.register(STEP_FILE, self.render_file, upload=True)

    def render_file(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        """The file of the part approval ``ref`` binds (None: gone, or it bound none)."""
        a = conn.execute("SELECT * FROM approvals WHERE id = %s", (int(ref),)).fetchone()
        plan = self._parts.approved(conn, int(ref))
        if a is None or plan is None:
            return None
        digest = step_digest(plan, a["step_id"])
        return upload(filename(a), self._parts.mask(render_markdown(plan, digest)),
                      f"The plan of {a['step_id']} this approval binds: {digest[:12]}")


def filename(approval: Mapping[str, Any]) -> str:
    """The name of the plan file of one approval."""
    return f"plan-{approval['step_id']}-approval-{approval['id']}.md"
