"""Every action, callback and block id the bot uses, in one place (never string literals)."""

from enum import StrEnum


class Action(StrEnum):
    APPROVE = "golive.approve"
    REJECT = "golive.reject"
    CANCEL = "golive.cancel"
    RETRY = "golive.retry"
    MARK_DONE = "golive.mark_done"
    START_ROLLBACK = "golive.start_rollback"
    ALERT_ROLLBACK = "golive.alert_rollback"
    """Start rollback on a watch's rollback-trigger or security-incident alert."""
    CANARY_DEPOSIT = "golive.canary_deposit"
    CANARY_WITHDRAWAL = "golive.canary_withdrawal"
    CANARY_EVIDENCE = "golive.canary_evidence"
    CANARY_SIGN = "golive.canary_sign"
    CANARY_REJECT = "golive.canary_reject"
    CANARY_ROLLBACK = "golive.canary_rollback"
    DECISION_TAKE = "golive.decision_take"
    DECISION_RETRY = "golive.decision_retry"
    DECISION_SKIP = "golive.decision_skip"
    DECISION_SKIP_APPROVE = "golive.decision_skip_approve"
    DECISION_ROLLBACK = "golive.decision_rollback"
    DECISION_HOLD = "golive.decision_hold"
    DECISION_ABORT = "golive.decision_abort"


class Callback(StrEnum):
    REJECT_REASON = "golive.reject_reason"
    MARK_DONE_REASON = "golive.mark_done_reason"
    CANARY_REPORT = "golive.canary_report"
    CANARY_SIGN = "golive.canary_sign"
    CANARY_REJECT = "golive.canary_reject"
    DECISION_SKIP = "golive.decision_skip_reason"
    DECISION_ABORT = "golive.decision_abort_confirm"


class Block(StrEnum):
    REASON = "golive.reason"
    REASON_INPUT = "golive.reason_input"
    HEADER = "golive.header"
    ACTIONS = "golive.actions"
    CANARY_REFERENCE = "golive.canary_reference"
    CANARY_REFERENCE_INPUT = "golive.canary_reference_input"
    CANARY_AMOUNT = "golive.canary_amount"
    CANARY_AMOUNT_INPUT = "golive.canary_amount_input"
    CANARY_NOTE = "golive.canary_note"
    CANARY_NOTE_INPUT = "golive.canary_note_input"
    DECISION = "golive.decision"
    DECISION_TAG = "golive.decision_tag"
    DECISION_TAG_INPUT = "golive.decision_tag_input"
