"""Lint migration SQL with squawk (PyPI ``squawk-cli``, pinned in pyproject).

squawk exits 1 both when it finds something and when it fails itself, so the outcome is read
from its JSON report: a JSON list is findings (possibly none); anything else, or only
``syntax-error`` entries, is squawk's own failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runbook.adapters.redact import tail


class SquawkError(Exception):
    """squawk could not lint (missing binary, parse error, crash)."""


@dataclass(frozen=True)
class Finding:
    line: int
    rule: str
    level: str
    message: str
    help: str | None
    statement: str

    def __str__(self) -> str:
        tip = f" ({self.help})" if self.help else ""
        return f"line {self.line}: {self.rule}: {self.message}{tip} — {self.statement[:120]}"


def _binary(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def for_alembic(sql: str) -> str:
    """alembic's offline SQL with its own ``BEGIN;``/``COMMIT;`` lines blanked out (same line
    numbers), since ``--assume-in-transaction`` already models the transaction alembic runs."""
    keep = []
    for line in sql.splitlines():
        keep.append("-- (alembic transaction)" if line.strip() in ("BEGIN;", "COMMIT;") else line)
    return "\n".join(keep) + "\n"


def lint(sql: str, *, binary: str = "squawk", exclude: list[str] | None = None,
         pg_version: str | None = None, timeout: float = 30.0) -> list[Finding]:
    """squawk's findings for ``sql`` (alembic offline output)."""
    text = for_alembic(sql)
    lines = text.splitlines()
    with tempfile.TemporaryDirectory(prefix="golive-squawk-") as d:
        path = Path(d) / "migration.sql"
        path.write_text(text, encoding="utf-8")
        argv = [_binary(binary), "--reporter", "json", "--assume-in-transaction"]
        if exclude:
            argv.append("--exclude=" + ",".join(exclude))
        if pg_version:
            argv.append(f"--pg-version={pg_version}")
        try:
            r = subprocess.run([*argv, str(path)], capture_output=True, text=True,
                               timeout=timeout, check=False, cwd=d)
        except subprocess.TimeoutExpired:
            raise SquawkError(f"squawk did not finish within {timeout:.0f} s") from None
        except OSError as e:
            raise SquawkError(f"cannot run squawk ({binary}): {e.strerror or e}; install "
                              "squawk-cli") from None
    try:
        report = json.loads(r.stdout)
    except ValueError:
        raise SquawkError(f"squawk failed (exit {r.returncode}): "
                          f"{tail(r.stderr or r.stdout, 3, 300) or 'no output'}") from None
    if not isinstance(report, list):
        raise SquawkError("squawk's JSON report is not a list of findings")
    syntax = [e for e in report if e.get("rule_name") == "syntax-error"]
    if syntax:
        raise SquawkError(f"squawk could not parse the SQL: line {syntax[0].get('line', 0) + 1}: "
                          f"{syntax[0].get('message')}")
    out = []
    for e in report:
        n = int(e.get("line") or 0)
        stmt = lines[n].strip() if 0 <= n < len(lines) else ""
        out.append(Finding(line=n + 1, rule=str(e.get("rule_name")), level=str(e.get("level")),
                           message=str(e.get("message")), help=e.get("help"), statement=stmt))
    return out
