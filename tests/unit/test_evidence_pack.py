"""The rehearsal's evidence pack holds the canary report and the chart it links (no Slack,
no database: the pack is files on disk)."""

from __future__ import annotations

import re
from pathlib import Path

import runbook.templates
from bot.audit.pack import check_pack, write_pack
from bot.canary.cards import chart_name
from bot.dev.rehearse.evidence import canary_files
from runbook.canary.report import _sample, load_template, render_report

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
TEMPLATE = Path(runbook.templates.__file__).parent / "canary_report.md"


def test_the_packs_report_links_the_chart_by_the_name_the_pack_holds(tmp_path: Path):
    state = _sample("GO")
    report = render_report(state, load_template(TEMPLATE), chart=chart_name(state.run_id))
    uploads = [(f"canary-report-run{state.run_id}.md", report.encode()),
               (chart_name(state.run_id), PNG)]
    pack = write_pack(tmp_path / "pack", {"audit.jsonl": "", **canary_files(report, uploads)},
                      {"kind": "test", "audit_export": "audit.jsonl"})
    text = (pack / "canary-report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links, f"the report links no chart:\n{text}"
    for link in links:
        assert (pack / link).read_bytes() == PNG, f"the report links {link}, the pack holds " \
            f"{sorted(p.name for p in pack.iterdir())}"
    assert check_pack(pack)[1] == [], "the pack's sums cover the chart"


def test_no_report_and_no_chart_leave_nothing_of_the_canary():
    assert canary_files(None, [("transcript.txt", b"x"), ("empty.png", None)]) == {}
