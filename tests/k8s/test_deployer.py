"""The Kubernetes deployer against the real single-node cluster (``.ci/k8s-up.sh``): the
deploy step's server-side apply with the release image pinned by digest, the rollout wait,
the previous images recorded, the migration Job, the revert, and the failure paths."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from runbook.errors import StepFailed
from runbook.steps import deploy, migrate, rollback
from tests.k8s.fixtures_deploy import Stack, k8s_stack_fixture  # noqa: F401
from tests.support.paybox_env import REGISTRY

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

IMAGES = json.loads((Path(__file__).resolve().parents[2] / "examples/paybox/build/images.json"
                     ).read_text())["images"]
V1_SHA, V2_SHA = IMAGES["app:v1"]["revision"], IMAGES["app:v2"]["revision"]


def digest(tag: str) -> str:
    r = httpx.head(f"http://{REGISTRY}/v2/paybox/app/manifests/{tag}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.index.v1+json"})
    return r.headers["docker-content-digest"]


def app_in_cluster(stack: Stack) -> tuple[str, str | None]:
    """The app Deployment's image and revision, read from the API server."""
    from kubernetes import client

    d = client.AppsV1Api(stack.api).read_namespaced_deployment("app", stack.namespace)
    image = d.spec.template.spec.containers[0].image
    return image, (d.metadata.annotations or {}).get("deployment.kubernetes.io/revision")


def version_answered(stack: Stack) -> str:
    r = httpx.get(f"http://127.0.0.1:{stack.app_port}/api/health", timeout=5)
    return r.json().get("version")


def run_deploy(stack: Stack, tag: str, sha: str, **kw):
    target = stack.target(**kw)
    return deploy.run(stack.ctx(target, params={"tag": tag}, facts={"rc_sha": sha}))


def test_deploy_v1_then_v2_pins_digest_waits_for_rollout_records_previous(k8s_stack: Stack):
    first = run_deploy(k8s_stack, "v1", V1_SHA)
    assert first.facts["previous_images"] == {}
    assert version_answered(k8s_stack) == "v1"

    k8s_stack.lines.clear()
    result = run_deploy(k8s_stack, "v2", V2_SHA)
    image, revision = app_in_cluster(k8s_stack)
    assert image == f"{REGISTRY}/paybox/app:v2@{digest('v2')}"  # pinned by the registry's digest
    assert revision == "2"
    # The step returned only once the new pod served: the app answers v2 right away.
    assert version_answered(k8s_stack) == "v2"
    prev = result.facts["previous_images"]["app/app"]
    assert prev["image"] == f"{REGISTRY}/paybox/app:v1@{digest('v1')}"
    assert prev["tag"] == "v1" and prev["revision"] == V1_SHA
    assert prev["deployment_revision"] == "1"
    assert result.facts["deployed_tag"] == "v2"
    assert result.facts["deployed_revision"] == V2_SHA
    assert "app/app: v1 -> v2" in result.summary
    # Progress in the step's thread: the digest, the apply, the rollout as it went.
    text = "\n".join(k8s_stack.lines)
    assert "applied Deployment/app" in text
    assert "app: rolled out (1/1 available, revision 2)" in text
    assert any("of 1" in line or "pending termination" in line or "generation" in line
               for line in k8s_stack.lines), text


def test_revision_label_not_the_rc_sha_refuses_before_anything_changes(k8s_stack: Stack):
    run_deploy(k8s_stack, "v1", V1_SHA)
    with pytest.raises(StepFailed) as e:
        run_deploy(k8s_stack, "v2", V1_SHA)  # v2 was built from another commit
    assert "was built from 70a530c0d4" in e.value.message
    image, revision = app_in_cluster(k8s_stack)
    assert image.startswith(f"{REGISTRY}/paybox/app:v1@") and revision == "1"


def test_a_tag_missing_from_the_registry_is_refused_before_the_apply(k8s_stack: Stack):
    run_deploy(k8s_stack, "v1", V1_SHA)
    with pytest.raises(StepFailed) as e:
        run_deploy(k8s_stack, "v9-missing", V2_SHA)
    assert "not found in the registry" in e.value.message
    assert app_in_cluster(k8s_stack)[1] == "1"


