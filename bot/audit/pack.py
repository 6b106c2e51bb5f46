"""A rehearsal's evidence pack: a directory of files (the run's audit export, the canary
report, the timings, the approvals, the channel's transcript), a ``manifest.json`` naming them
and a ``SHA256SUMS`` over all of them. ``golive audit verify --file PACK`` checks the sums (no
file changed, missing or added) and then the audit export under the key.

A pack may hold the night's plan (issue 20): the manifest's ``plans`` name each plan file with
its plan digest and sha256; the check holds each one to the file and to the audit row ``plan``
in the export that recorded the same digest and file hash (a plan file swapped for another, or
one the run never audited, fails)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_pack(out: Path, files: dict[str, bytes | str], manifest: dict[str, Any]) -> Path:
    """Write ``files`` and the manifest into ``out``, then the sums over every file."""
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (out / name).write_bytes(data)
    (out / MANIFEST).write_text(json.dumps({**manifest, "files": sorted(files)}, indent=2,
                                           default=str) + "\n", encoding="utf-8")
    names = sorted([*files, MANIFEST])
    (out / SUMS).write_text("".join(f"{_sha256(out / n)}  {n}\n" for n in names),
                            encoding="utf-8")
    return out


def check_pack(pack: Path) -> tuple[Path | None, list[str]]:
    """The pack's audit export and the problems found in its sums and manifest."""
    sums = pack / SUMS
    if not sums.is_file():
        return None, [f"{pack}: not an evidence pack ({SUMS} is missing)"]
    problems: list[str] = []
    listed: dict[str, str] = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if not name or "/" in name or name.startswith("."):
            problems.append(f"{SUMS}: malformed line {line[:80]!r}")
            continue
        listed[name] = digest
    for name, digest in listed.items():
        if not (pack / name).is_file():
            problems.append(f"{name}: listed in {SUMS} but missing")
        elif _sha256(pack / name) != digest:
            problems.append(f"{name}: changed since the pack was written (sha256 differs)")
    extra = sorted(p.name for p in pack.iterdir() if p.is_file() and p.name != SUMS
                   and p.name not in listed)
    problems += [f"{name}: in the pack but not in {SUMS}" for name in extra]
    try:
        manifest = json.loads((pack / MANIFEST).read_text(encoding="utf-8"))
        export = manifest["audit_export"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, [*problems, f"{MANIFEST}: missing or names no audit_export"]
    if export not in listed:
        return None, [*problems, f"{MANIFEST}: its audit export {export!r} is not in the pack"]
    problems += check_plans(pack, manifest, listed, pack / export)
    return pack / export, problems


def plan_entry(name: str, digest: str, markdown: str, plan_id: int) -> dict[str, Any]:
    """The manifest's record of one plan file."""
    return {"file": name, "digest": digest, "plan_id": plan_id,
            "file_sha256": hashlib.sha256(markdown.encode("utf-8")).hexdigest()}


def check_plans(pack: Path, manifest: dict[str, Any], listed: dict[str, str],
                export: Path) -> list[str]:
    """Each plan the manifest names: in the sums, its file's sha256 the recorded one, and an
    audit row ``plan`` in the export with the same digest and file hash."""
    plans = manifest.get("plans") or []
    if not plans:
        return []
    audited: set[tuple[str, str]] = set()
    try:
        for line in export.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            detail = row.get("detail") or {}
            if row.get("type") == "row" and row.get("action") == "plan":
                audited.add((str(detail.get("digest")), str(detail.get("file_sha256"))))
    except (OSError, ValueError):
        return [f"{export.name}: cannot read the plans' audit rows"]
    problems = []
    for entry in plans:
        name = str(entry.get("file"))
        if name not in listed:
            problems.append(f"{MANIFEST}: plan file {name!r} is not in {SUMS}")
            continue
        if (pack / name).is_file() and _sha256(pack / name) != entry.get("file_sha256"):
            problems.append(f"{name}: not the plan file the manifest records (sha256 differs)")
        if (str(entry.get("digest")), str(entry.get("file_sha256"))) not in audited:
            problems.append(f"{name}: no audit row `plan` records its digest "
                            f"{str(entry.get('digest'))[:12]} and file hash")
    return problems
