"""bot/audit/chain.py: the keyed hash chain detects edits, deletions, reordering and keyless
rewrites; exports verify offline with the key; anchors catch truncation."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.audit import (
    GENESIS,
    AuditRow,
    export_lines,
    from_jsonl,
    key_id,
    make_row,
    row_hash,
    storable,
    to_jsonl,
    verify_chain,
    verify_export,
)
from bot.audit.anchor import (
    AnchorError,
    anchor_record,
    check_anchors,
    parse_anchors,
    short_anchor,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
KEY = b"unit-test-audit-key-0123456789abcdef"


def chain(spec: list[int | None]) -> list[AuditRow]:
    """One row per entry of ``spec`` (its run_id), ids 1.., one second apart."""
    rows: list[AuditRow] = []
    prev = GENESIS
    for i, run in enumerate(spec, 1):
        row = make_row(
            prev, key=KEY, id=i, at=T0 + timedelta(seconds=i), run_id=run, actor=f"U{i}",
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
        prev_hash, key=KEY, id=row.id, at=row.at, run_id=row.run_id, actor=row.actor,
        channel=row.channel, action=row.action, detail=row.detail, outcome=row.outcome))


def assert_flags(problems: list[str], *needles: str) -> None:
    assert any(all(n in p for n in needles) for p in problems), (
        f"expected a problem mentioning {needles}, got {problems}")


def test_clean_chain_verifies():
    rows = chain([1, 1, None, 2, 1])
    assert rows[0].prev_hash == GENESIS
    assert verify_chain(rows, key=KEY) == [], "an untouched chain must verify"
    assert verify_chain(rows, head=rows[-1].hash, key=KEY) == []
    assert verify_chain(rows[2:], prev_hash=rows[1].hash, first_id=3, key=KEY) == [], "segment check"


def test_hash_is_timezone_and_key_order_independent():
    at_utc = T0
    at_other = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    h1 = row_hash(GENESIS, key=KEY, id=1, at=at_utc, run_id=1, actor="U", channel=None, action="a",
                  detail={"a": 1, "b": [1, {"c": 2, "d": 3}]}, outcome="ok")
    h2 = row_hash(GENESIS, key=KEY, id=1, at=at_other, run_id=1, actor="U", channel=None, action="a",
                  detail={"b": [1, {"d": 3, "c": 2}], "a": 1}, outcome="ok")
    assert h1 == h2, "same instant in another zone / other key order must hash the same"
    h3 = row_hash(GENESIS, key=KEY, id=1, at=at_utc + timedelta(microseconds=1), run_id=1, actor="U",
                  channel=None, action="a", detail={"a": 1, "b": [1, {"c": 2, "d": 3}]},
                  outcome="ok")
    assert h3 != h1, "microseconds are part of the hash"
    with pytest.raises(ValueError, match="timezone-aware"):
        row_hash(GENESIS, key=KEY, id=1, at=datetime(2024, 1, 1), run_id=1, actor="U", channel=None,
                 action="a", detail={}, outcome="ok")


@pytest.mark.parametrize("field, value", [
    ("actor", "UEVIL"), ("outcome", "failed"), ("detail", {"step": "s3"}), ("run_id", 9),
    ("at", T0), ("channel", "C2"), ("action", "noop"),
])
def test_edited_field_detected(field, value):
    rows = chain([1, 1, 1, 1])
    rows[2] = replace(rows[2], **{field: value})
    problems = verify_chain(rows, key=KEY)
    assert_flags(problems, "row 3", "hash does not match its content")


def test_edited_and_rehashed_row_breaks_the_next_link():
    rows = chain([1, 1, 1, 1])
    rows[1] = rehash(replace(rows[1], outcome="failed"))
    problems = verify_chain(rows, key=KEY)
    assert_flags(problems, "row 3", "prev_hash does not match the hash of row 2")


def test_deleted_middle_row_detected():
    rows = chain([1, 1, 1, 1, 1])
    del rows[2]
    problems = verify_chain(rows, key=KEY)
    assert_flags(problems, "row 4", "id gap after row 2", "row 3 missing")
    assert_flags(problems, "row 4", "prev_hash does not match the hash of row 2")


def test_deleted_rows_at_start_and_end():
    rows = chain([1, 1, 1, 1])
    assert_flags(verify_chain(rows[1:], key=KEY), "row 2", "chain starts at id 2")
    truncated = verify_chain(rows[:-1], head=rows[-1].hash, key=KEY)
    assert_flags(truncated, "row 3", "not the expected head")
    assert verify_chain(rows[:-1], key=KEY) == [], "truncation is only visible against a head"


def test_reordered_rows_detected():
    rows = chain([1, 1, 1, 1, 1])
    rows[2], rows[3] = rows[3], rows[2]
    problems = verify_chain(rows, key=KEY)
    assert_flags(problems, "row 3", "comes after row 4")
    assert_flags(problems, "row 4", "prev_hash does not match the hash of row 2")


def test_swapped_contents_keeping_ids_detected():
    rows = chain([1, 1, 1, 1])
    a, b = rows[1], rows[2]
    rows[1] = replace(b, id=a.id)
    rows[2] = replace(a, id=b.id)
    problems = verify_chain(rows, key=KEY)
    assert_flags(problems, "row 2", "hash does not match")
    assert_flags(problems, "row 3", "hash does not match")


def test_inserted_row_detected():
    rows = chain([1, 1, 1])
    fake = make_row(rows[0].hash, key=KEY, id=2, at=T0, run_id=1, actor="UEVIL", channel="C1",
                    action="approval.approve", detail={}, outcome="ok")
    rows = [rows[0], fake, *[replace(r, id=r.id + 1) for r in rows[1:]]]
    problems = verify_chain(rows, key=KEY)
    assert problems, "an inserted row must break the chain"
    assert_flags(problems, "row 3", "hash does not match")


def test_jsonl_round_trip_verifies_offline():
    rows = chain([1, None, 2, 1])
    text = to_jsonl(rows)
    assert text.count("\n") == 4 and text.endswith("\n")
    back = from_jsonl(text)
    assert back == rows, "JSONL must round-trip every field exactly"
    assert verify_chain(back, key=KEY) == []
    assert all(r.at.tzinfo is not None for r in back)


def test_jsonl_tampering_detected():
    lines = to_jsonl(chain([1, 1, 1])).splitlines()
    d = json.loads(lines[1])
    d["detail"]["args"]["tag"] = "v6.6.6"
    lines[1] = json.dumps(d)
    assert_flags(verify_chain(from_jsonl("\n".join(lines)), key=KEY), "row 2",
                 "hash does not match")
    with pytest.raises(ValueError, match="line 2"):
        from_jsonl(lines[0] + "\n{not json\n")


# ------------------------------------------------------------------------------ run export

MIXED = [1, 2, 1, 2, 2, 1, 3]  # run 1 owns rows 1, 3, 6


def test_export_of_a_run_verifies_and_hides_other_runs():
    rows = chain([2] + MIXED)  # row 1 belongs to run 2; run 1 starts at row 2
    lines = export_lines(rows, 1, key=KEY)
    header = json.loads(lines[0])
    assert header["first_id"] == 2 and header["head_id"] == len(rows), header
    assert header["rows"] == 3 and header["links"] == 4, header
    assert verify_export(lines, key=KEY) == [], "a fresh export must verify"
    assert verify_export("\n".join(lines), head_hash=rows[-1].hash, key=KEY) == []
    others = [json.loads(ln) for ln in lines[1:] if json.loads(ln)["run_id"] != 1]
    assert all(o["type"] == "link" and "actor" not in o and "detail" not in o
               for o in others), "other runs' content must not be exported"
    assert [r.id for r in from_jsonl("\n".join(lines))] == [2, 4, 7]


def test_export_from_genesis():
    rows = chain([2] + MIXED)
    lines = export_lines(rows, 1, from_genesis=True, key=KEY)
    assert json.loads(lines[1])["id"] == 1
    assert verify_export(lines, key=KEY) == []


def _edit(lines: list[str], index: int, **changes) -> list[str]:
    d = json.loads(lines[index])
    d.update(changes)
    out = list(lines)
    out[index] = json.dumps(d)
    return out


def test_tampered_export_row_detected():
    lines = export_lines(chain(MIXED), 1, key=KEY)
    bad = _edit(lines, 3, outcome="failed")  # line 4 = row 3 of run 1
    assert_flags(verify_export(bad, key=KEY), "line 4 (row 3)", "hash does not match its content")


def test_dropped_run_row_from_export_detected():
    lines = export_lines(chain(MIXED), 1, key=KEY)
    dropped = lines[:3] + lines[4:]  # drop row 3 (run 1)
    assert_flags(verify_export(dropped, key=KEY), "row 4", "id gap after row 2")


def test_run_row_disguised_as_link_detected():
    rows = chain(MIXED)
    lines = export_lines(rows, 1, key=KEY)
    r3 = rows[2]
    # Replace the full row 3 by a link that claims it belongs to run 2: hash no longer matches.
    link = {"type": "link", "id": 3, "run_id": 2, "prev_hash": r3.prev_hash,
            "body_digest": "0" * 64, "hash": r3.hash}
    disguised = lines[:3] + [json.dumps(link)] + lines[4:]
    assert_flags(verify_export(disguised, key=KEY), "row 3", "link hash does not match")
    # Or as a link of run 1: the row's content is missing.
    link["run_id"] = 1
    elided = lines[:3] + [json.dumps(link)] + lines[4:]
    assert_flags(verify_export(elided, key=KEY), "row 3", "elided")


def test_truncated_export_detected():
    rows = chain(MIXED)
    lines = export_lines(rows, 1, key=KEY)
    assert_flags(verify_export(lines[:-2], key=KEY), "export ends here")
    assert_flags(verify_export(lines, head_hash="f" * 64, key=KEY), "expected chain head")


def test_export_without_header_or_rows():
    lines = export_lines(chain(MIXED), 1, key=KEY)
    assert_flags(verify_export(lines[1:], key=KEY), "missing the audit-export header")
    assert verify_export("", key=KEY) == ["export is empty"]
    with pytest.raises(ValueError, match="no audit rows for run 9"):
        export_lines(chain(MIXED), 9, key=KEY)



# ------------------------------------------------------------------------------ the key


def _hmac(text: str) -> str:
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def v1_row(prev: str, r: AuditRow) -> AuditRow:
    """``r`` chained after ``prev`` with the old, unkeyed SHA-256 scheme (v1)."""
    body = _sha(json.dumps({"at": r.at.astimezone(UTC).isoformat(timespec="microseconds"),
                            "actor": r.actor, "channel": r.channel, "action": r.action,
                            "detail": r.detail, "outcome": r.outcome},
                           sort_keys=True, separators=(",", ":")))
    h = _sha(json.dumps({"v": 1, "id": r.id, "run_id": r.run_id, "prev_hash": prev,
                         "body": body}, sort_keys=True, separators=(",", ":")))
    return replace(r, prev_hash=prev, hash=h)


def plain_sha256_chain(rows: list[AuditRow], **edits) -> list[AuditRow]:
    """What someone with database access but no key can do: edit row 2 and recompute every
    hash with the old, unkeyed SHA-256 scheme."""
    out, prev = [], GENESIS
    for r in rows:
        out.append(v1_row(prev, replace(r, **edits) if r.id == 2 else r))
        prev = out[-1].hash
    return out


def test_row_hash_canonical_form_is_pinned():
    """Stored hashes depend on this exact form; changing it breaks every existing chain."""
    body = _hmac('{"action":"deploy","actor":"U1","at":"2024-05-01T12:00:00.123456+00:00",'
                 '"channel":null,"detail":{"tag":"v1"},"outcome":"ok"}')
    expected = _hmac('{"body":"' + body + '","id":1,"prev_hash":"' + GENESIS + '","run_id":7,'
                     '"v":2}')
    got = row_hash(GENESIS, key=KEY, id=1, at=T0, run_id=7, actor="U1", channel=None,
                   action="deploy", detail={"tag": "v1"}, outcome="ok")
    assert got == expected, "row_hash canonical form drifted (HMAC-SHA256, v2)"


def test_a_rewrite_with_a_recomputed_plain_sha256_chain_fails():
    rows = chain([1, 1, 1, 1])
    forged = plain_sha256_chain(rows, actor="U_MALLORY")
    assert all(a.prev_hash == b.hash for a, b in zip(forged[1:], forged, strict=False))
    problems = verify_chain(forged, key=KEY, head=forged[-1].hash)
    assert_flags(problems, "rows 1..4", "hashed without the audit key")


def test_a_rewrite_without_the_key_cannot_be_made_to_verify():
    rows = chain([1, 1, 1])
    for guess in (b"", b"golive", b"unit-test-audit-key-0123456789abcdeF"):
        forged, prev = [], GENESIS
        for r in rows:
            r = replace(r, outcome="failed") if r.id == 2 else r
            forged.append(make_row(prev, key=guess, id=r.id, at=r.at, run_id=r.run_id,
                                   actor=r.actor, channel=r.channel, action=r.action,
                                   detail=r.detail, outcome=r.outcome))
            prev = forged[-1].hash
        problems = verify_chain(forged, key=KEY)
        for rid in (1, 2, 3):
            assert_flags(problems, f"row {rid}", f"under key {key_id(KEY)}")


def test_rows_from_before_the_key_verify_only_when_a_keyed_row_vouches_for_them():
    legacy = plain_sha256_chain(chain([1, 1, 1]))
    keyed = make_row(legacy[-1].hash, key=KEY, id=4, at=T0, run_id=1, actor="U4",
                     channel="C1", action="command", detail={}, outcome="ok")
    assert verify_chain([*legacy, keyed], key=KEY) == [], "an upgraded log must verify"
    edited = plain_sha256_chain(chain([1, 1, 1]), outcome="failed")
    assert_flags(verify_chain([*edited, keyed], key=KEY), "row 4", "prev_hash does not match")
    late = make_row(keyed.hash, key=KEY, id=5, at=T0, run_id=1, actor="U", channel=None,
                    action="a", detail={}, outcome="ok")
    v1_after_keyed = v1_row(late.hash, replace(late, id=6, actor="U_MALLORY"))
    assert_flags(verify_chain([*legacy, keyed, late, v1_after_keyed], key=KEY),
                 "row 6", "without the audit key after keyed rows")


def test_export_names_the_key_id_and_never_carries_the_key():
    lines = export_lines(chain([2] + MIXED), 1, key=KEY)
    header = json.loads(lines[0])
    assert header["key_id"] == key_id(KEY) == hashlib.sha256(KEY).hexdigest()[:8]
    text = "\n".join(lines)
    assert KEY.decode() not in text and KEY.hex() not in text, "the key leaked into the export"
    other = b"another-audit-key-0123456789abcdef-xyz"
    assert_flags(verify_export(lines, key=other), f"under key {key_id(KEY)}",
                 f"is key {key_id(other)}")


def test_text_postgres_cannot_store_is_kept_escaped():
    value = {"text": "status\x00; rm\ud800", "k\x00": ["a\x00", 1, None]}
    assert storable(value) == {"text": "status\\u0000; rm\\ud800", "k\\u0000": ["a\\u0000", 1,
                                                                              None]}
    row = make_row(GENESIS, key=KEY, id=1, at=T0, run_id=None, actor="U1", channel="C1",
                   action="command", detail=storable(value), outcome="ok")
    assert verify_chain(from_jsonl(to_jsonl([row])), key=KEY) == []


# ------------------------------------------------------------------------------ anchors


def test_anchor_forms_parse():
    rows = chain([1, 1, 1])
    full = rows[1].hash
    record = anchor_record(head_id=2, head_hash=full, key_id=key_id(KEY), at=T0)
    parsed = parse_anchors(f"{short_anchor(2, full)}\n`{full}`\n\n{record}\n#2:{full[:12]}")
    assert [(a.head_id, a.hash_prefix) for a in parsed] == [
        (2, full[:16]), (None, full), (2, full), (2, full[:12])]
    assert parsed[2].key_id == key_id(KEY)
    with pytest.raises(AnchorError, match="line 1"):
        parse_anchors("2:abc")
    with pytest.raises(AnchorError, match="no anchor"):
        parse_anchors("\n")


def test_anchors_hold_while_the_log_grows_and_fail_when_it_shrinks_or_is_rewritten():
    rows = chain([1, 1, 1, 1])
    pairs = [(r.id, r.hash) for r in rows]
    anchors = parse_anchors(f"{short_anchor(3, rows[2].hash)}\n{rows[2].hash}")
    assert check_anchors(pairs, anchors, key_id=key_id(KEY)) == []
    assert_flags(check_anchors(pairs[:2], anchors, key_id=key_id(KEY)), "no audit row 3")
    assert_flags(check_anchors(pairs[:2], anchors, key_id=key_id(KEY)), "no audit row has")
    rewritten = [(r.id, r.hash) for r in chain([2, 2, 2, 2])]
    assert_flags(check_anchors(rewritten, anchors, key_id=key_id(KEY)), "row 3 has hash")


def test_an_empty_log_never_satisfies_an_anchor():
    rows = chain([1])
    anchors = parse_anchors(short_anchor(1, rows[0].hash))
    assert_flags(check_anchors([], anchors, key_id=key_id(KEY)), "no audit row 1",
                 "truncated or rewritten")


def test_an_anchor_of_another_key_is_reported():
    rows = chain([1])
    rec = anchor_record(head_id=1, head_hash=rows[0].hash, key_id="deadbeef", at=T0)
    assert_flags(check_anchors([(1, rows[0].hash)], parse_anchors(rec), key_id=key_id(KEY)),
                 "recorded under key deadbeef")
