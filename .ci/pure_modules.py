"""Print every pure module of the project, one a line, as a path mypy takes.

Pure: nothing it imports, directly or through other modules, is an I/O package (the list
`forbidden_modules` of the import-linter contract "pure-rooms" in pyproject.toml: databases,
HTTP, Slack, Docker, Kubernetes, processes, sockets, threads). The dev package (bot/dev) is left
out: it is not the bot. `.ci/run` step 5 type-checks exactly this list, so a module that becomes
pure is checked without anyone adding it by hand.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "commands", "runbook")


def io_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (pure,) = [c for c in config["contracts"] if c["id"] == "pure-rooms"]
    return set(pure["forbidden_modules"])


def pure_modules() -> list[str]:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)
    io = io_packages()
    out = []
    for module in sorted(graph.modules):
        if module.split(".")[0] not in PACKAGES or module.startswith("bot.dev"):
            continue
        if not any(up.split(".")[0] in io for up in graph.find_upstream_modules(module)):
            out.append(module)
    return out


def as_path(module: str) -> str:
    base = ROOT.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return str(path.relative_to(ROOT))


if __name__ == "__main__":
    print("\n".join(as_path(m) for m in pure_modules()))
