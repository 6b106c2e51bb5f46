"""Check 5, RC sign-off evidence (runbook section 1): the team's JUnit suites all passed
(``[[preflight.rc_evidence.junit]]``), the routes the release must serve answer
(``[[preflight.rc_evidence.routes]]``), and the artifacts directory matches its sha256 manifest
file for file (``manifest``). Every item is the team's to name and optional; with none
configured the check says what to configure."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from runbook.adapters.junit import JUnitError, count
from runbook.checks.base import CheckContext, CheckFailed, PreflightResult, Status, worst
from runbook.checks.sections.rc_evidence import JUnitSuite, RcEvidenceConfig, Route

NAME = "rc_evidence"
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
Part = tuple[Status, str]


def junit_part(suite: JUnitSuite, base: Path) -> tuple[Part, list[str]]:
    """All reports of one suite: (status + finding, details)."""
    label = suite.name
    passed = total = 0
    details: list[str] = []
    for f in suite.files:
        p = base / f
        try:
            c = count(p)
        except JUnitError as e:
            return (Status.FAIL, f"{label}: {e}"), details
        passed, total = passed + c.passed, total + c.total
        details.append(f"{label}: {f}: {c.summary()}")
        details += [f"  {x}" for x in c.not_passed[:20]]
    if total < suite.min_tests:
        return (Status.FAIL, (f"{label}: {total} test case(s) in {', '.join(suite.files)}, "
                f"at least {suite.min_tests} expected (the wrong file, or the suite did not "
                "run?)")), details
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


def _alive(route: Route, status: int) -> bool:
    if route.expect_status:
        return status in route.expect_status
    return status not in (404, 405, 501) and status < 500


def route_part(route: Route, timeout: float) -> Part:
    """The route is served: its URL answers, or the OpenAPI document lists it."""
    try:
        if route.url:
            r = httpx.request(route.method, route.url, timeout=timeout, json=route.body)
            if not _alive(route, r.status_code):
                return Status.FAIL, (f"route {route.name}: {route.method} {route.url} answers "
                                     f"HTTP {r.status_code} (not served)")
            return Status.OK, f"route {route.name} answers ({r.status_code})"
        r = httpx.get(route.openapi_url or "", timeout=timeout)
        paths = ((r.json() or {}).get("paths") or {}) if r.status_code == 200 else {}
        if route.path in paths:
            return Status.OK, f"route {route.name}: {route.path} in the OpenAPI document"
        return Status.FAIL, (f"route {route.name}: {route.path} is not in the OpenAPI document "
                             f"({route.openapi_url}, HTTP {r.status_code})")
    except (httpx.HTTPError, ValueError, AttributeError) as e:
        return Status.FAIL, (f"route {route.name}: cannot reach the app: {type(e).__name__}: "
                             f"{str(e)[:120]}")


def run(ctx: CheckContext) -> PreflightResult:
    """Check the RC's test reports, its routes and its artifacts manifest (each as configured)."""
    cfg: RcEvidenceConfig = ctx.require_config(NAME)
    if cfg.empty:
        raise CheckFailed("nothing to check: configure at least one of "
                          "[[preflight.rc_evidence.junit]] (name, files), manifest (with dir) "
                          "or [[preflight.rc_evidence.routes]] (name, url) — see "
                          "golive.example.toml")
    base = Path(cfg.dir.replace("{tag}", ctx.rc_tag or "")) if cfg.dir else None
    parts: list[Part] = []
    details: list[str] = [f"evidence directory {base}"] if base else []
    if base is not None and (cfg.junit or cfg.manifest) and not base.is_dir():
        raise CheckFailed(f"the evidence directory {base} is missing (check [preflight."
                          "rc_evidence] dir, and that CI published this RC's evidence)",
                          details=details)
    for suite in cfg.junit:
        part, lines = junit_part(suite, base)  # type: ignore[arg-type]
        parts.append(part)
        details += lines
    for route in cfg.routes:
        parts.append(route_part(route, min(10.0, ctx.remaining())))
    if cfg.manifest and base is not None:
        manifest = base / cfg.manifest
        artifacts = base / cfg.artifacts_dir if cfg.artifacts_dir else manifest.parent
        part, problems = verify_manifest(artifacts, manifest)
        parts.append(part)
        details += problems[:50]
    status = worst([s for s, _ in parts])
    shown = [f for s, f in parts if s != Status.OK] if status != Status.OK else \
        [f for _, f in parts]
    return PreflightResult(NAME, status, "; ".join(shown), details,
                       facts={"rc_evidence_dir": str(base)} if base else {})
