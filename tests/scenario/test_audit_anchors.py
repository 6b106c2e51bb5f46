"""The audit chain's head anchored outside the database (the finish card, anchor files and URLs)
catches a log that was truncated or rewritten; and every command leaves an audit row, even one
with text PostgreSQL cannot store."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import psycopg
import pytest

from bot import audit
from tests.support import pg
from tests.support.cli import golive

KEY_ID = audit.key_id(pg.TEST_AUDIT_KEY.encode())


def wipe_log(url: str) -> None:
    """A superuser empties the audit log behind the bot's back (triggers skipped)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("TRUNCATE audit_log")
        conn.execute("UPDATE audit_head SET last_id = 0, last_hash = repeat('0', 64)")


def test_finish_shows_the_short_head_that_verify_accepts(bot, clean_db):
    bot.command("alice", "start v2")
    reply = bot.command("alice", "finish")
    m = re.search(r"audit head `(\d+:[0-9a-f]{16})`", reply)
    assert m, f"the finish card must show the short chain head: {reply}"
    short, full = m.group(1), reply.split("rows: `")[1].split("`")[0]
    assert full.startswith(short.split(":")[1])
    for anchor in (short, full):
        r = golive("audit", "verify", "--head", anchor, url=clean_db)
        assert r.returncode == 0 and "1 anchor(s) hold" in r.stdout, r.stdout + r.stderr
    bot.command("bob", "status")
    r = golive("audit", "verify", "--head", short, url=clean_db)
    assert r.returncode == 0, f"an anchor must hold while the log grows: {r.stdout}"

    wipe_log(clean_db)
    bot.command("bob", "status")  # a fresh, self-consistent log
    assert golive("audit", "verify", url=clean_db).returncode == 0, "consistent on its own"
    r = golive("audit", "verify", "--head", short, url=clean_db)
    assert r.returncode == 1 and "truncated or rewritten" in r.stdout, r.stdout


def test_anchor_appends_to_a_file_and_verify_checks_every_anchor_in_it(bot, clean_db, tmp_path):
    anchors = tmp_path / "anchors.jsonl"
    bot.command("alice", "start v2")
    assert golive("audit", "anchor", "--to", str(anchors), url=clean_db).returncode == 0
    bot.command("bob", "status")
    r = golive("audit", "anchor", "--to", str(anchors), url=clean_db)
    assert r.returncode == 0 and "anchored" in r.stdout, r.stdout + r.stderr
    records = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert len(records) == 2, "each anchor is appended, none overwritten"
    assert all(rec["key_id"] == KEY_ID for rec in records)
    assert pg.TEST_AUDIT_KEY not in anchors.read_text(), "the key never leaves the process"
    assert records[1]["head_id"] > records[0]["head_id"]

    r = golive("audit", "verify", "--head", str(anchors), url=clean_db)
    assert r.returncode == 0 and "2 anchor(s) hold" in r.stdout, r.stdout + r.stderr

    wipe_log(clean_db)
    r = golive("audit", "verify", url=clean_db)
    assert r.returncode == 0 and "empty log proves nothing" in r.stdout, r.stdout
    r = golive("audit", "verify", "--head", str(anchors), url=clean_db)
    assert r.returncode == 1, f"an empty log must fail against an anchor: {r.stdout}"
    assert f"no audit row {records[0]['head_id']}" in r.stdout, r.stdout


@pytest.fixture
def anchor_url():
    """A stand-in for the operator's anchor service: keeps what is POSTed, serves it on GET."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            self.send_response(201)
            self.end_headers()

        def do_GET(self):
            body = "\n".join(received).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/anchors", received
    server.shutdown()


def test_anchor_posts_to_a_url_and_verify_reads_it_back(bot, clean_db, anchor_url):
    url, received = anchor_url
    bot.command("alice", "start v2")
    r = golive("audit", "anchor", "--to", url, url=clean_db)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(received) == 1 and json.loads(received[0])["type"] == "audit-anchor"
    assert golive("audit", "verify", "--head", url, url=clean_db).returncode == 0
    wipe_log(clean_db)
    assert golive("audit", "verify", "--head", url, url=clean_db).returncode == 1


def test_a_command_with_a_nul_character_still_leaves_an_audit_row(bot, clean_db):
    bot.command("alice", "status\x00; DROP TABLE runs")
    rows = pg.wait_for_rows(clean_db, "SELECT detail->>'text' FROM audit_log"
                                      " WHERE action = 'command'")
    assert [r[0] for r in rows] == ["status\\u0000; DROP TABLE runs"], \
        f"the command must be audited with the NUL escaped, got {rows}"
    assert golive("audit", "verify", url=clean_db).returncode == 0
