"""The plan of the ledgerline sample (a second stack, described only by its committed config):
`golive plan --tag v2` names the api's v2 digest, the revision chain ll_0001 -> ll_0002 with
its SQL, and prints no secret."""

from __future__ import annotations

import urllib.request

from tests.ledgerline.conftest import (  # noqa: F401 - the module fixtures
    V1_SCHEMA,
    V2_SCHEMA,
    config_text,
    ledgerline,
    stack,
)
from tests.support.cli import golive
from tests.support.paybox_env import REGISTRY


def _digest(repo: str, tag: str) -> str:
    req = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD",
        headers={"Accept": "application/vnd.oci.image.index.v1+json, "
                 "application/vnd.docker.distribution.manifest.list.v2+json, "
                 "application/vnd.oci.image.manifest.v1+json, "
                 "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["Docker-Content-Digest"]


def test_the_ledgerline_plan_from_its_config(stack, tmp_path):  # noqa: F811
    ll = stack
    config = tmp_path / "golive.toml"
    config.write_text(config_text(tmp_path), encoding="utf-8")
    out = tmp_path / "plan.md"
    # no bot database: the plan is computed, not stored
    r = golive("plan", "--config", str(config), "--tag", "v2", "--out", str(out), url=None,
               key=None, env=ll.env())
    text = out.read_text() if out.exists() else ""
    assert r.returncode == 0, r.stdout + r.stderr
    assert _digest("ledgerline/api", "v2") in text
    assert f"{V1_SCHEMA} → {V2_SCHEMA}" in text
    assert f"version_num='{V2_SCHEMA}'" in text, "the upgrade SQL from the RC image"
    for secret in ll.secret_values:
        assert secret not in r.stdout + r.stderr + text
    assert ll.schema_revision() == V1_SCHEMA, "the plan changed nothing"
