"""``[[preflight.team_scripts]]``: the team's own scripts as extra checks."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from runbook.checks.sections.base import Section


class TeamScript(Section):
    """One ``[[preflight.team_scripts]]``: the team's own script as an extra check."""

    name: str = Field(description="What the checklist calls it.")
    command: list[str] = Field(min_length=1, description="argv, e.g. [\"scripts/verify.sh\"].")
    where: Literal["host", "container"] = Field(
        "host", description='"host" (next to the bot) or "container" (docker exec).')
    container: str | None = Field(None, description='where = "container": its name.')
    docker_host: str | None = Field(
        None, description="The Docker engine (unix:// or tcp://); default: DOCKER_HOST.")
    env: dict[str, str] = Field(default_factory=dict,
                                description="Variables the script gets (values secret when "
                                "their name looks secret).")
    env_passthrough: list[str] = Field(
        default_factory=list, description="Names of the bot's own environment variables the "
        "script also gets (on the host it gets only PATH, HOME, LANG, LC_ALL, TZ and TMPDIR "
        "besides env, never the bot's secrets).")
    timeout_s: float = Field(60, gt=0, le=3600, description="Seconds before it is killed.")
    cwd: Path | None = Field(None, description="Working directory (host only).")

    @model_validator(mode="after")
    def _where(self) -> TeamScript:
        if self.where == "container" and not self.container:
            raise ValueError(f'team script {self.name!r}: where = "container" needs container')
        return self
