"""Each public class name is defined once in bot/, commands/ and runbook/: two classes with one
name and two meanings (an approval's ``Click`` and a Slack payload's ``Click``) make a reader,
a grep and an import guess which one is meant (issue 19).

Private names (``_Model``) stay private to their module and are not counted.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "commands", "runbook")

PENDING: dict[str, str] = {}
"""Names still defined twice while another change that renames one of them is in flight:
name -> why. Empty when nothing is pending."""


def class_definitions(root: Path = ROOT) -> dict[str, list[str]]:
    """Public class name -> the modules (paths) that define it, at any nesting depth."""
    found: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    found[node.name].append(str(path.relative_to(root)))
    return found


def test_every_public_class_name_is_defined_once():
    twice = {name: where for name, where in class_definitions().items()
             if len(where) > 1 and name not in PENDING}
    assert not twice, "class names defined more than once (rename one of each): " + "; ".join(
        f"{name} in {', '.join(where)}" for name, where in sorted(twice.items()))


def test_the_check_finds_a_name_defined_twice(tmp_path):
    for package, module in (("bot", "a.py"), ("runbook", "b.py"), ("commands", "c.py")):
        (tmp_path / package).mkdir()
        (tmp_path / package / module).write_text(
            "class Twice:\n    pass\n\n\nclass _Private:\n    pass\n", encoding="utf-8")
    found = class_definitions(tmp_path)
    assert found["Twice"] == ["bot/a.py", "commands/c.py", "runbook/b.py"]
    assert "_Private" not in found


def test_pending_names_are_still_defined_twice():
    """An allowance outlives its reason silently: drop it once the rename has landed."""
    defs = class_definitions()
    stale = [name for name in PENDING if len(defs.get(name, [])) < 2]
    assert not stale, f"no longer defined twice, remove from PENDING: {stale}"
