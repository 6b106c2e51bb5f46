"""Logging that never prints a secret: every record is masked when it is created.

Masking at record creation (a log record factory) rather than in one handler's filter covers
every logger and every handler: uvicorn's loggers do not propagate to the root handler and
bring their own handlers, and a filter on the root handler never sees their records.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from runbook.adapters.redact import mask

_PLAIN = (int, float, bool, type(None))


class MaskingRecordFactory:
    """A LogRecord factory whose records carry no known secret, URL password or Slack token."""

    def __init__(self, secrets: Mapping[str, str] | None = None,
                 base: Callable[..., logging.LogRecord] | None = None):
        self.secrets = dict(secrets or {})
        self.base = base or logging.LogRecord

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.base(*args, **kwargs)
        mask_record(record, self.secrets)
        return record


def mask_record(record: logging.LogRecord, secrets: Mapping[str, str]) -> None:
    """Mask ``record`` in place; keep its ``args`` when they hold no secret, because some
    formatters (uvicorn's access log) read them."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record: keep what it says, masked
        message, record.args = f"{record.msg!s} {record.args!r}", None
    if record.args and mask(message, secrets) != message:
        record.msg = mask(str(record.msg), secrets)
        record.args = _masked_args(record.args, secrets)
        try:
            leaked = mask(record.getMessage(), secrets) != record.getMessage()
        except Exception:  # noqa: BLE001 - masking broke the format string
            leaked = True
        if leaked:  # a secret split across arguments: give up the args, keep the text masked
            record.msg, record.args = mask(message, secrets), None
    elif not record.args:
        record.msg = mask(message, secrets)
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = mask("".join(traceback.format_exception(*record.exc_info)).rstrip(),
                               secrets)
        record.exc_info = None
    if record.stack_info:
        record.stack_info = mask(record.stack_info, secrets)


def _masked_args(args: Any, secrets: Mapping[str, str]) -> Any:
    if isinstance(args, Mapping):
        return {k: _masked_arg(v, secrets) for k, v in args.items()}
    return tuple(_masked_arg(a, secrets) for a in args)


def _masked_arg(value: Any, secrets: Mapping[str, str]) -> Any:
    if isinstance(value, _PLAIN):
        return value
    text = str(value)
    masked = mask(text, secrets)
    return value if masked == text else masked


class MaskingFilter(logging.Filter):
    """Mask a record that was created before ``configure`` installed the factory."""

    def __init__(self, secrets: Mapping[str, str] | None = None):
        super().__init__()
        self.secrets = dict(secrets or {})

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record, self.secrets)
        return True


def configure(level: str = "INFO", secrets: Mapping[str, str] | None = None) -> None:
    """Root handler to stderr at ``level``; every record of every logger masked."""
    current = logging.getLogRecordFactory()
    base = current.base if isinstance(current, MaskingRecordFactory) else current
    logging.setLogRecordFactory(MaskingRecordFactory(secrets, base))
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # alembic narrates every plugin it loads at INFO; the bot only reads its revision.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
