"""What `/golive status` and the run's summary show, read from a run's rows: the run's view
(which steps can run, which are next, the run's outcome). Pure: no I/O, no Block Kit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook.model import Runbook, Step


@dataclass
class RunView:
    run: Mapping[str, Any]
    runbook: Runbook
    executions: list[Mapping[str, Any]]
    approvals: list[Mapping[str, Any]]
    votes: Mapping[int, list[Mapping[str, Any]]]
    available: Mapping[str, bool] = field(default_factory=dict)
    preflight: Mapping[str, Any] | None = None
    """The run's stored preflight (bot/engine/preflight.py ``PreflightGate.summary``)."""

    def latest(self) -> dict[str, Mapping[str, Any]]:
        out: dict[str, Mapping[str, Any]] = {}
        for e in self.executions:
            if e["step_id"] not in out or e["attempt"] > out[e["step_id"]]["attempt"]:
                out[e["step_id"]] = e
        return out

    def state_of(self, step: Step) -> str:
        exe = self.latest().get(step.id)
        if exe:
            return exe["state"]
        return "pending" if self.available.get(step.kind, False) else "not_available"

    def approval_of(self, exe: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The approval ``exe`` was requested under (its gate's request), if any."""
        return next((a for a in self.approvals if a["id"] == exe.get("approval_id")), None)

    def approved_by(self, exe: Mapping[str, Any]) -> list[str]:
        """Who approved ``exe``'s approval (user ids, in the order they voted); [] without."""
        return [v["user_id"] for v in self.votes.get(exe.get("approval_id") or -1, [])
                if v["vote"] == "approve"]

    def states(self) -> dict[str, str]:
        return {k: v["state"] for k, v in self.latest().items()}

    def runnable(self) -> list[Step]:
        """Cutover steps that can run and are not manual: what makes the cutover done."""
        return [s for s in self.runbook.cutover_steps()
                if self.state_of(s) != "not_available" and not s.params.get("manual")]

    def passed_over(self, *, started: bool = False) -> dict[str, Mapping[str, Any]]:
        """Cutover steps not done that the run went past (a step requiring them was asked for,
        with ``--override``; with ``started``, only once that step has started): step id ->
        that later step's latest execution."""
        latest, out = self.latest(), dict[str, Mapping[str, Any]]()
        waiting = ("cancelled", "awaiting_approval", "queued") if started else ("cancelled",)
        for step in self.runbook.cutover_steps():
            exe = latest.get(step.id)
            if not exe or exe["state"] in waiting:
                continue
            todo, seen = list(step.requires), set()
            while todo:  # everything this step required, directly or through another step
                req = todo.pop()
                if req in seen:
                    continue
                seen.add(req)
                if (latest.get(req) or {}).get("state") not in ("succeeded", "skipped"):
                    out.setdefault(req, exe)
                todo += list(self.runbook.step(req).requires)
        return out

    def rollback_state(self) -> str | None:
        """The rollback's state: None (none asked for), "done" (the whole plan ran),
        "in_progress" or "stopped" (a step failed, was interrupted or cancelled)."""
        states = [self.states().get(s.id) for s in self.runbook.rollback]
        if not any(states):
            return None
        if all(x in ("succeeded", "skipped") for x in states):
            return "done"
        if any(x in ("failed", "interrupted", "cancelled") for x in states):
            return "stopped"
        return "in_progress"

    def stack_left(self) -> dict[str, Any]:
        """What this run left on the stack, from its succeeded steps: ``maintenance`` (the last
        switch flipped put the maintenance page on) and ``release`` (the tag its deploy put in
        place and no rollback reverted; None when none)."""
        steps = {s.id: s for s in self.runbook.all_steps()}
        done = sorted((e for e in self.latest().values() if e["state"] == "succeeded"
                       and e["step_id"] in steps),
                      key=lambda e: (str(e.get("finished_at") or ""), e["id"]))
        maintenance, release = False, None
        for exe in done:
            step = steps[exe["step_id"]]
            params = {**dict(step.params), **dict(exe.get("params") or {})}
            if step.kind == "maintenance":
                maintenance = str(params.get("mode", "on")) == "on"
            elif step.kind == "traffic":
                maintenance = str(params.get("action", "open")) != "open"
            elif step.kind == "deploy":
                release = (self.run.get("facts") or {}).get("deployed_tag") or "the new release"
            elif step.kind == "rollback.revert_deploy":
                release = None
        return {"maintenance": maintenance, "release": release}

    def next_steps(self) -> list[Step]:
        """Runnable steps whose requirements are met and that nobody has asked for yet (a
        step the run went past with an override is not "next"; after a rollback nothing is)."""
        if self.rollback_state() is not None:
            return []
        runnable, passed = self.runnable(), self.passed_over()
        return [s for s in self.runbook.next_steps(self.states()) if s in runnable
                and s.id not in passed
                and self.state_of(s) not in ("running", "queued", "awaiting_approval")]

    def phase_title(self) -> str:
        """The first phase with a runnable step not done (nor passed over by a step that has
        started: an override still awaiting its approval has not moved the run on), or "done"."""
        runnable, states, passed = self.runnable(), self.states(), self.passed_over(started=True)
        return next((p.title for p in self.runbook.phases
                     if any(s in runnable and s.id not in passed
                            and states.get(s.id) not in ("succeeded", "skipped")
                            for s in p.steps)), "done")

    def cutover_done(self) -> bool:
        return self.phase_title() == "done"

    def phase_done(self, phase_id: str) -> bool:
        """Whether every runnable step of phase ``phase_id`` succeeded (or was skipped)."""
        runnable, states = self.runnable(), self.states()
        return any(p.id == phase_id and all(
            states.get(s.id) in ("succeeded", "skipped") for s in p.steps if s in runnable)
            for p in self.runbook.phases)

    def not_run(self) -> list[Step]:
        """Runnable cutover steps that did not succeed (or get skipped)."""
        states = self.states()
        return [s for s in self.runnable() if states.get(s.id) not in ("succeeded", "skipped")]

    def outcome(self) -> str:
        """The run's outcome as of now: completed only when every runnable step is done."""
        if self.run["status"] not in ("active", "completed"):
            return str(self.run["status"])
        rollback = [self.states().get(s.id) for s in self.runbook.rollback]
        if "succeeded" in rollback:  # rolled back only when the whole plan ran
            done = all(x in ("succeeded", "skipped") for x in rollback)
            return "rolled_back" if done else "incomplete"
        return "incomplete" if self.not_run() else "completed"
