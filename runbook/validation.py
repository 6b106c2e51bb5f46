"""How a runbook file is checked, and its problems worded: one line each, in the file's terms.

Pure (no I/O). ``runbook.model`` declares the schema as pydantic models with the field types
and checks defined here; this module also checks what no single table can (duplicate ids,
requirements that name no step or cross into the rollback plan, cycles) and turns each
pydantic error location back into the place a team member edits (``step 'deploy'``, ``phase
'cutover'``, ``[rollback]``, ``rollback trigger 't'``).
"""

from __future__ import annotations

import difflib
import graphlib
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)

MAX_APPROVALS = 10
MAX_TIMEOUT_S = 6 * 60 * 60
OPS = (">", ">=", "<", "<=", "==", "!=")
ROLLBACK_PHASE = "rollback"
NO_PHASES = "no phases: add [[phases]] tables with [[phases.steps]]"
NO_STEPS = "has no steps"
PARAM_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("maintenance", "mode"): ("on", "off"),
    ("traffic", "action"): ("open", "close"),
    ("rollback.data", "strategy"): ("restore", "downgrade"),
}
"""Light validation of the few params whose values the shipped kinds switch on."""

Loc = tuple[str | int, ...]

_GATE = {
    "approvals": f"approvals must be a whole number from 1 to {MAX_APPROVALS}, got {{got}}",
    "groups": "groups must be a list of group names, got {got}",
    "gated": "'gated' must be true or false, got {got}",
}
_STRING = "'{key}' must be a string"

# Per table, per key (or ``key.error_type``): the line for pydantic's own shape errors.
# ``{got}`` is the value as written; validators raise their own text instead.
MESSAGES: dict[str, dict[str, str]] = {
    "top": {"phases": NO_PHASES},
    "runbook": {".missing": "missing 'name'", "name": "missing 'name'",
                "version": "'version' must be a string, got {got}"},
    "phase": {"id": "missing 'id'", "steps.missing": NO_STEPS,
              "steps": "'steps' must be an array of tables ([[phases.steps]])"},
    "step": {
        "id": "missing 'id'", "title": "missing 'title'", "kind": "missing 'kind'",
        "params": "'params' must be a table, got {got}",
        "timeout": f"bad timeout {{got}}: must be whole seconds, more than 0 and at most "
                   f"{MAX_TIMEOUT_S} (6 h)",
        "requires": "'requires' must be a list of step ids, got {got}",
        "gated": _GATE["gated"],
        "gate": "'gate' must be a table like { approvals = 1 }, got {got}",
        "args": "'args' must be a list of argument names, got {got}",
        "command": "'command' must be a non-empty string, got {got}",
        "idempotent": "'idempotent' must be true or false, got {got}",
        "deadline": f"bad deadline {{got}}: must be a duration like \"20m\", \"1h\" or \"90s\", "
                    f"more than 0 and at most {MAX_TIMEOUT_S // 3600} h",
    },
    "gate": _GATE,
    "rollback": {**_GATE, "triggers": "'triggers' must be a list of tables",
                 "steps.missing": NO_STEPS,
                 "steps": "'steps' must be an array of tables ([[rollback.steps]])"},
    "trigger": {
        "id": "missing 'id'", "metric": "needs 'metric' (or 'manual = true')",
        "op": f"'op' must be one of {' '.join(OPS)}, got {{got}}",
        "threshold": "'threshold' must be a number, got {got}",
        "manual": "'manual' must be true or false, got {got}",
    },
}


def typo_hint(key: str, allowed: Iterable[str]) -> str:
    """`` (did you mean 'requires'?)`` when ``key`` is close to an allowed name, else ``""``."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class RunbookError(ValueError):
    """The runbook is invalid; ``problems`` has one human-readable line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


# ------------------------------------------------------------------- field types and checks


def _configured(info: ValidationInfo, key: str) -> frozenset[str] | None:
    value = (info.context or {}).get(key)
    return None if value is None else frozenset(value)


def known_kind(kind: str, info: ValidationInfo) -> str:
    """A step kind must be registered (``known_kinds`` in the validation context)."""
    known = _configured(info, "known_kinds")
    if known is not None and kind not in known:
        names = ", ".join(sorted(known)) or "(none registered)"
        raise ValueError(f"unknown kind {kind!r}{typo_hint(kind, known)}; known kinds: {names}")
    return kind


