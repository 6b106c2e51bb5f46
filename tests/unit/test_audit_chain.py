"""bot/audit.py: the hash chain detects edits, deletions, reordering; exports verify offline."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.audit import (
    GENESIS,
    AuditRow,
    export_lines,
    from_jsonl,
    make_row,
    row_hash,
    to_jsonl,
    verify_chain,
    verify_export,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def chain(spec: list[int | None]) -> list[AuditRow]:
    """One row per entry of ``spec`` (its run_id), ids 1.., one second apart."""
    rows: list[AuditRow] = []
    prev = GENESIS
    for i, run in enumerate(spec, 1):
        row = make_row(
            prev, id=i, at=T0 + timedelta(seconds=i), run_id=run, actor=f"U{i}",
            channel="C1", action="step.start" if i % 2 else "approval.approve",
            detail={"step": f"s{i}", "args": {"tag": "v2.3.1"}, "n": i}, outcome="ok",
        )
        rows.append(row)
        prev = row.hash
    return rows


def rehash(row: AuditRow, prev_hash: str | None = None) -> AuditRow:
    """What an attacker with DB access would do: fix up the row's own hash."""
    prev_hash = row.prev_hash if prev_hash is None else prev_hash
    return replace(row, prev_hash=prev_hash, hash=row_hash(
        prev_hash, id=row.id, at=row.at, run_id=row.run_id, actor=row.actor,
        channel=row.channel, action=row.action, detail=row.detail, outcome=row.outcome))


def assert_flags(problems: list[str], *needles: str) -> None:
    assert any(all(n in p for n in needles) for p in problems), (
        f"expected a problem mentioning {needles}, got {problems}")


def test_clean_chain_verifies():
    rows = chain([1, 1, None, 2, 1])
    assert rows[0].prev_hash == GENESIS
    assert verify_chain(rows) == [], "an untouched chain must verify"
    assert verify_chain(rows, head=rows[-1].hash) == []
    assert verify_chain(rows[2:], prev_hash=rows[1].hash, first_id=3) == [], "segment check"


def test_hash_is_timezone_and_key_order_independent():
    at_utc = T0
    at_other = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    h1 = row_hash(GENESIS, id=1, at=at_utc, run_id=1, actor="U", channel=None, action="a",
                  detail={"a": 1, "b": [1, {"c": 2, "d": 3}]}, outcome="ok")
    h2 = row_hash(GENESIS, id=1, at=at_other, run_id=1, actor="U", channel=None, action="a",
                  detail={"b": [1, {"d": 3, "c": 2}], "a": 1}, outcome="ok")
    assert h1 == h2, "same instant in another zone / other key order must hash the same"
    h3 = row_hash(GENESIS, id=1, at=at_utc + timedelta(microseconds=1), run_id=1, actor="U",
                  channel=None, action="a", detail={"a": 1, "b": [1, {"c": 2, "d": 3}]},
                  outcome="ok")
    assert h3 != h1, "microseconds are part of the hash"
    with pytest.raises(ValueError, match="timezone-aware"):
        row_hash(GENESIS, id=1, at=datetime(2024, 1, 1), run_id=1, actor="U", channel=None,
                 action="a", detail={}, outcome="ok")


@pytest.mark.parametrize("field, value", [
    ("actor", "UEVIL"), ("outcome", "failed"), ("detail", {"step": "s3"}), ("run_id", 9),
    ("at", T0), ("channel", "C2"), ("action", "noop"),
])
def test_edited_field_detected(field, value):
    rows = chain([1, 1, 1, 1])
    rows[2] = replace(rows[2], **{field: value})
    problems = verify_chain(rows)
    assert_flags(problems, "row 3", "hash does not match its content")


def test_edited_and_rehashed_row_breaks_the_next_link():
    rows = chain([1, 1, 1, 1])
    rows[1] = rehash(replace(rows[1], outcome="failed"))
    problems = verify_chain(rows)
    assert_flags(problems, "row 3", "prev_hash does not match the hash of row 2")


def test_deleted_middle_row_detected():
    rows = chain([1, 1, 1, 1, 1])
    del rows[2]
    problems = verify_chain(rows)
    assert_flags(problems, "row 4", "id gap after row 2", "row 3 missing")
    assert_flags(problems, "row 4", "prev_hash does not match the hash of row 2")


def test_deleted_rows_at_start_and_end():
    rows = chain([1, 1, 1, 1])
    assert_flags(verify_chain(rows[1:]), "row 2", "chain starts at id 2")
    truncated = verify_chain(rows[:-1], head=rows[-1].hash)
    assert_flags(truncated, "row 3", "not the expected head")
    assert verify_chain(rows[:-1]) == [], "truncation is only visible against a head"


def test_reordered_rows_detected():
    rows = chain([1, 1, 1, 1, 1])
    rows[2], rows[3] = rows[3], rows[2]
    problems = verify_chain(rows)
    assert_flags(problems, "row 3", "comes after row 4")
    assert_flags(problems, "row 4", "prev_hash does not match the hash of row 2")


def test_swapped_contents_keeping_ids_detected():
    rows = chain([1, 1, 1, 1])
    a, b = rows[1], rows[2]
    rows[1] = replace(b, id=a.id)
    rows[2] = replace(a, id=b.id)
    problems = verify_chain(rows)
    assert_flags(problems, "row 2", "hash does not match")
    assert_flags(problems, "row 3", "hash does not match")


