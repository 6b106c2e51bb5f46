"""deploy: real pulls from the local registry, compose up, revision checks, clear failures."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from runbook.steps.deploy import run as deploy

pytestmark = pytest.mark.docker


def _rmi(ref: str) -> None:
    r = subprocess.run(["docker", "rmi", ref], capture_output=True, text=True, check=False)
    if r.returncode != 0 and "No such image" not in r.stderr:
        # Another project still runs it: drop our tag anyway so the pull talks to the registry.
        subprocess.run(["docker", "rmi", "--force", ref], capture_output=True, check=False)


def _own_v2(registry: str, tmp_path) -> str:
    """A tag of v2 no other test uses, with a layer of its own (2 MiB of random bytes) that
    only the registry holds once the local copy is removed: its deploy must really pull it,
    whatever other tests (other xdist workers) do with paybox/app:v2 meanwhile."""
    tag = f"v2-pull-{uuid.uuid4().hex[:10]}"
    ref = f"{registry}/paybox/app:{tag}"
    (tmp_path / "blob").write_bytes(os.urandom(2 * 1024 * 1024))
    (tmp_path / "Dockerfile").write_text(f"FROM {registry}/paybox/app:v2\nCOPY blob /pull-test\n")
    for cmd in (["docker", "build", "-q", "-t", ref, str(tmp_path)], ["docker", "push", ref]):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, f"{' '.join(cmd[:2])}: {done.stderr[-400:]}"
    _rmi(ref)
    return tag


def test_deploy_v2_pulls_runs_v2_and_records_previous(stack, run_step, registry, tmp_path):
    tag = _own_v2(registry, tmp_path)
    ref = f"{registry}/paybox/app:{tag}"
    before = stack.running_image()
    try:
        out = run_step(deploy, params={"tag": tag}, facts={"rc_sha": stack.revisions["v2"]})
        assert any("pulling" in p and "%" in p for p in out.progress), out.progress
        pull_lines = [p for p in out.progress if p.startswith(f"pulling {ref}:")]
        assert len(pull_lines) <= 12, f"pull progress should be aggregated: {pull_lines}"
        now = stack.running_image()
        assert now["image"] == ref
        assert now["revision"] == stack.revisions["v2"]
        assert now["health"] == "healthy"
        facts = out.result.facts
        assert facts["deployed_tag"] == tag
        assert facts["deployed_revision"] == stack.revisions["v2"]
        assert facts["previous_images"]["app"]["image_id"] == before["image_id"]
        assert facts["previous_images"]["app"]["tag"] == "v1"
        assert facts["previous_images"]["app"]["revision"] == stack.revisions["v1"]
        assert facts["deployed_images"]["app"]["image_id"] == now["image_id"]
        assert f"app: v1 -> {tag}" in out.result.summary
    finally:
        stack.reset_v1()
        _rmi(ref)


def test_rc_sha_mismatch_refuses_with_both_shas(stack, run_step):
    out = run_step(deploy, params={"tag": "v2"}, facts={"rc_sha": stack.revisions["v1"]},
                   expect_failure=True)
    assert stack.revisions["v2"][:10] in out.message
    assert stack.revisions["v1"][:10] in out.message
    assert stack.revisions["v2"] not in out.message, "shas should be shortened"
    assert stack.running_image()["image"].endswith(":v1"), "nothing must change on mismatch"


def test_nonexistent_tag_fails_clearly(stack, run_step):
    out = run_step(deploy, params={"tag": "v9-does-not-exist"}, expect_failure=True)
    assert "tag not found in registry" in out.message
    assert "v9-does-not-exist" in out.message
    assert stack.running_image()["image"].endswith(":v1")


@pytest.mark.parametrize("tag", ["v2;id", "v2 && reboot", "$(id)", "", "-v2"])
def test_bad_tags_are_refused_before_anything(stack, run_step, tag):
    out = run_step(deploy, params={"tag": tag}, expect_failure=True, target=stack.target(
        deployer={"docker_host": "unix:///nonexistent/docker.sock"}))
    assert "Docker" not in out.message, "the tag must be rejected before docker is touched"
    assert out.progress == []


def test_registry_unreachable_fails_clearly(stack, run_step, unused_port):
    port = unused_port
    target = stack.target(registry=f"127.0.0.1:{port}")
    out = run_step(deploy, target=target, params={"tag": "v2"}, expect_failure=True)
    assert f"registry 127.0.0.1:{port} unreachable" in out.message
    assert stack.running_image()["image"].endswith(":v1")


def test_docker_daemon_unreachable_fails_clearly(stack, run_step):
    target = stack.target(deployer={"docker_host": "unix:///nonexistent/docker.sock"})
    out = run_step(deploy, target=target, params={"tag": "v2"}, expect_failure=True)
    assert "Docker daemon unreachable" in out.message


def test_compose_file_error_fails_clearly(stack, run_step, tmp_path):
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  app:\n    image: ${PAYBOX_REGISTRY}/paybox/app:${PAYBOX_APP_TAG}\n"
                   "    network_mode: host\n    restartt: always\n")
    target = stack.target(deployer={"compose_file": str(bad)})
    out = run_step(deploy, target=target, params={"tag": "v2"}, expect_failure=True)
    assert "compose file error" in out.message
    assert "restartt" in out.message, "compose's own complaint should be shown"


def test_unhealthy_containers_fail_in_time(stack, run_step):
    # health_red from start-up: the healthcheck never passes, so `up --wait` gives up.
    target = stack.target(deployer={"up_timeout_s": 8,
                                    "env": {**stack.target().deployer.env,
                                            "PAYBOX_KNOBS": '{"health_red": true}'}})
    out = run_step(deploy, target=target, params={"tag": "v2"}, expect_failure=True)
    assert "not healthy" in out.message
    assert out.error.facts["previous_images"]["app"]["tag"] == "v1"
