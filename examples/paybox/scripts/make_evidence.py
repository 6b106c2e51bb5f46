"""Generate the preflight material for the sample stack (called by build.sh; stdlib only).

    python3 make_evidence.py OUTDIR [REVISIONS_JSON]

OUTDIR/evidence/<release>/         passing RC evidence: junit/e2e-money-loop.xml (pytest shape),
                                   junit/backend-regression.xml (Surefire shape, 8 tests),
                                   artifacts/ + artifacts/SHA256SUMS
OUTDIR/evidence/<release>-failing/ the same with a failed regression test and an E2E error
OUTDIR/env/prod-live.env           live-shaped PSP keys (fake values), strict proxies, bootstrap off
OUTDIR/env/prod-test-keys.env      the same with test keys, a wildcard proxy and bootstrap on
OUTDIR/fakegithub-state.json       tags for the fake GitHub (v1 lightweight, v2 annotated)
"""

import hashlib
import json
import os
import sys
from pathlib import Path

REGRESSION = ["test_deposit_idempotent", "test_payout_holds_then_settles",
              "test_payout_insufficient_funds", "test_payout_failure_releases_hold",
              "test_ledger_balance_invariant", "test_webhook_signature_verified",
              "test_admin_login_session", "test_payout_idempotency_key"]
E2E = ["test_money_loop_deposit_payout_settle", "test_money_loop_webhook_reconciles"]


def _fake(label: str, n: int = 24) -> str:
    return hashlib.sha256(f"paybox-demo:{label}".encode()).hexdigest()[:n]


def e2e_xml(fail: bool) -> str:
    cases = []
    for name in E2E:
        inner = ('<error message="ConnectionError: payouts router 404">trace</error>'
                 if fail and name == E2E[0] else "")
        cases.append(f'<testcase classname="e2e.test_money_loop" name="{name}" time="1.2">'
                     f"{inner}</testcase>")
    errors = 1 if fail else 0
    return ('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="pytest" '
            f'errors="{errors}" failures="0" skipped="0" tests="{len(E2E)}">'
            + "".join(cases) + "</testsuite></testsuites>\n")


def regression_xml(fail: bool) -> str:
    cases = []
    for name in REGRESSION:
        inner = ('<failure type="AssertionError" message="expected 201, got 500">'
                 "trace</failure>" if fail and name == "test_payout_idempotency_key" else "")
        cases.append(f'  <testcase name="{name}" classname="com.paybox.BackendRegressionTest" '
                     f'time="0.05">{inner}</testcase>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<testsuite xmlns:xsi="http://www.w3.org/'
            '2001/XMLSchema-instance" name="com.paybox.BackendRegressionTest" '
            f'tests="{len(REGRESSION)}" failures="{1 if fail else 0}" errors="0" skipped="0">\n'
            + "\n".join(cases) + "\n</testsuite>\n")


def write_release(root: Path, release: str, revision: str, fail: bool) -> None:
    junit, art = root / "junit", root / "artifacts"
    junit.mkdir(parents=True, exist_ok=True)
    (art / "screenshots").mkdir(parents=True, exist_ok=True)
    (junit / "e2e-money-loop.xml").write_text(e2e_xml(fail))
    (junit / "backend-regression.xml").write_text(regression_xml(fail))
    files = {
        "release-notes.md": f"# Paybox {release}\n\nrevision {revision}\n",
        "sbom.json": json.dumps({"name": "paybox", "version": release, "revision": revision}),
        "screenshots/dashboard.txt": f"dashboard of {release} (placeholder screenshot)\n",
    }
    for rel, text in files.items():
        (art / rel).write_text(text)
    lines = [f"{hashlib.sha256((art / rel).read_bytes()).hexdigest()}  {rel}"
             for rel in sorted(files)]
    (art / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def env_file(live: bool, db_url: str) -> str:
    mode = "live" if live else "test"
    return "\n".join([
        f"# Paybox prod environment, {mode}-shaped PSP keys (fake values, generated)",
        f"STRIPE_SECRET_KEY=sk_{mode}_{_fake('stripe-sk')}",
        f"STRIPE_PUBLISHABLE_KEY=pk_{mode}_{_fake('stripe-pk')}",
        f"STRIPE_WEBHOOK_SECRET=whsec_{_fake('stripe-whsec', 32)}",
        f"ADYEN_API_KEY=AQE{_fake('adyen-api', 40)}",
        "ADYEN_CHECKOUT_URL=" + ("https://1797a841fbb37ca7-PayboxDemo-checkout-live."
                                 "adyenpayments.com/checkout/v71" if live else
                                 "https://checkout-test.adyen.com/v71"),
        f"ADYEN_CLIENT_KEY={mode}_{_fake('adyen-client', 32).upper()}",
        f"ADYEN_HMAC_KEY={_fake('adyen-hmac', 64).upper()}",
        f"DATABASE_URL={db_url}",
        "TRUSTED_PROXIES=" + ("10.0.0.0/8,127.0.0.1/32" if live else "*,proxy.internal"),
        f"BOOTSTRAP_ENABLED={'false' if live else 'true'}",
        "",
    ])


def main() -> None:
    out = Path(sys.argv[1])
    revs_path = Path(sys.argv[2]) if len(sys.argv) > 2 else out / "revisions.json"
    revisions = json.loads(revs_path.read_text()) if revs_path.is_file() else {
        "v1": _fake("v1", 40), "v2": _fake("v2", 40)}
    for release, rev in revisions.items():
        write_release(out / "evidence" / release, release, rev, fail=False)
        write_release(out / "evidence" / f"{release}-failing", release, rev, fail=True)
    db_url = os.environ.get("PAYBOX_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/paybox")
    (out / "env").mkdir(parents=True, exist_ok=True)
    (out / "env" / "prod-live.env").write_text(env_file(True, db_url))
    (out / "env" / "prod-test-keys.env").write_text(env_file(False, db_url))
    tags = {name: {"commit": rev, "annotated": name != "v1", "depth": 1}
            for name, rev in revisions.items()}
    (out / "fakegithub-state.json").write_text(json.dumps(
        {"repo": "acme/paybox", "tags": tags, "protection": "locked"}, indent=2) + "\n")
    print(f"[paybox-evidence] wrote {out}/evidence, {out}/env, {out}/fakegithub-state.json")


if __name__ == "__main__":
    main()
