"""The plan as data: what each step of the night will do with today's values. Pure.

A :class:`Plan` holds one :class:`StepPlan` per runbook step, in runbook order (the rollback
plan's steps last). The sources (``runbook.plan.sources``) fill it from the real systems and
mask every secret before a value lands here; whatever they could not resolve is an
:class:`Unresolved` entry with why, never an exception.

Digests hash the content (canonical JSON, ``runbook.rules.canonical``), never rendered text.
They leave out what says nothing about what the night *does*: when the plan was computed and
the expected durations (those move with every rehearsal). :func:`step_digest` hashes one step's
part, which is what an approval binds; :func:`diff` names what moved between two computations
of one step, from what to what (for voiding an approval whose values drifted).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from runbook.rules.canonical import canonical_json, sha256_hex

NO_HISTORY = "no history"
# Fields that are no part of what a step does (left out of the digests and of diff).
_TIMING = frozenset({"expected_s", "history"})


class PlanError(Exception):
    """The plan cannot be computed for what was asked (no run, no tag): a short reason."""


@dataclass(frozen=True)
class Unresolved:
    """A value the plan could not find out, and why (shown on the card and in the file)."""

    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.what}: unresolved: {self.why}"


@dataclass(frozen=True)
class FieldChange:
    """One field of a service's compose configuration that the step changes."""

    field: str
    before: str
    after: str


@dataclass(frozen=True)
class ServiceChange:
    """One service (compose) or release container (Kubernetes) the deploy changes."""

    service: str
    image: str
    """the image reference the deploy takes, e.g. registry.example.com/team/api:v2"""
    digest: str | None
    """its manifest digest as the registry reports it now"""
    current_image: str | None = None
    current_digest: str | None = None
    """the digest that runs now (the one the deploy replaces)"""
    revision: str | None = None
    """the image's revision label (the commit it was built from), when known"""
    changes: tuple[FieldChange, ...] = ()
    """what else in the compose configuration changes for this service"""
    config_sha256: str | None = None
    """sha256 of the service's whole compose configuration at the RC's tag (environment values
    included, never shown): any change to it between approval and claim is drift"""


@dataclass(frozen=True)
class MigrationPlan:
    """The database part of the night: the revision chain and the SQL that will run."""

    current: str | None
    head: str | None
    chain: tuple[str, ...] = ()
    """the revisions from current (exclusive) to head (inclusive), oldest first"""
    sql: str = ""
    """``alembic upgrade current:head --sql``, run from the RC image as the deploy runs it"""
    findings: tuple[str, ...] = ()
    """squawk's findings on that SQL"""
    down_sql: str = ""
    """``alembic downgrade head:current --sql`` (the rollback's downgrade), when rendered"""


@dataclass(frozen=True)
class PlanCheck:
    """A URL or command a step verifies (or flips)."""

    name: str
    target: str
    expect: str = ""


@dataclass(frozen=True)
class StepPlan:
    step_id: str
    title: str
    kind: str
    command: str | None = None
    rollback: bool = False
    """a step of the rollback plan (not of the cutover)"""
    does: tuple[str, ...] = ()
    """what it will do, one line each, with today's values"""
    checks: tuple[PlanCheck, ...] = ()
    services: tuple[ServiceChange, ...] = ()
    migration: MigrationPlan | None = None
    way_back: str = ""
    """which rollback step undoes it (and the data option, with its window or SQL)"""
    gated: bool = False
    approvals: int = 0
    groups: tuple[str, ...] = ()
    """who may approve: approver groups (empty: any approver but the requester)"""
    expected_s: float | None = None
    history: int = 0
    """how many recorded successful attempts the expected duration is the median of"""
    unresolved: tuple[Unresolved, ...] = ()