def _known_groups(groups: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    known = _configured(info, "approver_groups")
    if known is not None and (unknown := [g for g in groups if g not in known]):
        names = ", ".join(sorted(known)) or "(none configured)"
        raise ValueError("\n".join(f"unknown approver group {g!r}{typo_hint(g, known)}"
                                   f"; configured groups: {names}" for g in unknown))
    return groups


def _param_choices(params: Mapping[str, Any], info: ValidationInfo) -> Mapping[str, Any]:
    kind = info.data.get("kind")
    bad = [f"params.{name} must be one of {', '.join(choices)}, got {params[name]!r}"
           for (k, name), choices in PARAM_CHOICES.items()
           if k == kind and name in params and params[name] not in choices]
    if bad:
        raise ValueError("\n".join(bad))
    return params


def _no_repeats(ids: tuple[str, ...]) -> tuple[str, ...]:
    if repeated := sorted({r for r in ids if ids.count(r) > 1}):
        raise ValueError("\n".join(f"requires {r!r} more than once" for r in repeated))
    return ids


def not_rollback(phase_id: str) -> str:
    """A phase may not be called ``rollback``: that is the plan's own phase."""
    if phase_id == ROLLBACK_PHASE:
        raise ValueError("'rollback' is reserved for the [rollback] plan")
    return phase_id


def not_empty(message: str) -> BeforeValidator:
    """``[]`` is a problem of its own (``min_length`` would also fire when every item fails)."""

    def check(value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError(message)
        return value

    return BeforeValidator(check)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return tuple(_freeze(v) for v in value) if isinstance(value, list | tuple) else value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: Any) -> Any:
    """``"20m"``, ``"1h30m"``, ``"90s"`` -> whole seconds; anything else is left for the type
    check to refuse (a bare number is refused too: minutes or seconds would be a guess)."""
    if isinstance(value, str) and value.strip() and (m := _DURATION.match(value.strip())):
        h, mi, s = (int(x or 0) for x in m.groups())
        return h * 3600 + mi * 60 + s
    if isinstance(value, int) and not isinstance(value, bool):
        return "not a duration"  # a number without a unit
    return value


NonBlank = Annotated[str, StringConstraints(pattern=r"\S")]
ArgName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]\w*$")]
Seconds = Annotated[int, Strict(), Field(gt=0, le=MAX_TIMEOUT_S)]
Duration = Annotated[int, BeforeValidator(parse_duration), Strict(), Field(gt=0, le=MAX_TIMEOUT_S)]
"""A written duration (``"20m"``) as whole seconds; dumps as seconds."""
Approvals = Annotated[int, Strict(), Field(ge=1, le=MAX_APPROVALS)]
Groups = Annotated[tuple[str, ...], AfterValidator(_known_groups)]
StepIds = Annotated[tuple[NonBlank, ...], AfterValidator(_no_repeats)]
NumberAsText = Annotated[str, BeforeValidator(
    lambda x: str(x) if isinstance(x, int) and not isinstance(x, bool) else x)]
# A step's params: deeply read-only once loaded (dumps as plain JSON), and the few values the
# shipped kinds switch on are checked (needs ``kind`` validated first).
Params = Annotated[Mapping[str, Any], AfterValidator(_freeze), AfterValidator(_param_choices),
                   PlainSerializer(_plain)]


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tables(value: Any) -> list[tuple[int, dict[str, Any]]]:
    items = value if isinstance(value, list) else []
    return [(i, t) for i, t in enumerate(items) if isinstance(t, dict)]


def _at(items: Any, i: str | int) -> dict[str, Any]:
    ok = isinstance(items, list) and isinstance(i, int) and 0 <= i < len(items)
    return _table(items[i]) if ok else {}


def _ident(table: Mapping[str, Any]) -> str | None:
    value = table.get("id")
    return value if isinstance(value, str) and value.strip() else None


# ------------------------------------------------------------------- checks across tables


def cross_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Duplicate ids, requirements that are missing or cross plans, and dependency cycles.

    Reads the raw document, so a step with a bad field still takes part.
    """
    plan = _table(data.get("rollback"))
    phases = _tables(data.get("phases"))
    out: list[tuple[Loc, str]] = []
    tables: Sequence[tuple[Loc, Any]]
    loc: Loc
    for what, tables in (("phase", [(("phases", i), p) for i, p in phases]),
                         ("trigger", [(("rollback", "triggers", i), t)
                                      for i, t in _tables(plan.get("triggers"))])):
        seen: set[str | None] = {None}
        for loc, t in tables:
            if (tid := _ident(t)) in seen and tid is not None:
                out.append((loc, f"duplicate {what} id"))
            seen.add(tid)
    steps: list[tuple[Loc, Any, str]] = [
        (("phases", i, "steps", j), s, _ident(p) or f"#{i + 1}")
        for i, p in phases for j, s in _tables(p.get("steps"))]
    steps += [(("rollback", "steps", j), s, ROLLBACK_PHASE) for j, s in _tables(plan.get("steps"))]
    first: dict[str, tuple[Loc, str, list[str]]] = {}
    for loc, s, phase in steps:
        if (sid := _ident(s)) is None:
            continue
        if sid in first:
            out.append((loc, (f"duplicate id (phase {phase!r}; first defined in phase "
                              f"{first[sid][1]!r})")))
        else:
            raw = s.get("requires")
            first[sid] = (loc, phase, [r for r in raw if isinstance(r, str)]
                          if isinstance(raw, list) else [])
    for loc, phase, requires in first.values():
        for r in dict.fromkeys(requires):
            out.extend((loc, text) for text in _requirement(r, phase, first))
    graph = {sid: [r for r in reqs if r in first] for sid, (_, _, reqs) in first.items()}
    for cycle in _cycles(graph):
        out.append((first[cycle[0]][0], f"dependency cycle: {' -> '.join([*cycle, cycle[0]])}"))
    return out


def _requirement(r: str, phase: str, steps: Mapping[str, tuple[Loc, str, list[str]]]
                 ) -> list[str]:
    if r not in steps:
        return [f"requires {r!r}, which is not a step in this runbook{typo_hint(r, steps)}"]
    other = steps[r][1]
    if phase == ROLLBACK_PHASE and other != ROLLBACK_PHASE:
        return [(f"rollback step requires {r!r}, a step of phase {other!r}; rollback steps "
                 "may only require rollback steps")]
    if phase != ROLLBACK_PHASE and other == ROLLBACK_PHASE:
        return [(f"requires rollback step {r!r}; cutover steps may not depend on the "
                 "rollback plan")]
    return []


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Cycles of ``requires`` edges, each starting at its smallest id.

    ``graphlib`` reports one cycle at a time: drop one of its edges and ask again until the
    graph sorts, so every knot is named at least once.
    """
    found: list[list[str]] = []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
            return found
        except graphlib.CycleError as e:
            # graphlib lists each node before the one that requires it: reverse it.
            cycle = list(reversed(e.args[1][1:]))
            start = cycle.index(min(cycle))
            cycle = cycle[start:] + cycle[:start]
            found.append(cycle)
            graph[cycle[0]] = [r for r in graph[cycle[0]] if r != cycle[1 % len(cycle)]]


