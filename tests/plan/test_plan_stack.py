"""The plan of the sample stack's night, computed from the real registry, compose project and
PostgreSQL (tests/paybox's session stack at v1 with migration 0001), and the certification of
what runs against it."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

import runbook.steps.catalog  # noqa: F401 - registers the step kinds
from runbook.model import default_runbook_path, load_runbook
from runbook.plan import certify
from runbook.plan.digest import diff, plan_digest, step_digest
from runbook.plan.inputs import PlanInputs
from runbook.plan.render import render_markdown
from runbook.plan.sources import compute
from runbook.steps.base import REGISTRY as KINDS
from tests.support.paybox_env import REGISTRY
from tests.support.paybox_target import paybox_target


def _digest(repo: str, tag: str) -> str:
    req = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD",
        headers={"Accept": "application/vnd.oci.image.index.v1+json, "
                 "application/vnd.docker.distribution.manifest.list.v2+json, "
                 "application/vnd.oci.image.manifest.v1+json, "
                 "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["Docker-Content-Digest"]


def _runbook():
    return load_runbook(default_runbook_path(), known_kinds=KINDS.keys())


@pytest.fixture
def target(paybox_stack):
    st = paybox_stack
    return paybox_target(edge_port=st.edge_port, app_port=st.app_port, project=st.project,
                         database_url=st.database_url, ops_token=st.ops_token,
                         admin_password=st.admin_password,
                         extra_env={"PAYBOX_WEBHOOK_SECRET": st.webhook_secret})


@pytest.fixture
def plan(target, paybox_stack):
    return compute(_runbook(), target, PlanInputs(
        rc_tag="v2", run_id=7, url_variable="PAYBOX_DATABASE_URL",
        history={"deploy": [10.0, 14.0, 12.0], "migrate": [3.0]}))


def test_v1_to_v2_names_the_digests_compose_changes_and_the_sql(plan, paybox_stack):
    deploy = plan.step("deploy")
    (app,) = deploy.services
    assert app.image == f"{REGISTRY}/paybox/app:v2"
    assert app.digest == _digest("paybox/app", "v2")
    assert app.current_digest == _digest("paybox/app", "v1")
    assert app.current_image == f"{REGISTRY}/paybox/app:v1"
    assert not deploy.unresolved, deploy.unresolved
    mig = plan.step("migrate").migration
    assert mig is not None
    assert (mig.current, mig.head) == ("0001_ledger", "0002_payout_idempotency")
    assert mig.chain == ("0002_payout_idempotency",)
    assert "idempotency" in mig.sql.lower() and "alembic_version" in mig.sql
    assert "UPDATE alembic_version SET version_num='0002_payout_idempotency'" in mig.sql
    assert mig.down_sql and "0001_ledger" in mig.down_sql
    assert plan.step("deploy").expected_s == 12.0 and plan.step("health").expected_s is None
    assert plan.step("deploy").way_back.startswith("`rb-revert-deploy`")
    text = render_markdown(plan)
    assert app.digest in text and "0001_ledger" in text and "CREATE" in text.upper()
    for secret in (paybox_stack.ops_token, paybox_stack.admin_password,
                   paybox_stack.webhook_secret, paybox_stack.database_url):
        assert secret not in text
        assert secret not in json.dumps(plan.__dict__, default=str)


def test_the_same_sources_give_the_same_digest(plan, target):
    again = compute(_runbook(), target, PlanInputs(
        rc_tag="v2", run_id=7, url_variable="PAYBOX_DATABASE_URL"))  # no history: same digest
    assert plan_digest(again) == plan_digest(plan)
    assert step_digest(again, "deploy") == step_digest(plan, "deploy")
    assert diff(plan.step("deploy"), again.step("deploy")) == []


def test_certify_deploy_finds_a_container_replaced_behind_the_bots_back(target, paybox_stack):
    """The plan for v1 certifies what runs (v1); then the app's container is replaced with the
    v2 image behind the bot's back: the same plan no longer certifies, naming both digests."""
    st = paybox_stack
    v1 = compute(_runbook(), target, PlanInputs(rc_tag="v1", squawk=False))
    ok = certify.certify_deploy(target, v1.step("deploy"))
    assert ok.differences == [], ok
    assert ok.compared == [(f"app digest: running {_digest('paybox/app', 'v1')} = planned "
                           f"{_digest('paybox/app', 'v1')}")]
    try:
        st.compose("up", "-d", "--no-deps", "app", PAYBOX_APP_TAG="v2")
        bad = certify.certify_deploy(target, v1.step("deploy"))
        assert [(d.what, d.expected, d.found) for d in bad.differences] == [
            ("app digest", _digest("paybox/app", "v1"), _digest("paybox/app", "v2"))]
        assert not bad.certified and bad.as_fact()["differences"]
    finally:
        st.compose("up", "-d", "--no-deps", "--wait", "app", PAYBOX_APP_TAG="v1")
    assert certify.certify_deploy(target, v1.step("deploy")).certified


