"""``[target.deployer] kind = "kubernetes"``: the config and the manifests, before any cluster
is asked (no cluster needed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from runbook.adapters.kubernetes.deployer import KubernetesDeployer
from runbook.errors import StepFailed
from runbook.target import TargetConfig

ROOT = Path(__file__).resolve().parents[2]


def target(**deployer) -> TargetConfig:
    return TargetConfig.model_validate({"deployer": {
        "kind": "kubernetes", "namespace": "paybox",
        "manifests": str(ROOT / "examples/paybox/k8s/paybox.yaml"),
        "containers": [{"deployment": "app", "container": "app", "repository": "paybox/app"}],
        "registry": "127.0.0.1:5000", **deployer}})


def deployer(t: TargetConfig) -> KubernetesDeployer:
    return KubernetesDeployer(t.deployer, clock=time.monotonic, sleep=time.sleep)


def test_the_kubernetes_deployer_is_accepted_with_its_fields():
    d = target(context="prod", rollout_timeout_s=60).deployer
    assert d.kind == "kubernetes" and d.field_manager == "golive" and d.context == "prod"
    assert d.image(d.containers[0], "v2") == "127.0.0.1:5000/paybox/app:v2"


@pytest.mark.parametrize("bad, words", [
    ({"namespace": "Pay_Box"}, "namespace"),
    ({"containers": []}, "containers"),
    ({"containers": [{"deployment": "app", "container": "app",
                      "repository": "paybox/app:v2"}]}, "tag or digest"),
    ({"rollout_timeout_s": 0}, "rollout_timeout_s"),
])
def test_bad_deployer_config_is_a_short_clear_message(bad, words):
    with pytest.raises(ValidationError) as e:
        target(**bad)
    assert words in str(e.value)


def test_the_sample_manifests_render_with_the_release_image_pinned():
    objs = deployer(target()).rendered({"app/app": "127.0.0.1:5000/paybox/app:v2@sha256:ab"})
    app = next(o for o in objs if o["metadata"]["name"] == "app")
    edge = next(o for o in objs if o["metadata"]["name"] == "edge")
    assert app["spec"]["template"]["spec"]["containers"][0]["image"].endswith("v2@sha256:ab")
    assert edge["spec"]["template"]["spec"]["containers"][0]["image"].endswith("edge:v1")


def test_a_container_the_manifests_lack_is_refused_by_name(tmp_path: Path):
    t = target(containers=[{"deployment": "app", "container": "web", "repository": "paybox/app"}])
    with pytest.raises(StepFailed) as e:
        deployer(t).rendered({"app/web": "x"})
    assert "the manifests have no container app/web" in e.value.message


def test_a_manifest_in_another_namespace_is_refused(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: other}\n")
    with pytest.raises(StepFailed) as e:
        deployer(target(manifests=str(tmp_path))).rendered({})
    assert "names namespace other" in e.value.message


def test_a_kustomization_and_broken_yaml_are_clear_lines(tmp_path: Path):
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\n")
    with pytest.raises(StepFailed) as e:
        deployer(target(manifests=str(tmp_path))).manifests()
    assert "kubectl kustomize" in e.value.message
    broken = tmp_path / "b"
    broken.mkdir()
    (broken / "x.yml").write_text("kind: [\n")
    with pytest.raises(StepFailed) as e:
        deployer(target(manifests=str(broken))).manifests()
    assert "cannot read the manifest" in e.value.message and "Traceback" not in e.value.message


def test_a_missing_kubeconfig_says_which_and_what_to_set(tmp_path: Path):
    with pytest.raises(StepFailed) as e:
        deployer(target(kubeconfig=str(tmp_path / "nope"))).current_images()
    assert "kubeconfig" in e.value.message and "does not exist" in e.value.message


def test_the_registry_token_is_a_secret():
    t = target(registry_token="tok-very-secret-123")
    assert "tok-very-secret-123" in t.secrets().values()
    assert "tok-very-secret-123" not in repr(t)


def test_a_compose_service_switch_with_the_kubernetes_deployer_is_refused_clearly():
    with pytest.raises(ValidationError) as e:
        TargetConfig.model_validate({**target().model_dump(mode="json", exclude_none=True),
                                     "maintenance": {"kind": "compose-service",
                                                     "service": "maintenance"}})
    assert "needs a compose deployer" in str(e.value)
