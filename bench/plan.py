"""Time the night's plan (issue 20) for the sample stack and for a generated 50-step runbook.

A private paybox stack (examples/paybox/up.sh: v1 and migration 0001, the local registry,
the host's PostgreSQL) is planned v1 -> v2 from the real sources: the registry's digests, the
compose project (what runs, `docker compose config` twice), the ledger's alembic revision, the
RC image's `alembic history`, `upgrade --sql` and `downgrade --sql`, and squawk. Then the same
for a runbook of 50 steps (maintenance, deploy, migrate, then health/smoke/traffic checks
repeated) against the same target, and the pure part alone (digests, Markdown, card) for it.
Writes bench/results/plan.json: the median (and each run) of every measure.

    .venv/bin/python bench/plan.py [repeats]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import runbook.steps.catalog  # noqa: F401 - registers the step kinds
from bench.common import git_fields, git_state, header, write_results
from bot.slack.plan_blocks import plan_card
from runbook.model import default_runbook_path, load_runbook
from runbook.plan.digest import plan_digest, step_digest
from runbook.plan.inputs import PlanInputs
from runbook.plan.render import render_markdown
from runbook.plan.sources import compute
from runbook.steps.base import REGISTRY
from tests.paybox.conftest import running_stack
from tests.support.paybox_target import paybox_target


def fifty_steps() -> str:
    """A runbook of 50 steps: the cutover's six, then 44 read-only checks in a chain."""
    steps = [("maintenance-on", "maintenance", 'params = { mode = "on" }', True),
             ("deploy", "deploy", 'args = ["tag"]', True),
             ("migrate", "migrate", "", False)]
    kinds = ("health", "smoke")
    steps += [(f"check-{i:02d}", kinds[i % 2], "", False) for i in range(45)]
    steps += [("traffic-open", "traffic", 'params = { action = "open" }', True),
              ("maintenance-off", "maintenance", 'params = { mode = "off", manual = true }',
               True)]
    out = ['[runbook]\nname = "fifty"\nversion = "1"\n', ('[[phases]]\nid = "all"\n'
           'title = "All"\n')]
    prev = None
    for sid, kind, extra, gated in steps:
        out.append(f'[[phases.steps]]\nid = "{sid}"\ntitle = "{sid}"\nkind = "{kind}"\n'
                   f'command = "{sid.replace("-", " ")}"\n'
                   + (f"{extra}\n" if extra else "")
                   + ("gated = true\n" if gated else "")
                   + (f'requires = ["{prev}"]\n' if prev else ""))
        prev = sid
    out.append('[rollback]\ntitle = "Rollback"\n[[rollback.steps]]\nid = "rb-revert"\n'
               'title = "Revert"\nkind = "rollback.revert_deploy"\ncommand = "rollback"\n')
    return "\n".join(out)


def med(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    commit, dirty = git_state()
    stacks = running_stack()
    st = next(stacks)
    try:
        target = paybox_target(edge_port=st.edge_port, app_port=st.app_port,
                               project=st.project, database_url=st.database_url,
                               ops_token=st.ops_token, admin_password=st.admin_password,
                               extra_env={"PAYBOX_WEBHOOK_SECRET": st.webhook_secret},
                               root=ROOT)
        sample = load_runbook(default_runbook_path(), known_kinds=REGISTRY.keys())
        fifty = load_runbook(fifty_steps(), known_kinds=REGISTRY.keys())
        assert len(fifty.all_steps()) == 51
        inputs = PlanInputs(rc_tag="v2", url_variable="PAYBOX_DATABASE_URL")
        runs: dict[str, list[float]] = {}
        plan = None
        for label, rb in (("sample", sample), ("fifty_steps", fifty)):
            compute(rb, target, inputs)  # warm: the image is on the engine, compose found
            for _ in range(repeats):
                timings: dict[str, float] = {}
                t0 = time.perf_counter()
                plan = compute(rb, target, inputs, timings=timings)
                runs.setdefault(f"{label}_total_s", []).append(time.perf_counter() - t0)
                runs.setdefault(f"{label}_services_s", []).append(timings["services_s"])
                runs.setdefault(f"{label}_migrations_s", []).append(timings["migrations_s"])
                assert not plan.step("deploy").unresolved, plan.step("deploy").unresolved
                assert plan.step("migrate").migration.sql, "the SQL must be rendered"
            for _ in range(repeats):
                t0 = time.perf_counter()
                digest = plan_digest(plan)
                for s in plan.steps:
                    step_digest(plan, s.step_id)
                render_markdown(plan, digest)
                plan_card(plan, digest, filename="plan.md")
                runs.setdefault(f"{label}_pure_s", []).append(time.perf_counter() - t0)
    finally:
        next(stacks, None)
    medians = {k: med(v) for k, v in runs.items()}
    out = {**header("plan", loadavg=os.getloadavg()), **git_fields(commit, dirty),
           "repeats": repeats, "medians": medians,
           "runs": {k: [round(x, 3) for x in v] for k, v in runs.items()},
           "target_s": 3.0, "sample_under_target": medians["sample_total_s"] < 3.0}
    write_results(ROOT / "bench" / "results" / "plan.json", out)
    for k, v in medians.items():
        print(f"{k:28s} {v:8.3f}")
    print(f"loadavg {os.getloadavg()}")


if __name__ == "__main__":
    main()
