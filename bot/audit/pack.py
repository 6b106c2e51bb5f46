"""A rehearsal's evidence pack: a directory of files (the run's audit export, the canary
report, the timings, the approvals, the channel's transcript), a ``manifest.json`` naming them
and a ``SHA256SUMS`` over all of them. ``golive audit verify --file PACK`` checks the sums (no
file changed, missing or added) and then the audit export under the key."""

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
        export = json.loads((pack / MANIFEST).read_text(encoding="utf-8"))["audit_export"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, [*problems, f"{MANIFEST}: missing or names no audit_export"]
    if export not in listed:
        return None, [*problems, f"{MANIFEST}: its audit export {export!r} is not in the pack"]
    return pack / export, problems
