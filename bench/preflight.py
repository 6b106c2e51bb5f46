"""Time a full preflight against the sample stack with a 10,000-row ledger.

Every check runs for real: the fake GitHub over HTTP (and the local registry's label when it
answers), the generated prod env file, pg_dump/pg_restore of the ledger, alembic + squawk on
the restored copy, the generated RC evidence, and one team script. Writes
bench/results/preflight.json: the total and each check's time.

    .venv/bin/python bench/preflight.py [rows]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runbook.checks import build_specs
from runbook.checks.config import PreflightConfig
from runbook.checks.runner import run_checks
from tests.support import pg
from tests.support.preflight import MIGRATIONS, fakegithub, ledger_db, make_evidence

SHA = "318782fdabd867683bce22dc62c35692d08405ea"


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    from runbook.adapters.registry import RegistryError, image_revision

    try:  # tag the RC at what the registry's v2 image was really built from
        sha = image_revision("127.0.0.1:5000/paybox/app:v2", scheme="http", timeout=2) or SHA
    except RegistryError:
        sha = SHA
    name, url = ledger_db(rows=rows)
    gh = fakegithub().serve(0, {"tags": {"v2": {"commit": sha, "annotated": True}}})
    api = f"http://127.0.0.1:{gh.server_port}"
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            ev = make_evidence(tmp / "build", {"v2": sha})
            env = ev / "env" / "prod-live.env"
            env.write_text(env.read_text().replace(
                "postgresql://postgres@127.0.0.1:5432/paybox", url))
            try:
                httpx.get("http://127.0.0.1:5000/v2/", timeout=2)
                image = {"image": "127.0.0.1:5000/paybox/app:{tag}", "registry_scheme": "http"}
            except httpx.HTTPError:
                image = {}
            from bot.dev.rehearse.sample import LEDGER_TABLES, prod_config_rules, rc_evidence_toml

            sample = tomllib.loads(prod_config_rules(api) + rc_evidence_toml(
                str(ev / "evidence" / "{tag}"), api + "/v1/balance", "GET"))["preflight"]
            cfg = PreflightConfig.model_validate({
                "release_freeze": {"repo": "acme/paybox", "api_url": api, **image},
                "prod_config": {"source": "env_file", "env_file": str(env),
                                **sample["prod_config"]},
                "backup_drill": {"database_url": url, "scratch_url": pg.ADMIN_URL,
                                 "snapshot_dir": str(tmp / "snapshots"),
                                 "ledger_tables": LEDGER_TABLES},
                "migration_check": {"script_location": str(MIGRATIONS)},
                "rc_evidence": sample["rc_evidence"],
                "team_scripts": [{"name": "verify_prod_env",
                                  "command": ["sh", "-c", "echo env ok"]}],
            })
            t0 = time.monotonic()
            report = run_checks(build_specs(cfg), rc_tag="v2", rc_sha=sha)
            total = time.monotonic() - t0
    finally:
        gh.shutdown()
        pg.drop_database(name)
    checks = {n: {"status": r.status.value, "seconds": round(r.duration_s, 3),
                  "finding": r.finding} for n, r in report.results.items()}
    slowest = max(checks.items(), key=lambda kv: kv[1]["seconds"])
    out = {"ledger_rows": rows, "total_seconds": round(total, 3),
           "slowest_check": slowest[0], "slowest_seconds": slowest[1]["seconds"],
           "sum_of_checks_seconds": round(sum(c["seconds"] for c in checks.values()), 3),
           "image_label_checked": bool(image), "checks": checks}
    path = ROOT / "bench" / "results" / "preflight.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
