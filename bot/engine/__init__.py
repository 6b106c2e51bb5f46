"""The cutover engine: a persisted state machine per run, and the worker that runs steps.

Every side effect sits behind a committed state transition:
  request -> (awaiting_approval -> approved) -> queued -> running -> succeeded | failed
One class composed of one module per reason to change: ``requests`` (commands and clicks ->
transitions), ``recovery`` (Retry and Mark done of interrupted steps), ``worker`` (claim,
execute, reap), ``cards`` (what the channel sees); ``core`` holds the shared state and helpers.
"""

from bot.engine.cards import Cards
from bot.engine.core import ACTIVE_STATES, ROLLBACK, Actor, Deps, EngineCore, Refused
from bot.engine.recovery import Recovery
from bot.engine.worker import Worker

__all__ = ["ACTIVE_STATES", "ROLLBACK", "Actor", "Deps", "Engine", "Refused"]


class Engine(Recovery, Worker, Cards, EngineCore):
    """The engine of one bot process (see the module docstring)."""