def test_rollout_that_never_becomes_available_fails_within_its_timeout_with_pod_reasons(
        k8s_stack: Stack, tmp_path: Path):
    import time

    import yaml

    # The release image resolves, but a sidecar of the manifests names an image the registry
    # does not hold: the new pod can never start.
    path = next(k8s_stack.manifests.glob("*.yaml"))
    docs = list(yaml.safe_load_all(path.read_text()))
    run_deploy(k8s_stack, "v1", V1_SHA)
    docs[0]["spec"]["template"]["spec"]["containers"].append(
        {"name": "sidecar", "image": f"{REGISTRY}/paybox/no-such-sidecar:v1",
         "command": ["sleep", "3600"]})
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    started = time.monotonic()
    with pytest.raises(StepFailed) as e:
        run_deploy(k8s_stack, "v2", V2_SHA, rollout_timeout_s=25)
    took = time.monotonic() - started
    assert took < 25 + 15, took
    msg = e.value.message
    assert "rollout not complete within 25 s" in msg
    assert "sidecar" in msg and ("ImagePullBackOff" in msg or "ErrImagePull" in msg), msg
    # The revert target was recorded although the step failed.
    assert e.value.facts["previous_images"]["app/app"]["tag"] == "v1"


def test_api_server_unreachable_is_one_clear_line_and_records_nothing(
        k8s_stack: Stack, tmp_path: Path):
    from tests.support.paybox_env import free_port

    port = free_port()  # nothing listens there
    cfg = Path(k8s_stack.kubeconfig).read_text().replace("https://127.0.0.1:6443", f"https://127.0.0.1:{port}")
    broken = tmp_path / "closed.kubeconfig"
    broken.write_text(cfg)
    with pytest.raises(StepFailed) as e:
        run_deploy(k8s_stack, "v2", V2_SHA, kubeconfig=str(broken))
    msg = e.value.message
    assert f"Kubernetes API server unreachable at https://127.0.0.1:{port}" in msg, msg
    assert "Traceback" not in msg and len(msg) < 600
    assert not e.value.facts.get("deployed_images")


def test_retry_after_a_crash_mid_rollout_keeps_the_revert_target(k8s_stack: Stack):
    from kubernetes import client

    run_deploy(k8s_stack, "v1", V1_SHA)
    # What a bot killed after its apply leaves: v2 applied, nothing recorded.
    target = k8s_stack.target()
    from runbook.adapters.kubernetes.deployer import KubernetesDeployer

    d = KubernetesDeployer(target.deployer, clock=__import__("time").monotonic,
                           sleep=__import__("time").sleep)
    d.apply({"app/app": f"{REGISTRY}/paybox/app:v2@{digest('v2')}"}, lambda _l: None)
    # The Retry: apply is idempotent, and the revert target is still v1 (from the history).
    result = run_deploy(k8s_stack, "v2", V2_SHA)
    assert result.facts["previous_images"]["app/app"]["tag"] == "v1"
    assert app_in_cluster(k8s_stack)[1] == "2"  # no third revision
    dep = client.AppsV1Api(k8s_stack.api).read_namespaced_deployment("app", k8s_stack.namespace)
    assert dep.status.available_replicas == 1


def test_migrate_as_a_job_then_rollback_to_v1(k8s_stack: Stack):
    run_deploy(k8s_stack, "v1", V1_SHA)
    target = k8s_stack.target()
    m1 = migrate.run(k8s_stack.ctx(target, facts={}))
    assert m1.facts["alembic_after"] == "0001_ledger"
    deployed = run_deploy(k8s_stack, "v2", V2_SHA)
    facts = dict(deployed.facts)
    k8s_stack.lines.clear()
    m2 = migrate.run(k8s_stack.ctx(target, facts=facts))
    assert (m2.facts["alembic_before"], m2.facts["alembic_after"]) == (
        "0001_ledger", "0002_payout_idempotency")
    assert any(line.startswith("| ") for line in k8s_stack.lines)  # the Job's log, in the thread
    facts.update(m2.facts)
    # No Job or Secret is left behind (the URL travelled in a Secret, deleted after).
    from kubernetes import client

    assert not client.CoreV1Api(k8s_stack.api).list_namespaced_secret(
        k8s_stack.namespace, label_selector="app.kubernetes.io/managed-by=golive").items

    reverted = rollback.revert_deploy(k8s_stack.ctx(target, facts=facts))
    assert "app/app: back on v1" in reverted.summary
    assert app_in_cluster(k8s_stack)[0].startswith(f"{REGISTRY}/paybox/app:v1@")
    assert version_answered(k8s_stack) == "v1"
    again = rollback.revert_deploy(k8s_stack.ctx(target, facts=facts))  # idempotent
    assert app_in_cluster(k8s_stack)[1] == "3" and "back on v1" in again.summary
    down = rollback.data(k8s_stack.ctx(target, facts=facts))
    assert down.facts["alembic_rolled_back_to"] == "0001_ledger"
