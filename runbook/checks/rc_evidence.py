"""Check 5, RC sign-off evidence (runbook section 1): the money-loop E2E and the backend
regression JUnit reports all passed, the payouts router answers, and the artifacts directory
matches its sha256 manifest file for file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from runbook.adapters.junit import JUnitError, count
from runbook.checks.base import CheckContext, CheckResult, Status, worst
from runbook.checks.config import RcEvidenceConfig

NAME = "rc_evidence"
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
Part = tuple[Status, str]


def junit_part(label: str, paths: list[Path]) -> tuple[Part, list[str]]:
    """All reports of one suite: (status + finding, details)."""
    passed = total = 0
    details: list[str] = []
    for p in paths:
        try:
            c = count(p)
        except JUnitError as e:
            return (Status.FAIL, f"{label}: {e}"), details
        passed, total = passed + c.passed, total + c.total
        details.append(f"{label}: {p.name}: {c.summary()}")
        details += [f"  {x}" for x in c.not_passed[:20]]
    if total == 0:
        return (Status.FAIL, f"{label}: zero tests in {', '.join(p.name for p in paths)}"), details
    if passed != total:
        return (Status.FAIL, f"{label} {passed}/{total} passed"), details
    return (Status.OK, f"{label} {passed}/{total}"), details


def verify_manifest(directory: Path, manifest: Path) -> tuple[Part, list[str]]:
    """Every file listed with the right sha256, nothing missing, nothing extra."""
    if not directory.is_dir():
        return (Status.FAIL, f"artifacts directory {directory} is missing"), []
    if not manifest.is_file():
        return (Status.FAIL, f"manifest {manifest} is missing"), []
    listed: dict[str, str] = {}
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = _MANIFEST_LINE.match(line)
        if not m:
            return (Status.FAIL, (f"manifest {manifest.name} line {n} is not "
                    "'<sha256>  <file>'")), []
        listed[m.group(2).removeprefix("./")] = m.group(1).lower()
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    present.discard(manifest.relative_to(directory).as_posix() if manifest.is_relative_to(
        directory) else "")
    problems = [f"missing: {f}" for f in sorted(set(listed) - present)]
    problems += [f"extra (not in the manifest): {f}" for f in sorted(present - set(listed))]
    for f in sorted(set(listed) & present):
        if hashlib.sha256((directory / f).read_bytes()).hexdigest() != listed[f]:
            problems.append(f"sha256 mismatch: {f}")
    if not listed:
        problems.append(f"manifest {manifest.name} lists no files")
    if problems:
        return (Status.FAIL, f"artifacts do not match {manifest.name}: {problems[0]}"
                + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")), problems
    return (Status.OK, f"{len(listed)} artifacts match {manifest.name}"), []


def payouts_part(cfg: RcEvidenceConfig, timeout: float) -> Part:
    """The payouts router is active: its route answers, or the OpenAPI document lists it."""
    try:
        if cfg.payouts_url:
            r = httpx.request(cfg.payouts_method, cfg.payouts_url, timeout=timeout,
                              json={} if cfg.payouts_method == "POST" else None)
            if r.status_code in (404, 405, 501) or r.status_code >= 500:
                return Status.FAIL, (f"payouts route {cfg.payouts_method} {cfg.payouts_url} " \
                                    f"answers HTTP {r.status_code} (router not active)")
            return Status.OK, f"payouts route answers ({r.status_code})"
        if cfg.openapi_url:
            r = httpx.get(cfg.openapi_url, timeout=timeout)
            paths = (r.json() or {}).get("paths") or {} if r.status_code == 200 else {}
            if cfg.payouts_path in paths:
                return Status.OK, f"payouts route {cfg.payouts_path} in the OpenAPI document"
            return Status.FAIL, (f"{cfg.payouts_path} is not in the OpenAPI document " \
                                f"({cfg.openapi_url}, HTTP {r.status_code})")
    except (httpx.HTTPError, ValueError) as e:
        return Status.FAIL, (f"payouts router: cannot reach the app: {type(e).__name__}: " \
                            f"{str(e)[:120]}")
    return Status.UNKNOWN, ("payouts router not checked: set [preflight.rc_evidence] " \
                           "payouts_url or openapi_url")


def run(ctx: CheckContext) -> CheckResult:
    """Check the RC's test reports, the payouts router and the artifacts manifest."""
    cfg: RcEvidenceConfig = ctx.require_config(NAME)
    base = Path(str(cfg.dir).replace("{tag}", ctx.rc_tag or ""))
    parts: list[Part] = []
    details: list[str] = [f"evidence directory {base}"]
    for label, files in (("E2E money loop", cfg.e2e_junit), ("backend regression",
                                                             cfg.regression_junit)):
        part, lines = junit_part(label, [base / f for f in files])
        parts.append(part)
        details += lines
    parts.append(payouts_part(cfg, min(10.0, ctx.remaining())))
    artifacts = base / cfg.artifacts_dir
    part, problems = verify_manifest(artifacts, artifacts / cfg.manifest)
    parts.append(part)
    details += problems[:50]
    status = worst([s for s, _ in parts])
    shown = [f for s, f in parts if s != Status.OK] if status != Status.OK else \
        [f for _, f in parts]
    return CheckResult(NAME, status, "; ".join(shown), details,
                       facts={"rc_evidence_dir": str(base)})
