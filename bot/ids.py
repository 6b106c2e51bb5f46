"""Every action, callback and block id the bot uses, in one place (never string literals)."""

from enum import StrEnum


class Action(StrEnum):
    APPROVE = "golive.approve"
    REJECT = "golive.reject"
    CANCEL = "golive.cancel"
    RETRY = "golive.retry"
    MARK_DONE = "golive.mark_done"
    START_ROLLBACK = "golive.start_rollback"


class Callback(StrEnum):
    REJECT_REASON = "golive.reject_reason"
    MARK_DONE_REASON = "golive.mark_done_reason"


class Block(StrEnum):
    REASON = "golive.reason"
    REASON_INPUT = "golive.reason_input"
    HEADER = "golive.header"
    ACTIONS = "golive.actions"
