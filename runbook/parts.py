"""The parts of a runbook as pydantic models: a step and its gate, a phase, a rollback trigger,
the rollback plan, the ``[runbook]`` table; and the defaults a step gets (its ``timeout``).

Pure: pydantic only. ``runbook.model.Runbook`` puts them together and checks across them.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic.dataclasses import dataclass

from runbook import validation as val
from runbook.validation import ROLLBACK_PHASE

DEFAULT_TIMEOUTS: Mapping[str, int] = MappingProxyType({
    "check.release_freeze": 120, "check.prod_config": 120, "check.backup_drill": 1800,
    "check.migration_dry_run": 1200, "check.rc_evidence": 120, "maintenance": 120,
    "deploy": 900, "migrate": 1800, "health": 300, "smoke": 600, "traffic": 120,
    "canary": 1800, "watch.ledger": 1800, "watch.webhooks": 1800, "watch.error_budget": 1800,
    "rollback.revert_deploy": 900, "rollback.data": 3600, "rollback.verify_readonly": 300,
})
"""Default ``timeout`` per kind. Kinds not listed fall back by prefix, then to 600 s."""

NOT_IDEMPOTENT_KINDS: frozenset[str] = frozenset({"migrate", "canary", "rollback.data"})
"""Kinds whose second run is not the first run again, so Retry is not offered by default:
``migrate`` (a non-transactional migration may be half applied), ``canary`` (real money moves
again), ``rollback.data`` (a restore or downgrade over a half-done one). Every other shipped
kind is idempotent by default: maintenance and traffic set a switch to a value, deploy rolls
out the same image again, health/smoke/checks/watches only read. A kind the bot does not ship
(a team's own) is not idempotent unless its step says ``idempotent = true``: Retry is offered
only where the runbook says a second run is safe."""

_IDEMPOTENT_PREFIXES = ("check.", "watch.")
_SHIPPED_IDEMPOTENT = frozenset({"maintenance", "deploy", "health", "smoke", "traffic",
                                 "rollback.revert_deploy", "rollback.verify_readonly"})


def default_idempotent(kind: str) -> bool:
    """Whether a step of ``kind`` may be retried when the runbook does not say (see
    :data:`NOT_IDEMPOTENT_KINDS`)."""
    if kind in NOT_IDEMPOTENT_KINDS:
        return False
    return kind in _SHIPPED_IDEMPOTENT or kind.startswith(_IDEMPOTENT_PREFIXES)


_PREFIX_TIMEOUTS = {"check.": 300, "watch.": 1800, "rollback.": 900}
DEFAULT_TIMEOUT_S = 600

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
            "==": operator.eq, "!=": operator.ne}
_GATE_CONFLICT = "sets a gate (approvals/groups) but 'gated = false'; remove one"


def default_timeout(kind: str) -> int:
    """The ``timeout`` a step of ``kind`` gets when the runbook does not set one."""
    if kind in DEFAULT_TIMEOUTS:
        return DEFAULT_TIMEOUTS[kind]
    return next((s for p, s in _PREFIX_TIMEOUTS.items() if kind.startswith(p)), DEFAULT_TIMEOUT_S)


def normalize_command(command: str) -> str:
    """``"  Maintenance   ON "`` -> ``"maintenance on"``."""
    return " ".join(command.lower().split())


class _Model(BaseModel):
    # Frozen: a loaded runbook never changes; forbid: a typo'd key is a reported problem.
    model_config = ConfigDict(extra="forbid", frozen=True)


# A dataclass, not a model: callers build gates positionally (``Gate(2, ("sre",))``), and a
# model's custom ``__init__`` would drop the validation context (the configured groups).
@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Gate:
    approvals: val.Approvals = 1
    """Distinct approvers needed, the requester never counts."""
    groups: val.Groups = ()
    """Approver group names from the bot config; empty = any configured approver."""


class Step(_Model):
    id: val.NonBlank
    title: val.NonBlank
    kind: Annotated[val.NonBlank, AfterValidator(val.known_kind)]
    params: val.Params = Field(default_factory=lambda: MappingProxyType({}))
    timeout_s: val.Seconds = Field(alias="timeout")
    requires: val.StepIds = ()
    gated_key: bool | None = Field(None, alias="gated", strict=True)
    gate_table: Gate | None = Field(None, alias="gate")
    args: tuple[val.ArgName, ...] = ()
    command: Annotated[val.NonBlank, AfterValidator(normalize_command)] | None = None
    description: str = ""
    idempotent_key: bool | None = Field(None, alias="idempotent", strict=True)
    deadline_s: val.Duration | None = Field(None, alias="deadline")
    """Approval / decision deadline in seconds (``deadline = "20m"``); None: the config's."""
    _phase: str = PrivateAttr("")

    @model_validator(mode="before")
    @classmethod
    def _default_timeout(cls, data: Any) -> Any:
        if isinstance(data, dict) and "timeout" not in data:
            kind = data.get("kind")
            return {**data, "timeout": default_timeout(kind if isinstance(kind, str) else "")}
        return data

    @model_validator(mode="after")
    def _gate_or_not(self) -> Step:
        if self.gated_key is False and self.gate_table is not None:
            raise ValueError(_GATE_CONFLICT)
        return self

    @property
    def phase(self) -> str:
        """The phase id (``rollback`` for the rollback plan)."""
        return self._phase

    @property
    def gate(self) -> Gate | None:
        """The approval rule: ``gated = true`` alone means one approver, a gate table implies it."""
        if self.gated_key is False:
            return None
        return self.gate_table or (Gate() if self.gated_key else None)

    @property
    def gated(self) -> bool:
        return self.gate is not None

    @property
    def idempotent(self) -> bool:
        """Whether running it again is safe (Retry): the runbook's word, else the kind's."""
        if self.idempotent_key is not None:
            return self.idempotent_key
        return default_idempotent(self.kind)

    @property
    def manual(self) -> bool:
        """``params.manual = true``: run only on demand, never next, never by the autopilot."""
        return bool(self.params.get("manual"))

    def __hash__(self) -> int:  # params are a mapping: hash what identifies the step
        return hash((self.id, self.kind, self._phase))


class _TitledById(_Model):
    @model_validator(mode="before")
    @classmethod
    def _title_defaults_to_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "title" not in data:
            return {**data, "title": data["id"] if isinstance(data.get("id"), str) else ""}
        return data


class Phase(_TitledById):
    id: Annotated[val.NonBlank, AfterValidator(val.not_rollback)]
    title: str
    steps: Annotated[tuple[Step, ...], val.not_empty(val.NO_STEPS)]

    def model_post_init(self, context: Any, /) -> None:
        for s in self.steps:
            s._phase = self.id


class Trigger(_TitledById):
    """A rollback trigger. Metric triggers compare a watched metric; manual ones are declared
    by a human (``/golive rollback`` with the trigger id)."""

    id: val.NonBlank
    title: str
    metric: val.NonBlank | None = None
    op: Literal[">", ">=", "<", "<=", "==", "!="] | None = None
    threshold: float | None = Field(None, strict=True)
    manual: bool = Field(False, strict=True)

    @model_validator(mode="after")
    def _metric_or_manual(self) -> Trigger:
        rule = {"metric": self.metric, "op": self.op, "threshold": self.threshold}
        if self.manual and any(x is not None for x in rule.values()):
            raise ValueError("a manual trigger has no metric, op or threshold")
        if not self.manual and None in rule.values():
            raise ValueError("\n".join(val.MESSAGES["trigger"][k].replace("{got}", "None")
                                       for k, x in rule.items() if x is None))
        return self

    def fired(self, metrics: Mapping[str, float]) -> bool | None:
        """True/False for a metric trigger whose metric is present; None if it cannot say
        (manual trigger, or the metric was not measured)."""
        if (self.manual or self.op is None or self.threshold is None or self.metric is None
                or metrics.get(self.metric) is None):
            return None
        return bool(_COMPARE[self.op](metrics[self.metric], self.threshold))


class _Meta(_Model):
    name: val.NonBlank
    version: val.NumberAsText = ""
    description: str = ""


class _RollbackPlan(_Model):
    title: str = "Rollback"
    gated: bool = Field(True, strict=True)
    approvals: val.Approvals = 1
    groups: val.Groups = ()
    triggers: tuple[Trigger, ...] = ()
    steps: Annotated[tuple[Step, ...], val.not_empty(val.NO_STEPS)]

    @model_validator(mode="after")
    def _gate_or_not(self) -> _RollbackPlan:
        if not self.gated and self.model_fields_set & {"approvals", "groups"}:
            raise ValueError(_GATE_CONFLICT)
        return self

    def model_post_init(self, context: Any, /) -> None:
        for s in self.steps:
            s._phase = ROLLBACK_PHASE
