"""``[preflight.release_freeze]``: where the RC tag is resolved, the branch that must be locked and
the RC image whose revision label must match."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from runbook.checks.sections.base import Section


class ReleaseFreezeConfig(Section):
    """``[preflight.release_freeze]``: the RC tag's commit, the RC image's revision label and,
    where the forge offers it (GitHub), the branch lock."""

    source: Literal["github", "git"] = Field(
        "github", description='Where the tag is resolved: "github" (the REST API: tag, branch '
        'protection and rulesets) or "git" (any repository `git ls-remote` can read: tag -> '
        "commit only; branch protection is shown as not applicable).")
    repo: str | None = Field(None, description='source = "github": the repository, owner/name.')
    git_url: str | None = Field(
        None, description='source = "git": a local path or a URL git can read (https://, '
        "ssh://, git@host:path, file://). Credentials come from the bot's own git setup (ssh "
        "key, credential helper); git never prompts.")
    api_url: str = Field("https://api.github.com",
                         description="GitHub's API; GitHub Enterprise: https://HOST/api/v3.")
    token: SecretStr | None = Field(
        None, description="GitHub token (admin read, to see branch protection and rulesets).")
    api_version: str = Field("2022-11-28", description="The X-GitHub-Api-Version header.")
    branch: str = Field("main", description="The branch that must be locked (GitHub only).")
    image: str | None = Field(
        None, description="The RC image, {tag} replaced by the RC tag "
        "(registry.example.com/team/app:{tag}); its org.opencontainers.image.revision label "
        "must equal the tag's commit. Unset: the label is not checked.")
    registry_scheme: Literal["https", "http"] = Field(
        "https", description='The registry\'s v2 API scheme ("http" for a local registry).')
    registry_token: SecretStr | None = Field(
        None, description="Bearer token for the registry's v2 API (anonymous when unset).")
    max_rate_limit_wait_s: float = Field(
        20, ge=0, le=600, description="Longest wait for GitHub's rate limit to reset.")

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None and (v.count("/") != 1 or not all(v.split("/"))):
            raise ValueError("must be owner/name")
        return v

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL (GitHub Enterprise: https://HOST/api/v3)")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _source(self) -> ReleaseFreezeConfig:
        if self.source == "github" and not self.repo:
            raise ValueError('source = "github" needs repo = "owner/name" (a repository '
                             'without GitHub: source = "git" with git_url)')
        if self.source == "git" and not self.git_url:
            raise ValueError('source = "git" needs git_url (a local path or a URL git can '
                             "read)")
        if self.source == "git" and self.repo:
            raise ValueError('repo is GitHub\'s owner/name; with source = "git" use git_url')
        return self
