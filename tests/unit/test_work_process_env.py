"""`golive serve`'s work process is started without the door role's URL: only the door may
write an inbox row (docs/THREAT_MODEL.md), so the process that trusts those rows holds no
credential that could write one."""

from __future__ import annotations

import json
import sys

from bot.supervise import WorkProcess
from tests.support.poll import wait_until

CHILD = """
import json, os, signal, sys
out, fd = sys.argv[1], int(sys.argv[sys.argv.index("--ready-fd") + 1])
with open(out, "w") as f:
    json.dump({k: os.environ.get(k) for k in ("DATABASE_URL", "GOLIVE_DOOR_DATABASE_URL")}, f)
os.write(fd, b"ready\\n")
signal.pause()
"""


def test_the_work_process_does_not_get_the_door_url(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://golive_runtime@db/golive")
    monkeypatch.setenv("GOLIVE_DOOR_DATABASE_URL", "postgresql://golive_door:s3cret@db/golive")
    out = tmp_path / "env.json"
    work = WorkProcess([sys.executable, "-c", CHILD, str(out)]).start()
    try:
        wait_until("the work process reporting ready", lambda: work.status() is None,
                   timeout=20)
        seen = json.loads(out.read_text())
    finally:
        work.stop()
    assert seen["DATABASE_URL"] == "postgresql://golive_runtime@db/golive", seen
    assert seen["GOLIVE_DOOR_DATABASE_URL"] is None, "the work process got the door's URL"
