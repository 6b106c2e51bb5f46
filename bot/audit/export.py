"""Export of one run's audit rows as JSON lines that verify offline with the key. Pure.

The export is the segment of the chain from the run's first row (or row 1 with
``from_genesis=True``) to the head at export time: the run's rows in full, every other row as
a link (``id, run_id, prev_hash, body_digest, hash``). See :mod:`bot.audit`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from bot.audit.chain import (
    EXPORT_FORMAT,
    GENESIS,
    HASH_VERSION,
    LEGACY_VERSION,
    AuditRow,
    Legacy,
    canonical_json,
    key_id,
    link_hash,
    link_problems,
    row_from_dict,
    versioned_digest,
)


def export_lines(
    rows: Iterable[AuditRow], run_id: int, *, key: bytes, from_genesis: bool = False
) -> list[str]:
    """Export run ``run_id`` as JSON lines that verify offline with the key.

    ``rows`` is the chain in id order up to the current head, starting at or before the run's
    first row (``from_genesis=True``: starting at row 1). Line 1 is a header (with the key id,
    never the key); then the run's rows in full, other rows as links. Raises ValueError if the
    run has no row.
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
                "body_digest": versioned_digest(r, key)[1], "hash": r.hash,
            }))
    header = canonical_json({
        "type": "audit-export", "format": EXPORT_FORMAT, "run_id": run_id,
        "key_id": key_id(key), "from_genesis": from_genesis, "first_id": span[0].id,
        "head_id": span[-1].id, "head_hash": span[-1].hash, "rows": full,
        "links": len(span) - full,
    })
    return [header, *body]


def _link_version(d: Mapping[str, Any], key: bytes) -> int | None:
    for k, version in ((key, HASH_VERSION), (None, LEGACY_VERSION)):
        if link_hash(k, d["prev_hash"], id=d["id"], run_id=d["run_id"],
                      digest=d["body_digest"]) == d["hash"]:
            return version
    return None


def _parse_lines(lines: str | Iterable[str]) -> tuple[list[str], list[tuple[int, dict]]]:
    if isinstance(lines, str):
        lines = lines.splitlines()
    problems: list[str] = []
    docs: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {n}: not JSON: {e}")
            continue
        if not isinstance(d, dict):
            problems.append(f"line {n}: not a JSON object")
            continue
        docs.append((n, d))
    return problems, docs


def verify_export(lines: str | Iterable[str], *, key: bytes,
                  head_hash: str | None = None) -> list[str]:
    """Problems in an export from :func:`export_lines` under ``key`` (empty list = verified).

    ``head_hash``, if given, is the chain head from an independent record; the export must end
    exactly there.
    """
    problems, docs = _parse_lines(lines)
    if not docs and not problems:
        return ["export is empty"]
    if not docs or docs[0][1].get("type") != "audit-export":
        return problems + ["line 1: missing the audit-export header"]
    _, header = docs[0]
    if header.get("format") != EXPORT_FORMAT:
        problems.append(f"line 1: unsupported export format {header.get('format')!r}")
        return problems
    if header.get("key_id") != key_id(key):
        problems.append(f"line 1: the export was chained under key {header.get('key_id')}, "
                        f"but GOLIVE_AUDIT_KEY is key {key_id(key)}")
        return problems
    run = header.get("run_id")
    from_genesis = bool(header.get("from_genesis"))

    legacy = Legacy()
    prev: tuple[int, str] | None = None
    n_rows = n_links = 0
    for n, d in docs[1:]:
        kind = d.get("type")
        try:
            rid = d["id"]
            label = f"line {n} (row {rid})"
            if kind == "row":
                row = row_from_dict(d, label)
                n_rows += 1
                entry_run, entry_prev, entry_hash = row.run_id, row.prev_hash, row.hash
                version, _ = versioned_digest(row, key)
                if version is None:
                    problems.append(f"{label}: hash does not match its content (row edited)")
            elif kind == "link":
                n_links += 1
                entry_run, entry_prev, entry_hash = d["run_id"], d["prev_hash"], d["hash"]
                version = _link_version(d, key)
                if version is None:
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
        legacy.see(rid, version, label)
        if prev is None:
            if rid != header.get("first_id"):
                problems.append(f"{label}: export should start at row {header.get('first_id')}")
            if from_genesis:
                if rid != 1 or entry_prev != GENESIS:
                    problems.append(f"{label}: export from genesis must start at row 1")
            elif kind != "row" or entry_run != run:
                problems.append(f"{label}: export must start with the first row of run {run}")
        problems += link_problems(prev, rid, entry_prev, label)
        prev = (rid, entry_hash)

    if prev is None:
        problems.append(f"export has no rows for run {run}")
        return problems
    problems += legacy.finish()
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
