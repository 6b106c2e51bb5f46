"""The plan service on the bot's real database: the plan of the active run stored with its
digest, its audit row, its two outbox rows (card and file, rendered from the row), the
expected durations from recorded attempts; no tag, no plan (a clear reason)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import runbook.steps.catalog  # noqa: F401 - registers the step kinds
from bot.outbox import Outbox
from bot.plan.service import PlanService
from bot.store.db import Database
from runbook.model import default_runbook_path, load_runbook
from runbook.plan.digest import plan_digest
from runbook.plan.model import PlanError
from runbook.steps.base import REGISTRY
from runbook.target import TargetConfig

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
TOKEN = "tok-" + "9" * 20


@pytest.fixture
def service(clean_db):
    db = Database(clean_db)
    db.open(wait=True)
    target = TargetConfig.model_validate({
        "name": "toy", "public_url": "http://127.0.0.1:9", "health": {"path": "/health"},
        "maintenance": {"kind": "http", "url": "http://127.0.0.1:9/ops/m", "token": TOKEN}})
    svc = PlanService(db=db, runbook=load_runbook(default_runbook_path(),
                                                  known_kinds=REGISTRY.keys()),
                      target=target, audit_key=b"k" * 32, now=lambda: NOW, outbox=Outbox())
    yield svc
    db.close()


def _sql(url: str, sql: str, *args):
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, args)
        return cur.fetchall() if cur.description else []


def _run_with_history(url: str) -> int:
    (rid,) = _sql(url, "INSERT INTO runs (channel, rc_tag, started_by, started_at, facts) VALUES"
                       " ('C1', 'v2', 'U1', now(), '{}') RETURNING id")[0]
    for attempt, secs in enumerate((40, 20, 30), 1):
        start = NOW - timedelta(hours=attempt)
        _sql(url, "INSERT INTO step_executions (run_id, step_id, attempt, state, requested_by,"
                  " channel, started_at, finished_at) VALUES (%s, 'maintenance-on', %s,"
                  " 'succeeded', 'U1', 'C1', %s, %s)", rid, attempt, start,
             start + timedelta(seconds=secs))
    _sql(url, "INSERT INTO step_executions (run_id, step_id, attempt, state, requested_by,"
              " channel, started_at, finished_at) VALUES (%s, 'maintenance-on', 4, 'failed',"
              " 'U1', 'C1', %s, %s)", rid, NOW, NOW + timedelta(seconds=500))
    return rid


def test_the_active_runs_plan_is_stored_audited_and_posted(service, clean_db):
    rid = _run_with_history(clean_db)
    stored = service.plan_for(actor="U_ALICE", channel="C1")
    assert stored.plan.run_id == rid and stored.plan.rc_tag == "v2"
    assert stored.digest == plan_digest(stored.plan)
    on = stored.plan.step("maintenance-on")
    assert (on.expected_s, on.history) == (30.0, 3), "the median of the successful attempts"
    assert "POST http://127.0.0.1:9/ops/m" in on.does[0]
    ((pid, digest, md),) = _sql(clean_db, "SELECT id, digest, markdown FROM plans")
    assert (pid, digest) == (stored.id, stored.digest)
    ((detail,),) = _sql(clean_db, "SELECT detail FROM audit_log WHERE action = 'plan'")
    assert detail["digest"] == digest
    assert detail["file_sha256"] == hashlib.sha256(md.encode()).hexdigest()
    assert sorted(k for (k,) in _sql(clean_db, "SELECT key FROM outbox")) == [
        f"card:plan:{pid}", f"upload:plan:{pid}"]
    with service.db.connection() as conn:
        card = service.render_card(conn, str(pid), None)
        upload = service.render_file(conn, str(pid), None)
    assert len(card["blocks"]) <= 50 and digest in json.dumps(card["blocks"])
    assert upload["content"] == md and upload["filename"] == f"plan-v2-{pid}.md"
    # the unresolved parts say why (no deployer, no database here)
    assert "no [target.deployer]" in md or "deployer" in md
    for text in (md, json.dumps(card), json.dumps(detail)):
        assert TOKEN not in text


def test_no_run_and_no_tag_is_a_clear_reason(service, clean_db):
    with pytest.raises(PlanError, match="no release candidate"):
        service.plan_for(actor="U1", channel="C1")
    with pytest.raises(PlanError, match="no run 42"):
        service.compute(run_id=42)
    plan = service.compute(rc_tag="v3")
    assert plan.rc_tag == "v3" and plan.run_id is None
    assert _sql(clean_db, "SELECT count(*) FROM plans") == [(0,)], "compute stores nothing"


def test_the_plan_in_an_evidence_pack_is_held_to_its_audit_row(service, clean_db, tmp_path):
    """The pack's plan file and digest: `golive audit verify --file PACK` passes; a plan file
    swapped for another (sums rewritten too) fails, naming it."""
    from bot.audit.cli import export_run
    from bot.audit.pack import SUMS, check_pack, plan_entry, write_pack
    from tests.support.cli import golive

    _run_with_history(clean_db)
    stored = service.plan_for(actor="U1", channel=None)
    with psycopg.connect(clean_db, autocommit=True,
                         row_factory=psycopg.rows.dict_row) as conn:
        export_run(conn, stored.plan.run_id, service.audit_key, tmp_path / "x.jsonl")
    name = stored.filename
    pack = write_pack(tmp_path / "pack", {"audit.jsonl": (tmp_path / "x.jsonl").read_text(),
                                          name: stored.markdown},
                      {"kind": "test", "audit_export": "audit.jsonl",
                       "plans": [plan_entry(name, stored.digest, stored.markdown, stored.id)]})
    assert check_pack(pack)[1] == []
    key = service.audit_key.decode()
    ok = golive("audit", "verify", "--file", str(pack), url=None, key=key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Swap the plan for another and rewrite the sums: the audit row still names the old one.
    (pack / name).write_text(stored.markdown.replace(stored.digest, "0" * 64))
    import hashlib as h
    sums = "".join(f"{h.sha256((pack / n).read_bytes()).hexdigest()}  {n}\n"
                   for n in sorted(p.name for p in pack.iterdir() if p.name != SUMS))
    (pack / SUMS).write_text(sums)
    bad = golive("audit", "verify", "--file", str(pack), url=None, key=key)
    assert bad.returncode == 1 and f"{name}: not the plan file the manifest records" in bad.stdout


def test_a_plan_prepared_before_the_transaction_is_the_one_recorded_once(service, clean_db):
    # `/golive plan` computes its plan before the inbox's transaction opens (that
    # transaction has a 10 s deadline; a plan reads the registry, compose, the database and
    # the RC image, which took over 10 s under load in CI: "database is not answering").
    _run_with_history(clean_db)
    computed: list[str] = []
    compute = service._compute

    def counting(*a, **k):
        computed.append("plan")
        return compute(*a, **k)
    service._compute = counting
    service.prepare()
    assert computed == ["plan"]
    stored = service.plan_for(actor="U_ALICE", channel="C1")
    assert computed == ["plan"], "the request took the prepared plan"
    assert stored.plan.rc_tag == "v2"
    service.plan_for(actor="U_ALICE", channel="C1")
    assert computed == ["plan", "plan"], "taken once: the next one is computed anew"
    service.prepare(rc_tag="v3")
    service.plan_for(actor="U_ALICE", channel="C1")
    assert computed == ["plan", "plan", "plan", "plan"], "another tag's plan is not this one"
