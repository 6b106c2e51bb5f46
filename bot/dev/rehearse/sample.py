"""The sample stack (examples/paybox) as `golive demo` and `golive rehearse` configure it: its
ports, database and tokens, the bot config that points every preflight check, the watches and
the canary at it, and the fake GitHub (examples/paybox/fakegithub) the release-freeze check
asks, started in a thread the caller owns and stops.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REGISTRY = "127.0.0.1:5000"


def repo_root() -> Path:
    here = Path(__file__).resolve().parents[3]
    return here if (here / "examples").is_dir() else Path.cwd()


def paybox_dir() -> Path:
    return repo_root() / "examples" / "paybox"


@dataclass
class SampleStack:
    """Where one sample stack runs (the defaults are `examples/paybox/up.sh paybox-demo`)."""

    project: str = "paybox-demo"
    edge_port: int = 18080
    app_port: int = 18081
    database_url: str = "postgresql://postgres@127.0.0.1:5432/paybox"
    ops_token: str = "paybox-ops-token"
    admin_password: str = "paybox-admin-pw"
    webhook_secret: str = "paybox-webhook-secret"
    registry: str = REGISTRY

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SampleStack:
        """The stack up.sh starts with the same PAYBOX_* variables (unset: its defaults)."""
        env = os.environ if environ is None else environ
        d = cls()
        return cls(project=env.get("PAYBOX_PROJECT") or d.project,
                   edge_port=int(env.get("PAYBOX_EDGE_PORT") or d.edge_port),
                   app_port=int(env.get("PAYBOX_APP_PORT") or d.app_port),
                   database_url=env.get("PAYBOX_DATABASE_URL") or d.database_url,
                   ops_token=env.get("PAYBOX_OPS_TOKEN") or d.ops_token,
                   admin_password=env.get("PAYBOX_ADMIN_PASSWORD") or d.admin_password,
                   webhook_secret=env.get("PAYBOX_WEBHOOK_SECRET") or d.webhook_secret,
                   registry=env.get("PAYBOX_REGISTRY") or d.registry)

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def admin_url(self) -> str:
        """The ledger server's maintenance database (scratch copies are made there)."""
        return urlunsplit(urlsplit(self.database_url)._replace(path="/postgres"))

    def env(self, tag: str = "v1") -> dict[str, str]:
        """The compose file's variables (up.sh, down.sh and the deployer read them)."""
        return {"PAYBOX_PROJECT": self.project, "PAYBOX_APP_TAG": tag,
                "PAYBOX_APP_PORT": str(self.app_port), "PAYBOX_EDGE_PORT": str(self.edge_port),
                "PAYBOX_DATABASE_URL": self.database_url, "PAYBOX_OPS_TOKEN": self.ops_token,
                "PAYBOX_ADMIN_USER": "admin", "PAYBOX_ADMIN_PASSWORD": self.admin_password,
                "PAYBOX_WEBHOOK_SECRET": self.webhook_secret, "PAYBOX_REGISTRY": self.registry}

    def secrets(self) -> list[str]:
        return [self.ops_token, self.admin_password, self.webhook_secret, self.database_url]


