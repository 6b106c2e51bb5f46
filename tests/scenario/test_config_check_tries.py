"""`golive config check` tries what the night will do, read-only, against a team's own stack
(tests/support/shop_stack.py: a real HTTP app, a real compose file parsed by `docker compose
config`, a real PostgreSQL database with its own schema, a Python smoke script).

Each broken part is exactly one ❌ line that says what broke and how to fix it; a good stack is
all ✅ (a section that is off is ⚠️, not ❌); no secret is ever printed.
"""

from __future__ import annotations

import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from tests.support.cli import golive
from tests.support.harness import BASE_CONFIG, BOT_TOKEN, SIGNING_SECRET, bot_environ
from tests.support.shop_stack import PASSWORD, ShopStack

pytestmark = pytest.mark.docker  # the compose file is parsed by `docker compose config`


@pytest.fixture
def sandbox():
    s = SandboxServer(Workspace.default_demo(), signing_secret=SIGNING_SECRET,
                      bot_token=BOT_TOKEN).start()
    yield s
    s.stop()


@pytest.fixture
def shop(tmp_path):
    s = ShopStack(tmp_path).start()
    yield s
    s.stop()


def check(sandbox, clean_db, tmp_path, shop, **swap: str):
    environ = bot_environ(sandbox, clean_db, tmp_path,
                          shop.HEAD + BASE_CONFIG + shop.config(**swap),
                          shop.environ())
    r = golive("config", "check", url=None, key=None, env=environ)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert PASSWORD not in out and shop.db_url not in out, f"a secret was printed:\n{out}"
    return r


def marked(stdout: str, mark: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(mark)]


def test_a_good_stack_is_tried_line_by_line_and_passes(sandbox, clean_db, tmp_path, shop):
    r = check(sandbox, clean_db, tmp_path, shop)
    assert r.returncode == 0 and not marked(r.stdout, "❌"), r.stdout
    good = "\n".join(marked(r.stdout, "✅"))
    for what in ("Docker engine", f"compose file {shop.compose_file}: parses; services web",
                 f"smoke script {shop.smoke}: exists and is executable",
                 f"health {shop.url}/healthz: HTTP 200, the contract holds",
                 f"login {shop.url}/session: HTTP 200",
                 f"dashboard {shop.url}/console: HTTP 200, found 'Shop console'",
                 f"maintenance switch {shop.url}/ops/maint: answers (GET: HTTP 405; not toggled)",
                 "migrations: `current`", "watch payouts: 1 query plan",
                 "watch ledger: 1 query plan", "canary: 4 queries plan",
                 "watch webhooks: reads compose service web's log",
                 f"watch health {shop.url}/healthz: HTTP 200",
                 f"preflight release_freeze git {shop.release_repo}: answers"):
        assert what in good, f"no ✅ line for {what!r}:\n{r.stdout}"


BROKEN = {
    "missing compose file": (
        {"compose_file": '"/nonexistent/compose.yaml"'},
        "compose file /nonexistent/compose.yaml: no such file",
        "correct [target.deployer] compose_file"),
    "compose file that does not parse": (
        {"compose_file": '"{broken}"'}, "`docker compose config` refuses it",
        "fix the compose file"),
    "compose file whose service ignores the tag variable": (
        {"compose_file": '"{fixed}"'}, "service 'web' does not take its tag from ${SHOP_WEB_TAG}",
        "write `image: …:${SHOP_WEB_TAG}`"),
    "compose file without the configured service": (
        {"deploy_service": '"api"'}, "no service 'api' (it has web, worker)",
        "correct [target.deployer] services"),
    "missing smoke script": (
        {"smoke_path": '"/nonexistent/smoke.py"'}, "smoke script /nonexistent/smoke.py: no such file",
        "correct [target.smoke] path"),
    "wrong health path": (
        {"health_path": '"/api/health"'}, "/api/health: HTTP 404", "correct [target.health] path"),
    "typo in expect": (
        {"expect": '{ state = "upp", database = "ok" }'},
        "state='up' (expected 'upp')", "correct [target.health]"),
    "typo in a field path": (
        {"version_field": '"build.relase"'}, "version_field 'build.relase' not in today's answer",
        "correct [target.health]"),
    "wrong login path": (
        {"login_path": '"/login"'}, "login ", "correct [target.admin_login]"),
    "dashboard without the expected text": (
        {"dashboard_text": '"Shop Console v2"'}, "/console: HTTP 200 but the page lacks",
        "correct [target.dashboard]"),
    "health watch at a path the ingress does not route": (
        {"watch_health_path": '"/health"'}, "watch health", "correct [watches.health] base / path"),
    "maintenance switch at a wrong URL": (
        {"maintenance_url": '"{url}/ops/maintenance"'}, "GET answers HTTP 404",
        "correct [target.maintenance] url"),
    "watch reading a service the compose file lacks": (
        {"webhook_service": '"app"'}, "watch webhooks: the compose file has no service 'app'",
        "correct [watches.webhooks] logs service"),
    "release repository that is not there": (
        {"git_url": '"/nonexistent/release.git"'}, "preflight release_freeze git /nonexistent",
        "correct [preflight.release_freeze] git_url"),
    "broken watch query": (
        {"payouts_sql": '"SELECT count(*) AS failed, count(*) AS total FROM payoutz"'},
        'watch payouts query sql', "correct [watches.payouts] sql"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_part_of_the_stack_is_one_red_line_with_its_fix(case, sandbox, clean_db,
                                                                   tmp_path, shop):
    swap, what, fix = BROKEN[case]
    broken = tmp_path / "broken-compose.yaml"
    broken.write_text("services:\n  web:\n    image: [unclosed\n", encoding="utf-8")
    fixed = tmp_path / "fixed-tag-compose.yaml"
    fixed.write_text("services:\n  web:\n    image: 127.0.0.1:5000/shop/web:v1\n",
                     encoding="utf-8")
    files = {"{broken}": broken, "{fixed}": fixed}
    for placeholder, path in files.items():
        swap = {k: v.replace(placeholder, str(path)) for k, v in swap.items()}
    swap = {k: v.replace("{url}", shop.url) for k, v in swap.items()}
    r = check(sandbox, clean_db, tmp_path, shop, **swap)
    red = marked(r.stdout, "❌")
    assert r.returncode != 0, f"{case}: the check passed:\n{r.stdout}"
    assert len(red) == 1, f"{case}: expected exactly one ❌ line:\n{r.stdout}"
    assert what in red[0] and "fix: " in red[0] and fix in red[0], \
        f"{case}: the ❌ line does not say what broke and how to fix it: {red[0]}"


def test_the_broken_query_shows_the_database_error(sandbox, clean_db, tmp_path, shop):
    r = check(sandbox, clean_db, tmp_path, shop,
              payouts_sql='"SELECT count(*) AS failed, count(*) AS total FROM payoutz"')
    red = marked(r.stdout, "❌")
    assert red and 'relation "payoutz" does not exist' in red[0], r.stdout
