"""The rollback plan as the card shows it, filled with one run's real values (runbook section 3).

Pure: the runbook's rollback steps, the run's facts, the migration scripts' revision chain
(``runbook.adapters.migrations.revision_chain``) and ``now`` in; structured data and plain
text out. The database step offers two options and says why an option is not offered: the
preflight snapshot (when the backup drill recorded one; what is lost since, and its age) and
alembic downgrade (only when the recorded revisions are joined by down_revision links; which
migrations it reverts). Nothing is guessed: a missing fact is named as missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

Chain = Mapping[str, tuple[tuple[str, ...], str]]
"""revision -> (down_revisions, one-line doc), as ``revision_chain`` returns it."""

RESTORE, DOWNGRADE = "restore", "downgrade"


@dataclass(frozen=True)
class Migration:
    revision: str
    doc: str = ""


@dataclass(frozen=True)
class DataOption:
    """One way to put the database back; ``offered`` False says why in ``why_not``."""

    strategy: str
    title: str
    offered: bool
    lines: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    why_not: str = ""
    reverts: tuple[Migration, ...] = ()
    """downgrade: the migrations it undoes, newest first."""
    snapshot_age_s: float | None = None


@dataclass(frozen=True)
class PlanStep:
    id: str
    title: str
    kind: str
    lines: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    options: tuple[DataOption, ...] = ()
    blocked: str = ""
    """Why this step cannot run with what the run recorded ("" when it can)."""


@dataclass(frozen=True)
class RollbackPlan:
    steps: tuple[PlanStep, ...]
    default_strategy: str | None
    """The runbook's configured data strategy when it is offered, else None: a person picks."""
    problems: tuple[str, ...] = field(default=())

    @property
    def ready(self) -> bool:
        """True when every step can run (a data option, if any, still has to be chosen)."""
        return not self.problems

    def option(self, strategy: str) -> DataOption | None:
        """The data option named ``strategy`` (None when the plan has no data step)."""
        return next((o for s in self.steps for o in s.options if o.strategy == strategy), None)

    def text(self) -> str:
        """The plan as plain text (the card's fallback and the audit record)."""
        out: list[str] = []
        for n, step in enumerate(self.steps, 1):
            out.append(f"{n}. {step.title}")
            out += [f"   {line}" for line in step.lines]
            out += [f"   ⚠ {w}" for w in step.warnings]
            for o in step.options:
                mark = "(default) " if o.strategy == self.default_strategy else ""
                if o.offered:
                    out.append(f"   • {mark}{o.title}")
                    out += [f"     {line}" for line in o.lines]
                    out += [f"     ⚠ {w}" for w in o.warnings]
                else:
                    out.append(f"   • {o.title}: not offered: {o.why_not}")
            if step.blocked:
                out.append(f"   ✖ cannot run: {step.blocked}")
        out += [f"✖ {p}" for p in self.problems]
        return "\n".join(out)


