"""`golive rehearse`: the whole cutover on the sample stack with scripted people (run.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    s = sub.add_parser("rehearse", help="rehearse the whole cutover on the sample stack with "
                                        "scripted people; writes an evidence pack")
    s.add_argument("--with-rollback", action="store_true",
                   help="then fire a rollback trigger (payout failures) and roll back")
    s.add_argument("--autopilot", action="store_true",
                   help="drive the night with `/golive go` and the approvals only (the canary "
                        "and sign-offs by people as before); reports the human actions and "
                        "messages next to the manual rehearsal's")
    s.add_argument("--keep", action="store_true",
                   help="leave the sample stack and the embedded database running")
    s.add_argument("--data-dir", type=Path, help="embedded database, config and packs "
                                                 "(default: the demo's data directory)")
    s.add_argument("--out", type=Path, help="the evidence pack's directory")