@dataclass(frozen=True)
class Plan:
    runbook: str
    runbook_version: str
    target: str
    rc_tag: str | None
    run_id: int | None = None
    steps: tuple[StepPlan, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()
    """what the plan as a whole could not resolve (besides each step's)"""
    computed_at: str = ""
    """ISO time it was computed (not part of the digest)"""

    def step(self, step_id: str) -> StepPlan:
        for s in self.steps:
            if s.step_id == step_id:
                return s
        raise KeyError(f"no step {step_id!r} in the plan")

    @property
    def cutover(self) -> tuple[StepPlan, ...]:
        return tuple(s for s in self.steps if not s.rollback)

    @property
    def rollback_steps(self) -> tuple[StepPlan, ...]:
        return tuple(s for s in self.steps if s.rollback)

    def all_unresolved(self) -> list[tuple[str | None, Unresolved]]:
        """(step id or None for the plan, entry) for everything not resolved."""
        out: list[tuple[str | None, Unresolved]] = [(None, u) for u in self.unresolved]
        for s in self.steps:
            out += [(s.step_id, u) for u in s.unresolved]
        return out

    @property
    def expected_total_s(self) -> float:
        """The sum of the cutover steps' expected durations (steps with no history count 0)."""
        return sum(s.expected_s or 0.0 for s in self.cutover)

    @property
    def steps_without_history(self) -> list[str]:
        return [s.step_id for s in self.cutover if s.expected_s is None]


# --- content, digests, diff ------------------------------------------------------------------

def _strip_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k not in _TIMING}
    if isinstance(value, list | tuple):
        return [_strip_timing(v) for v in value]
    return value


def step_content(step: StepPlan) -> dict[str, Any]:
    """The step's part of the plan as plain JSON, without timing."""
    out: dict[str, Any] = _strip_timing(asdict(step))
    return out


def content(plan: Plan) -> dict[str, Any]:
    """What the plan digest covers: everything but when it was computed and the timings."""
    data = _strip_timing(asdict(plan))
    data.pop("computed_at", None)
    out: dict[str, Any] = data
    return out


def plan_digest(plan: Plan) -> str:
    """sha256 of the plan's canonical content (not of any rendering)."""
    return sha256_hex(canonical_json(content(plan), "plan"))


def step_digest(plan: Plan, step_id: str) -> str:
    """sha256 of one step's part of the plan, bound with the runbook's version and the tag."""
    bound = {"runbook_version": plan.runbook_version, "rc_tag": plan.rc_tag,
             "target": plan.target, "step": step_content(plan.step(step_id))}
    return sha256_hex(canonical_json(bound, "step plan"))


@dataclass(frozen=True)
class PlanChange:
    """What moved between two computations of a step's plan."""

    path: str
    """e.g. ``services[app].digest`` or ``migration.current``"""
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.before)} → {_show(self.after)}"


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else canonical_json(value)
    return text if len(text) <= 120 else f"{text[:117]}..."


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """A list of records with a natural key (service, name, step_id, field, what) as a dict."""
    for key in ("service", "step_id", "field", "name", "what"):
        if items and all(isinstance(i, dict) and key in i for i in items):
            keys = [str(i[key]) for i in items]
            if len(set(keys)) == len(keys):
                return {k: i for k, i in zip(keys, items, strict=True)}
    return None


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{path}.{k}" if path else k, out)
        if not value:
            out[path] = {}
        return
    if isinstance(value, list):
        keyed = _keyed(value)
        if keyed is not None:
            for k, v in keyed.items():
                _flatten(v, f"{path}[{k}]", out)
            return
        if all(not isinstance(v, dict | list) for v in value):
            out[path] = list(value)
            return
        for i, v in enumerate(value):
            _flatten(v, f"{path}[{i}]", out)
        return
    out[path] = value


