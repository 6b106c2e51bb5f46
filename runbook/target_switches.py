"""The switches a step flips: ``[target.maintenance]`` and ``[target.traffic]``, each an HTTP
request (:class:`HttpSwitch`), a command (:class:`CommandSwitch`) or a compose service started
and stopped (:class:`ComposeServiceSwitch`); and what the public URL shows while maintenance is
on (:class:`MaintenancePage`). Pure.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator

from runbook.target_fields import TargetTable, header_value, token_format


class HttpSwitch(TargetTable):
    """Flip a switch by an HTTP request to ``url`` (JSON ``on_body`` / ``off_body``)."""

    kind: Literal["http"] = "http"
    url: str = Field(description="the switch's endpoint")
    method: Literal["POST", "PUT", "PATCH", "DELETE"] = Field(
        default="POST", description="the HTTP method that turns it on (and off, unless "
        "off_method is set)")
    off_method: Literal["POST", "PUT", "PATCH", "DELETE"] | None = Field(
        default=None, description="the method that turns it off; unset: method")
    on_body: dict[str, Any] = Field(
        default_factory=lambda: {"enabled": True},
        description="JSON body that turns it on")
    off_body: dict[str, Any] = Field(
        default_factory=lambda: {"enabled": False},
        description="JSON body that turns it off")
    send_body: bool = Field(
        default=True, description="false: the requests carry no body (on_body/off_body unused)")
    token: SecretStr | None = Field(
        default=None, description="the switch's credential; secret, masked everywhere; unset: "
        "no auth header")
    token_header: str = Field(
        default="Authorization", description="the header that carries the token, e.g. "
        "'Authorization' or 'X-Ops-Token'")
    token_format: str | None = Field(
        default=None, description="the header's value, {token} replaced by the token; unset: "
        "'Bearer {token}' in Authorization, the bare token in any other header")
    success_status: list[int] = Field(
        default_factory=list, description="statuses that mean the switch flipped; empty: any 2xx")

    @field_validator("token_format")
    @classmethod
    def _format_ok(cls, v: str | None) -> str | None:
        return token_format(v)

    def auth_headers(self) -> dict[str, str]:
        """The header that carries the token (none without a token)."""
        if self.token is None:
            return {}
        return {self.token_header: header_value(self.token_header, self.token_format,
                                                self.token.get_secret_value())}


class CommandSwitch(TargetTable):
    """Flip a switch by running a command (argv, no shell); exit 0 means done."""

    kind: Literal["command"] = "command"
    on: list[str] = Field(description="argv that turns it on")
    off: list[str] = Field(description="argv that turns it off")
    timeout_s: float = Field(default=60.0, description="each command is killed after this long")


class ComposeServiceSwitch(TargetTable):
    """``on`` starts the compose service (e.g. a maintenance page), ``off`` stops it."""

    kind: Literal["compose-service"] = "compose-service"
    service: str = Field(description="the compose service (in the deployer's project) that is "
                         "started for on and stopped for off")


SwitchConfig = Annotated[
    HttpSwitch | CommandSwitch | ComposeServiceSwitch, Field(discriminator="kind")
]


class MaintenancePage(TargetTable):
    """What the public URL shows while maintenance is on."""

    path: str = Field(default="/", description="the public page checked while maintenance is on")
    status: int = Field(default=503, description="the HTTP status it answers while on")
    expect_text: str | None = Field(
        default=None, description="text the maintenance page must contain; unset: the status "
        "alone is checked")
