"""The engine's shape (issue 19 part 2), checked on the source (tests/unit/test_engine_shape.py
runs it; ``python .ci/engine_shape.py`` prints what it finds):

- no class in bot/engine/ inherits from another class defined in bot/engine/ (objects take
  their collaborators in their constructors instead);
- inside bot/engine/, no object reaches another's private attribute (``x._y`` where ``x`` is
  not ``self``/``cls``);
- outside bot/engine/, nothing reads an engine's ``.db``, ``.deps`` or an ``_``-prefixed
  attribute (``<...>.engine.db``, ``engine._audit``...): the commands, listeners, rooms, tests
  and benchmarks use the facade's public calls.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "bot" / "engine"
OUTSIDE = ("bot", "commands", "tests", "bench", "runbook")
SKIP = (".venv", "__pycache__")


def _py(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out += [f for f in sorted(p.rglob("*.py")) if not any(s in f.parts for s in SKIP)]
    return out


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):  # Generic[T]
        return _base_name(node.value)
    return None


def inheritance(sources: dict[str, str]) -> list[str]:
    """``module: class X(Y)`` for every engine class whose base is an engine class."""
    trees = {name: ast.parse(src) for name, src in sources.items()}
    engine_classes = {n.name for t in trees.values() for n in ast.walk(t)
                      if isinstance(n, ast.ClassDef)}
    found = []
    for name, tree in trees.items():
        for n in ast.walk(tree):
            if isinstance(n, ast.ClassDef):
                for b in n.bases:
                    base = _base_name(b)
                    if base in engine_classes:
                        found.append(f"{name}:{n.lineno}: class {n.name}({base})")
    return found


def _private(attr: str) -> bool:
    return attr.startswith("_") and not attr.startswith("__")


def reached_privates(sources: dict[str, str]) -> list[str]:
    """Inside the engine: ``other._x`` (another object's private attribute)."""
    found = []
    for name, src in sources.items():
        tree = ast.parse(src)
        modules = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                   for a in n.names}  # os._exit is the standard library's, not an object's
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and _private(n.attr) and not (
                    isinstance(n.value, ast.Name)
                    and (n.value.id in ("self", "cls") or n.value.id in modules)):
                found.append(f"{name}:{n.lineno}: {ast.unparse(n)}")
    return found


def _is_engine(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id in ("engine", "_engine")) or (
        isinstance(node, ast.Attribute) and node.attr in ("engine", "_engine"))


def engine_internals(sources: dict[str, str]) -> list[str]:
    """Outside the engine: ``<engine>.db``, ``<engine>.deps``, ``<engine>._x``."""
    found = []
    for name, src in sources.items():
        for n in ast.walk(ast.parse(src)):
            if isinstance(n, ast.Attribute) and _is_engine(n.value) and (
                    n.attr in ("db", "deps") or _private(n.attr)):
                found.append(f"{name}:{n.lineno}: {ast.unparse(n)}")
    return found


def _read(files: list[Path]) -> dict[str, str]:
    return {str(f.relative_to(ROOT)): f.read_text(encoding="utf-8") for f in files}


def problems() -> list[str]:
    engine = _read(_py([ENGINE]))
    outside = _read([f for f in _py(ROOT / p for p in OUTSIDE) if ENGINE not in f.parents
                     and f.name != "engine_shape.py"])
    return inheritance(engine) + reached_privates(engine) + engine_internals(outside)


if __name__ == "__main__":
    found = problems()
    print("\n".join(found) or "the engine's shape holds")
    sys.exit(1 if found else 0)
