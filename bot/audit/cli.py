"""`golive audit verify | export | anchor`: the audit log from the operator's side.

Every action needs the audit key (GOLIVE_AUDIT_KEY); output names its key id, never the key.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bot import audit
from bot.audit.anchor import (
    AnchorError,
    anchor_record,
    check_anchors,
    parse_anchors,
    short_anchor,
)


def add_parser(sub) -> None:
    """The `audit` subcommand's arguments."""
    s = sub.add_parser("audit", help="verify, export or anchor the keyed, hash-chained audit log")
    s.add_argument("action", choices=["verify", "export", "anchor"])
    s.add_argument("--run", type=int, help="run id (export)")
    s.add_argument("--file", help="verify an exported JSONL file, or an evidence pack "
                                  "directory (golive rehearse), offline")
    s.add_argument("--head", action="append", default=[],
                   help="an anchor the chain must still contain (verify; repeatable): ID:HASH "
                        "as cards show it, a hash, or an anchor file / http(s) URL")
    s.add_argument("--to", action="append", default=[],
                   help="anchor: append the chain head to this file or POST it to this URL "
                        "(repeatable)")
    s.add_argument("--out", help="output path (export)")


def _rows(conn) -> list[audit.AuditRow]:
    from bot.store import repo

    return [audit.AuditRow(id=r["id"], at=r["at"], run_id=r["run_id"], actor=r["actor"],
                           channel=r["channel"], action=r["action"], detail=r["detail"],
                           outcome=r["outcome"], prev_hash=r["prev_hash"], hash=r["hash"])
            for r in repo.audit_rows(conn)]


def _anchor_text(source: str) -> str:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as r:
            return r.read().decode("utf-8")
    path = Path(source)
    return path.read_text(encoding="utf-8") if path.is_file() else source


def _anchors(sources: list[str]):
    out = []
    for src in sources:
        try:
            out += parse_anchors(_anchor_text(src))
        except (OSError, AnchorError) as e:
            raise SystemExit(f"golive: --head {src[:60]}: {e}") from None
    return out


def _verify_file(args: argparse.Namespace, key: bytes) -> int:
    path, problems = Path(args.file), []
    if path.is_dir():  # an evidence pack (golive rehearse): its manifest, then its export
        from bot.audit.pack import check_pack

        export, problems = check_pack(path)
        if export is None:
            print("\n".join(problems))
            return 1
        path = export
    text = path.read_text(encoding="utf-8")
    problems += audit.verify_export(text, key=key)
    anchors = _anchors(args.head)
    if anchors:
        entries = [(d["id"], d["hash"]) for d in map(json.loads, filter(str.strip,
                   text.splitlines())) if d.get("type") in ("row", "link")]
        problems += check_anchors(entries, anchors, key_id=audit.key_id(key))
    print("\n".join(problems) if problems else
          f"{args.file}: {'evidence pack and its ' if path != Path(args.file) else ''}export "
          f"verifies under key {audit.key_id(key)}")
    return 1 if problems else 0


def _verify_db(args: argparse.Namespace, conn, key: bytes) -> int:
    from bot.store import repo

    warning = repo.audit_owner_warning(conn)
    if warning:
        print(f"golive: warning: {warning}", file=sys.stderr)
    anchors = _anchors(args.head)
    rows = _rows(conn)
    head = repo.audit_head(conn)
    problems = audit.verify_chain(rows, key=key, head=head["last_hash"] if rows else None)
    if not rows and head["last_id"] != 0:
        problems.append(f"audit_log is empty but its head says {head['last_id']} rows were "
                        "written (truncated?)")
    problems += check_anchors([(r.id, r.hash) for r in rows], anchors,
                              key_id=audit.key_id(key))
    if problems:
        print("\n".join(problems))
        return 1
    kid = audit.key_id(key)
    if not rows:
        print(f"audit log is empty (key {kid}): an empty log proves nothing; verify it "
              "against an anchor with --head")
        return 0
    held = f"; {len(anchors)} anchor(s) hold" if anchors else ""
    print(f"audit log verifies under key {kid}: {len(rows)} rows, head "
          f"{short_anchor(rows[-1].id, rows[-1].hash)}{held}")
    return 0


def export_run(conn, run_id: int, key: bytes, out: Path) -> int:
    """Write run ``run_id``'s export to ``out``; how many of its rows it holds (0: none, and
    nothing is written)."""
    from bot.store import repo

    run_rows = repo.audit_rows(conn, run_id=run_id)
    if not run_rows:
        return 0
    stretch = [r for r in _rows(conn) if r.id >= run_rows[0]["id"]]
    lines = audit.export_lines(stretch, run_id, key=key)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(run_rows)


def _export(args: argparse.Namespace, conn, key: bytes) -> int:
    out = Path(args.out or f"golive-audit-run-{args.run}.jsonl")
    count = export_run(conn, args.run, key, out)
    if not count:
        print(f"no audit rows for run {args.run}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({count} rows of run {args.run}, key {audit.key_id(key)}); "
          f"verify offline with `golive audit verify --file {out}`")
    return 0


def _anchor(args: argparse.Namespace, conn, key: bytes) -> int:
    rows = _rows(conn)
    if not rows:
        print("golive: nothing to anchor: the audit log is empty", file=sys.stderr)
        return 1
    problems = audit.verify_chain(rows, key=key)
    if problems:  # anchoring a broken chain would vouch for it
        print("golive: not anchoring, the chain does not verify:\n" + "\n".join(problems),
              file=sys.stderr)
        return 1
    last = rows[-1]
    record = anchor_record(head_id=last.id, head_hash=last.hash, key_id=audit.key_id(key),
                           at=datetime.now(UTC))
    failed = 0
    for target in args.to:
        try:
            if target.startswith(("http://", "https://")):
                req = urllib.request.Request(target, data=record.encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=10):
                    pass
            else:
                with open(target, "a", encoding="utf-8") as f:
                    f.write(record + "\n")
        except OSError as e:
            print(f"golive: could not anchor to {target}: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"anchored {short_anchor(last.id, last.hash)} to {target}")
    return 1 if failed else 0


def cmd_audit(args: argparse.Namespace, settings) -> int:
    """Run one audit action with the settings' key and database."""
    from bot.store.db import Database

    if args.action == "export" and args.run is None:
        print("golive: audit export needs --run ID", file=sys.stderr)
        return 2
    if args.action == "anchor" and not args.to:
        print("golive: audit anchor needs --to FILE|URL", file=sys.stderr)
        return 2
    key = settings.audit_key
    if args.action == "verify" and args.file:
        return _verify_file(args, key)
    database = Database(settings.database_url, min_size=1, max_size=2)
    database.open(wait=True)
    try:
        with database.connection() as conn:
            action = {"verify": _verify_db, "export": _export, "anchor": _anchor}[args.action]
            return action(args, conn, key)
    finally:
        database.close()
