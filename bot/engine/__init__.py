"""The cutover engine: a persisted state machine per run, and the worker that runs steps.

Every side effect sits behind a committed state transition:
  request -> (awaiting_approval -> approved) -> queued -> running -> succeeded | failed
Objects, each given its collaborators in its constructor, behind the ``Engine`` facade
(bot/engine/facade.py, which says who owns which state): runs, step requests, clicks,
approvals, rollbacks and their planner, recovery, the preflight gate, the claimer, the step
runner, the reaper, the worker loop and the cards; ``core`` holds what they are built with.
"""

from bot.engine.core import ACTIVE_STATES, ROLLBACK, Deps, Refused, Requester
from bot.engine.facade import Engine

__all__ = ["ACTIVE_STATES", "ROLLBACK", "Deps", "Engine", "Refused", "Requester"]
