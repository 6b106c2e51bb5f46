"""The keyed, hash-chained audit log: hashing, verification, export. Pure (the store does I/O).

Every audit row commits to the previous row's hash, so one chain runs through the whole log
(all runs, in id order). Both levels are HMAC-SHA256 under the audit key (``GOLIVE_AUDIT_KEY``),
which lives outside the database: someone who can write the database but does not hold the key
cannot recompute a hash, so an edited, inserted or reordered row never verifies::

    body_digest = hmac(key, canonical_json({at, actor, channel, action, detail, outcome}))
    hash        = hmac(key, canonical_json({v: 2, id, run_id, prev_hash, body: body_digest}))

The two levels are deliberate: a row of *another* run can be exported as a "link"
(``id, run_id, prev_hash, body_digest, hash``) whose hash still verifies without revealing its
content, and ``run_id`` is bound into the hash so a row cannot be relabelled to another run.
The key is named by :func:`key_id` (exports and verify output carry the id, never the key).

Canonical JSON: ``sort_keys``, ``separators=(",", ":")``, ``ensure_ascii``, no NaN; ``at`` as
UTC ISO-8601 with microseconds, exactly what ``timestamptz`` stores, so a row read back from
PostgreSQL hashes identically. Text PostgreSQL cannot store (NUL, lone surrogates) is stored
and hashed in its escaped form (:func:`storable`).

Rows written before the key existed (v1: plain SHA-256, same layout) are accepted only as a
prefix of the log that a keyed row vouches for (its HMAC covers the last v1 row's hash); a log
that is all v1, or has a v1 row after a keyed one, fails: that is what a keyless rewrite looks
like.

What :func:`verify_chain` proves (rows in id order): no row was edited, inserted, deleted or
reordered between the first and the last row given. Removing rows *at the end* (or every row)
is only detectable against a head kept elsewhere: ``head=`` here, or the anchors of
:mod:`bot.audit.anchor`.

Export of one run (:func:`export_lines` / :func:`verify_export`): the segment of the chain
from the run's first row (or row 1 with ``from_genesis=True``) to the head at export time; the
run's rows in full, every other row as a link. With the key, :func:`verify_export` proves the
run's rows are exactly what was chained, that none inside the segment was dropped, added or
reordered, and (with ``head_hash=`` from an independent record) that the segment ends there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runbook.rules.canonical import canonical_json as _canonical_json
from runbook.rules.canonical import plain, sha256_hex

__all__ = [
    "EXPORT_FORMAT",
    "GENESIS",
    "HASH_VERSION",
    "AuditFormatError",
    "AuditRow",
    "body_digest",
    "canonical_json",
    "format_at",
    "from_jsonl",
    "key_id",
    "make_row",
    "row_hash",
    "storable",
    "to_jsonl",
    "verify_chain",
]

GENESIS = "0" * 64
EXPORT_FORMAT = 2
HASH_VERSION = 2
LEGACY_VERSION = 1


class AuditFormatError(ValueError):
    """A JSONL line that is not an audit row (message names the line)."""


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    run_id: int | None
    actor: str
    channel: str | None
    action: str
    detail: Mapping[str, Any] = field(hash=False)
    outcome: str
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``at`` canonical ISO string)."""
        return {
            "id": self.id,
            "at": format_at(self.at),
            "run_id": self.run_id,
            "actor": self.actor,
            "channel": self.channel,
            "action": self.action,
            "detail": _plain(self.detail),
            "outcome": self.outcome,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


# --------------------------------------------------------------------------------- hashing


def _plain(value: Any) -> Any:
    return plain(value, "audit detail")


def canonical_json(value: Any) -> str:
    """The audit's canonical JSON (see the module docstring)."""
    return _canonical_json(value, "audit detail")


def key_id(key: bytes) -> str:
    """A short public name for the audit key (first 8 hex of its SHA-256); never the key."""
    return hashlib.sha256(key).hexdigest()[:8]


def _mac(key: bytes | None, text: str) -> str:
    # key None = the legacy (v1) unkeyed form; only ever used to recognise old rows.
    if key is None:
        return sha256_hex(text)
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` with what PostgreSQL text/jsonb cannot hold (NUL, lone surrogates) replaced by
    its escaped form (``\\u0000``), in strings and keys, recursively."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    if isinstance(value, Mapping):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def format_at(at: datetime) -> str:
    """UTC ISO-8601 with microseconds; naive datetimes are refused (ambiguous)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"audit timestamps must be timezone-aware, got {at!r}")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _body_digest(key: bytes | None, *, at: datetime, actor: str, channel: str | None,
                 action: str, detail: Mapping[str, Any], outcome: str) -> str:
    return _mac(key, canonical_json({
        "at": format_at(at), "actor": actor, "channel": channel, "action": action,
        "detail": detail, "outcome": outcome,
    }))


def body_digest(
    *, key: bytes, at: datetime, actor: str, channel: str | None, action: str,
    detail: Mapping[str, Any], outcome: str,
) -> str:
    """The keyed digest of a row's content (what a link line shows instead of the content)."""
    return _body_digest(key, at=at, actor=actor, channel=channel, action=action, detail=detail,
                        outcome=outcome)


def link_hash(key: bytes | None, prev_hash: str, *, id: int, run_id: int | None,
               digest: str) -> str:
    v = HASH_VERSION if key is not None else LEGACY_VERSION
    return _mac(key, canonical_json({
        "v": v, "id": id, "run_id": run_id, "prev_hash": prev_hash, "body": digest,
    }))


def row_hash(
    prev_hash: str, *, key: bytes, id: int, at: datetime, run_id: int | None, actor: str,
    channel: str | None, action: str, detail: Mapping[str, Any], outcome: str,
) -> str:
    """The hash a row with this content must carry, given the previous row's hash."""
    digest = body_digest(key=key, at=at, actor=actor, channel=channel, action=action,
                         detail=detail, outcome=outcome)
    return link_hash(key, prev_hash, id=id, run_id=run_id, digest=digest)


def versioned_digest(row: AuditRow, key: bytes) -> tuple[int | None, str]:
    """(hash version the row verifies under or None, its body digest under that version)."""
    for k, version in ((key, HASH_VERSION), (None, LEGACY_VERSION)):
        digest = _body_digest(k, at=row.at, actor=row.actor, channel=row.channel,
                              action=row.action, detail=row.detail, outcome=row.outcome)
        if link_hash(k, row.prev_hash, id=row.id, run_id=row.run_id, digest=digest) == row.hash:
            return version, digest
    return None, _body_digest(key, at=row.at, actor=row.actor, channel=row.channel,
                              action=row.action, detail=row.detail, outcome=row.outcome)


def make_row(
    prev_hash: str, *, key: bytes, id: int, at: datetime, run_id: int | None, actor: str,
    channel: str | None, action: str, detail: Mapping[str, Any], outcome: str,
) -> AuditRow:
    """A new row chained after ``prev_hash`` (``GENESIS`` for the first row)."""
    return AuditRow(
        id=id, at=at, run_id=run_id, actor=actor, channel=channel, action=action,
        detail=detail, outcome=outcome, prev_hash=prev_hash,
        hash=row_hash(prev_hash, key=key, id=id, at=at, run_id=run_id, actor=actor,
                      channel=channel, action=action, detail=detail, outcome=outcome),
    )


# --------------------------------------------------------------------------------- verify


def link_problems(prev: tuple[int, str] | None, cur_id: int, cur_prev: str, label: str):
    """Continuity problems between the previous (id, hash) and the current entry."""
    if prev is None:
        return []
    prev_id, prev_hash = prev
    out = []
    if cur_id <= prev_id:
        out.append(f"{label}: comes after row {prev_id} (rows out of order or duplicated)")
    elif cur_id != prev_id + 1:
        missing = (
            f"row {prev_id + 1}" if cur_id == prev_id + 2 else f"rows {prev_id + 1}..{cur_id - 1}"
        )
        out.append(f"{label}: id gap after row {prev_id}, {missing} missing (deleted?)")
    if cur_prev != prev_hash:
        out.append(
            f"{label}: prev_hash does not match the hash of row {prev_id} "
            "(a row was deleted, inserted or reordered before it)"
        )
    return out


class Legacy:
    """Tracks v1 (unkeyed) rows: allowed only as a prefix that a keyed row follows."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.keyed_seen = False
        self.problems: list[str] = []

    def see(self, rid: int, version: int | None, label: str) -> None:
        if version == LEGACY_VERSION:
            if self.keyed_seen:
                self.problems.append(f"{label}: hashed without the audit key after keyed rows "
                                     "(rewritten by someone without the key)")
            else:
                self.first = rid if self.first is None else self.first
                self.last = rid
        elif version == HASH_VERSION:
            self.keyed_seen = True

    def finish(self) -> list[str]:
        if self.first is not None and not self.keyed_seen:
            self.problems.append(
                f"rows {self.first}..{self.last} are hashed without the audit key and no keyed "
                "row follows them (a keyless rewrite, or a log not written since the upgrade)")
        return self.problems


def verify_chain(
    rows: Iterable[AuditRow],
    *,
    key: bytes,
    prev_hash: str | None = GENESIS,
    first_id: int | None = 1,
    head: str | None = None,
) -> list[str]:
    """Problems in the chain under ``key`` (empty list = intact). Rows in id order.

    Defaults check a chain from its very first row. To check a segment, pass the hash of the
    row before it as ``prev_hash`` and its id + 1 as ``first_id`` (or None to skip either
    check). ``head`` is an independently kept hash of the last row, to catch truncation.
    """
    problems: list[str] = []
    legacy = Legacy()
    prev: tuple[int, str] | None = None
    for row in rows:
        label = f"row {row.id}"
        try:
            version, _ = versioned_digest(row, key)
            if version is None:
                problems.append(f"{label}: hash does not match its content under key "
                                f"{key_id(key)} (row edited, or a different key)")
            legacy.see(row.id, version, label)
        except (TypeError, ValueError) as e:
            problems.append(f"{label}: cannot be hashed: {e}")
        if prev is None:
            if first_id is not None and row.id != first_id:
                problems.append(
                    f"{label}: chain starts at id {row.id}, expected {first_id} "
                    "(rows deleted at the start?)"
                )
            if prev_hash is not None and row.prev_hash != prev_hash:
                what = "GENESIS" if prev_hash == GENESIS else f"{prev_hash[:12]}…"
                problems.append(
                    f"{label}: prev_hash should be {what} for the first row "
                    "(rows deleted or inserted at the start?)"
                )
        problems += link_problems(prev, row.id, row.prev_hash, label)
        prev = (row.id, row.hash)
    problems += legacy.finish()
    if head is not None:
        if prev is None:
            problems.append("chain is empty but a head hash was expected (all rows deleted?)")
        elif prev[1] != head:
            problems.append(
                f"row {prev[0]}: last row's hash is not the expected head {head[:12]}… "
                "(rows removed from the end, or the chain was rewritten)"
            )
    return problems


# --------------------------------------------------------------------------------- JSONL


def row_from_dict(d: Mapping[str, Any], where: str) -> AuditRow:
    try:
        at = datetime.fromisoformat(d["at"])
        detail = d["detail"]
        if not isinstance(detail, Mapping):
            raise AuditFormatError("detail must be an object")
        row = AuditRow(
            id=d["id"], at=at, run_id=d["run_id"], actor=d["actor"], channel=d["channel"],
            action=d["action"], detail=detail, outcome=d["outcome"],
            prev_hash=d["prev_hash"], hash=d["hash"],
        )
    except KeyError as e:
        raise AuditFormatError(f"{where}: missing field {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise AuditFormatError(f"{where}: {e}") from None
    if not isinstance(row.id, int) or isinstance(row.id, bool):
        raise AuditFormatError(f"{where}: id must be an integer")
    return row


def to_jsonl(rows: Iterable[AuditRow]) -> str:
    """One JSON object per line (``as_dict`` plus ``"type": "row"``), newline-terminated."""
    return "".join(canonical_json({"type": "row", **row.as_dict()}) + "\n" for row in rows)


def from_jsonl(text: str) -> list[AuditRow]:
    """Rows from :func:`to_jsonl` (or the full rows of an export: its header and link lines are
    skipped). Blank lines are ignored; a malformed line raises ValueError naming its number."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise AuditFormatError(f"line {n}: not JSON: {e}") from None
        if not isinstance(d, dict):
            raise AuditFormatError(f"line {n}: not a JSON object")
        if d.get("type", "row") != "row":
            continue
        rows.append(row_from_dict(d, f"line {n}"))
    return rows

