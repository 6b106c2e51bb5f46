"""The audit log: its hash chain (``chain``), canonical JSON (``canonical``), the offline export
and its check (``export``), anchors (``anchor``), evidence packs (``pack``) and ``golive audit``
(``cli``). ``from bot import audit`` gives the chain's API and the export in one namespace;
``export`` imports ``chain``, never the other way round."""

from bot.audit.chain import (
    EXPORT_FORMAT,
    GENESIS,
    HASH_VERSION,
    AuditFormatError,
    AuditRow,
    body_digest,
    canonical_json,
    format_at,
    from_jsonl,
    key_id,
    make_row,
    row_hash,
    storable,
    to_jsonl,
    verify_chain,
)
from bot.audit.export import export_lines, verify_export

__all__ = [
    "EXPORT_FORMAT", "GENESIS", "HASH_VERSION", "AuditFormatError", "AuditRow", "body_digest",
    "canonical_json", "export_lines", "format_at", "from_jsonl", "key_id", "make_row",
    "row_hash", "storable", "to_jsonl", "verify_chain", "verify_export",
]