def test_certify_migration_and_maintenance(target, paybox_stack):
    plan = compute(_runbook(), target, PlanInputs(rc_tag="v2", squawk=False,
                                                      url_variable="PAYBOX_DATABASE_URL"))
    res = certify.certify_migrate(target, plan.step("migrate"))
    assert [(d.expected, d.found) for d in res.differences] == [
        ("0002_payout_idempotency", "0001_ledger")]
    assert certify.certify_maintenance(target, on=False).differences == []
    off = certify.certify_maintenance(target, on=True)
    assert off.differences and off.differences[0].what == "maintenance page"
    assert certify.certify_traffic(target, open_=True).differences == []


def test_a_retagged_image_is_a_named_drift(target, paybox_stack):
    """Re-tag v2 to another image in the registry: the deploy step's plan names the old and
    the new digest."""
    before = compute(_runbook(), target, PlanInputs(rc_tag="v2", squawk=False))
    tag = f"plan-drift-{paybox_stack.project[-8:]}"
    v1 = f"{REGISTRY}/paybox/app:v1"
    moved = f"{REGISTRY}/paybox/app:{tag}"
    subprocess.run(["docker", "tag", v1, moved], check=True, capture_output=True)
    subprocess.run(["docker", "push", moved], check=True, capture_output=True, timeout=120)
    after = compute(_runbook(), target, PlanInputs(rc_tag=tag, squawk=False))
    changes = {c.path: c for c in diff(before.step("deploy"), after.step("deploy"))}
    assert changes["services[app].digest"].before == _digest("paybox/app", "v2")
    assert changes["services[app].digest"].after == _digest("paybox/app", "v1")


def test_golive_plan_on_the_command_line(paybox_stack, tmp_path):
    """`golive plan --config FILE --tag v2 --out FILE`, no database: the summary with the
    digest on stdout, the Markdown in the file, no secret in either."""
    from bot.dev.rehearse.sample import SampleStack, target_toml
    from tests.support.cli import golive
    from tests.support.harness import BASE_CONFIG

    st = paybox_stack
    sample = SampleStack(project=st.project, edge_port=st.edge_port, app_port=st.app_port,
                         database_url=st.database_url, ops_token=st.ops_token,
                         admin_password=st.admin_password, webhook_secret=st.webhook_secret)
    config = tmp_path / "golive.toml"
    config.write_text(BASE_CONFIG + target_toml(sample))
    out = tmp_path / "plan.md"
    r = golive("plan", "--config", str(config), "--tag", "v2", "--out", str(out), url=None)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert _digest("paybox/app", "v2") in text and "0002_payout_idempotency" in text
    assert "UPDATE alembic_version SET version_num='0002_payout_idempotency'" in text
    assert "Plan for v2" in r.stdout and "digest" in r.stdout and str(out) in r.stdout
    for secret in sample.secrets():
        assert secret not in r.stdout + r.stderr + text
    bad = golive("plan", "--config", str(config), "--tag", "bad tag!", url=None)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--tag" in bad.stderr


def test_a_changed_compose_environment_and_a_moved_revision_are_named_drift(target,
                                                                            paybox_stack):
    """Between two computations: the deployer's environment changes a value (the plan shows
    neither value, only that the service's configuration moved), and the database's revision is
    moved behind the bot's back (named from what to what)."""
    st = paybox_stack
    inputs = PlanInputs(rc_tag="v2", squawk=False, url_variable="PAYBOX_DATABASE_URL")
    before = compute(_runbook(), target, inputs)
    knob = "knob-value-31415926"
    changed = paybox_target(edge_port=st.edge_port, app_port=st.app_port, project=st.project,
                            database_url=st.database_url, ops_token=st.ops_token,
                            admin_password=st.admin_password,
                            extra_env={"PAYBOX_WEBHOOK_SECRET": st.webhook_secret,
                                       "PAYBOX_KNOBS": knob})
    after = compute(_runbook(), changed, inputs)
    (moved,) = diff(before.step("deploy"), after.step("deploy"))
    assert moved.path == "services[app].config_sha256" and moved.before != moved.after
    assert knob not in render_markdown(after)
    with st.db() as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0002_payout_idempotency'")
    try:
        again = compute(_runbook(), target, inputs)
        changes = {c.path: str(c) for c in diff(before.step("migrate"), again.step("migrate"))}
        assert changes["migration.current"] == (
            "migration.current: 0001_ledger → 0002_payout_idempotency")
    finally:
        with st.db() as conn:
            conn.execute("UPDATE alembic_version SET version_num = '0001_ledger'")