# ------------------------------------------------------------------- pydantic errors -> lines


def locate(loc: Loc, data: Mapping[str, Any]) -> tuple[str, str, dict[str, Any], Loc]:
    """Where an error is: its name in messages, the kind of table that holds it (a key of
    :data:`MESSAGES`), that table as written, and the rest of the location inside it."""
    if not loc or loc[0] not in ("runbook", "phases", "rollback") or loc == ("phases",):
        return "top level", "top", dict(data), loc
    if loc[0] == "runbook":
        return "[runbook]", "runbook", _table(data.get("runbook")), loc[1:]
    if loc[0] == "phases":
        phase = _at(data.get("phases"), loc[1])
        pid = _ident(phase)
        if loc[2:3] == ("steps",) and len(loc) > 3:
            return _locate_step(_at(phase.get("steps"), loc[3]), loc[3], pid, loc[4:])
        return (f"phase {pid!r}" if pid else f"phase #{int(loc[1]) + 1}"), "phase", phase, loc[2:]
    plan = _table(data.get("rollback"))
    if loc[1:2] == ("steps",) and len(loc) > 2:
        return _locate_step(_at(plan.get("steps"), loc[2]), loc[2], ROLLBACK_PHASE, loc[3:])
    if loc[1:2] == ("triggers",) and len(loc) > 2:
        trigger = _at(plan.get("triggers"), loc[2])
        tid = _ident(trigger)
        where = f"rollback trigger {tid!r}" if tid else f"rollback trigger #{int(loc[2]) + 1}"
        return where, "trigger", trigger, loc[3:]
    return "[rollback]", "rollback", plan, loc[1:]


def _locate_step(step: dict[str, Any], j: str | int, phase: str | None, rest: Loc
                 ) -> tuple[str, str, dict[str, Any], Loc]:
    sid = _ident(step)
    where = f"step {sid!r}" if sid else f"step #{int(j) + 1} of phase {phase!r}"
    if rest[:1] == ("gate",) and len(rest) > 1:
        return f"{where} gate", "gate", _table(step.get("gate")), rest[1:]
    return where, "step", step, rest


def explain(error: Mapping[str, Any], table_kind: str, table: Mapping[str, Any], rest: Loc,
            keys: Iterable[str]) -> list[str]:
    """The lines for one pydantic error; ``keys`` are the keys the table allows."""
    kind, key = error["type"], str(rest[0]) if rest else ""
    if kind == "value_error":
        return str(error["ctx"]["error"]).splitlines()
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        keys = list(keys)
        return [f"unknown key {key!r}{typo_hint(key, keys)}; allowed: {', '.join(keys)}"]
    messages = MESSAGES[table_kind]
    template = messages.get(f"{key}.{kind}") or messages.get(key)
    if template:
        return [template.replace("{got}", repr(table.get(key)))]
    if kind == "missing":
        return [f"missing {key!r}"]
    if kind == "string_type":
        return [_STRING.format(key=key)]
    return [f"'{key}': {error['msg']}" if key else "must be a table"]


def problem_lines(err: ValidationError, data: Mapping[str, Any], source: str,
                  keys: Mapping[str, Iterable[str]]) -> list[str]:
    """Every problem in ``err`` as ``"<source>: <where>: <what>"``, each once, in order."""
    lines: dict[str, None] = {}
    for error in err.errors(include_url=False):
        where, table_kind, table, rest = locate(error["loc"], data)
        for text in explain(error, table_kind, table, rest, keys[table_kind]):
            lines.setdefault(f"{source}: {where}: {text}", None)
    return list(lines)
