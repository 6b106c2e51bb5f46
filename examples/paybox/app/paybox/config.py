"""Environment-driven configuration (never log secrets from here)."""
import json
import os
import re

SCHEMA_ORDER = ["0001_ledger", "0002_payout_idempotency"]
EXPECTED_SCHEMA = {"v1": "0001_ledger", "v2": "0002_payout_idempotency"}

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/paybox"


def libpq_url(url: str) -> str:
    """Turn an SQLAlchemy-style URL (postgresql+psycopg://) into a libpq one."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


class Settings:
    def __init__(self, env=None):
        env = os.environ if env is None else env
        self.version = env.get("PAYBOX_VERSION", "dev")
        self.revision = env.get("PAYBOX_REVISION", "0" * 40)
        self.bind = env.get("PAYBOX_BIND", "127.0.0.1")
        self.port = int(env.get("PAYBOX_PORT") or env.get("PAYBOX_APP_PORT") or 18081)
        self.database_url = libpq_url(env.get("PAYBOX_DATABASE_URL") or DEFAULT_DATABASE_URL)
        self.ops_token = env.get("PAYBOX_OPS_TOKEN", "paybox-ops-token")
        self.admin_user = env.get("PAYBOX_ADMIN_USER", "admin")
        self.admin_password = env.get("PAYBOX_ADMIN_PASSWORD", "paybox-admin-pw")
        self.webhook_secret = env.get("PAYBOX_WEBHOOK_SECRET", "")
        self.session_secret = env.get("PAYBOX_SESSION_SECRET") or (
            "paybox-session:" + self.admin_password + ":" + self.ops_token)
        self.expected_schema = env.get("PAYBOX_SCHEMA_EXPECTED") or EXPECTED_SCHEMA.get(
            self.version, SCHEMA_ORDER[-1])
        self.stuck_payout_seconds = int(env.get("PAYBOX_STUCK_PAYOUT_SECONDS", "60"))
        try:
            self.initial_knobs = json.loads(env.get("PAYBOX_KNOBS") or "{}")
        except ValueError:
            self.initial_knobs = {}
