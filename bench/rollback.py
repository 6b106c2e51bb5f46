"""Time a rollback to v1 with the migration downgrade, through the bot, on the sample stack.

Run:  .venv/bin/python bench/rollback.py [--iterations N]

What it does (everything on 127.0.0.1, everything started here is stopped here):

* creates a paybox stack and a bot database of its own (``Stack`` of
  bench/cutover_overhead.py, the `paybox` fixture's setup);
* per iteration, untimed: the stack is reset to v1 / 0001_ledger, the bot database emptied,
  and a fresh bot (tests/support/harness.Bot: uvicorn + the sandbox Slack) runs the full
  cutover v1 -> v2 to traffic open, as tests/integration/test_rollback_e2e.py does;
* timed: from just before `/golive rollback ...` is sent in #incident, through bob's approval
  on the card (clicked as soon as the card shows), to the moment ``rb-traffic-open`` finished
  (traffic re-opened on v1, from the bot's own timestamps); also to when the final timeline
  showed in the channel;
* each part's share: asking + approving, waiting for the worker, each step's run, the gaps
  between steps (the bot's queue), from the rows the bot wrote;
* checks the end state (app on v1 with its revision, schema 0001, public health 200) and writes
  bench/results/rollback.json with the git commit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "rollback.json"
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import psycopg
from common import git_fields, git_state, header, write_results
from cutover_overhead import Stack, docker_up, log, versions

from bot.ids import Action
from tests.integration.test_full_cutover import config_for
from tests.integration.test_rollback_e2e import cutover_to_v2
from tests.support import pg
from tests.support.harness import Bot

TARGET_S = 60.0
PLAN = ["rb-maintenance-on", "rb-revert-deploy", "rb-restore-or-downgrade", "rb-verify",
        "rb-traffic-open"]
CONTAINER_WORK = ("rb-revert-deploy", "rb-restore-or-downgrade")


def rows(url: str, sql: str) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()


def one_rollback(stack: Stack, tmp: Path) -> dict[str, Any]:
    pg.reset_state(stack.bot_db_url)
    bot = Bot(stack.bot_db_url, tmp, config=config_for(stack.pb))
    try:
        c0 = time.monotonic()
        cutover_to_v2(bot, stack.pb)
        cutover_s = time.monotonic() - c0
        after = bot.seq()
        t0 = time.time()
        reply = bot.command("alice", "rollback bench: payout failure rate 22%",
                            channel="C_INCIDENT")
        assert "Rollback requested" in reply, reply
        card = bot.workspace.wait_for_message(
            "C_INCIDENT", contains="Rollback requested", after_seq=after,
            predicate=lambda m: m.ephemeral_to is None and not m.via_response_url)
        card_s = time.time() - t0
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        bot.workspace.wait_for_message("C_CUTOVER", contains="Rollback of run #1: completed",
                                       after_seq=after, timeout=300)
        seen_s = time.time() - t0
    finally:
        bot.stop()
    exes = {r["step_id"]: r for r in rows(stack.bot_db_url, (
        "SELECT step_id, state, started_at, finished_at FROM step_executions "
        "WHERE step_id LIKE 'rb-%' ORDER BY id"))}
    approval = rows(stack.bot_db_url, "SELECT decided_at FROM approvals "
                                      "WHERE kind = 'rollback'")[0]
    assert all(exes[s]["state"] == "succeeded" for s in PLAN), exes

    def rel(ts: datetime) -> float:
        return ts.timestamp() - t0

    parts: dict[str, float] = {"ask_and_approve": rel(approval["decided_at"]),
                               "approval_to_first_start": rel(exes[PLAN[0]]["started_at"])
                               - rel(approval["decided_at"])}
    gaps = 0.0
    for i, s in enumerate(PLAN):
        parts[s] = (exes[s]["finished_at"] - exes[s]["started_at"]).total_seconds()
        if i:
            gaps += (exes[s]["started_at"] - exes[PLAN[i - 1]]["finished_at"]).total_seconds()
    parts["gaps_between_steps"] = gaps
    total = rel(exes[PLAN[-1]]["finished_at"])
    return {"total_s": round(total, 3), "timeline_seen_s": round(seen_s, 3),
            "card_shown_s": round(card_s, 3), "cutover_untimed_s": round(cutover_s, 1),
            "parts_s": {k: round(v, 3) for k, v in parts.items()},
            "shares": {k: round(v / total, 3) for k, v in parts.items()}}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str, sub: str | None = None) -> float:
        xs = [r[sub][key] if sub else r[key] for r in runs]
        return round(statistics.median(xs), 3)

    parts = {k: med(k, "parts_s") for k in runs[0]["parts_s"]}
    total = med("total_s")
    container = sum(parts[s] for s in CONTAINER_WORK)
    bot = parts["approval_to_first_start"] + parts["gaps_between_steps"]
    return {"median_total_s": total, "max_total_s": max(r["total_s"] for r in runs),
            "median_timeline_seen_s": med("timeline_seen_s"), "target_s": TARGET_S,
            "meets_target": max(r["total_s"] for r in runs) < TARGET_S,
            "median_parts_s": parts,
            "median_shares": {k: round(v / total, 3) for k, v in parts.items()},
            "container_work_s": round(container, 3), "bot_overhead_s": round(bot, 3),
            "dominated_by_container_work": container > bot}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    started = time.monotonic()
    commit, dirty = git_state()
    server = docker_up()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="golive-bench-rb-") as tmpd, Stack() as stack:
        for i in range(max(1, args.iterations)):
            stack.pb.reset_v1()
            tmp = Path(tmpd) / f"it{i}"
            tmp.mkdir()
            res = one_rollback(stack, tmp)
            res.update(iteration=i + 1, end_state=stack.verify("v1", "0001_ledger"),
                       loadavg=[round(x, 2) for x in os.getloadavg()])
            runs.append(res)
            log(f"iteration {i + 1}: rollback {res['total_s']:.1f}s "
                f"(timeline seen at {res['timeline_seen_s']:.1f}s)")
    summary = summarize(runs)
    out = {**header("rollback", docker_server=server),
           "versions": versions(),
           **git_fields(commit, dirty),
           "method": "full cutover v1->v2 through the bot (untimed), then `/golive rollback` "
                     "from #incident + bob's approval -> rb-traffic-open finished (the bot's "
                     "timestamps); strategy downgrade",
           "summary": summary, "runs": runs,
           "wall_seconds": round(time.monotonic() - started, 1)}
    write_results(args.out, out)
    log(f"median {summary['median_total_s']}s (target < {TARGET_S}s); container work "
        f"{summary['container_work_s']}s, bot {summary['bot_overhead_s']}s; shares "
        f"{summary['median_shares']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
