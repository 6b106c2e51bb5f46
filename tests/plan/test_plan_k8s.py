"""The plan and the deploy's certification on the real cluster (``.ci/k8s-up.sh``): the
release container's digest as the registry reports it, the Deployment's image as it runs, and
the live pods' image IDs compared with the plan."""

from __future__ import annotations

import pytest

import runbook.steps.catalog  # noqa: F401 - registers the step kinds
from runbook.model import default_runbook_path, load_runbook
from runbook.plan import certify
from runbook.plan.inputs import PlanInputs
from runbook.plan.sources import compute
from runbook.steps.base import REGISTRY as KINDS
from tests.k8s.conftest import k8s_api, k8s_kubeconfig, k8s_namespace  # noqa: F401
from tests.k8s.fixtures_deploy import Stack, k8s_stack_fixture  # noqa: F401
from tests.k8s.test_deployer import V1_SHA, digest, run_deploy
from tests.support.paybox_env import REGISTRY

pytestmark = [pytest.mark.k8s, pytest.mark.docker]


def test_plan_and_certification_on_the_cluster(k8s_stack: Stack):
    run_deploy(k8s_stack, "v1", V1_SHA)
    target = k8s_stack.target()
    runbook = load_runbook(default_runbook_path(), known_kinds=KINDS.keys())
    v1 = compute(runbook, target, PlanInputs(rc_tag="v1", squawk=False))
    v2 = compute(runbook, target, PlanInputs(rc_tag="v2", squawk=False))
    assert not v2.step("deploy").unresolved, v2.step("deploy").unresolved
    (app,) = v2.step("deploy").services
    assert (app.service, app.image, app.digest) == ("app/app", f"{REGISTRY}/paybox/app:v2",
                                                   digest("v2"))
    assert app.current_image == f"{REGISTRY}/paybox/app:v1@{digest('v1')}"
    assert app.current_digest == digest("v1")
    ok = certify.certify_deploy(target, v1.step("deploy"))
    assert ok.certified, ok
    bad = certify.certify_deploy(target, v2.step("deploy"))
    assert [(d.what, d.expected, d.found) for d in bad.differences] == [
        ("app/app digest", digest("v2"), digest("v1"))]
