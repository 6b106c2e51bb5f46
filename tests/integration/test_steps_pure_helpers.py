"""The pure parts under the steps: masking, pull progress, output parsing, the target config.

No Docker needed; these live beside the step tests because they guard the same promises
(nothing secret in any output, aggregated progress, clear config errors).
"""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

from runbook.adapters.docker import PullProgress, classify_pull_error, parse_ps_json
from runbook.adapters.http import Retrier
from runbook.adapters.migrations import parse_current
from runbook.adapters.redact import mask
from runbook.steps.base import REGISTRY
from runbook.target import Probe, TargetConfig
from runbook.target_switches import HttpSwitch
from tests.support.paybox_target import paybox_target


def test_mask_hides_secret_values_url_passwords_and_slack_tokens():
    secrets = {"db": "postgresql://ledger:s3cr%40t@db:5432/paybox", "tok": "opstok-123456"}
    text = ("connect postgresql://ledger:s3cr%40t@db:5432/paybox failed; password s3cr@t; "
            "token opstok-123456; other postgresql://u:hunter2@h/x; bot xoxb-1234-5678-abcdef; "
            "app xapp-1-A0-99-zz")
    out = mask(text, secrets)
    for leaked in ("s3cr", "opstok-123456", "hunter2", "xoxb-1234", "xapp-1-A0"):
        assert leaked not in out, out
    assert "postgresql://u:****@h/x" in out
    assert mask("nothing secret here", secrets) == "nothing secret here"
    assert mask("", secrets) == ""


def test_pull_progress_is_aggregated_not_one_line_per_event():
    lines: list[str] = []
    p = PullProgress("r/app:v2", lines.append)
    p.feed({"status": "Pulling from r/app", "id": "v2"})
    p.feed({"status": "Already exists", "id": "base"})
    for layer in ("a", "b"):
        p.feed({"status": "Pulling fs layer", "id": layer})
    for cur in range(0, 1001, 10):
        for layer in ("a", "b"):
            p.feed({"status": "Downloading", "id": layer,
                    "progressDetail": {"current": cur, "total": 1000}})
    for layer in ("a", "b"):
        p.feed({"status": "Pull complete", "id": layer})
    p.feed({"status": "Digest: sha256:" + "0" * 64})
    assert 5 <= len(lines) <= 11, lines
    assert lines[-1] == ("pulling r/app:v2: 100% (2/2 layers downloaded, 1 already present)")
    pcts = [int(x.split(": ")[1].split("%")[0]) for x in lines]
    assert pcts == sorted(pcts)


@pytest.mark.parametrize(("message", "expected"), [
    ("manifest for r/app:v9 not found: manifest unknown: manifest unknown",
     "tag not found in registry"),
    ('Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused',
     "registry 127.0.0.1:5999 unreachable"),
    ("unauthorized: authentication required", "refused"),
])
def test_pull_errors_are_classified(message, expected):
    assert expected in classify_pull_error(message, "r/app:v9", "127.0.0.1:5999")


def test_compose_ps_json_both_formats():
    line = '{"Service":"app","State":"running","Health":"healthy"}'
    assert parse_ps_json(line + "\n" + line.replace("app", "edge"))[1]["Service"] == "edge"
    assert parse_ps_json("[" + line + "]")[0]["Health"] == "healthy"
    assert parse_ps_json("") == []


def test_alembic_current_output():
    assert parse_current("0002_payout_idempotency (head)\n") == "0002_payout_idempotency"
    assert parse_current("0001_ledger\n") == "0001_ledger"
    assert parse_current("") is None


def test_retrier_backs_off_with_jitter_until_the_deadline():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    from runbook.adapters.http import ProbeError

    r = Retrier(Probe(backoff_initial_s=1, backoff_max_s=4, jitter=0.5), deadline=20,
                clock=lambda: now[0], sleep=sleep, rand=lambda: 1.0)

    def never():
        raise ProbeError("still red")

    with pytest.raises(ProbeError, match="still red"):
        r.run(never)
    assert now[0] == pytest.approx(20)
    assert slept[:4] == [1.5, 3.0, 6.0, 6.0]


