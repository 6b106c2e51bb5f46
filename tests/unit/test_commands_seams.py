"""What `commands/` may contain: handlers that call the engine and the builders in bot/slack/,
never hand-built Block Kit, SQL or HTTP (checked on the source, so a new command keeps it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

COMMANDS = sorted((Path(__file__).resolve().parents[2] / "commands").glob("*.py"))
FORBIDDEN = {
    "hand-built Block Kit (use the builders in bot/slack/)": re.compile(
        r"""["']type["']\s*:\s*["'](section|context|header|actions|divider|mrkdwn)["']"""),
    "SQL (ask the engine)": re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\s+\S+.*\b(FROM|INTO|SET)\b"
                                       r"|\.execute\(|\.transaction\("),
    "HTTP (the engine's adapters make calls)": re.compile(r"\b(httpx|requests|urllib)\b"),
}


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.name)
def test_a_command_builds_no_block_kit_and_runs_no_sql_or_http(path: Path):
    text = path.read_text(encoding="utf-8")
    found = [f"{path.name}:{text[:m.start()].count(chr(10)) + 1}: {what}"
             for what, rx in FORBIDDEN.items() for m in rx.finditer(text)]
    assert not found, "\n".join(found)