def human_age(seconds: float) -> str:
    """``3 h 05 min``, ``12 min``, ``40 s``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _heads(rev: Any) -> tuple[str, ...]:
    return tuple(r for r in str(rev).split(",") if r) if rev not in (None, "", "base") else ()


def _ancestors(heads: Sequence[str], chain: Chain) -> dict[str, int] | None:
    """Every revision reachable from ``heads`` (themselves included) -> its depth from base;
    None when a revision is not among the scripts."""
    depth: dict[str, int] = {}

    def visit(rev: str, trail: frozenset[str]) -> int | None:
        if rev in depth:
            return depth[rev]
        if rev not in chain or rev in trail:
            return None
        downs = chain[rev][0]
        below = [visit(d, trail | {rev}) for d in downs]
        if any(b is None for b in below):
            return None
        depth[rev] = 1 + max((b for b in below if b is not None), default=0)
        return depth[rev]

    return depth if all(visit(h, frozenset()) is not None for h in heads) else None


def downgrade_option(facts: Mapping[str, Any], chain: Chain | None) -> DataOption:
    """alembic downgrade to the pre-cutover revision, offered only along down_revision links."""
    title = "alembic downgrade to the pre-cutover revision"

    def no(why: str) -> DataOption:
        return DataOption(DOWNGRADE, title, False, why_not=why)

    if "alembic_before" not in facts:
        return no("the migrate step recorded no revision before the upgrade (alembic_before)")
    before, after = _heads(facts.get("alembic_before")), facts.get("alembic_after")
    goal = ",".join(before) or "base"
    title = f"alembic downgrade to {goal}"
    if "alembic_after" not in facts:
        return no("the migrate step recorded no revision after the upgrade (alembic_after), "
                  "so which migrations ran is unknown; check `alembic current` by hand")
    after_heads = _heads(after)
    if after_heads == before:
        return DataOption(DOWNGRADE, title, True,
                          lines=(f"the schema is still at {goal}: no migration to revert",))
    if chain is None:
        return no("the migration scripts could not be read to find the downgrade path")
    top = _ancestors(after_heads, chain)
    if top is None:
        unknown = [h for h in after_heads if h not in chain]
        return no(f"{', '.join(unknown) or after} is not among the migration scripts (or their "
                  "down_revision links are broken)")
    if any(b not in top for b in before):
        return no(f"no down_revision path from {after} back to {goal}")
    base = _ancestors(before, chain) or {}
    gone = sorted((r for r in top if r not in base), key=lambda r: (-top[r], r))
    reverts = tuple(Migration(r, chain[r][1]) for r in gone)
    lines = [f"from {after} back to {goal}; reverts {len(reverts)} migration"
             + ("s" if len(reverts) != 1 else "") + ":"]
    lines += [f"  {m.revision}" + (f": {m.doc}" if m.doc else "") for m in reverts]
    return DataOption(DOWNGRADE, title, True, lines=tuple(lines), reverts=reverts,
                      warnings=(("data written into the reverted columns and tables is dropped "
                                "with them"),))


def restore_option(facts: Mapping[str, Any], now: datetime, stale_after: timedelta
                   ) -> DataOption:
    """Restore the preflight snapshot, offered when the backup drill recorded one."""
    title = "restore the preflight snapshot (when data corruption is suspected)"
    missing = [k for k in ("snapshot_path", "snapshot_sha256") if not facts.get(k)]
    if missing:
        return DataOption(RESTORE, title, False, why_not="no preflight snapshot recorded for "
                          "this run (" + ", ".join(missing) + " missing): run the backup drill")
    lines = [f"snapshot {facts['snapshot_path']} (sha256 {str(facts['snapshot_sha256'])[:12]})"]
    rows = facts.get("snapshot_source_rows")
    if isinstance(rows, Mapping):
        lines.append(f"{len(rows)} tables, {sum(int(v) for v in rows.values())} rows at the time")
    taken_raw = facts.get("snapshot_taken_at")
    try:
        taken = datetime.fromisoformat(str(taken_raw)) if taken_raw else None
    except ValueError:
        taken = None
    if taken is None or taken.tzinfo is None:
        return DataOption(RESTORE, title, True, lines=tuple(lines), warnings=(
            ("the snapshot's age is unknown (no valid snapshot_taken_at): everything written "
            "since it was taken is lost"),))
    age = (now - taken).total_seconds()
    lines.append(f"taken {taken.isoformat(timespec='seconds')}, {human_age(age)} ago")
    where = (" from " + ", ".join(sorted(str(t) for t in rows)) if isinstance(rows, Mapping)
             and rows else "")
    warnings = [(f"everything written in the last {human_age(age)} (since "
                f"{taken.isoformat(timespec='seconds')}) is lost{where}. The data as it is now "
                "is dumped first, to reconcile")]
    if age > stale_after.total_seconds():
        warnings.append(f"the snapshot is {human_age(age)} old, older than "
                        f"{human_age(stale_after.total_seconds())}")
    return DataOption(RESTORE, title, True, lines=tuple(lines), warnings=tuple(warnings),
                      snapshot_age_s=age)


def _revert_lines(facts: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    previous = facts.get("previous_images")
    if not isinstance(previous, Mapping) or not previous:
        return (), ("no previous image recorded (previous_images): the deploy step did not run "
                    "or recorded nothing, so there is nothing to revert to")
    now_tag = facts.get("deployed_tag")
    lines = []
    for svc, info in sorted(previous.items()):
        info = info if isinstance(info, Mapping) else {}
        tag = info.get("tag") or info.get("image") or "?"
        sha = f" (sha {str(info['revision'])[:7]})" if info.get("revision") else ""
        lines.append(f"{svc}: {now_tag or 'current'} -> {tag}{sha}")
    return tuple(lines), ""


def build_plan(steps: Sequence[Any], facts: Mapping[str, Any], *, now: datetime,
               chain: Chain | None = None, strategy: str | None = None,
               readonly_paths: Sequence[str] = (),
               stale_after: timedelta = timedelta(hours=2)) -> RollbackPlan:
    """The plan for ``steps`` (the runbook's rollback steps) with this run's ``facts``."""
    out: list[PlanStep] = []
    problems: list[str] = []
    default: str | None = None
    for step in steps:
        kind, params = step.kind, dict(step.params or {})
        lines: tuple[str, ...] = ()
        options: tuple[DataOption, ...] = ()
        blocked = ""
        if kind == "maintenance":
            lines = ((f"maintenance {params.get('mode', 'on')}: the public sees the maintenance "
                     "page"),)
        elif kind == "rollback.revert_deploy":
            lines, blocked = _revert_lines(facts)
        elif kind == "rollback.data":
            options = (restore_option(facts, now, stale_after), downgrade_option(facts, chain))
            wanted = (strategy or str(params.get("strategy", DOWNGRADE))).lower()
            offered = [o.strategy for o in options if o.offered]
            default = wanted if wanted in offered else None
            if not offered:
                blocked = "neither a snapshot restore nor a downgrade is possible: " + "; ".join(
                    o.why_not for o in options)
        elif kind == "rollback.verify_readonly":
            paths = list(params.get("paths") or readonly_paths)
            lines = (("health, admin login and the read-only pages " + ", ".join(paths)
                      + " answer on the old version") if paths else
                     ("health and admin login answer on the old version (no read-only pages: "
                      "[target] readonly_paths is empty)"),)
        elif kind == "traffic":
            lines = (f"traffic {params.get('action', 'open')}: the public health answers 200",)
        if blocked:
            problems.append(f"{step.title}: {blocked}")
        out.append(PlanStep(step.id, step.title, kind, lines, options=options, blocked=blocked))
    return RollbackPlan(tuple(out), default, tuple(problems))
