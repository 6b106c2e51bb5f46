"""GitHub REST API (github.com or Enterprise) through httpx: tags, branch protection, rulesets.

The API version header is pinned; rate limits are honoured (``Retry-After``, or
``x-ratelimit-remaining: 0`` until ``x-ratelimit-reset``) when the wait fits the caller's budget,
otherwise the call fails saying when to retry. Errors become ``GitHubError`` with the status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


class GitHubError(Exception):
    """A GitHub call failed; ``status`` is the HTTP status (0: unreachable)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


@dataclass
class TagTarget:
    commit_sha: str
    annotated: bool
    chain: list[str]
    """Tag object SHAs followed on the way to the commit."""


class GitHub:
    def __init__(self, api_url: str, repo: str, *, token: str | None = None,
                 api_version: str = "2022-11-28", timeout: float = 10.0,
                 max_wait_s: float = 20.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None):
        headers = {"Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": api_version, "User-Agent": "golive-preflight"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self.max_wait_s = max_wait_s
        self.clock, self.sleep = clock, sleep
        self.http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout,
                                 transport=transport, follow_redirects=True)

    def close(self) -> None:
        self.http.close()

    def _rate_wait(self, r: httpx.Response) -> float | None:
        """Seconds to wait before retrying a rate-limited answer; None if not rate limited."""
        if r.status_code not in (403, 429):
            return None
        if "retry-after" in r.headers:
            try:
                return max(0.0, float(r.headers["retry-after"]))
            except ValueError:
                return 60.0
        if r.headers.get("x-ratelimit-remaining") == "0":
            try:
                return max(0.0, float(r.headers.get("x-ratelimit-reset", "0")) - self.clock())
            except ValueError:
                return 60.0
        return None

    def get(self, path: str, *, allow_404: bool = False) -> Any:
        """GET a repository path (``/git/ref/...``); JSON, or None on an allowed 404."""
        url = f"/repos/{self.repo}{path}"
        waited = 0.0
        while True:
            try:
                r = self.http.get(url)
            except httpx.HTTPError as e:
                raise GitHubError(f"GitHub API unreachable at {self.api_url}: "
                                  f"{type(e).__name__}: {e}") from None
            wait = self._rate_wait(r)
            if wait is None:
                break
            if waited + wait > self.max_wait_s:
                raise GitHubError(f"GitHub rate limit reached; it resets in {wait:.0f} s "
                                  f"(more than the {self.max_wait_s:g} s this check may wait)",
                                  r.status_code)
            self.sleep(wait)
            waited += wait
        if r.status_code == 404 and allow_404:
            return None
        if r.status_code >= 400:
            try:
                msg = r.json().get("message", "")
            except ValueError:
                msg = r.text[:200]
            raise GitHubError(f"GET {url}: HTTP {r.status_code} {msg}".strip(), r.status_code)
        try:
            return r.json()
        except ValueError:
            raise GitHubError(f"GET {url}: answer is not JSON", r.status_code) from None

    def resolve_tag(self, tag: str, max_depth: int = 5) -> TagTarget:
        """The commit a tag points at, following annotated tag objects."""
        ref = self.get(f"/git/ref/tags/{tag}", allow_404=True)
        if ref is None:
            raise GitHubError(f"tag {tag} not found in {self.repo}", 404)
        obj = ref.get("object") or {}
        chain: list[str] = []
        while obj.get("type") == "tag":
            if len(chain) >= max_depth:
                raise GitHubError(f"tag {tag}: more than {max_depth} nested tag objects")
            chain.append(obj["sha"])
            obj = (self.get(f"/git/tags/{obj['sha']}").get("object") or {})
        if obj.get("type") != "commit":
            raise GitHubError(f"tag {tag} points at a {obj.get('type')!r}, not a commit")
        return TagTarget(commit_sha=str(obj.get("sha", "")), annotated=bool(chain), chain=chain)

    def branch_protection(self, branch: str) -> dict[str, Any] | None:
        """Classic protection of ``branch``; None on 404 (unprotected, or token not admin)."""
        return self.get(f"/branches/{branch}/protection", allow_404=True)

    def branch_rules(self, branch: str) -> list[dict[str, Any]]:
        """The active ruleset rules that apply to ``branch`` (empty on 404)."""
        return self.get(f"/rules/branches/{branch}", allow_404=True) or []

    def ruleset(self, ruleset_id: int) -> dict[str, Any] | None:
        return self.get(f"/rulesets/{ruleset_id}", allow_404=True)
