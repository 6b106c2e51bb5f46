"""Settings and the CLI as an operator meets them: one clear line per problem, secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import manifest
from bot.settings import ConfigError, load_settings, parse_config

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
[channels]
cutover = "C0CUTOVER"
[approvers]
users = ["U0BOB"]
[target.admin_login]
password = "${ADMIN_PW}"
"""


def env(tmp_path: Path, text: str = GOOD, **extra: str) -> dict[str, str]:
    cfg = tmp_path / "golive.toml"
    cfg.write_text(text)
    return {"SLACK_BOT_TOKEN": "xoxb-1-secret-token", "SLACK_SIGNING_SECRET": "s3cret-signing",
            "DATABASE_URL": "postgresql://bot:dbpass@127.0.0.1/golive",
            "GOLIVE_CONFIG": str(cfg), "ADMIN_PW": "hunter2-admin",
            "GOLIVE_AUDIT_KEY": "audit-key-for-settings-tests-0123456789", **extra}


def test_missing_settings_are_reported_one_line_each(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(environ={})
    problems = e.value.problems
    assert len(problems) == 4, problems
    assert any(p.startswith("SLACK_BOT_TOKEN is not set") for p in problems)
    assert any(p.startswith("SLACK_SIGNING_SECRET is not set") for p in problems)
    assert any(p.startswith("DATABASE_URL is not set") for p in problems)
    assert any(p.startswith("GOLIVE_CONFIG is not set") for p in problems)


def test_invalid_config_names_each_field(tmp_path):
    bad = '[channels]\ncutover = "general"\n[approvers]\nusers = ["bob"]\nexpiry_minutes = 0\n'
    with pytest.raises(ConfigError) as e:
        load_settings(environ=env(tmp_path, bad))
    text = "\n".join(e.value.problems)
    assert "channels.cutover: not a Slack channel ID: general" in text
    assert "approvers.users: not a Slack user ID: bob" in text
    assert "approvers.expiry_minutes" in text


def test_unset_variable_in_config_is_a_clear_problem(tmp_path):
    e = env(tmp_path)
    del e["ADMIN_PW"]
    with pytest.raises(ConfigError) as err:
        load_settings(environ=e)
    assert any("${ADMIN_PW} is not set" in p for p in err.value.problems)


def test_secrets_collected_for_masking(tmp_path):
    s = load_settings(environ=env(tmp_path))
    values = set(s.secrets().values())
    assert {"xoxb-1-secret-token", "s3cret-signing", "hunter2-admin"} <= values


def test_garbage_toml_is_one_line():
    with pytest.raises(ConfigError) as e:
        parse_config("[channels\ncutover=", source="x.toml")
    assert len(e.value.problems) == 1 and e.value.problems[0].startswith("x.toml: not valid TOML")


def run_cli(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GOLIVE_"))}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], check=False,
                          env={**base, **environ},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_config_check_masks_every_secret(tmp_path):
    # Nothing answers on port 1: every online check fails, and no failure shows a secret.
    r = run_cli("config", "check", environ=env(tmp_path, SLACK_API_URL="http://127.0.0.1:1/api/",
                                               DATABASE_URL="postgresql://bot:dbpass@127.0.0.1:1/golive"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    for secret in ("xoxb-1-secret-token", "s3cret-signing", "hunter2-admin", "dbpass"):
        assert secret not in r.stdout + r.stderr, f"{secret} shown by config check"
    assert "❌ database 127.0.0.1:1/golive: not reachable" in r.stdout, r.stdout


def test_manifest_without_url_says_it_printed_a_placeholder():
    r = run_cli("manifest", environ={})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["settings"]["interactivity"]["request_url"] == \
        "https://golive.example.com/slack/events", "stdout must stay the manifest, as JSON"
    assert "placeholder" in r.stderr and "--url" in r.stderr, \
        f"no word that the URL is a placeholder: {r.stderr!r}"
    r = run_cli("manifest", "--url", "https://bot.example.com", environ={})
    assert "placeholder" not in r.stderr, r.stderr


def test_serve_refuses_to_start_with_bad_settings(tmp_path):
    r = run_cli("serve", environ={"GOLIVE_CONFIG": str(tmp_path / "nope.toml")})
    assert r.returncode == 2
    assert "fix these settings" in r.stderr and "no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_manifest_http_and_socket_modes():
    http = manifest(url="https://bot.example.com", socket=False)
    cmd = http["features"]["slash_commands"][0]
    assert cmd["command"] == "/golive" and cmd["url"] == "https://bot.example.com/slack/events"
    assert http["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert {"commands", "chat:write", "users:read", "usergroups:read", "files:write"} <= set(
        http["oauth_config"]["scopes"]["bot"])
    sock = manifest(url=None, socket=True)
    assert sock["settings"]["socket_mode_enabled"] is True
    assert "url" not in sock["features"]["slash_commands"][0]
    json.dumps(sock)


def test_help_everywhere():
    for args in (["--help"], ["serve", "--help"], ["db", "--help"], ["audit", "--help"],
                 ["demo", "--help"], ["config", "--help"], ["manifest", "--help"]):
        r = run_cli(*args, environ={})
        assert r.returncode == 0 and "usage: golive" in r.stdout, args


def test_invalid_runbook_stops_serve_with_one_line_per_problem(tmp_path):
    (tmp_path / "bad.toml").write_text(
        '[runbook]\nname = "x"\nversion = "1"\n[[phases]]\nid = "p"\ntitle = "P"\n'
        '[[phases.steps]]\nid = "a"\ntitle = "A"\nkind = "nope"\nrequirs = ["b"]\n')
    e = env(tmp_path, 'runbook = "bad.toml"\n' + GOOD)
    r = run_cli("serve", "--port", "1", environ=e)
    assert r.returncode == 2, r.stderr
    assert "the runbook is invalid" in r.stderr and "Traceback" not in r.stderr
    assert "unknown key 'requirs' (did you mean 'requires'?)" in r.stderr
    assert "unknown kind 'nope'" in r.stderr


def test_the_shipped_example_config_is_valid():
    text = (ROOT / "golive.example.toml").read_text()
    environ = {"PAYBOX_DATABASE_URL": "postgresql://u:p@db/paybox", "PAYBOX_OPS_TOKEN": "t0k",
               "PAYBOX_ADMIN_PASSWORD": "pw"}
    cfg = parse_config(text, source="golive.example.toml", environ=environ)
    assert cfg.channels.incident == ["C0456INCIDENT"]
    assert cfg.approvers.groups["sre"] == "S0SRETEAM"
    assert cfg.target.admin_login.password.get_secret_value() == "pw"
