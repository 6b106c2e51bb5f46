"""The runbook as data: load ``cutover.toml``, validate it, and answer questions about it.

Pure: no I/O beyond reading the TOML file when given a path, no Slack, no database.

Validation collects *every* problem and raises one :class:`RunbookError` whose ``str`` has one
line per problem, each naming the file and the step (or phase / trigger) it is about.

Step states are plain strings owned by the engine; this module only needs to know which of
them count as *done*: ``succeeded`` and ``skipped`` (:data:`DONE_STATES`).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_TIMEOUTS",
    "DEFAULT_TIMEOUT_S",
    "DONE_STATES",
    "MAX_APPROVALS",
    "MAX_TIMEOUT_S",
    "Gate",
    "Phase",
    "Runbook",
    "RunbookError",
    "Step",
    "Trigger",
    "default_runbook_path",
    "default_timeout",
    "load_runbook",
    "normalize_command",
]

DONE_STATES: frozenset[str] = frozenset({"succeeded", "skipped"})
"""Step states that satisfy a ``requires`` entry."""

MAX_TIMEOUT_S = 6 * 60 * 60
MAX_APPROVALS = 10
ROLLBACK_PHASE = "rollback"

DEFAULT_TIMEOUTS: Mapping[str, int] = MappingProxyType(
    {
        "check.release_freeze": 120,
        "check.prod_config": 120,
        "check.backup_drill": 1800,
        "check.migration_dry_run": 1200,
        "check.rc_evidence": 120,
        "maintenance": 120,
        "deploy": 900,
        "migrate": 1800,
        "health": 300,
        "smoke": 600,
        "traffic": 120,
        "canary": 1800,
        "watch.ledger": 1800,
        "watch.webhooks": 1800,
        "watch.error_budget": 1800,
        "rollback.revert_deploy": 900,
        "rollback.data": 3600,
        "rollback.verify_readonly": 300,
    }
)
"""Default ``timeout`` per kind. Kinds not listed fall back by prefix, then to 600 s."""

_PREFIX_TIMEOUTS = {"check.": 300, "watch.": 1800, "rollback.": 900}
DEFAULT_TIMEOUT_S = 600

# Light validation of the few params whose values the shipped kinds switch on.
_PARAM_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("maintenance", "mode"): ("on", "off"),
    ("traffic", "action"): ("open", "close"),
    ("rollback.data", "strategy"): ("restore", "downgrade"),
}

_TOP_KEYS = ("runbook", "phases", "rollback")
_RUNBOOK_KEYS = ("name", "version", "description")
_PHASE_KEYS = ("id", "title", "steps")
_STEP_KEYS = (
    "id", "title", "kind", "params", "timeout", "requires", "gated", "gate", "args", "command",
    "description",
)
_GATE_KEYS = ("approvals", "groups")
_ROLLBACK_KEYS = ("title", "gated", "approvals", "groups", "triggers", "steps")
_TRIGGER_KEYS = ("id", "title", "metric", "op", "threshold", "manual")
_OPS = (">", ">=", "<", "<=", "==", "!=")


def default_timeout(kind: str) -> int:
    if kind in DEFAULT_TIMEOUTS:
        return DEFAULT_TIMEOUTS[kind]
    for prefix, seconds in _PREFIX_TIMEOUTS.items():
        if kind.startswith(prefix):
            return seconds
    return DEFAULT_TIMEOUT_S


def normalize_command(command: str) -> str:
    """``"  Maintenance   ON "`` -> ``"maintenance on"``."""
    return " ".join(command.lower().split())


# ------------------------------------------------------------------------------------ types


@dataclass(frozen=True)
class Gate:
    approvals: int = 1
    """Distinct approvers needed, the requester never counts."""
    groups: tuple[str, ...] = ()
    """Approver group names from the bot config; empty = any configured approver."""


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    kind: str
    phase: str
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    timeout_s: int = DEFAULT_TIMEOUT_S
    requires: tuple[str, ...] = ()
    gate: Gate | None = None
    args: tuple[str, ...] = ()
    command: str | None = None

    @property
    def gated(self) -> bool:
        return self.gate is not None


@dataclass(frozen=True)
class Phase:
    id: str
    title: str
    steps: tuple[Step, ...]


_COMPARE = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@dataclass(frozen=True)
class Trigger:
    """A rollback trigger. Metric triggers compare a watched metric; manual ones are declared
    by a human (``/golive rollback`` with the trigger id)."""

    id: str
    title: str
    metric: str | None = None
    op: str | None = None
    threshold: float | None = None
    manual: bool = False

    def fired(self, metrics: Mapping[str, float]) -> bool | None:
        """True/False for a metric trigger whose metric is present; None if it cannot say
        (manual trigger, or the metric was not measured)."""
        if self.manual or self.metric is None or self.op is None or self.threshold is None:
            return None
        if self.metric not in metrics or metrics[self.metric] is None:
            return None
        return bool(_COMPARE[self.op](metrics[self.metric], self.threshold))


@dataclass(frozen=True)
class Runbook:
    name: str
    version: str
    phases: tuple[Phase, ...]
    rollback: tuple[Step, ...]
    rollback_gate: Gate | None
    triggers: tuple[Trigger, ...]
    source: str = ""

    def __post_init__(self) -> None:
        ordered = tuple(s for p in self.phases for s in p.steps) + self.rollback
        object.__setattr__(self, "_ordered", ordered)
        object.__setattr__(self, "_index", {s.id: i for i, s in enumerate(ordered)})

    # -- lookup
    def all_steps(self) -> tuple[Step, ...]:
        """Every step in runbook order; the rollback plan comes last."""
        return self._ordered  # type: ignore[attr-defined]

    def cutover_steps(self) -> tuple[Step, ...]:
        """Every step of the phases (not the rollback plan), in order."""
        return tuple(s for p in self.phases for s in p.steps)

    def step(self, step_id: str) -> Step:
        try:
            return self._ordered[self._index[step_id]]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"no step {step_id!r} in runbook {self.name!r}") from None

    def phase(self, phase_id: str) -> Phase:
        for p in self.phases:
            if p.id == phase_id:
                return p
        raise KeyError(f"no phase {phase_id!r} in runbook {self.name!r}")

    def order_index(self, step_id: str) -> int:
        """Position of the step in :meth:`all_steps` (KeyError if unknown)."""
        try:
            return self._index[step_id]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"no step {step_id!r} in runbook {self.name!r}") from None

    def by_command(self, command: str) -> Step | None:
        """The first step (runbook order) triggered by ``command``; case/space-insensitive."""
        found = self.steps_for_command(command)
        return found[0] if found else None

    def steps_for_command(self, command: str) -> tuple[Step, ...]:
        """All steps triggered by ``command`` (``preflight`` has several), in order."""
        wanted = normalize_command(command)
        return tuple(
            s for s in self._ordered  # type: ignore[attr-defined]
            if s.command is not None and normalize_command(s.command) == wanted
        )

    def commands(self) -> tuple[str, ...]:
        """Distinct commands in runbook order."""
        seen: dict[str, None] = {}
        for s in self._ordered:  # type: ignore[attr-defined]
            if s.command is not None:
                seen.setdefault(normalize_command(s.command), None)
        return tuple(seen)

    def trigger(self, trigger_id: str) -> Trigger:
        for t in self.triggers:
            if t.id == trigger_id:
                return t
        raise KeyError(f"no rollback trigger {trigger_id!r}")

    # -- progress
    def unmet_requirements(self, step_id: str, states: Mapping[str, str]) -> list[str]:
        """The step's ``requires`` (declared order) whose state is not succeeded/skipped."""
        return [r for r in self.step(step_id).requires if states.get(r) not in DONE_STATES]

    def next_steps(self, states: Mapping[str, str], *, rollback: bool = False) -> list[Step]:
        """Steps, in runbook order, that are not done and whose requirements are all met.

        Considers the cutover phases, or the rollback plan with ``rollback=True``. A step in
        progress or failed is "not done", so it is listed; the caller has its state.
        """
        plan = self.rollback if rollback else self.cutover_steps()
        return [
            s for s in plan
            if states.get(s.id) not in DONE_STATES and not self.unmet_requirements(s.id, states)
        ]