def diff(old: StepPlan, new: StepPlan) -> list[PlanChange]:
    """Every leaf of the step's plan that differs (timing left out), in a stable order:
    ``services[app].digest: sha256:aaa → sha256:bbb``. Empty: nothing moved."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(step_content(old), "", a)
    _flatten(step_content(new), "", b)
    paths = list(dict.fromkeys([*a, *b]))
    return [PlanChange(p, a.get(p), b.get(p)) for p in paths if a.get(p) != b.get(p)]


# --- durations -------------------------------------------------------------------------------

def median_duration(samples: Iterable[float]) -> float | None:
    """The median of recorded successful attempts (seconds), None without any."""
    xs = [float(x) for x in samples if x is not None and x >= 0]
    return float(statistics.median(xs)) if xs else None


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return NO_HISTORY
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


# --- rendering -------------------------------------------------------------------------------

def short_digest(digest: str | None, n: int = 12) -> str:
    if not digest:
        return "(unknown)"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:n]}" if hexpart else digest[:n]


def service_line(s: ServiceChange) -> str:
    before = (f"{s.current_image or '(nothing)'} ({short_digest(s.current_digest)})"
              if s.current_image or s.current_digest else "nothing running")
    return f"{s.service}: {before} → {s.image} ({short_digest(s.digest)})"


def migration_line(m: MigrationPlan) -> str:
    if m.current == m.head and m.head is not None:
        return f"database at {m.head}: nothing to migrate"
    chain = " → ".join([m.current or "base", *m.chain]) if m.chain else \
        f"{m.current or 'base'} → {m.head or '(unknown head)'}"
    sql = f", {len(m.sql.splitlines())} lines of SQL" if m.sql else ""
    lint = f", squawk: {len(m.findings)} finding(s)" if m.findings else ""
    return f"{chain}{sql}{lint}"


def summary_lines(plan: Plan) -> list[str]:
    """The card's short form: one line a step (the cutover), what changes, the totals."""
    out = []
    for s in plan.cutover:
        gate = " 🔒" if s.gated else ""
        unres = f" ⚠️ {len(s.unresolved)} unresolved" if s.unresolved else ""
        out.append(f"{s.step_id}{gate} ({fmt_duration(s.expected_s)}): "
                   f"{s.does[0] if s.does else s.title}{unres}")
    return out


def changes_lines(plan: Plan) -> list[str]:
    out = []
    for s in plan.steps:
        if s.rollback:
            continue
        out += [service_line(c) for c in s.services]
        for c in s.services:
            out += [f"{c.service} {f.field}: {f.before} → {f.after}" for f in c.changes]
        if s.migration is not None:
            out.append(f"database: {migration_line(s.migration)}")
    return out


def _fence(text: str, lang: str = "") -> str:
    body = text.rstrip("\n")
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}{lang}\n{body}\n{ticks}"


def render_markdown(plan: Plan, digest: str | None = None) -> str:
    """The full plan, the file an auditor reads (and the night's Markdown attachment)."""
    digest = digest or plan_digest(plan)
    lines = [f"# Plan: {plan.runbook} → {plan.target or '(target)'} at {plan.rc_tag or '(no tag)'}",
             "",
             f"- plan digest: `{digest}`",
             f"- runbook version: `{plan.runbook_version}`",
             f"- run: {plan.run_id if plan.run_id is not None else '(none)'}",
             f"- computed at: {plan.computed_at or '(unknown)'}",
             f"- expected duration of the cutover: {fmt_duration(plan.expected_total_s)}"
             + (f" (no history for {', '.join(plan.steps_without_history)})"
                if plan.steps_without_history else ""),
             "",
             "| # | step | gate | expected | unresolved |",
             "|---|------|------|----------|------------|"]
    for i, s in enumerate(plan.steps, 1):
        gate = (f"{s.approvals} approval(s)" + (f" from {', '.join(s.groups)}" if s.groups else "")
                if s.gated else "")
        lines.append(f"| {i} | `{s.step_id}`{' (rollback)' if s.rollback else ''} | {gate} | "
                     f"{fmt_duration(s.expected_s)} | {len(s.unresolved) or ''} |")
    unresolved = plan.all_unresolved()
    if unresolved:
        lines += ["", "## Not resolved", ""]
        lines += [f"- {('`' + sid + '` ') if sid else ''}{u.what}: {u.why}" for sid, u in unresolved]
    for title, group in (("Cutover", plan.cutover), ("Rollback plan", plan.rollback_steps)):
        if not group:
            continue
        lines += ["", f"## {title}"]
        for s in group:
            lines += _step_markdown(plan, s)
    return "\n".join(lines) + "\n"