def test_inserted_row_detected():
    rows = chain([1, 1, 1])
    fake = make_row(rows[0].hash, id=2, at=T0, run_id=1, actor="UEVIL", channel="C1",
                    action="approval.approve", detail={}, outcome="ok")
    rows = [rows[0], fake, *[replace(r, id=r.id + 1) for r in rows[1:]]]
    problems = verify_chain(rows)
    assert problems, "an inserted row must break the chain"
    assert_flags(problems, "row 3", "hash does not match")


def test_jsonl_round_trip_verifies_offline():
    rows = chain([1, None, 2, 1])
    text = to_jsonl(rows)
    assert text.count("\n") == 4 and text.endswith("\n")
    back = from_jsonl(text)
    assert back == rows, "JSONL must round-trip every field exactly"
    assert verify_chain(back) == []
    assert all(r.at.tzinfo is not None for r in back)


def test_jsonl_tampering_detected():
    lines = to_jsonl(chain([1, 1, 1])).splitlines()
    d = json.loads(lines[1])
    d["detail"]["args"]["tag"] = "v6.6.6"
    lines[1] = json.dumps(d)
    assert_flags(verify_chain(from_jsonl("\n".join(lines))), "row 2", "hash does not match")
    with pytest.raises(ValueError, match="line 2"):
        from_jsonl(lines[0] + "\n{not json\n")


# ------------------------------------------------------------------------------ run export

MIXED = [1, 2, 1, 2, 2, 1, 3]  # run 1 owns rows 1, 3, 6


def test_export_of_a_run_verifies_and_hides_other_runs():
    rows = chain([2] + MIXED)  # row 1 belongs to run 2; run 1 starts at row 2
    lines = export_lines(rows, 1)
    header = json.loads(lines[0])
    assert header["first_id"] == 2 and header["head_id"] == len(rows), header
    assert header["rows"] == 3 and header["links"] == 4, header
    assert verify_export(lines) == [], "a fresh export must verify"
    assert verify_export("\n".join(lines), head_hash=rows[-1].hash) == []
    others = [json.loads(ln) for ln in lines[1:] if json.loads(ln)["run_id"] != 1]
    assert all(o["type"] == "link" and "actor" not in o and "detail" not in o
               for o in others), "other runs' content must not be exported"
    assert [r.id for r in from_jsonl("\n".join(lines))] == [2, 4, 7]


def test_export_from_genesis():
    rows = chain([2] + MIXED)
    lines = export_lines(rows, 1, from_genesis=True)
    assert json.loads(lines[1])["id"] == 1
    assert verify_export(lines) == []


def _edit(lines: list[str], index: int, **changes) -> list[str]:
    d = json.loads(lines[index])
    d.update(changes)
    out = list(lines)
    out[index] = json.dumps(d)
    return out


def test_tampered_export_row_detected():
    lines = export_lines(chain(MIXED), 1)
    bad = _edit(lines, 3, outcome="failed")  # line 4 = row 3 of run 1
    assert_flags(verify_export(bad), "line 4 (row 3)", "hash does not match its content")


def test_dropped_run_row_from_export_detected():
    lines = export_lines(chain(MIXED), 1)
    dropped = lines[:3] + lines[4:]  # drop row 3 (run 1)
    assert_flags(verify_export(dropped), "row 4", "id gap after row 2")


def test_run_row_disguised_as_link_detected():
    rows = chain(MIXED)
    lines = export_lines(rows, 1)
    r3 = rows[2]
    # Replace the full row 3 by a link that claims it belongs to run 2: hash no longer matches.
    link = {"type": "link", "id": 3, "run_id": 2, "prev_hash": r3.prev_hash,
            "body_digest": "0" * 64, "hash": r3.hash}
    disguised = lines[:3] + [json.dumps(link)] + lines[4:]
    assert_flags(verify_export(disguised), "row 3", "link hash does not match")
    # Or as a link of run 1: the row's content is missing.
    link["run_id"] = 1
    elided = lines[:3] + [json.dumps(link)] + lines[4:]
    assert_flags(verify_export(elided), "row 3", "elided")


def test_truncated_export_detected():
    rows = chain(MIXED)
    lines = export_lines(rows, 1)
    assert_flags(verify_export(lines[:-2]), "export ends here")
    assert_flags(verify_export(lines, head_hash="f" * 64), "expected chain head")


def test_export_without_header_or_rows():
    lines = export_lines(chain(MIXED), 1)
    assert_flags(verify_export(lines[1:]), "missing the audit-export header")
    assert verify_export("") == ["export is empty"]
    with pytest.raises(ValueError, match="no audit rows for run 9"):
        export_lines(chain(MIXED), 9)


def test_row_hash_canonical_form_is_pinned():
    """Stored hashes depend on this exact form; changing it breaks every existing chain."""
    import hashlib

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    body = sha('{"action":"deploy","actor":"U1","at":"2024-05-01T12:00:00.123456+00:00",'
               '"channel":null,"detail":{"tag":"v1"},"outcome":"ok"}')
    expected = sha('{"body":"' + body + '","id":1,"prev_hash":"' + GENESIS + '","run_id":7,'
                   '"v":1}')
    got = row_hash(GENESIS, id=1, at=T0, run_id=7, actor="U1", channel=None, action="deploy",
                   detail={"tag": "v1"}, outcome="ok")
    assert got == expected, "row_hash canonical form drifted"
