"""``[preflight.prod_config]``: where the target's environment is read and the team's rules for
it; which variable names count as secret."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from runbook.checks.sections.base import Section, renamed

RULE_CHECKS = ("networks", "database", "stripe_livemode")
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE|HMAC|DATABASE_URL|DSN|"
                          r"CREDENTIAL|_KEY$", re.IGNORECASE)


class EnvRule(Section):
    """One ``[[preflight.prod_config.rules]]``: what one variable of the target must hold."""

    key: str = Field(description="The environment variable, e.g. APP_DEBUG.")
    required: bool = Field(
        True, description="The variable must be set and non-empty. false: an unset variable "
        "passes and the other conditions apply only when it is set.")
    equals: str | None = Field(None, description="The value must be exactly this.")
    not_equals: str | None = Field(None, description="The value must not be this.")
    one_of: list[str] | None = Field(None, description="The value must be one of these.")
    matches: str | None = Field(
        None, description="A Python regular expression the value must match (searched, not "
        "anchored: write ^...$ to match the whole value), e.g. ^sk_live_.")
    not_matches: str | None = Field(
        None, description="A regular expression the value must not match, e.g. _test_.")
    check: Literal["networks", "database", "stripe_livemode"] | None = Field(
        None, description='A built-in test: "networks" (a list of IP networks under strict '
        'parsing: no *, no 0.0.0.0/0, no hostnames or host bits), "database" (a PostgreSQL '
        'URL that answers a read-only query), "stripe_livemode" (Stripe\'s GET /v1/balance '
        "with this key says livemode: true; needs api_url).")
    api_url: str | None = Field(
        None, description='check = "stripe_livemode": the API, https://api.stripe.com.')
    secret: bool | None = Field(
        None, description="Never show the value (at most its last 4 characters). Default: "
        "true when the name looks secret (SECRET, TOKEN, PASSWORD, KEY, DSN, DATABASE_URL...).")
    hint: str | None = Field(
        None, description="What a right value looks like, shown when the rule fails, e.g. "
        '"a live Stripe secret key (sk_live_...)".')

    @model_validator(mode="before")
    @classmethod
    def _old(cls, data: Any) -> Any:
        return renamed(data, "a prod_config rule", {
            "name": 'write key = "VAR"', "set": "write required = true"})

    @field_validator("matches", "not_matches")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a regular expression: {e}") from None
        return v

    @model_validator(mode="after")
    def _api(self) -> EnvRule:
        if self.check == "stripe_livemode" and not self.api_url:
            raise ValueError('check = "stripe_livemode" needs api_url (https://api.stripe.com)')
        return self

    @property
    def is_secret(self) -> bool:
        return self.secret if self.secret is not None else bool(SECRET_NAME.search(self.key))


class ProdConfigConfig(Section):
    """``[preflight.prod_config]``: where the target's environment is read, and the team's rules
    for it (``[[preflight.prod_config.rules]]``; none are built in)."""

    source: Literal["container", "env_file", "process"] = Field(
        description='Where the environment is read: "container" (the running app container\'s '
        'environment), "env_file" (a KEY=value file) or "process" (the bot\'s own).')
    container: str | None = Field(None, description='source = "container": its name.')
    docker_host: str | None = Field(
        None, description="The Docker engine (unix:// or tcp://); default: DOCKER_HOST.")
    env_file: Path | None = Field(None, description='source = "env_file": its path.')
    rules: list[EnvRule] = Field(
        default_factory=list, description="What the variables must hold, checked in order.")

    @model_validator(mode="before")
    @classmethod
    def _old(cls, data: Any) -> Any:
        why = "the PSP, database, proxy and bootstrap rules are [[preflight.prod_config.rules]]"
        return renamed(data, "[preflight.prod_config]", {
            "psps": why, "stripe_api_url": why + ' (check = "stripe_livemode", api_url)',
            "check_database": why + ' (check = "database")',
            "variables": "a rule names its variable itself (key)"})

    @model_validator(mode="after")
    def _where(self) -> ProdConfigConfig:
        if self.source == "env_file" and self.env_file is None:
            raise ValueError('source = "env_file" needs env_file')
        if self.source == "container" and not self.container:
            raise ValueError('source = "container" needs container (the app container\'s name)')
        return self
