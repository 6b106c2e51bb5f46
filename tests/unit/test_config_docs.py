"""golive.example.toml documents every key the schema accepts, and every key has a description.

The keys come from the pydantic models themselves (``bot.config_schema.walk``: the whole config
from ``bot.team_config.GoliveConfig`` down, target, preflight, watches, canary, rollback), so a
field added without a description, or without a line in the example, fails here. A model used in
two places (the maintenance and the traffic switch, the watches' shared fields) is documented
once; commented-out lines in the example count (they show an optional key in use).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from bot.config_schema import Key, render, walk

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "golive.example.toml"

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')
_TOKEN = re.compile(r"([A-Za-z0-9_\-]+)\s*=|\{|\}")


def example_paths(text: str) -> set[str]:
    """Every dotted key path the example names, in a live line or a commented-out one."""
    paths: set[str] = set()
    table = ""
    pending = ""  # an inline table or array still open on the next line
    for raw in text.splitlines():
        line = raw.strip()
        while line.startswith("#"):
            line = line[1:].strip()
        line = _STRING.sub('""', line).split("#")[0].strip()  # no strings, no trailing comment
        if pending:
            pending += " " + line
        else:
            header = _HEADER.match(line)
            if header:
                table = header.group(1)
                parts = table.split(".")
                paths.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
                continue
            if not _KEY.match(line):
                continue
            pending = line
        code = pending
        if code.count("{") + code.count("[") > code.count("}") + code.count("]"):
            continue  # the value goes on: read the next line with it
        stack: list[str] = [table] if table else []
        last = ""
        for m in _TOKEN.finditer(code):
            if m.group(1):
                last = m.group(1)
                paths.add(".".join([*stack, last]))
            elif m.group(0) == "{":
                stack.append(last)
            elif len(stack) > (1 if table else 0):
                stack.pop()
        pending = ""
    return paths


def _pattern(path: str) -> re.Pattern[str]:
    parts = [r"[^.]+" if p == "*" else re.escape(p.removesuffix("[]")) for p in path.split(".")]
    return re.compile(r"\.".join(parts))


def _by_field(keys: list[Key]) -> dict[tuple[type, str], list[Key]]:
    out: dict[tuple[type, str], list[Key]] = defaultdict(list)
    for k in keys:
        out[(k.owner, k.name)].append(k)
    return out


def test_every_key_has_a_description():
    missing = sorted({f"{k.owner.__module__}.{k.owner.__name__}.{k.name}"
                      for k in walk() if not k.description})
    assert not missing, ("keys without a description (Field(description=...) or a docstring "
                         "under the field):\n  " + "\n  ".join(missing))


def test_the_example_documents_every_key():
    named = example_paths(EXAMPLE.read_text(encoding="utf-8"))
    missing = []
    for keys in _by_field(walk()).values():
        if not any(_pattern(k.path).fullmatch(p) for k in keys for p in named):
            missing.append(" or ".join(sorted({k.path for k in keys})))
    assert not missing, (f"keys {EXAMPLE.name} does not show (add a line, commented out when "
                         "optional):\n  " + "\n  ".join(sorted(missing)))


def test_the_example_names_no_key_the_schema_refuses():
    patterns = [_pattern(k.path) for k in walk()]
    named = example_paths(EXAMPLE.read_text(encoding="utf-8"))
    # Free-form tables (expect, env, variables, invariants, groups, on/off bodies) hold the
    # team's own names: a path under one of them is the team's, not the schema's.
    free = [_pattern(k.path) for k in walk() if k.type.startswith("table of")
            or k.type in ("any",)]
    unknown = sorted(p for p in named if not any(r.fullmatch(p) for r in patterns)
                     and not any(re.match(r.pattern + r"\.", p) for r in free))
    assert not unknown, f"{EXAMPLE.name} shows keys the schema does not accept: {unknown}"


def test_the_parser_reads_commented_and_inline_keys():
    text = """
[a]
x = 1                     # live
# y = { z = "{tag}", w = [1, 2] }
# [a.b]
# q = [{ r = 1,
#        s = 2 }]
"""
    assert {"a", "a.x", "a.y", "a.y.z", "a.y.w", "a.b", "a.b.q", "a.b.q.r",
            "a.b.q.s"} <= example_paths(text)


def test_config_schema_prints_every_key_with_type_default_and_description():
    r = subprocess.run([sys.executable, "-m", "bot.cli", "config", "schema"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == render(), "`golive config schema` is not the rendered schema"
    for line in ("[target.health]", "[target.maintenance]  (kind = \"http\")",
                 "[preflight.team_scripts[]]", "[canary.roles.*]", "[watches.payouts]"):
        assert line in r.stdout, f"no table {line}:\n{r.stdout[:2000]}"
    assert re.search(r"^  max_age_minutes : integer = 60\n      \S", r.stdout, re.MULTILINE), \
        "a key's line does not show its type, default and description"
