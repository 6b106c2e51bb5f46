"""Ledgerline's RC evidence, as its CI would leave it (called by build.sh; stdlib only).

    python3 release_material.py BUILD_DIR        (reads BUILD_DIR/releases.json)

BUILD_DIR/evidence/<tag>/reports/contract-suite.xml     API contract tests (pytest shape)
BUILD_DIR/evidence/<tag>/reports/journal-balance.xml    double-entry balance suite
BUILD_DIR/evidence/<tag>/bundle/ + bundle/CHECKSUMS.sha256   the release bundle
BUILD_DIR/evidence/<tag>-red/                            the same with a failing contract test
Names deliberately unlike paybox's (no e2e-money-loop, no backend-regression, no SHA256SUMS).
"""

import hashlib
import json
import sys
from pathlib import Path

CONTRACT = ["test_session_issues_bearer", "test_transfer_books_two_legs",
            "test_summary_is_read_only", "test_healthz_reports_schema"]
BALANCE = ["test_entries_sum_to_zero", "test_no_negative_operating_account",
           "test_reference_optional"]


def junit(suite: str, names: list[str], red: bool) -> str:
    cases = []
    for i, name in enumerate(names):
        inner = '<failure message="expected 201, got 409">trace</failure>' if red and i == 1 else ""
        cases.append(f'<testcase classname="{suite}" name="{name}" time="0.3">{inner}</testcase>')
    return ('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="{}" tests="{}" '
            'failures="{}" errors="0" skipped="0">{}</testsuite></testsuites>\n'
            .format(suite, len(names), 1 if red else 0, "".join(cases)))


def write(root: Path, tag: str, commit: str, red: bool) -> None:
    reports, bundle = root / "reports", root / "bundle"
    reports.mkdir(parents=True, exist_ok=True)
    bundle.mkdir(parents=True, exist_ok=True)
    (reports / "contract-suite.xml").write_text(junit("contract", CONTRACT, red))
    (reports / "journal-balance.xml").write_text(junit("journal", BALANCE, False))
    files = {"CHANGES.txt": f"Ledgerline {tag}\ncommit {commit}\n",
             "openapi.json": json.dumps({"openapi": "3.0.3", "info": {"title": "ledgerline",
                                         "version": tag},
                                         "paths": {"/v1/transfers": {"post": {}}}})}
    for name, text in files.items():
        (bundle / name).write_text(text)
    (bundle / "CHECKSUMS.sha256").write_text("".join(
        f"{hashlib.sha256((bundle / n).read_bytes()).hexdigest()}  {n}\n" for n in sorted(files)))


def main() -> None:
    out = Path(sys.argv[1])
    releases = json.loads((out / "releases.json").read_text())
    for tag, commit in releases.items():
        write(out / "evidence" / tag, tag, commit, red=False)
        write(out / "evidence" / f"{tag}-red", tag, commit, red=True)
    print(f"[ledgerline-build] wrote {out}/evidence for {', '.join(sorted(releases))}")


if __name__ == "__main__":
    main()
