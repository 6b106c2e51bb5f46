"""The hash-chained audit log: hashing, verification, export. Pure (the store does the I/O).

Every audit row commits to the previous row's hash, so one chain runs through the whole log
(all runs, in id order)::

    body_digest = sha256(canonical_json({at, actor, channel, action, detail, outcome}))
    hash        = sha256(canonical_json({v: 1, id, run_id, prev_hash, body: body_digest}))

The two levels are deliberate: a row of *another* run can be exported as a "link"
(``id, run_id, prev_hash, body_digest, hash``) whose hash still verifies without revealing its
content, and ``run_id`` is bound into the hash so a row cannot be relabelled to another run.

Canonical JSON: ``sort_keys``, ``separators=(",", ":")``, ``ensure_ascii``, no NaN; mappings
and lists recursively; ``at`` as UTC ISO-8601 with microseconds
(``2024-05-01T12:00:00.000000+00:00``), which is exactly what ``timestamptz`` stores, so a row
read back from PostgreSQL hashes identically. ``detail`` should hold strings, integers, bools,
None, lists and objects; floats work but must survive the JSONB round trip unchanged.

What :func:`verify_chain` proves (rows from the database, in id order): no row was edited
(its hash is recomputed from its content), and none was deleted, inserted or reordered
between the first and the last row given (ids are consecutive and each ``prev_hash`` is the
previous row's hash). Removing rows *at the end*, or rewriting the whole chain, is only
detectable against an independently kept head hash (``head=``), e.g. the head the bot posts
to the channel when a run ends.

Export of one run (:func:`export_lines` / :func:`verify_export`): the export is the segment of
the global chain from the run's first row (or from row 1 with ``from_genesis=True``) to the
chain head at export time. The run's rows are full; every other run's row in between is a
link (no content). Offline, :func:`verify_export` proves:

* every exported row of the run is exactly what was hashed into the chain (untampered);
* the lines form one unbroken segment of the chain (consecutive ids, prev_hash links), so no
  row of the run inside the segment was dropped, added or reordered; a dropped row cannot be
  hidden as a link because links of the run are reported, and a link's run_id is hashed;
* the segment ends at the head hash written in the export; passing ``head_hash=`` (from an
  independent record) makes that binding, otherwise it only proves self-consistency.

It does *not* prove, unless ``from_genesis=True``, that the run has no row before the first
exported one (the export starts where the database says the run starts); nor anything about
rows written after the export. Link digests hide content but are not salted: low-entropy
content of other runs could be guessed and confirmed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.canonical import canonical_json as _canonical_json
from bot.canonical import plain, sha256_hex

__all__ = [
    "EXPORT_FORMAT",
    "GENESIS",
    "AuditFormatError",
    "AuditRow",
    "body_digest",
    "canonical_json",
    "export_lines",
    "format_at",
    "from_jsonl",
    "make_row",
    "row_hash",
    "to_jsonl",
    "verify_chain",
    "verify_export",
]

GENESIS = "0" * 64
EXPORT_FORMAT = 1
_HASH_VERSION = 1


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
    return _canonical_json(value, "audit detail")


_sha256 = sha256_hex


def format_at(at: datetime) -> str:
    """UTC ISO-8601 with microseconds; naive datetimes are refused (ambiguous)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"audit timestamps must be timezone-aware, got {at!r}")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def body_digest(
    *, at: datetime, actor: str, channel: str | None, action: str,
    detail: Mapping[str, Any], outcome: str,
) -> str:
    return _sha256(canonical_json({
        "at": format_at(at), "actor": actor, "channel": channel, "action": action,
        "detail": detail, "outcome": outcome,
    }))


def _link_hash(prev_hash: str, *, id: int, run_id: int | None, digest: str) -> str:
    return _sha256(canonical_json({
        "v": _HASH_VERSION, "id": id, "run_id": run_id, "prev_hash": prev_hash, "body": digest,
    }))


