"""The runbook as data: ``cutover.toml`` as pydantic models, and questions about it.

Pure: tomllib and pydantic only; no I/O beyond reading the TOML file when given a path.
Validation reports *every* problem at once, one line each naming the file and the step (or
phase / trigger / table): typo'd keys are ``extra="forbid"`` errors, validators check kinds,
gates, groups and timeouts, and :class:`Runbook`'s validator checks across steps (ids,
requirements, cycles). The parts (steps, gates, phases, triggers, the rollback plan) are
``runbook.parts``; the field types, checks and wording live in ``runbook.validation``.

Step states are plain strings owned by the engine; this module only needs to know which of
them count as *done*: ``succeeded`` and ``skipped`` (:data:`DONE_STATES`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, cast

from pydantic import Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from runbook import validation as val
from runbook.parts import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_TIMEOUTS,
    Gate,
    Phase,
    Step,
    Trigger,
    _Meta,
    _Model,
    _RollbackPlan,
    default_timeout,
    normalize_command,
)
from runbook.validation import MAX_APPROVALS, MAX_TIMEOUT_S, RunbookError

__all__ = [
    "DEFAULT_TIMEOUTS", "DEFAULT_TIMEOUT_S", "DONE_STATES", "MAX_APPROVALS", "MAX_TIMEOUT_S",
    "Gate", "Phase", "Runbook", "RunbookError", "Step", "Trigger", "default_runbook_path",
    "default_timeout", "load_runbook", "normalize_command",
]

DONE_STATES: frozenset[str] = frozenset({"succeeded", "skipped"})
"""Step states that satisfy a ``requires`` entry."""

class Runbook(_Model):
    """A validated runbook: the phases in order, then the rollback plan."""

    meta: _Meta = Field(alias="runbook")
    phases: Annotated[tuple[Phase, ...], val.not_empty(val.NO_PHASES)]
    plan: _RollbackPlan = Field(
        default_factory=lambda: _RollbackPlan.model_construct(steps=()), alias="rollback")
    help: Mapping[str, val.NonBlank] = Field(default_factory=lambda: MappingProxyType({}))
    """``[help]``: subcommand word -> what ``/golive help`` says it does (optional)."""
    _source: str = PrivateAttr("")
    _version: str = PrivateAttr("")
    _ordered: tuple[Step, ...] = PrivateAttr(())
    _index: dict[str, int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _cross_checks(cls, data: Any, handler: Any) -> Runbook:
        """Checks across steps, on the raw document so they run even when a step is invalid."""
        found = [InitErrorDetails(type="value_error", loc=loc, input=None,
                                  ctx={"error": ValueError(text)})
                 for loc, text in (val.cross_problems(data) if isinstance(data, dict) else [])]
        try:
            runbook = handler(data)
        except ValidationError as e:
            # an error pydantic reported is re-raised as it was given (its ``msg`` is rebuilt)
            again = [cast(InitErrorDetails, d) for d in e.errors()]
            raise ValidationError.from_exception_data(cls.__name__, [*again, *found]) from None
        if found:
            raise ValidationError.from_exception_data(cls.__name__, found)
        return runbook

    @model_validator(mode="after")
    def _help_names_commands(self) -> Runbook:
        words = {s.command.split()[0] for s in self.all_steps() if s.command}
        unknown = sorted(set(self.help) - words)
        if unknown:
            raise ValueError(f"[help] names {', '.join(map(repr, unknown))}, which no step's "
                             f"command starts with; commands: {', '.join(sorted(words))}")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._ordered = tuple(s for p in self.phases for s in p.steps) + self.plan.steps
        self._index = {s.id: i for i, s in enumerate(self._ordered)}
        self._source = str((context or {}).get("source", ""))
        # Help text is no behaviour: editing it must not void approvals bound to the version.
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True, exclude={"help"}),
                               sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self._version = hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        """sha256 of the canonical content (not the file name): any edit but a comment or
        layout changes it, so approvals bound to it void when the runbook changes."""
        return self._version

    @property
    def declared_version(self) -> str:
        """The ``[runbook] version`` as written."""
        return self.meta.version

    @property
    def source(self) -> str:
        return self._source

    @property
    def rollback(self) -> tuple[Step, ...]:
        return self.plan.steps

    @property
    def rollback_gate(self) -> Gate | None:
        return Gate(self.plan.approvals, self.plan.groups) if self.plan.gated else None

    @property
    def triggers(self) -> tuple[Trigger, ...]:
        return self.plan.triggers

    def all_steps(self) -> tuple[Step, ...]:
        """Every step in runbook order; the rollback plan comes last."""
        return self._ordered

    def cutover_steps(self) -> tuple[Step, ...]:
        """Every step of the phases (not the rollback plan), in order."""
        return tuple(s for p in self.phases for s in p.steps)

    def step(self, step_id: str) -> Step:
        """The step with this id (KeyError if unknown)."""
        return self._ordered[self.order_index(step_id)]

    def phase(self, phase_id: str) -> Phase:
        """The phase with this id (KeyError if unknown)."""
        found = [p for p in self.phases if p.id == phase_id]
        if not found:
            raise KeyError(f"no phase {phase_id!r} in runbook {self.name!r}")
        return found[0]

    def order_index(self, step_id: str) -> int:
        """Position of the step in :meth:`all_steps` (KeyError if unknown)."""
        try:
            return self._index[step_id]
        except KeyError:
            raise KeyError(f"no step {step_id!r} in runbook {self.name!r}") from None

    def by_command(self, command: str) -> Step | None:
        """The first step (runbook order) triggered by ``command``; case/space-insensitive."""
        found = self.steps_for_command(command)
        return found[0] if found else None

    def steps_for_command(self, command: str) -> tuple[Step, ...]:
        """All steps triggered by ``command`` (``preflight`` has several), in order."""
        wanted = normalize_command(command)
        return tuple(s for s in self._ordered if s.command == wanted)

    def commands(self) -> tuple[str, ...]:
        """Distinct commands in runbook order."""
        return tuple(dict.fromkeys(s.command for s in self._ordered if s.command is not None))

    def trigger(self, trigger_id: str) -> Trigger:
        """The rollback trigger with this id (KeyError if unknown)."""
        found = [t for t in self.triggers if t.id == trigger_id]
        if not found:
            raise KeyError(f"no rollback trigger {trigger_id!r}")
        return found[0]

    def unmet_requirements(self, step_id: str, states: Mapping[str, str]) -> list[str]:
        """The step's ``requires`` (declared order) whose state is not succeeded/skipped."""
        return [r for r in self.step(step_id).requires if states.get(r) not in DONE_STATES]

    def next_steps(self, states: Mapping[str, str], *, rollback: bool = False) -> list[Step]:
        """Steps, in runbook order, that are not done and whose requirements are all met.

        Considers the cutover phases, or the rollback plan with ``rollback=True``. A step in
        progress or failed is "not done", so it is listed; the caller has its state.
        """
        plan = self.rollback if rollback else self.cutover_steps()
        return [s for s in plan
                if states.get(s.id) not in DONE_STATES and not self.unmet_requirements(s.id, states)]


# The file keys each kind of table allows, for "unknown key ...; allowed: ..." lines.
_TABLES: tuple[tuple[str, Any], ...] = (  # (kind, model class)
    ("top", Runbook), ("runbook", _Meta), ("phase", Phase), ("step", Step), ("gate", Gate),
    ("rollback", _RollbackPlan), ("trigger", Trigger))
_KEYS = {kind: [f.alias or name for name, f in model.__pydantic_fields__.items()]
         for kind, model in _TABLES}


def default_runbook_path() -> Path:
    """The ``cutover.toml`` shipped inside the package."""
    return Path(__file__).with_name("cutover.toml")


def _is_path(value: str | os.PathLike[str]) -> bool:
    if isinstance(value, os.PathLike):
        return True
    if "\n" in value or "=" in value or "[" in value:
        return False
    return value.endswith(".toml") or Path(value).is_file()


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
    context = {"known_kinds": known_kinds, "approver_groups": approver_groups, "source": name}
    try:
        return Runbook.model_validate(data, context=context)
    except ValidationError as e:
        raise RunbookError(val.problem_lines(e, data, name, _KEYS)) from None
