"""Logging that never prints a secret: every record passes through the masker."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from runbook.adapters.redact import mask


class MaskingFilter(logging.Filter):
    def __init__(self, secrets: Mapping[str, str] | None = None):
        super().__init__()
        self.secrets = dict(secrets or {})

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info),
                                   self.secrets)
            record.exc_info = None
        return True


def configure(level: str = "INFO", secrets: Mapping[str, str] | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # alembic narrates every plugin it loads at INFO; the bot only reads its revision.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