def row_hash(
    prev_hash: str, *, id: int, at: datetime, run_id: int | None, actor: str,
    channel: str | None, action: str, detail: Mapping[str, Any], outcome: str,
) -> str:
    """The hash a row with this content must carry, given the previous row's hash."""
    digest = body_digest(
        at=at, actor=actor, channel=channel, action=action, detail=detail, outcome=outcome
    )
    return _link_hash(prev_hash, id=id, run_id=run_id, digest=digest)


def _content_hash(row: AuditRow) -> str:
    return row_hash(
        row.prev_hash, id=row.id, at=row.at, run_id=row.run_id, actor=row.actor,
        channel=row.channel, action=row.action, detail=row.detail, outcome=row.outcome,
    )


def make_row(
    prev_hash: str, *, id: int, at: datetime, run_id: int | None, actor: str,
    channel: str | None, action: str, detail: Mapping[str, Any], outcome: str,
) -> AuditRow:
    """A new row chained after ``prev_hash`` (``GENESIS`` for the first row)."""
    return AuditRow(
        id=id, at=at, run_id=run_id, actor=actor, channel=channel, action=action,
        detail=detail, outcome=outcome, prev_hash=prev_hash,
        hash=row_hash(
            prev_hash, id=id, at=at, run_id=run_id, actor=actor, channel=channel,
            action=action, detail=detail, outcome=outcome,
        ),
    )


# --------------------------------------------------------------------------------- verify


def _link_problems(prev: tuple[int, str] | None, cur_id: int, cur_prev: str, label: str):
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


def verify_chain(
    rows: Iterable[AuditRow],
    *,
    prev_hash: str | None = GENESIS,
    first_id: int | None = 1,
    head: str | None = None,
) -> list[str]:
    """Problems in the chain (empty list = intact). Rows in the order read (``ORDER BY id``).

    Defaults check a chain from its very first row. To check a segment, pass the hash of the
    row before it as ``prev_hash`` and its id + 1 as ``first_id`` (or None to skip either
    check). ``head`` is an independently kept hash of the last row, to catch truncation.
    """
    problems: list[str] = []
    prev: tuple[int, str] | None = None
    for row in rows:
        label = f"row {row.id}"
        try:
            expected = _content_hash(row)
        except (TypeError, ValueError) as e:
            problems.append(f"{label}: cannot be hashed: {e}")
            expected = None
        if expected is not None and expected != row.hash:
            problems.append(f"{label}: hash does not match its content (row edited)")
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
        problems += _link_problems(prev, row.id, row.prev_hash, label)
        prev = (row.id, row.hash)
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


def _row_from_dict(d: Mapping[str, Any], where: str) -> AuditRow:
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
        rows.append(_row_from_dict(d, f"line {n}"))
    return rows


# --------------------------------------------------------------------------------- export


def export_lines(
    rows: Iterable[AuditRow], run_id: int, *, from_genesis: bool = False
) -> list[str]:
    """Export run ``run_id`` as JSON lines that verify offline (see the module docstring).

    ``rows`` is the chain in id order up to the current head, starting at or before the run's
    first row (``from_genesis=True``: starting at row 1), e.g.
    ``SELECT ... WHERE id >= (SELECT min(id) FROM audit WHERE run_id = %s) ORDER BY id``.
    Line 1 is a header; then one line per row of the segment: the run's rows in full, other
    rows as links. Raises ValueError if the run has no row.
    """
    rows = list(rows)
    first = next((i for i, r in enumerate(rows) if r.run_id == run_id), None)
    if first is None:
        raise ValueError(f"no audit rows for run {run_id}")
    if from_genesis:
        if rows[0].id != 1:
            raise ValueError("from_genesis=True needs the chain from row 1")
        first = 0
    span = rows[first:]
    body = []
    full = 0
    for r in span:
        if r.run_id == run_id:
            full += 1
            body.append(canonical_json({"type": "row", **r.as_dict()}))
        else:
            body.append(canonical_json({
                "type": "link", "id": r.id, "run_id": r.run_id, "prev_hash": r.prev_hash,
                "body_digest": body_digest(
                    at=r.at, actor=r.actor, channel=r.channel, action=r.action,
                    detail=r.detail, outcome=r.outcome,
                ),
                "hash": r.hash,
            }))
    header = canonical_json({
        "type": "audit-export", "format": EXPORT_FORMAT, "run_id": run_id,
        "from_genesis": from_genesis, "first_id": span[0].id, "head_id": span[-1].id,
        "head_hash": span[-1].hash, "rows": full, "links": len(span) - full,
    })
    return [header, *body]


