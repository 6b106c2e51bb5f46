"""Where the target's environment is read from: a running container, an env file, or this
process. Values are returned as is; the caller masks them."""

from __future__ import annotations

import os
import re
from pathlib import Path


class EnvSourceError(Exception):
    """The environment could not be read (no such container, file, daemon down)."""


_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines (``export`` prefix, quotes and ``#`` comments as docker/compose)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        m = _LINE.match(raw)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def from_file(path: Path) -> dict[str, str]:
    try:
        return parse_env_file(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise EnvSourceError(f"cannot read env file {path}: {e.strerror or e}") from None


def from_process() -> dict[str, str]:
    return dict(os.environ)


def from_container(name: str, docker_host: str | None = None, timeout: float = 10.0
                   ) -> dict[str, str]:
    """The environment a running container was started with (``Config.Env``)."""
    import docker
    from docker.errors import DockerException, NotFound

    try:
        client = (docker.DockerClient(base_url=docker_host, timeout=int(timeout)) if docker_host
                  else docker.from_env(timeout=int(timeout)))
    except DockerException as e:
        raise EnvSourceError(f"Docker daemon unreachable: {str(e)[:200]}") from None
    try:
        container = client.containers.get(name)
        if container.status != "running":
            raise EnvSourceError(f"container {name} is {container.status}, not running")
        env = container.attrs.get("Config", {}).get("Env") or []
    except NotFound:
        raise EnvSourceError(f"no container named {name}") from None
    except DockerException as e:
        raise EnvSourceError(f"cannot inspect container {name}: {str(e)[:200]}") from None
    finally:
        client.close()
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