EXAMPLE = """
[target]
name = "paybox"
public_url = "http://127.0.0.1:18080"
internal_url = "http://127.0.0.1:18081"
readonly_paths = ["/dashboard"]

[target.deployer]
kind = "compose"
compose_file = "examples/paybox/compose.yaml"
project = "paybox"
registry = "127.0.0.1:5000"
registry_variable = "PAYBOX_REGISTRY"
up_timeout_s = 300
services = [{ service = "app", repository = "paybox/app", tag_variable = "PAYBOX_APP_TAG" }]

[target.deployer.env]
PAYBOX_APP_PORT = "18081"
PAYBOX_EDGE_PORT = "18080"
PAYBOX_DATABASE_URL = "postgresql://paybox:pw-from-env@127.0.0.1:5432/paybox"
PAYBOX_OPS_TOKEN = "ops-token-from-env"
PAYBOX_ADMIN_USER = "admin"
PAYBOX_ADMIN_PASSWORD = "admin-pw-from-env"

[target.health]
path = "/api/health"
expect = { status = "ok", db = "ok" }
expect_version_from_tag = true

[target.admin_login]
path = "/admin/login"
username = "admin"
password = "admin-pw-from-env"
success_status = 200

[target.dashboard]
path = "/dashboard"
expect_text = "<title>Paybox Dashboard</title>"

[target.smoke]
path = "examples/paybox/scripts/go_live_smoke.sh"
args = ["{public_url}"]
timeout_s = 120
env = { PAYBOX_ADMIN_PASSWORD = "admin-pw-from-env", PAYBOX_SMOKE_BYPASS_TOKEN = "ops-token-from-env", PAYBOX_EXPECT_VERSION = "{deployed_tag}" }

[target.maintenance]
kind = "http"
url = "http://127.0.0.1:18080/ops/maintenance"
on_body = { enabled = true }
off_body = { enabled = false }
token = "ops-token-from-env"
token_header = "X-Ops-Token"

[target.maintenance_page]
path = "/"
status = 503
expect_text = "Scheduled maintenance"

[target.migrations]
mode = "compose-run"
service = "app"
command = ["alembic"]

[target.probe]
timeout_s = 5
backoff_initial_s = 0.5
backoff_max_s = 8
jitter = 0.2
"""


def test_example_toml_validates_and_lists_its_secrets():
    t = TargetConfig.model_validate(tomllib.loads(EXAMPLE)["target"])
    assert isinstance(t.maintenance, HttpSwitch)
    values = set(t.secrets().values())
    assert {"admin-pw-from-env", "ops-token-from-env"} <= values
    assert "postgresql://paybox:pw-from-env@127.0.0.1:5432/paybox" in values
    assert "admin-pw-from-env" not in repr(t), "SecretStr keeps passwords out of reprs"


@pytest.mark.parametrize(("patch", "complaint"), [
    ({"deployer": {"kind": "kubernetes"}}, "deployer.kubernetes.namespace\n  Field required"),
    ({"deployer": {"kind": "compose", "projekt": "x"}}, "Extra inputs"),
    ({"maintenance": {"kind": "carrier-pigeon"}}, "does not match any of the expected tags"),
    ({"public_url": "ftp://x"}, "http(s) URL"),
    ({"deployer": {"services": [{"service": "app", "repository": "Pay/App",
                                 "tag_variable": "T"}]}}, "lowercase"),
])
def test_bad_config_is_refused_clearly(patch, complaint):
    with pytest.raises(ValidationError, match=None) as err:
        TargetConfig.model_validate(patch)
    assert complaint in str(err.value)


def test_paybox_helper_and_catalog():
    t = paybox_target(edge_port=1, app_port=2, project="p1", ops_token="tok-abcdef")
    assert t.public_url == "http://127.0.0.1:1" and t.deployer.project == "p1"
    import runbook.steps.catalog  # noqa: F401

    for kind in ("maintenance", "deploy", "migrate", "health", "smoke", "traffic",
                 "rollback.revert_deploy", "rollback.data", "rollback.verify_readonly",
                 "check.all", "check.release_freeze", "canary"):
        assert REGISTRY[kind].available, kind
    for kind in ("watch.ledger", "watch.error_budget"):  # run by bot/watches, not the worker
        assert not REGISTRY[kind].available, kind
