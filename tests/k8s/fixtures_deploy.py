"""Fixtures for the Kubernetes deployer's tests on the real cluster (``.ci/k8s-up.sh``).

Each test gets its own namespace, its own ledger database, its own loopback ports (the sample
stack runs on the node's host network) and its own copy of ``examples/paybox/k8s/paybox.yaml``
with those ports, so tests run side by side under pytest-xdist.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from runbook.context import StepContext
from runbook.target import TargetConfig
from tests.support.paybox_env import PAYBOX, PG_ADMIN_URL, REGISTRY, free_port, worker_tag

MANIFEST = PAYBOX / "k8s" / "paybox.yaml"


@dataclass
class Stack:
    kubeconfig: str
    api: Any
    namespace: str
    manifests: Path
    app_port: int
    edge_port: int
    database_url: str
    ops_token: str
    admin_password: str
    lines: list[str] = field(default_factory=list)

    def target(self, **deployer: Any) -> TargetConfig:
        data: dict[str, Any] = {
            "name": "paybox-k8s",
            "public_url": f"http://127.0.0.1:{self.edge_port}",
            "internal_url": f"http://127.0.0.1:{self.app_port}",
            "deployer": {
                "kind": "kubernetes", "kubeconfig": self.kubeconfig,
                "namespace": self.namespace, "manifests": str(self.manifests),
                "containers": [{"deployment": "app", "container": "app",
                                "repository": "paybox/app"}],
                "registry": REGISTRY, "registry_scheme": "http",
                "rollout_timeout_s": 120, **deployer},
            "migrations": {"mode": "kubernetes-job", "service": "app",
                           "database_url": self.database_url,
                           "url_variable": "PAYBOX_DATABASE_URL", "timeout_s": 120},
        }
        return TargetConfig.model_validate(data)

    def night_target(self, **deployer: Any) -> TargetConfig:
        """The whole night's target: the deployer above and the sample's health contract,
        login, smoke script and maintenance switch (as paybox_target has them for compose)."""
        edge = f"http://127.0.0.1:{self.edge_port}"
        data = self.target(**deployer).model_dump(mode="python")
        data["deployer"]["registry_token"] = None
        data["migrations"]["database_url"] = self.database_url
        data.update({
            "readonly_paths": ["/dashboard"],
            "health": {"path": "/api/health", "expect": {"status": "ok", "db": "ok"},
                       "version_field": "version", "revision_field": "revision",
                       "schema_field": "schema"},
            "admin_login": {"path": "/admin/login", "username": "admin",
                            "password": self.admin_password},
            "dashboard": {"path": "/dashboard",
                          "expect_text": "<title>Paybox Dashboard</title>"},
            "maintenance_page": {"expect_text": "Scheduled maintenance"},
            "smoke": {"path": str(PAYBOX / "scripts/go_live_smoke.sh"), "interpreter": ["bash"],
                      "args": ["{public_url}"],
                      "env": {"PAYBOX_ADMIN_USER": "admin",
                              "PAYBOX_ADMIN_PASSWORD": self.admin_password,
                              "PAYBOX_SMOKE_BYPASS_TOKEN": self.ops_token,
                              "PAYBOX_EXPECT_VERSION": "{deployed_tag}"}},
            "maintenance": {"kind": "http", "url": f"{edge}/ops/maintenance",
                            "token": self.ops_token, "token_header": "X-Ops-Token",
                            "token_format": "{token}"},
        })
        return TargetConfig.model_validate(data)

    def ctx(self, target: TargetConfig, *, params: dict | None = None,
            facts: dict | None = None, timeout: float = 180.0) -> StepContext:
        return StepContext(run_id=1, step_id="deploy", params=params or {}, facts=facts or {},
                           target=target, progress=self.lines.append,
                           deadline=time.monotonic() + timeout)


def render(dest: Path, *, app_port: int, edge_port: int) -> Path:
    """The sample manifests with this test's ports."""
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    for d in docs:
        for c in d["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if e["name"] in ("PAYBOX_PORT", "PAYBOX_APP_PORT"):
                    e["value"] = str(app_port)
                if e["name"] == "PAYBOX_EDGE_PORT":
                    e["value"] = str(edge_port)
            probe = c["readinessProbe"]["httpGet"]
            probe["port"] = app_port if c["name"] == "app" else edge_port
        for v in d["spec"]["template"]["spec"].get("volumes", []):
            if "hostPath" in v:  # the app's log file on the node: this test's own
                v["hostPath"]["path"] = str(dest / v["name"])
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "paybox.yaml"
    out.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out.parent


@pytest.fixture(name="k8s_stack")
def k8s_stack_fixture(tmp_path: Path, k8s_kubeconfig: str, k8s_api: Any,
                      k8s_namespace: str) -> Iterator[Stack]:
    """In the test's namespace (tests/k8s/conftest.py): the app's Secret and a ledger
    database of its own."""
    from kubernetes import client

    tag = f"{worker_tag()}-{uuid.uuid4().hex[:6]}".lower()
    ns = k8s_namespace
    db = f"paybox_k8s_{tag.replace('-', '_')}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db}"
    app_port, edge_port = free_port(), free_port()
    stack = Stack(k8s_kubeconfig, k8s_api, ns, render(tmp_path / "manifests", app_port=app_port, edge_port=edge_port),
                  app_port, edge_port, url, f"ops-{uuid.uuid4().hex}",
                  f"pw-{uuid.uuid4().hex}")
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="paybox-secrets"),
        string_data={"PAYBOX_DATABASE_URL": url, "PAYBOX_OPS_TOKEN": stack.ops_token,
                     "PAYBOX_ADMIN_PASSWORD": stack.admin_password,
                     "PAYBOX_WEBHOOK_SECRET": f"wh-{uuid.uuid4().hex}"}))
    try:
        yield stack
    finally:
        # The namespace goes with k8s_namespace; the pods may still hold connections until
        # they stop: FORCE drops them.
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
