"""Where the release goes: ``[target.deployer]``, a Docker Compose v2 project
(:class:`ComposeDeployerConfig`) or a Kubernetes namespace (:class:`KubernetesDeployerConfig`),
and which of its services or containers take the release image. Pure.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from runbook.docker_ref import parse_reference
from runbook.target_fields import TargetTable, env_name, image_ref


class ServiceImage(TargetTable):
    """A compose service that takes the release image: the deploy step sets its tag and
    recreates it (and only it, ``--no-deps``)."""

    service: str = Field(description="the compose service name, e.g. app")
    repository: str = Field(description="image repository without registry, e.g. team/app")
    tag_variable: str = Field(description="env var the compose file reads the tag from, e.g. "
                              "APP_TAG (`image: ${REGISTRY}/team/app:${APP_TAG}`)")

    @field_validator("repository")
    @classmethod
    def _repo_ok(cls, v: str) -> str:
        ref = parse_reference(v)
        if ref.tag or ref.digest:
            raise ValueError("repository must not carry a tag or digest")
        return v

    @field_validator("tag_variable")
    @classmethod
    def _tag_variable_ok(cls, v: str) -> str:
        return env_name(v)


class ComposeDeployerConfig(TargetTable):
    """A Docker Compose v2 project. The deploy (and the rollback's revert) recreates only
    ``services``, with ``--no-deps``, and waits for those to be healthy; every other service
    of the project is left as it runs."""

    kind: Literal["compose"] = Field(default="compose", description="the deployer kind")
    compose_file: Path = Field(
        description="the project's compose file (relative paths from where the bot runs)")
    project: str = Field(description="the compose project name (`docker compose -p`)")
    env: dict[str, str] = Field(
        default_factory=dict, repr=False,
        description="variables passed to every compose call (`${VAR}` in the golive config "
        "expands from the bot's environment at load); values whose names look secret (TOKEN, "
        "PASSWORD, SECRET, DSN, ...) are masked in all output")
    env_passthrough: list[str] = Field(
        default_factory=list,
        description="names of variables taken from the bot's environment when the step runs "
        "and passed to compose as they are (the deploy refuses when one is unset, rather than "
        "let the compose file's default reach the service); secret-looking values are masked")
    services: list[ServiceImage] = Field(
        min_length=1,
        description="the services that take the release image: the only ones the deploy "
        "recreates and waits for")
    allow_recreate: list[str] = Field(
        default_factory=list,
        description="other services the deploy may recreate along when compose says it would "
        "(e.g. one that shares a deployed service's network namespace); '*' allows any. "
        "Default: none, the deploy refuses and names them before anything changes")
    registry: str = Field(description="the registry the images are pulled from, e.g. "
                          "registry.example.com or 127.0.0.1:5000")
    registry_variable: str | None = Field(
        default=None, description="env var through which the compose file reads the registry"
    )
    docker_host: str | None = Field(default=None, description="DOCKER_HOST; default from env")
    compose_command: list[str] | None = Field(
        default=None, description="override the compose CLI argv prefix, e.g. ['docker','compose']"
    )
    pull_timeout_s: float = Field(default=600.0, description="deadline of each image pull")
    up_timeout_s: float = Field(default=300.0, description="deadline of `docker compose up` "
                                "(its --wait-timeout)")

    @field_validator("env_passthrough")
    @classmethod
    def _passthrough_ok(cls, v: list[str]) -> list[str]:
        return [env_name(name) for name in v]

    @field_validator("project")
    @classmethod
    def _project_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", v):
            raise ValueError("compose project names are lowercase letters, digits, '_' and '-'")
        return v

    def image(self, svc: ServiceImage, tag: str) -> str:
        return image_ref(self.registry, svc.repository, tag)


class ContainerImage(TargetTable):
    """A container of a Deployment that takes the release image: the deploy sets its image
    (by digest) and waits for the Deployment's rollout."""

    deployment: str = Field(description="the Deployment's name (in the deployer's namespace)")
    container: str = Field(description="the container's name in its pod template")
    repository: str = Field(description="image repository without registry, e.g. team/app")

    @field_validator("repository")
    @classmethod
    def _repo_ok(cls, v: str) -> str:
        ref = parse_reference(v)
        if ref.tag or ref.digest:
            raise ValueError("repository must not carry a tag or digest")
        return v


class KubernetesDeployerConfig(TargetTable):
    """A namespace of a Kubernetes cluster. The deploy server-side applies the team's
    manifests (field manager ``field_manager``) with the release image, pinned by digest, in
    the ``containers`` named here, then waits until every Deployment of the manifests has
    rolled out. The rollback's revert re-applies them with the images recorded before."""

    kind: Literal["kubernetes"] = Field(description="the deployer kind")
    kubeconfig: Path | None = Field(
        default=None, description="the kubeconfig file the bot uses; unset: $KUBECONFIG or "
        "~/.kube/config, unless in_cluster")
    in_cluster: bool = Field(
        default=False, description="use the pod's service account (the bot runs in the "
        "cluster); kubeconfig and context are then ignored")
    context: str | None = Field(
        default=None, description="the kubeconfig context; unset: its current-context")
    namespace: str = Field(description="the namespace the manifests are applied to")
    manifests: Path = Field(
        description="the team's manifests: a directory of YAML files (*.yaml, *.yml; several "
        "documents a file; applied in file-name order) or one YAML file. Kustomizations are "
        "not rendered: render them to a file first (`kubectl kustomize`)")
    containers: list[ContainerImage] = Field(
        min_length=1, description="the containers that take the release image: "
        "[{ deployment, container, repository }]")
    registry: str = Field(description="the registry the cluster pulls the images from, e.g. "
                          "registry.example.com or 127.0.0.1:5000; the deploy reads each tag's "
                          "digest and revision label from it")
    registry_scheme: Literal["https", "http"] = Field(
        default="https", description="how golive reaches the registry's v2 API (http for a "
        "plain local registry such as 127.0.0.1:5000)")
    registry_token: SecretStr | None = Field(
        default=None, description="bearer token for the registry's v2 API; secret, masked")
    field_manager: str = Field(
        default="golive", description="the server-side apply field manager")
    rollout_timeout_s: float = Field(
        default=300.0, gt=0, description="how long the deploy waits for every Deployment's "
        "rollout to complete (within the step's own timeout)")
    poll_interval_s: float = Field(
        default=0.5, gt=0, description="how often the rollout's status is read")
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="deadline of each API request")

    @field_validator("namespace")
    @classmethod
    def _namespace_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", v):
            raise ValueError("a namespace is lowercase letters, digits and '-' (RFC 1123)")
        return v

    def image(self, c: ContainerImage, tag: str) -> str:
        return image_ref(self.registry, c.repository, tag)


DeployerConfig = Annotated[
    ComposeDeployerConfig | KubernetesDeployerConfig, Field(discriminator="kind")
]
