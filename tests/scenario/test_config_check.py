"""`golive config check` as an operator runs it before the first start: a real pre-flight of the
bot (TOML, environment, database, Slack token, channels, groups, target), one ✅/❌ line each.

The Slack side is the sandbox (its auth.test, conversations.history and usergroups.users.list
answer as Slack does); the database is real PostgreSQL; the target is the toy HTTP target.
"""

from __future__ import annotations

import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from tests.support import pg
from tests.support.cli import golive
from tests.support.harness import BASE_CONFIG, BOT_TOKEN, SIGNING_SECRET, bot_environ, free_socket


@pytest.fixture
def sandbox():
    s = SandboxServer(Workspace.default_demo(), signing_secret=SIGNING_SECRET,
                      bot_token=BOT_TOKEN).start()
    yield s
    s.stop()


def closed_url() -> str:
    """An HTTP URL on a loopback port nothing listens on."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def check(environ: dict[str, str], *args: str):
    r = golive("config", "check", *args, url=None, key=None, env=environ)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def marked(stdout: str, mark: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(mark)]


def test_a_good_setup_passes_every_check(sandbox, clean_db, tmp_path, toy):
    environ = bot_environ(sandbox, clean_db, tmp_path, BASE_CONFIG + toy.config(), None)
    r = check(environ)
    assert r.returncode == 0, f"a good setup failed its pre-flight:\n{r.stdout}{r.stderr}"
    assert marked(r.stdout, "❌") == [], r.stdout
    good = "\n".join(marked(r.stdout, "✅"))
    for what in ("config ", "runbook ", "environment:", "database ", "Slack token: valid",
                 "cutover channel C_CUTOVER", "incident channel C_INCIDENT",
                 "approver group approvers (S_APPROVERS): 2 member(s)",
                 f"target public_url {toy.url}", f"target internal_url {toy.url}"):
        assert what in good, f"no ✅ line for {what!r}:\n{r.stdout}"
    # The toy stack has no smoke script, which the runbook runs: off, a warning, not a failure.
    assert "⚠️ smoke script: off — the runbook needs it; add [target.smoke]" in r.stdout, \
        r.stdout
    assert BOT_TOKEN not in r.stdout + r.stderr and SIGNING_SECRET not in r.stdout + r.stderr


def _unreachable_db(environ, _):
    environ["DATABASE_URL"] = "postgresql://golive@127.0.0.1:1/golive"


def _invalid_token(environ, _):
    environ["SLACK_BOT_TOKEN"] = "xoxb-revoked-0000-not-the-token"


BAD = {
    "unreachable database": (_unreachable_db, "", "not reachable",
                             "start PostgreSQL, or correct DATABASE_URL"),
    "invalid token": (_invalid_token, "", "auth.test", "Bot User OAuth Token"),
    "channel the bot cannot see": (None, 'incident = ["C_ELSEWHERE"]',
                                   "incident channel C_ELSEWHERE: the bot cannot see it",
                                   "/invite @"),
    "unknown approver group": (None, 'groups = { approvers = "S_NOBODY" }',
                               "approver group approvers (S_NOBODY): cannot be resolved",
                               "use the group's ID"),
    "target not answering": (None, "internal_url", "does not answer",
                             "start the target stack, or correct [target] internal_url"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_broken_part_is_one_red_line_with_its_fix(case, sandbox, clean_db, tmp_path, toy):
    change, config_line, what, fix = BAD[case]
    config = BASE_CONFIG
    if config_line.startswith("incident"):
        config = config.replace('incident = ["C_INCIDENT"]', config_line)
    elif config_line.startswith("groups"):
        config = config.replace('groups = { approvers = "S_APPROVERS" }', config_line)
    target = toy.config()
    if config_line == "internal_url":
        target = target.replace(f'internal_url = "{toy.url}"', f'internal_url = "{closed_url()}"')
    environ = bot_environ(sandbox, clean_db, tmp_path, config + target, None)
    if change:
        change(environ, tmp_path)
    r = check(environ)
    red = marked(r.stdout, "❌")
    assert r.returncode != 0, f"{case}: the check passed:\n{r.stdout}"
    assert len(red) == 1, f"{case}: expected exactly one ❌ line:\n{r.stdout}"
    assert what in red[0] and "fix: " in red[0] and fix in red[0], \
        f"{case}: the ❌ line does not say what broke and how to fix it: {red[0]}"


def test_an_unmigrated_database_says_to_upgrade(sandbox, tmp_path, toy):
    name, url = pg.create_database("golive_unmigrated")
    try:
        environ = bot_environ(sandbox, url, tmp_path, BASE_CONFIG + toy.config(), None)
        environ["DATABASE_URL"] = url  # no schema yet, so no runtime role grants either
        r = check(environ)
    finally:
        pg.drop_database(name)
    red = marked(r.stdout, "❌")
    assert r.returncode != 0 and len(red) == 1, r.stdout
    assert "nothing (empty database)" in red[0] and "fix: run `golive db upgrade`" in red[0], red


def test_offline_checks_the_toml_without_tokens_or_database(tmp_path, toy):
    cfg = tmp_path / "golive.toml"
    cfg.write_text(BASE_CONFIG + toy.config(), encoding="utf-8")
    r = check({"GOLIVE_CONFIG": str(cfg)}, "--offline")
    assert r.returncode == 0, f"--offline needed more than the TOML:\n{r.stdout}{r.stderr}"
    assert marked(r.stdout, "✅") and not marked(r.stdout, "❌"), r.stdout

    cfg.write_text(BASE_CONFIG.replace('cutover = "C_CUTOVER"', 'cutover = "general"'),
                   encoding="utf-8")
    r = check({"GOLIVE_CONFIG": str(cfg)}, "--offline")
    red = marked(r.stdout, "❌")
    assert r.returncode != 0 and len(red) == 1, r.stdout
    assert "channels.cutover: not a Slack channel ID: general" in red[0], red
    assert f"fix: edit {cfg}" in red[0], red
