"""The engine's shape (issue 19 part 2): objects with collaborators, not an inheritance chain,
and nothing outside the engine reaching into it (.ci/engine_shape.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("engine_shape", ROOT / ".ci" / "engine_shape.py")
shape = importlib.util.module_from_spec(spec)
spec.loader.exec_module(shape)


def test_the_repository_has_the_engines_shape():
    assert shape.problems() == []


def test_an_engine_class_inheriting_from_another_is_found():
    found = shape.inheritance({
        "bot/engine/a.py": "class Core:\n    pass\n",
        "bot/engine/b.py": "from bot.engine.a import Core\nclass Worker(Core):\n    pass\n",
        "bot/engine/c.py": "class Refused(Exception):\n    pass\nclass P(Protocol):\n    pass\n"})
    assert found == ["bot/engine/b.py:2: class Worker(Core)"]


def test_an_object_reaching_a_siblings_private_method_is_found():
    found = shape.reached_privates({"bot/engine/a.py": (
        "import os\nclass A:\n    def f(self):\n        self._b._close(1)\n"
        "        self._own()\n        os._exit(0)\n")})
    assert found == ["bot/engine/a.py:4: self._b._close"]


def test_reading_an_engines_db_deps_or_private_attribute_outside_it_is_found():
    found = shape.engine_internals({"tests/x.py": (
        "bot.engine.deps.now = 1\nruntime.engine.db.transaction()\nctx.engine._audit(c)\n"
        "engine._wake.set()\nbot.engine.request(actor=a)\nbot.engine.runbook.step('x')\n")})
    assert sorted(f.split(": ", 1)[1] for f in found) == [
        "bot.engine.deps", "ctx.engine._audit", "engine._wake", "runtime.engine.db"]
