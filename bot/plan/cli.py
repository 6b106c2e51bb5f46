"""`golive plan`: the night's plan on the command line, for the day before.

``golive plan [--config FILE] (--run N | --tag TAG) [--out plan.md]`` computes the plan from
the config's target (reading the real systems, changing nothing), prints the summary and the
digest, and writes the Markdown. With a database (``DATABASE_URL``) the expected durations come
from the recorded attempts, ``--run`` plans that run, and the plan is stored and audited (row
``plan``) as `/golive plan` does, without posting anything; without one only ``--tag`` works.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("plan", help="the night's plan with today's values (steps, digests, "
                                    "SQL, ways back, expected durations), read-only")
    s.add_argument("--config", type=Path, metavar="FILE",
                   help="the golive config (default: $GOLIVE_CONFIG)")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=int, metavar="N", help="plan run N's release candidate")
    which.add_argument("--tag", metavar="TAG", help="plan this release tag")
    s.add_argument("--out", type=Path, metavar="FILE",
                   help="write the Markdown here (default: plan-<tag>.md)")
    s.set_defaults(fn=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from bot.plan.service import PlanService, plan_filename
    from bot.runtime import runbook_for
    from bot.settings import ConfigError, load_settings
    from runbook.adapters.redact import mask
    from runbook.docker_ref import validate_tag
    from runbook.plan.digest import plan_digest
    from runbook.plan.inputs import PlanInputs
    from runbook.plan.model import PlanError
    from runbook.plan.render import changes_lines, fmt_duration, render_markdown, summary_lines
    from runbook.plan.sources import compute

    environ = dict(os.environ)
    if args.config is not None:
        environ["GOLIVE_CONFIG"] = str(args.config)
    if args.tag is not None:
        try:
            validate_tag(args.tag)
        except ValueError as e:
            print(f"golive plan: --tag: {e}", file=sys.stderr)
            return 2
    try:
        settings = load_settings(require_slack=False, require_db=False, environ=environ,
                                 require_audit_key=False)
    except ConfigError as e:
        print("golive plan: fix these settings:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        return 2
    runbook = runbook_for(settings)
    cfg = settings.config
    secrets = settings.secrets()
    try:
        if settings.env.database_url:
            from bot.store.db import Database

            db = Database(settings.database_url, min_size=1)
            db.open(wait=True)
            try:
                svc = PlanService(db=db, runbook=runbook, target=cfg.target, config=cfg,
                                  secrets=secrets, audit_key=settings.audit_key)
                stored = svc.plan_for(actor="cli", channel=None, run_id=args.run,
                                      rc_tag=args.tag)
            finally:
                db.close()
            plan, digest, markdown = stored.plan, stored.digest, stored.markdown
            where = f"stored as plan {stored.id}, audited"
        else:
            if args.run is not None:
                print("golive plan: --run needs the bot's database (DATABASE_URL); use --tag",
                      file=sys.stderr)
                return 2
            plan = compute(runbook, cfg.target, PlanInputs(rc_tag=args.tag, secrets=secrets))
            digest = plan_digest(plan)
            markdown = mask(render_markdown(plan, digest), secrets)
            where = "not stored (no DATABASE_URL)"
    except PlanError as e:
        print(f"golive plan: {e}", file=sys.stderr)
        return 2
    out = args.out or Path(plan_filename(plan))
    out.write_text(markdown, encoding="utf-8")
    lines = [f"Plan for {plan.rc_tag} ({plan.runbook} -> {plan.target}): digest {digest}",
             f"expected duration: {fmt_duration(plan.expected_total_s)}", "",
             *summary_lines(plan), "", *changes_lines(plan)]
    unresolved = plan.all_unresolved()
    if unresolved:
        lines += ["", f"not resolved ({len(unresolved)}):"]
        lines += [f"  {sid or 'plan'}: {u.what}: {u.why}" for sid, u in unresolved]
    lines += ["", f"the full plan: {out} ({where})"]
    print(mask("\n".join(lines), secrets))
    return 0