def _step_markdown(plan: Plan, s: StepPlan) -> list[str]:
    out = ["", f"### `{s.step_id}`: {s.title}", "",
           f"- kind: `{s.kind}`" + (f", command: `/golive {s.command}`" if s.command else ""),
           f"- step digest: `{step_digest(plan, s.step_id)}`",
           f"- expected: {fmt_duration(s.expected_s)}"
           + (f" (median of {s.history} attempt(s))" if s.history else "")]
    if s.gated:
        who = f"from {', '.join(s.groups)}" if s.groups else "any approver but the requester"
        out.append(f"- gate: {s.approvals} approval(s), {who}")
    out += [f"- does: {d}" for d in s.does]
    out += [f"- checks {c.name}: `{c.target}`" + (f" (expects {c.expect})" if c.expect else "")
            for c in s.checks]
    for c in s.services:
        out.append(f"- service {service_line(c)}")
        if c.digest:
            out.append(f"  - new digest: `{c.digest}`")
        if c.current_digest:
            out.append(f"  - replaces: `{c.current_digest}`")
        if c.revision:
            out.append(f"  - revision: `{c.revision}`")
        if c.config_sha256:
            out.append(f"  - compose configuration sha256: `{c.config_sha256[:16]}`")
        out += [f"  - {f.field}: {f.before} → {f.after}" for f in c.changes]
        if not c.changes:
            out.append("  - compose configuration: no change besides the image")
    m = s.migration
    if m is not None:
        out.append(f"- migration: {migration_line(m)}")
        out += [f"  - squawk: {f}" for f in m.findings]
        if m.sql:
            out += ["", "Upgrade SQL (`alembic upgrade --sql`, from the RC image):", "",
                    _fence(m.sql, "sql")]
        if m.down_sql:
            out += ["", "Downgrade SQL (the rollback's data option):", "",
                    _fence(m.down_sql, "sql")]
    if s.way_back:
        out.append(f"- way back: {s.way_back}")
    out += [f"- ⚠️ {u.what}: unresolved: {u.why}" for u in s.unresolved]
    return out


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """A plan stored as JSON (``content`` plus timing) back as objects."""

    def step(d: Mapping[str, Any]) -> StepPlan:
        mig = d.get("migration")
        return StepPlan(
            step_id=d["step_id"], title=d["title"], kind=d["kind"], command=d.get("command"),
            rollback=bool(d.get("rollback")), does=tuple(d.get("does") or ()),
            checks=tuple(PlanCheck(**c) for c in d.get("checks") or ()),
            services=tuple(ServiceChange(**{**c, "changes": tuple(
                FieldChange(**f) for f in c.get("changes") or ())})
                for c in d.get("services") or ()),
            migration=MigrationPlan(**{**mig, "chain": tuple(mig.get("chain") or ()),
                                       "findings": tuple(mig.get("findings") or ())})
            if mig else None,
            way_back=d.get("way_back", ""), gated=bool(d.get("gated")),
            approvals=int(d.get("approvals") or 0), groups=tuple(d.get("groups") or ()),
            expected_s=d.get("expected_s"), history=int(d.get("history") or 0),
            unresolved=tuple(Unresolved(**u) for u in d.get("unresolved") or ()))

    return Plan(runbook=data["runbook"], runbook_version=data["runbook_version"],
                target=data["target"], rc_tag=data.get("rc_tag"), run_id=data.get("run_id"),
                steps=tuple(step(s) for s in data.get("steps") or ()),
                unresolved=tuple(Unresolved(**u) for u in data.get("unresolved") or ()),
                computed_at=data.get("computed_at", ""))


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON (with timing), for storing; :func:`plan_from_dict` reads it."""
    out: dict[str, Any] = asdict(plan)
    return out


def with_durations(steps: Sequence[StepPlan], history: Mapping[str, Sequence[float]]
                   ) -> tuple[StepPlan, ...]:
    """Each step with its expected duration: the median of its recorded attempts."""
    return tuple(replace(s, expected_s=median_duration(history.get(s.step_id, ())),
                         history=len(history.get(s.step_id, ()))) for s in steps)


__all__ = ["NO_HISTORY", "FieldChange", "MigrationPlan", "Plan", "PlanChange", "PlanCheck", "PlanError",
           "ServiceChange", "StepPlan", "Unresolved", "changes_lines", "content", "diff",
           "fmt_duration", "median_duration", "plan_digest", "plan_from_dict", "plan_to_dict",
           "render_markdown", "step_content", "step_digest", "summary_lines", "with_durations"]