class RunbookError(ValueError):
    """The runbook is invalid; ``problems`` has one human-readable line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


def default_runbook_path() -> Path:
    """The ``cutover.toml`` shipped inside the package."""
    return Path(__file__).with_name("cutover.toml")


# ------------------------------------------------------------------------------------ loading


def _is_path(value: str | os.PathLike[str]) -> bool:
    if isinstance(value, os.PathLike):
        return True
    if "\n" in value or "=" in value or "[" in value:
        return False
    return value.endswith(".toml") or Path(value).is_file()


def _typo_hint(key: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _Loader:
    def __init__(
        self, source: str, known_kinds: Collection[str], approver_groups: Collection[str] | None
    ):
        self.source = source
        self.known_kinds = frozenset(known_kinds)
        self.approver_groups = None if approver_groups is None else frozenset(approver_groups)
        self.problems: list[str] = []

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{self.source}: {where}: {text}")

    def unknown_keys(self, where: str, table: Mapping[str, Any], allowed: tuple[str, ...]):
        for key in table:
            if key not in allowed:
                self.problem(
                    where,
                    f"unknown key {key!r}{_typo_hint(key, allowed)}; allowed: {', '.join(allowed)}",
                )

    # -- gate
    def gate(
        self, where: str, raw: Any, gated: Any, *, approvals_key: str = "gate.approvals"
    ) -> Gate | None:
        if gated is not None and not isinstance(gated, bool):
            self.problem(where, f"'gated' must be true or false, got {gated!r}")
            gated = None
        if raw is None:
            raw = {}
            explicit = False
        elif not isinstance(raw, Mapping):
            self.problem(where, f"'gate' must be a table like {{ approvals = 1 }}, got {raw!r}")
            return None
        else:
            explicit = True
            self.unknown_keys(where + " gate", raw, _GATE_KEYS)
        if gated is False:
            if explicit:
                self.problem(where, "sets a gate (approvals/groups) but 'gated = false'; remove one")
            return None
        if gated is None and not explicit:
            return None
        approvals = raw.get("approvals", 1)
        groups = raw.get("groups", [])
        ok = True
        if not _is_int(approvals) or not 1 <= approvals <= MAX_APPROVALS:
            self.problem(
                where,
                f"bad gate: approvals must be a whole number from 1 to {MAX_APPROVALS}, "
                f"got {approvals!r}",
            )
            ok = False
        if not _str_list(groups):
            self.problem(where, f"bad gate: groups must be a list of group names, got {groups!r}")
            ok = False
        elif self.approver_groups is not None:
            for g in groups:
                if g not in self.approver_groups:
                    known = ", ".join(sorted(self.approver_groups)) or "(none configured)"
                    self.problem(
                        where,
                        f"bad gate: unknown approver group {g!r}{_typo_hint(g, self.approver_groups)}"
                        f"; configured groups: {known}",
                    )
                    ok = False
        if not ok:
            return None
        return Gate(approvals=approvals, groups=tuple(groups))

    # -- step
    def step(self, raw: Any, phase: str, position: int) -> Step | None:
        anon = f"step #{position} of phase {phase!r}"
        if not isinstance(raw, Mapping):
            self.problem(anon, "must be a table")
            return None
        sid = raw.get("id")
        if not isinstance(sid, str) or not sid.strip():
            self.problem(anon, "missing 'id'")
            where = anon
            sid = None
        else:
            where = f"step {sid!r}"
        self.unknown_keys(where, raw, _STEP_KEYS)

        title = raw.get("title")
        if not isinstance(title, str) or not title.strip():
            self.problem(where, "missing 'title'")
            title = None
        kind = raw.get("kind")
        if not isinstance(kind, str) or not kind.strip():
            self.problem(where, "missing 'kind'")
            kind = None
        elif kind not in self.known_kinds:
            known = ", ".join(sorted(self.known_kinds)) or "(none registered)"
            self.problem(
                where,
                f"unknown kind {kind!r}{_typo_hint(kind, self.known_kinds)}; known kinds: {known}",
            )

        params = raw.get("params", {})
        if not isinstance(params, Mapping):
            self.problem(where, f"'params' must be a table, got {params!r}")
            params = {}
        if kind is not None:
            for (k, name), choices in _PARAM_CHOICES.items():
                if k == kind and name in params and params[name] not in choices:
                    self.problem(
                        where,
                        f"params.{name} must be one of {', '.join(choices)}, "
                        f"got {params[name]!r}",
                    )

        timeout = raw.get("timeout", default_timeout(kind) if kind else DEFAULT_TIMEOUT_S)
        if not _is_int(timeout) or not 0 < timeout <= MAX_TIMEOUT_S:
            self.problem(
                where,
                f"bad timeout {timeout!r}: must be whole seconds, more than 0 and at most "
                f"{MAX_TIMEOUT_S} (6 h)",
            )
            timeout = DEFAULT_TIMEOUT_S

        requires = raw.get("requires", [])
        if not _str_list(requires):
            self.problem(where, f"'requires' must be a list of step ids, got {requires!r}")
            requires = []
        for dup in sorted({r for r in requires if requires.count(r) > 1}):
            self.problem(where, f"requires {dup!r} more than once")

        args = raw.get("args", [])
        if not _str_list(args) or not all(a.isidentifier() for a in args):
            self.problem(where, f"'args' must be a list of argument names, got {args!r}")
            args = []

        command = raw.get("command")
        if command is not None and (not isinstance(command, str) or not command.strip()):
            self.problem(where, f"'command' must be a non-empty string, got {command!r}")
            command = None

        gate = self.gate(where, raw.get("gate"), raw.get("gated"))
        if sid is None or title is None or kind is None:
            return None
        return Step(
            id=sid,
            title=title,
            kind=kind,
            phase=phase,
            params=_freeze(dict(params)),
            timeout_s=timeout,
            requires=tuple(dict.fromkeys(requires)),
            gate=gate,
            args=tuple(args),
            command=normalize_command(command) if command else None,
        )

    def steps(self, raw: Any, phase: str, where: str) -> list[Step]:
        if raw is None:
            self.problem(where, "has no steps")
            return []
        if not isinstance(raw, list):
            self.problem(where, "'steps' must be an array of tables ([[...steps]])")
            return []
        if not raw:
            self.problem(where, "has no steps")
        out = []
        for i, s in enumerate(raw, 1):
            step = self.step(s, phase, i)
            if step is not None:
                out.append(step)
        return out

    # -- triggers
    def trigger(self, raw: Any, position: int) -> Trigger | None:
        anon = f"rollback trigger #{position}"
        if not isinstance(raw, Mapping):
            self.problem(anon, "must be a table")
            return None
        tid = raw.get("id")
        if not isinstance(tid, str) or not tid:
            self.problem(anon, "missing 'id'")
            return None
        where = f"rollback trigger {tid!r}"
        self.unknown_keys(where, raw, _TRIGGER_KEYS)
        title = raw.get("title", tid)
        if not isinstance(title, str):
            self.problem(where, "'title' must be a string")
            title = tid
        manual = raw.get("manual", False)
        if not isinstance(manual, bool):
            self.problem(where, f"'manual' must be true or false, got {manual!r}")
            return None
        metric, op, threshold = raw.get("metric"), raw.get("op"), raw.get("threshold")
        if manual:
            if metric is not None or op is not None or threshold is not None:
                self.problem(where, "a manual trigger has no metric, op or threshold")
                return None
            return Trigger(id=tid, title=title, manual=True)
        ok = True
        if not isinstance(metric, str) or not metric:
            self.problem(where, "needs 'metric' (or 'manual = true')")
            ok = False
        if op not in _OPS:
            self.problem(where, f"'op' must be one of {' '.join(_OPS)}, got {op!r}")
            ok = False
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            self.problem(where, f"'threshold' must be a number, got {threshold!r}")
            ok = False
        if not ok:
            return None
        return Trigger(id=tid, title=title, metric=metric, op=op, threshold=threshold)

    # -- whole file
    def load(self, data: Mapping[str, Any]) -> Runbook | None:
        self.unknown_keys("top level", data, _TOP_KEYS)
        meta = data.get("runbook", {})
        if not isinstance(meta, Mapping):
            self.problem("[runbook]", "must be a table")
            meta = {}
        self.unknown_keys("[runbook]", meta, _RUNBOOK_KEYS)
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            self.problem("[runbook]", "missing 'name'")
            name = "?"
        version = meta.get("version", "")
        if not isinstance(version, str | int):
            self.problem("[runbook]", f"'version' must be a string, got {version!r}")
            version = ""
        version = str(version)

        phases: list[Phase] = []
        raw_phases = data.get("phases")
        if not isinstance(raw_phases, list) or not raw_phases:
            self.problem("top level", "no phases: add [[phases]] tables with [[phases.steps]]")
            raw_phases = []
        seen_phases: set[str] = set()
        for i, rp in enumerate(raw_phases, 1):
            if not isinstance(rp, Mapping):
                self.problem(f"phase #{i}", "must be a table")
                continue
            pid = rp.get("id")
            if not isinstance(pid, str) or not pid:
                self.problem(f"phase #{i}", "missing 'id'")
                continue
            where = f"phase {pid!r}"
            self.unknown_keys(where, rp, _PHASE_KEYS)
            if pid in seen_phases:
                self.problem(where, "duplicate phase id")
            if pid == ROLLBACK_PHASE:
                self.problem(where, "'rollback' is reserved for the [rollback] plan")
            seen_phases.add(pid)
            title = rp.get("title", pid)
            if not isinstance(title, str):
                self.problem(where, "'title' must be a string")
                title = pid
            steps = self.steps(rp.get("steps"), pid, where)
            phases.append(Phase(id=pid, title=title, steps=tuple(steps)))

        rb = data.get("rollback", {})
        if not isinstance(rb, Mapping):
            self.problem("[rollback]", "must be a table")
            rb = {}
        self.unknown_keys("[rollback]", rb, _ROLLBACK_KEYS)
        rb_gate_raw = {k: rb[k] for k in ("approvals", "groups") if k in rb}
        rollback_gate = self.gate("[rollback]", rb_gate_raw or None, rb.get("gated", True))
        rollback_steps = self.steps(rb.get("steps"), ROLLBACK_PHASE, "[rollback]") if rb else []
        triggers: list[Trigger] = []
        raw_triggers = rb.get("triggers", [])
        if not isinstance(raw_triggers, list):
            self.problem("[rollback]", "'triggers' must be a list of tables")
            raw_triggers = []
        seen_triggers: set[str] = set()
        for i, rt in enumerate(raw_triggers, 1):
            t = self.trigger(rt, i)
            if t is None:
                continue
            if t.id in seen_triggers:
                self.problem(f"rollback trigger {t.id!r}", "duplicate trigger id")
            seen_triggers.add(t.id)
            triggers.append(t)

        self.cross_check([s for p in phases for s in p.steps], rollback_steps)
        if self.problems:
            return None
        return Runbook(
            name=name,
            version=version,
            phases=tuple(phases),
            rollback=tuple(rollback_steps),
            rollback_gate=rollback_gate,
            triggers=tuple(triggers),
            source=self.source,
        )

    def cross_check(self, main: list[Step], rollback: list[Step]) -> None:
        by_id: dict[str, Step] = {}
        for s in main + rollback:
            if s.id in by_id:
                other = by_id[s.id]
                self.problem(
                    f"step {s.id!r}",
                    f"duplicate id (phase {s.phase!r}; first defined in phase {other.phase!r})",
                )
                continue
            by_id[s.id] = s
        for s in main + rollback:
            if by_id.get(s.id) is not s:
                continue
            for r in s.requires:
                target = by_id.get(r)
                if target is None:
                    self.problem(
                        f"step {s.id!r}",
                        f"requires {r!r}, which is not a step in this runbook"
                        f"{_typo_hint(r, by_id)}",
                    )
                elif s.phase == ROLLBACK_PHASE and target.phase != ROLLBACK_PHASE:
                    self.problem(
                        f"step {s.id!r}",
                        f"rollback step requires {r!r}, a step of phase {target.phase!r}; "
                        "rollback steps may only require rollback steps",
                    )
                elif s.phase != ROLLBACK_PHASE and target.phase == ROLLBACK_PHASE:
                    self.problem(
                        f"step {s.id!r}",
                        f"requires rollback step {r!r}; cutover steps may not depend on the "
                        "rollback plan",
                    )
        for cycle in _cycles({sid: [r for r in s.requires if r in by_id]
                              for sid, s in by_id.items()}):
            self.problem(
                f"step {cycle[0]!r}", f"dependency cycle: {' -> '.join(cycle + [cycle[0]])}"
            )


def _cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Each elementary cycle found by DFS, once, rotated to start at its smallest id."""
    found: dict[tuple[str, ...], list[str]] = {}
    color: dict[str, int] = {}  # 0/absent = new, 1 = on stack, 2 = finished
    stack: list[str] = []

    def visit(node: str) -> None:
        color[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if color.get(nxt, 0) == 0:
                visit(nxt)
            elif color[nxt] == 1:
                cyc = stack[stack.index(nxt):]
                i = cyc.index(min(cyc))
                cyc = cyc[i:] + cyc[:i]
                found.setdefault(tuple(cyc), cyc)
        stack.pop()
        color[node] = 2

    for n in graph:
        if color.get(n, 0) == 0:
            visit(n)
    return list(found.values())


def load_runbook(
    path_or_text: str | os.PathLike[str],
    *,
    known_kinds: Collection[str],
    approver_groups: Collection[str] | None = None,
    source: str | None = None,
) -> Runbook:
    """Parse and validate a runbook; raise :class:`RunbookError` listing every problem.

    ``path_or_text`` is a path (``os.PathLike``, or a one-line string ending in ``.toml`` or
    naming an existing file) or the TOML text itself. ``known_kinds`` is the step-kind
    registry's names (``runbook.steps.base.REGISTRY``). With ``approver_groups`` every gate's
    groups must be among them. ``source`` names the text in messages (default: file name,
    or ``<runbook>`` for text).
    """
    if _is_path(path_or_text):
        path = Path(path_or_text)
        name = source or path.name
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise RunbookError([f"{name}: cannot read runbook: {e.strerror or e}"]) from None
    else:
        text = str(path_or_text)
        name = source or "<runbook>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RunbookError([f"{name}: invalid TOML: {e}"]) from None
    loader = _Loader(name, known_kinds, approver_groups)
    runbook = loader.load(data)
    if loader.problems or runbook is None:
        raise RunbookError(loader.problems)
    return runbook
