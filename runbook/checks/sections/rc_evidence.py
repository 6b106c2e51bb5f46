"""``[preflight.rc_evidence]``: the release's evidence: JUnit suites, a sha256sum manifest, routes
the running release must serve."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from runbook.checks.sections.base import Section, renamed


class JUnitSuite(Section):
    """One ``[[preflight.rc_evidence.junit]]``: a suite whose JUnit reports must all pass."""

    name: str = Field(description="What the checklist calls it, e.g. \"E2E money loop\".")
    files: list[str] = Field(min_length=1, description="Its JUnit XML files, relative to dir.")
    min_tests: int = Field(
        1, ge=1, description="Fewer test cases than this fails (the wrong file, or a suite "
        "that did not run).")


_ALIVE = "any answer but 404, 405, 501 or 5xx"


class Route(Section):
    """One ``[[preflight.rc_evidence.routes]]``: a route the release must serve."""

    name: str = Field(description="What the checklist calls it, e.g. \"payouts\".")
    url: str | None = Field(None, description=f"Ask this URL; the route is there on {_ALIVE} "
                            "(or on expect_status).")
    method: Literal["GET", "POST", "PUT", "HEAD", "OPTIONS"] = Field(
        "GET", description="The method for url.")
    body: dict[str, Any] | None = Field(None, description="JSON body sent with url.")
    expect_status: list[int] = Field(
        default_factory=list, description=f"The statuses that count as there (empty: {_ALIVE}).")
    openapi_url: str | None = Field(
        None, description="Instead of url: an OpenAPI document that must list path.")
    path: str | None = Field(None, description="With openapi_url: the path, e.g. /v1/transfers.")

    @model_validator(mode="after")
    def _one(self) -> Route:
        if bool(self.url) == bool(self.openapi_url):
            raise ValueError(f"route {self.name!r}: set url, or openapi_url and path")
        if self.openapi_url and not self.path:
            raise ValueError(f"route {self.name!r}: openapi_url needs path")
        return self


class RcEvidenceConfig(Section):
    """``[preflight.rc_evidence]``: the release's evidence. Every item is the team's to name and
    optional, but at least one must be configured."""

    dir: str | None = Field(
        None, description="The release's evidence directory, {tag} replaced by the RC tag; the "
        "junit files and the manifest are relative to it.")
    junit: list[JUnitSuite] = Field(
        default_factory=list, description="Test suites whose JUnit reports must all pass.")
    manifest: str | None = Field(
        None, description="A sha256sum-format file (relative to dir); the files it lists, "
        "relative to artifacts_dir, must match it exactly: nothing missing, changed or extra.")
    artifacts_dir: str | None = Field(
        None, description="The directory the manifest describes (relative to dir); default: "
        "the manifest's own directory.")
    routes: list[Route] = Field(
        default_factory=list, description="Routes the running release must serve.")

    @model_validator(mode="before")
    @classmethod
    def _old(cls, data: Any) -> Any:
        junit = "write [[preflight.rc_evidence.junit]] name, files"
        route = "write [[preflight.rc_evidence.routes]] name, url, method (or openapi_url, path)"
        return renamed(data, "[preflight.rc_evidence]", {
            "e2e_junit": junit, "regression_junit": junit, "payouts_url": route,
            "payouts_method": route, "openapi_url": route, "payouts_path": route})

    @model_validator(mode="after")
    def _dir(self) -> RcEvidenceConfig:
        if (self.junit or self.manifest) and not self.dir:
            raise ValueError("junit and manifest are relative to dir: set dir")
        if self.artifacts_dir and not self.manifest:
            raise ValueError("artifacts_dir needs manifest (the sha256sum file describing it)")
        return self

    @property
    def empty(self) -> bool:
        return not (self.junit or self.manifest or self.routes)