def revisions() -> dict[str, str]:
    """The sample images' commits (build.sh writes them); empty before the first build."""
    path = paybox_dir() / "build" / "revisions.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _fakegithub_module():
    spec = importlib.util.spec_from_file_location(
        "paybox_fakegithub", paybox_dir() / "fakegithub" / "server.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


class FakeGitHub:
    """The sample stack's stand-in for GitHub's API, serving the tags build.sh recorded."""

    def __init__(self, port: int = 0) -> None:
        state_file = paybox_dir() / "build" / "fakegithub-state.json"
        try:
            state: dict[str, Any] = json.loads(state_file.read_text(encoding="utf-8"))
            self.problem = ""
        except (OSError, ValueError):
            state, self.problem = {}, (f"{state_file} is missing (run `bash .ci/docker-up.sh`, "
                                       "which builds the sample images): no RC tag resolves")
        mod = _fakegithub_module()
        try:
            self.server = mod.serve(port, state)
        except OSError:  # the usual port is taken: any free one (the config says which)
            self.server = mod.serve(0, state)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _q(value: Any) -> str:
    return json.dumps(str(value))


def env_file_for(stack: SampleStack, work: Path) -> Path:
    """The generated live-shaped env file, with DATABASE_URL pointed at ``stack``'s ledger."""
    source = paybox_dir() / "build" / "env" / "prod-live.env"
    if stack.database_url == SampleStack.database_url or not source.is_file():
        return source  # the default stack's (or missing: the check says so)
    out = work / "prod-live.env"
    text = source.read_text(encoding="utf-8").replace(SampleStack.database_url,
                                                      stack.database_url)
    out.write_text(text, encoding="utf-8")
    return out


def prod_config_rules(stripe_api_url: str) -> str:
    """The sample stack's ``[[preflight.prod_config.rules]]`` (golive.example.toml has the same,
    tests/preflight/test_team_preflight.py keeps them equal): live PSP keys, well-formed webhook
    secrets, a database that answers, strict trusted proxies, bootstrap off."""
    return f"""
[[preflight.prod_config.rules]]
key = "STRIPE_SECRET_KEY"
matches = "^(sk|rk)_live_"
check = "stripe_livemode"
api_url = {_q(stripe_api_url)}
hint = "a live Stripe secret or restricted key, sk_live_... or rk_live_..."

[[preflight.prod_config.rules]]
key = "STRIPE_RESTRICTED_KEY"
required = false
matches = "^rk_live_"
hint = "a live restricted key, rk_live_..."

[[preflight.prod_config.rules]]
key = "STRIPE_PUBLISHABLE_KEY"
matches = "^pk_live_"
hint = "a live publishable key, pk_live_..."

[[preflight.prod_config.rules]]
key = "STRIPE_WEBHOOK_SECRET"
matches = "^whsec_."
hint = "a Stripe signing secret, whsec_..."

[[preflight.prod_config.rules]]
key = "ADYEN_API_KEY"

[[preflight.prod_config.rules]]
key = "ADYEN_CHECKOUT_URL"
matches = '^https://[A-Za-z0-9][A-Za-z0-9-]*-checkout-live\\.adyenpayments\\.com(/|$)'
hint = "a live Adyen checkout endpoint, https://<prefix>-checkout-live.adyenpayments.com/..."
secret = true

[[preflight.prod_config.rules]]
key = "ADYEN_CLIENT_KEY"
matches = "^live_"
hint = "a live client key, live_..."

[[preflight.prod_config.rules]]
key = "ADYEN_HMAC_KEY"
matches = "^([0-9A-Fa-f]{{2}})+$"
hint = "a hex HMAC key"

[[preflight.prod_config.rules]]
key = "DATABASE_URL"
check = "database"

[[preflight.prod_config.rules]]
key = "TRUSTED_PROXIES"
check = "networks"

[[preflight.prod_config.rules]]
key = "BOOTSTRAP_ENABLED"
equals = "false"
"""


def rc_evidence_toml(evidence_dir: str, payouts_url: str, method: str = "POST") -> str:
    """The sample stack's ``[preflight.rc_evidence]``: its two JUnit suites, its artifacts
    manifest and its payouts route (golive.example.toml has the same)."""
    body = "\nbody = {}" if method == "POST" else ""
    return f"""
[preflight.rc_evidence]
dir = {_q(evidence_dir)}
manifest = "artifacts/SHA256SUMS"

[[preflight.rc_evidence.junit]]
name = "E2E money loop"
files = ["junit/e2e-money-loop.xml"]

[[preflight.rc_evidence.junit]]
name = "backend regression"
files = ["junit/backend-regression.xml"]

[[preflight.rc_evidence.routes]]
name = "payouts"
url = {_q(payouts_url)}
method = "{method}"{body}
"""


LEDGER_TABLES = ["accounts", "payouts", "transactions"]
"""The sample ledger's tables the backup drill compares by md5."""


def preflight_toml(stack: SampleStack, *, github_url: str, work: Path) -> str:
    """``[preflight]`` against the sample stack: every check has a section."""
    root = repo_root()
    return f"""
[preflight]
max_age_minutes = 60

[preflight.release_freeze]
repo = "acme/paybox"
api_url = {_q(github_url)}
image = "{stack.registry}/paybox/app:{{tag}}"
registry_scheme = "http"

[preflight.prod_config]
source = "env_file"
env_file = {_q(env_file_for(stack, work))}
{prod_config_rules(github_url)}
[preflight.backup_drill]
database_url = {_q(stack.database_url)}
scratch_url = {_q(stack.admin_url)}
snapshot_dir = {_q(work / "snapshots")}
ledger_tables = {json.dumps(LEDGER_TABLES)}

[preflight.migration_check]
image = "{stack.registry}/paybox/app:{{tag}}"
url_variable = "PAYBOX_DATABASE_URL"
network = "host"
{rc_evidence_toml(str(root / "examples/paybox/build/evidence/{tag}"),
                  f"{stack.internal_url}/api/payouts")}"""


# The sample's ledger, as its watches and canary read it (paybox's schema: accounts,
# transactions, payouts). golive has no defaults of its own for these: they are this config's.
PAYBOX_PAYOUTS_SQL = (
    "SELECT count(*) FILTER (WHERE status = 'failed') AS failed, "
    "count(*) FILTER (WHERE status IN ('settled', 'failed')) AS total FROM payouts "
    "WHERE updated_at > now() - make_interval(secs => %(window_s)s)")
PAYBOX_INVARIANTS = {
    "negative_available": "SELECT id AS account, available_cents FROM accounts "
                          "WHERE available_cents < 0",
    "negative_held": "SELECT id AS account, held_cents FROM accounts WHERE held_cents < 0",
    "held_not_released": (
        "SELECT a.id AS account, a.held_cents, COALESCE(p.total, 0) AS held_payouts_cents "
        "FROM accounts a LEFT JOIN (SELECT account_id, SUM(amount_cents) AS total FROM payouts "
        "WHERE status = 'held' GROUP BY account_id) p ON p.account_id = a.id "
        "WHERE a.held_cents <> COALESCE(p.total, 0)"),
    "entries_match_balances": (
        "SELECT a.id AS account, a.available_cents + a.held_cents AS balance_cents, "
        "COALESCE(t.total, 0) AS entries_cents FROM accounts a LEFT JOIN "
        "(SELECT account_id, SUM(amount_cents) AS total FROM transactions GROUP BY account_id) t "
        "ON t.account_id = a.id WHERE a.available_cents + a.held_cents <> COALESCE(t.total, 0)"),
}
PAYBOX_CANARY_QUERIES = {
    "balances": "SELECT available_cents AS available, held_cents AS held "
                "FROM accounts WHERE id = %(account)s",
    # paybox credits a deposit in the same transaction that records it: a row is settled
    "deposit": "SELECT id::text AS id, account_id AS account, amount_cents AS amount, "
               "'settled' AS status, created_at AS at FROM transactions "
               "WHERE kind = 'deposit' AND (reference = %(reference)s OR id::text = %(reference)s)",
    # to_jsonb keeps the query valid on schema 0001, before payouts.idempotency_key existed
    "withdrawal": "SELECT p.id::text AS id, p.account_id AS account, p.amount_cents AS amount, "
                  "p.status, p.created_at AS at, p.updated_at AS settled_at, "
                  "(SELECT -sum(t.amount_cents) FROM transactions t WHERE t.payout_id = p.id) "
                  "AS entries FROM payouts p WHERE p.id::text = %(reference)s "
                  "OR to_jsonb(p) ->> 'idempotency_key' = %(reference)s",
}
PAYBOX_PROMETHEUS = {
    "errors_query": 'sum(increase(paybox_http_requests_total{{status=~"5.."}}[{window}]))',
    "total_query": "sum(increase(paybox_http_requests_total[{window}]))",
}


def _table(values: dict[str, Any]) -> str:
    """A TOML inline table of strings (and tables of strings)."""
    return "{ " + ", ".join(f"{k} = {_table(v) if isinstance(v, dict) else _q(v)}"
                            for k, v in values.items()) + " }"


def target_toml(stack: SampleStack) -> str:
    root = repo_root()
    env = ", ".join(f"{k} = {_q(v)}" for k, v in stack.env().items()
                    if k not in ("PAYBOX_PROJECT", "PAYBOX_APP_TAG"))
    return f"""
[target]
name = "paybox"
public_url = "{stack.public_url}"
internal_url = "{stack.internal_url}"
readonly_paths = ["/dashboard"]

[target.deployer]
kind = "compose"
compose_file = {_q(root / "examples/paybox/compose.yaml")}
project = {_q(stack.project)}
registry = "{stack.registry}"
registry_variable = "PAYBOX_REGISTRY"
services = [{{ service = "app", repository = "paybox/app", tag_variable = "PAYBOX_APP_TAG" }}]
env = {{ {env} }}

[target.health]
path = "/api/health"
expect = {{ status = "ok", db = "ok" }}
version_field = "version"
revision_field = "revision"
schema_field = "schema"

[target.maintenance]
kind = "http"
url = "{stack.public_url}/ops/maintenance"
token = {_q(stack.ops_token)}
token_header = "X-Ops-Token"
token_format = "{{token}}"

[target.maintenance_page]
expect_text = "Scheduled maintenance"

[target.admin_login]
path = "/admin/login"
username = "admin"
password = {_q(stack.admin_password)}

[target.dashboard]
path = "/dashboard"
expect_text = "<title>Paybox Dashboard</title>"

[target.smoke]
path = {_q(root / "examples/paybox/scripts/go_live_smoke.sh")}
interpreter = ["bash"]
args = ["{{public_url}}"]
env = {{ PAYBOX_ADMIN_USER = "admin", PAYBOX_ADMIN_PASSWORD = {_q(stack.admin_password)}, \
PAYBOX_SMOKE_BYPASS_TOKEN = {_q(stack.ops_token)}, PAYBOX_EXPECT_VERSION = "{{deployed_tag}}" }}

[target.migrations]
mode = "compose-run"
service = "app"
script_location = {_q(root / "examples/paybox/app/migrations")}
database_url = {_q(stack.database_url)}
"""


def watches_toml(*, interval_s: float = 5, canary_account: str = "canary",
                 signers: tuple[str, str] | None = None) -> str:
    """Watches every ``interval_s`` on small windows, and the canary (two signers' roles)."""
    roles = "" if signers is None else f"""
[canary.roles.engineering]
users = ["{signers[0]}"]

[canary.roles.finance]
users = ["{signers[1]}"]
"""
    return f"""
[watches.health]
interval_s = {interval_s}

[watches.webhooks]
interval_s = {interval_s}
window_s = 120
logs = {{ kind = "docker", service = "app" }}

[watches.error_budget]
interval_s = {interval_s}
min_requests = 1
logs = {{ kind = "docker", service = "app" }}

[watches.payouts]
interval_s = {interval_s}
window_s = 120
min_payouts = 3
sql = {_q(PAYBOX_PAYOUTS_SQL)}

[watches.ledger]
interval_s = {interval_s}
invariants = {_table(PAYBOX_INVARIANTS)}

[canary]
queries = {_table({**PAYBOX_CANARY_QUERIES, "invariants": PAYBOX_INVARIANTS})}
account = {_q(canary_account)}
template = {_q(repo_root() / "examples/paybox/docs/ops/canary_report_template.md")}
required_signoffs = 2
{roles}"""