def verify_export(lines: str | Iterable[str], *, head_hash: str | None = None) -> list[str]:
    """Problems in an export from :func:`export_lines` (empty list = verified).

    ``lines`` is the export text or its lines. ``head_hash``, if given, is the chain head from
    an independent record; the export must end exactly there.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    numbered = [(n, ln) for n, ln in enumerate(lines, 1) if ln.strip()]
    if not numbered:
        return ["export is empty"]
    problems: list[str] = []
    docs: list[tuple[int, dict[str, Any]]] = []
    for n, line in numbered:
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {n}: not JSON: {e}")
            continue
        if not isinstance(d, dict):
            problems.append(f"line {n}: not a JSON object")
            continue
        docs.append((n, d))
    if not docs or docs[0][1].get("type") != "audit-export":
        return problems + ["line 1: missing the audit-export header"]
    _, header = docs[0]
    if header.get("format") != EXPORT_FORMAT:
        problems.append(f"line 1: unsupported export format {header.get('format')!r}")
        return problems
    run = header.get("run_id")
    from_genesis = bool(header.get("from_genesis"))

    prev: tuple[int, str] | None = None
    n_rows = n_links = 0
    first_seen = False
    for n, d in docs[1:]:
        kind = d.get("type")
        try:
            rid = d["id"]
            label = f"line {n} (row {rid})"
            if kind == "row":
                row = _row_from_dict(d, label)
                n_rows += 1
                entry_run, entry_prev, entry_hash = row.run_id, row.prev_hash, row.hash
                if _content_hash(row) != row.hash:
                    problems.append(f"{label}: hash does not match its content (row edited)")
            elif kind == "link":
                n_links += 1
                entry_run, entry_prev, entry_hash = d["run_id"], d["prev_hash"], d["hash"]
                computed = _link_hash(
                    entry_prev, id=rid, run_id=entry_run, digest=d["body_digest"]
                )
                if computed != entry_hash:
                    problems.append(
                        f"{label}: link hash does not match (id, run or digest altered)"
                    )
                if entry_run == run:
                    problems.append(
                        f"{label}: a row of run {run} is elided; its content is missing"
                    )
            else:
                problems.append(f"line {n}: unknown line type {kind!r}")
                continue
        except KeyError as e:
            problems.append(f"line {n}: missing field {e.args[0]!r}")
            continue
        except (TypeError, ValueError) as e:
            problems.append(f"line {n}: {e}")
            continue
        if not first_seen:
            first_seen = True
            if rid != header.get("first_id"):
                problems.append(f"{label}: export should start at row {header.get('first_id')}")
            if from_genesis:
                if rid != 1 or entry_prev != GENESIS:
                    problems.append(f"{label}: export from genesis must start at row 1")
            elif kind != "row" or entry_run != run:
                problems.append(f"{label}: export must start with the first row of run {run}")
        problems += _link_problems(prev, rid, entry_prev, label)
        prev = (rid, entry_hash)

    if prev is None:
        problems.append(f"export has no rows for run {run}")
        return problems
    if (prev[0], prev[1]) != (header.get("head_id"), header.get("head_hash")):
        problems.append(
            f"row {prev[0]}: export ends here, but its header names head row "
            f"{header.get('head_id')} (rows removed from the end?)"
        )
    if head_hash is not None and prev[1] != head_hash:
        problems.append(
            f"row {prev[0]}: export does not end at the expected chain head {head_hash[:12]}…"
        )
    if (n_rows, n_links) != (header.get("rows"), header.get("links")):
        problems.append(
            f"export has {n_rows} rows and {n_links} links, header says "
            f"{header.get('rows')} and {header.get('links')}"
        )
    if n_rows == 0:
        problems.append(f"export has no rows for run {run}")
    return problems
