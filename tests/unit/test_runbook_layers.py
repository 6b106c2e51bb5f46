"""runbook/: adapters sit below the step kinds, so they never import runbook.steps."""

from __future__ import annotations

import ast
from pathlib import Path

ADAPTERS = Path(__file__).resolve().parents[2] / "runbook" / "adapters"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names


def test_adapters_do_not_import_the_step_layer():
    checked = sorted(ADAPTERS.glob("*.py"))
    assert len(checked) >= 4, f"adapters not found under {ADAPTERS}"
    for path in checked:
        upward = {m for m in imported_modules(path) if m.startswith("runbook.steps")}
        assert not upward, f"{path.name} imports {upward}: adapters must not know the step layer"


def test_step_errors_are_one_class_wherever_they_are_imported_from():
    import runbook.errors
    import runbook.steps.base

    assert runbook.steps.base.StepFailed is runbook.errors.StepFailed, (
        "steps.base must re-export the StepFailed adapters raise, or `except` clauses miss it")
    assert runbook.steps.base.StepNotAvailable is runbook.errors.StepNotAvailable
    assert issubclass(runbook.errors.StepNotAvailable, runbook.errors.StepFailed)


def test_the_step_context_is_one_class_wherever_it_is_imported_from():
    import runbook.context
    import runbook.steps.base

    assert runbook.steps.base.StepContext is runbook.context.StepContext
    assert runbook.steps.base.StepResult is runbook.context.StepResult
