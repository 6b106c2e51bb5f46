"""Deploy images with the Docker Engine API (pulls) and Compose v2 (the stack).

Pulls go through the Docker SDK so layer progress can be aggregated into one percentage
(``runbook.adapters.images``); the stack is driven by the ``docker compose`` CLI
(``runbook.adapters.compose``), which is what operators run by hand and what the compose file
is written for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from runbook.adapters.compose import ComposeProject, compose_cli, parse_ps_json
from runbook.adapters.images import (
    REVISION_LABEL,
    ImageInfo,
    Progress,
    PullProgress,
    classify_pull_error,
    short,
)
from runbook.errors import StepFailed
from runbook.target_deployers import ComposeDeployerConfig, ServiceImage

__all__ = ["REVISION_LABEL", "ComposeDeployer", "Deployer", "ImageInfo", "Progress",
           "PullProgress", "classify_pull_error", "compose_cli", "parse_ps_json", "short"]


class Deployer(Protocol):
    def pull(self, images: Iterable[str], progress: Progress) -> None: ...
    def inspect_revision(self, image: str) -> str | None: ...
    def current_images(self) -> dict[str, ImageInfo]: ...
    def up(self, tag_env: Mapping[str, str], progress: Progress) -> list[str]: ...
    def wait_healthy(self, deadline: float, services: list[str] | None = None) -> Any: ...
    def revert(self, previous: Mapping[str, ImageInfo], progress: Progress) -> list[str]: ...


class ComposeDeployer(ComposeProject):
    """A ``Deployer`` for a Compose v2 project: the Docker Engine for images, the compose CLI
    (:class:`ComposeProject`) for the stack."""

    def __init__(self, cfg: ComposeDeployerConfig, **kw: Any):
        super().__init__(cfg, **kw)
        self._client: Any = None
        self._client_lock = threading.Lock()  # deploy reads what runs while it pulls

    # -- docker engine -------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        with self._client_lock:
            return self._docker_client()

    def _docker_client(self) -> Any:
        if self._client is None:
            import docker
            from docker.errors import DockerException

            try:
                if self.cfg.docker_host:
                    self._client = docker.DockerClient(
                        base_url=self.cfg.docker_host, version="auto", timeout=self.cfg.pull_timeout_s
                    )
                else:
                    self._client = docker.from_env(timeout=int(self.cfg.pull_timeout_s))
            except DockerException as e:
                where = self.cfg.docker_host or os.environ.get("DOCKER_HOST", "the local socket")
                raise StepFailed(
                    f"Docker daemon unreachable at {where}: {self._mask(str(e))[:200]}"
                ) from None
        return self._client

    def pull(self, images: Iterable[str], progress: Progress) -> None:
        """Pull each image, reporting aggregated layer progress."""
        from docker.errors import APIError, DockerException
        from requests.exceptions import RequestException

        api = self.client.api
        for image in images:
            repo, _, tag = image.rpartition(":")
            tracker = PullProgress(image, progress)
            try:
                for event in api.pull(repo, tag=tag, stream=True, decode=True):
                    if "error" in event or "errorDetail" in event:
                        msg = event.get("error") or (event.get("errorDetail") or {}).get("message")
                        raise StepFailed(classify_pull_error(str(msg), image, self.cfg.registry))
                    tracker.feed(event)
            except APIError as e:
                msg = str(e.explanation or e)
                raise StepFailed(
                    self._mask(classify_pull_error(msg, image, self.cfg.registry))
                ) from None
            except (RequestException, DockerException) as e:
                raise StepFailed(
                    self._mask(f"Docker daemon unreachable while pulling {image}: {e}")[:300]
                ) from None
            progress(f"pulled {image} ({tracker.describe()})")

    def image_info(self, image: str) -> ImageInfo:
        from docker.errors import DockerException, ImageNotFound

        try:
            img = self.client.images.get(image)
        except ImageNotFound:
            return ImageInfo(image, None, None)
        except DockerException as e:
            raise StepFailed(self._mask(f"cannot inspect {image}: {e}")[:300]) from None
        return ImageInfo(image, img.id, (img.labels or {}).get(REVISION_LABEL))

    def inspect_revision(self, image: str) -> str | None:
        return self.image_info(image).revision

    def _service_image(self, svc: ServiceImage) -> str:
        return f"{self.cfg.registry}/{svc.repository}"

    def current_images(self, rows: list[dict[str, Any]] | None = None) -> dict[str, ImageInfo]:
        """What each running service runs: the container's image reference, id and revision.
        ``rows``: a ``ps`` of the running containers just taken (``wait_healthy``'s), else
        this asks compose."""
        from docker.errors import DockerException, NotFound

        out: dict[str, ImageInfo] = {}
        for row in self.ps() if rows is None else rows:
            service = row.get("Service")
            if not service:
                continue
            ref = row.get("Image", "")
            image_id, revision = None, None
            try:
                container = self.client.containers.get(row.get("ID") or row.get("Name"))
                image_id = container.attrs.get("Image")
                ref = container.attrs.get("Config", {}).get("Image") or ref
                revision = (container.attrs.get("Config", {}).get("Labels") or {}).get(REVISION_LABEL)
                if revision is None and image_id:
                    revision = (self.client.images.get(image_id).labels or {}).get(REVISION_LABEL)
            except NotFound:
                pass
            except DockerException as e:
                raise StepFailed(self._mask(f"cannot inspect {service}: {e}")[:300]) from None
            out[service] = ImageInfo(ref, image_id, revision)
        return out

    def current_tag_env(self) -> dict[str, str]:
        """Tag variables that reproduce what runs now (so a compose call changes nothing else)."""
        env: dict[str, str] = {}
        running = self.current_images()
        for svc in self.cfg.services:
            info = running.get(svc.service)
            if info and info.tag and info.image.startswith(self._service_image(svc) + ":"):
                env[svc.tag_variable] = info.tag
        return env

    def tag_env(self, tag: str) -> dict[str, str]:
        return {svc.tag_variable: tag for svc in self.cfg.services}

    def up(self, tag_env: Mapping[str, str], progress: Progress, *,
           services: list[str] | None = None, timeout: float | None = None,
           what: str = "deploy") -> list[str]:
        """``compose up -d --wait --no-build --no-deps`` of ``services`` (default: the
        configured ones, those that take the release image) with the given tag variables, and
        nothing else: what compose would do to the other services is found out first, said on
        the card, and refused unless ``allow_recreate`` names them. Returns the services it
        brought up (the ones to wait for)."""
        timeout = timeout or self.cfg.up_timeout_s
        names = list(services or [s.service for s in self.cfg.services])
        self.require_passthrough()
        if self.cfg.env_passthrough:
            progress(self._mask("environment passed through: " + ", ".join(
                f"{k}={os.environ[k]}" for k in self.cfg.env_passthrough)))
        plan = self.plan_up(names, tag_env)
        if plan.drifted:
            progress(f"left as they run: {', '.join(plan.drifted)} (compose's config for "
                     f"{'it' if len(plan.drifted) == 1 else 'them'} differs from what runs, e.g. "
                     "a variable the bot does not pass; this deploy does not recreate "
                     f"{'it' if len(plan.drifted) == 1 else 'them'})")
        allowed = set(self.cfg.allow_recreate)
        refused = {s: why for s, why in plan.others.items() if not allowed & {s, "*"}}
        for svc, why in plan.others.items():
            progress(f"⚠️ compose would also recreate {svc}: {why}"
                     + ("" if svc in refused else " (allowed by allow_recreate)"))
        if refused:
            raise StepFailed(
                f"refusing to {what}: docker "
                f"compose would also recreate {', '.join(refused)}, which "
                f"{'is' if len(refused) == 1 else 'are'} not among the services that take the "
                f"release image ({', '.join(names)}): "
                + "; ".join(f"{s}: {why}" for s, why in refused.items())
                + ". Nothing was changed. If that is intended, name "
                f"{'it' if len(refused) == 1 else 'them'} in [target.deployer] allow_recreate.")
        names += [s for s in plan.others if s not in names]
        if not plan.dry_run:
            progress("this docker compose has no `up --dry-run`: only the services sharing a "
                     "deployed container were checked")
        elif not plan.others:
            progress(f"checked with `docker compose up --dry-run`: only {', '.join(names)} "
                     "change; every other service is left as it runs")
        progress(f"docker compose up --no-deps {' '.join(names)} "
                 f"({', '.join(f'{k}={v}' for k, v in tag_env.items())})")
        try:
            self.compose("up", "-d", "--wait", "--wait-timeout", str(int(max(1, timeout))),
                         "--no-build", "--no-deps", *names, env=tag_env, timeout=timeout + 30,
                         what="docker compose up")
        except StepFailed as e:
            if e.message.startswith("containers not healthy"):
                raise StepFailed(e.message + self._unhealthy_logs(tag_env, names),
                                 facts=e.facts) from None
            raise
        progress(f"{', '.join(names)} up and healthy")
        return names

    def start_service(self, service: str, progress: Progress, *, timeout: float = 120.0) -> None:
        env = self.current_tag_env()
        self.compose("up", "-d", "--wait", "--no-deps", "--no-build", service, env=env,
                     timeout=timeout, what=f"docker compose up {service}")
        progress(f"compose service {service} started")

    def revert(self, previous: Mapping[str, ImageInfo], progress: Progress,
               *, timeout: float | None = None) -> list[str]:
        """Run each service on the exact image it ran before the deploy; only those services
        are recreated (``up``). Returns the services brought up."""
        by_service = {s.service: s for s in self.cfg.services}
        env: dict[str, str] = {}
        for service, info in previous.items():
            svc = by_service.get(service)
            if svc is None:
                continue
            if not info.tag:
                raise StepFailed(f"{service}: previous image {info.image} has no tag to revert to")
            env[svc.tag_variable] = info.tag
            local = self.image_info(info.image)
            if info.image_id and local.image_id != info.image_id:
                # The tag moved since the deploy: point it back at the image that ran before.
                from docker.errors import DockerException, ImageNotFound

                try:
                    img = self.client.images.get(info.image_id)
                    repo, _, tag = info.image.rpartition(":")
                    img.tag(repo, tag)
                    progress(f"{service}: re-tagged {short(info.image_id, 19)} as {info.image}")
                except ImageNotFound:
                    self.pull([info.image], progress)
                    if self.image_info(info.image).image_id != info.image_id:
                        raise StepFailed(
                            f"{service}: {info.image} now points at a different image than the one "
                            f"that ran before ({short(info.image_id, 19)}); not reverting blindly"
                        ) from None
                except DockerException as e:
                    raise StepFailed(self._mask(f"cannot re-tag {info.image}: {e}")[:300]) from None
            elif local.image_id is None:
                self.pull([info.image], progress)
        if not env:
            raise StepFailed("nothing to revert: no previous image recorded for a deployed service")
        return self.up(env, progress, services=[s for s in previous if s in by_service],
                       timeout=timeout, what="revert")
