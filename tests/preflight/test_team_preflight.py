"""The preflight on the team's own stack (issue 18): ``[preflight] checks`` chooses what runs,
the release freeze works without GitHub (a real git repository made here, the real local
registry for the label), and every rule, evidence file and route is the team's to name.

Nothing here uses the sample's names except where it checks that the sample's rules are
configuration (golive.example.toml and bot/dev/rehearse/sample.py say the same)."""

from __future__ import annotations

import os
import secrets as pysecrets
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from bot.dev.rehearse.sample import prod_config_rules, rc_evidence_toml
from bot.settings import ConfigError, parse_config
from runbook.checks import build_specs, team_scripts
from runbook.checks.base import CheckContext, Status
from runbook.checks.config import PreflightConfig
from runbook.checks.runner import run_checks
from tests.support.harness import BASE_CONFIG, Bot, is_run_card, text_of
from tests.support.paybox_env import REGISTRY, worker_tag
from tests.support.preflight import assert_no_secret

ROOT = Path(__file__).resolve().parents[2]
JUNIT_OK = """<testsuites><testsuite name="contract">
<testcase classname="api" name="creates_transfer"/><testcase classname="api" name="refuses"/>
</testsuite></testsuites>"""


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "rel", "GIT_AUTHOR_EMAIL": "rel@example.com",
           "GIT_COMMITTER_NAME": "rel", "GIT_COMMITTER_EMAIL": "rel@example.com"}
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                       check=True, timeout=30)
    return r.stdout.strip()


@pytest.fixture
def release_repo(tmp_path) -> dict[str, str]:
    """A real git repository: rc1 a lightweight tag, rc2 an annotated one on a later commit."""
    repo = tmp_path / "release.git-src"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("commit", "-q", "--allow-empty", "-m", "first", cwd=repo)
    _git("tag", "rc1", cwd=repo)
    _git("commit", "-q", "--allow-empty", "-m", "second", cwd=repo)
    _git("tag", "-a", "rc2", "-m", "release candidate 2", cwd=repo)
    return {"path": str(repo), "rc1": _git("rev-parse", "rc1^{commit}", cwd=repo),
            "rc2": _git("rev-parse", "rc2^{commit}", cwd=repo)}


def freeze(tag: str, sha: str | None, **cfg):
    pf = PreflightConfig.model_validate({"release_freeze": {"source": "git", **cfg}})
    return run_checks(build_specs(pf, ["release_freeze"]), rc_tag=tag,
                      rc_sha=sha).results["release_freeze"]


# ----------------------------------------------------------------------- release freeze (git)

def test_release_freeze_reads_a_plain_git_repository_without_github(release_repo, tmp_path):
    path = release_repo["path"]
    r = freeze("rc2", release_repo["rc2"], git_url=path)
    assert r.status is Status.OK, r.finding
    assert f"rc2 = {release_repo['rc2'][:12]}" in r.finding
    assert "branch protection not applicable" in r.finding, r.finding
    assert any("annotated tag" in d and release_repo["rc2"] in d for d in r.details), r.details
    assert r.facts["rc_sha"] == release_repo["rc2"], "an annotated tag is peeled to its commit"
    r = freeze("rc1", release_repo["rc1"], git_url=f"file://{path}")
    assert r.status is Status.OK and "lightweight tag" in " ".join(r.details), r
    # the tag moved (or the run pins the wrong commit): never green
    r = freeze("rc2", release_repo["rc1"], git_url=path)
    assert r.status is Status.FAIL and "but the run pins" in r.finding, r.finding
    r = freeze("rc9", release_repo["rc1"], git_url=path)
    assert r.status is Status.FAIL and f"tag rc9 not found in {path}" in r.finding, r.finding
    r = freeze("rc2", release_repo["rc2"], git_url=str(tmp_path / "nowhere"))
    assert r.status is Status.FAIL and "cannot read the git repository" in r.finding
    assert "git_url" in r.finding and "Traceback" not in r.finding, r.finding


def test_release_freeze_git_url_credentials_never_show(release_repo):
    r = freeze("rc2", release_repo["rc2"],
               git_url="https://deploy:s3cr3t-git-token-9876@127.0.0.1:1/team/app.git")
    assert r.status is Status.FAIL and "cannot read the git repository" in r.finding, r.finding
    assert_no_secret(r, {"git password": "s3cr3t-git-token-9876"})


@pytest.mark.parametrize("section,words", [
    ({"source": "git"}, 'source = "git" needs git_url'),
    ({"source": "github"}, 'source = "github" needs repo = "owner/name"'),
    ({"source": "git", "git_url": "/x", "repo": "a/b"}, "use git_url"),
])
def test_release_freeze_source_is_validated_at_load(section, words):
    with pytest.raises(ConfigError) as e:
        parse_config(BASE_CONFIG + "\n[preflight.release_freeze]\n" + "".join(
            f"{k} = {v!r}\n".replace("'", '"') for k, v in section.items()))
    assert words in "\n".join(e.value.problems), e.value.problems


@pytest.mark.docker
def test_release_freeze_git_source_checks_the_registry_label(release_repo):
    """The RC image's revision label must be the tag's commit, read from the real registry."""
    tools = f"{REGISTRY}/paybox/tools:v1"  # the smallest image the registry holds
    if subprocess.run(["docker", "pull", "-q", tools], capture_output=True,
                      check=False).returncode != 0:
        pytest.fail(f"registry {REGISTRY} lacks {tools} (run `bash .ci/docker-up.sh`)")
    repo = f"{REGISTRY}/golive-freeze-{worker_tag()}-{pysecrets.token_hex(3)}/api".lower()
    labels = {"rc2": release_repo["rc2"], "rc1": release_repo["rc2"]}  # rc1 mislabelled
    refs = []
    try:
        for tag, rev in labels.items():
            ref = f"{repo}:{tag}"
            refs.append(ref)
            for argv, stdin in ((["docker", "build", "-q", "-t", ref, "-"],
                                 f"FROM {tools}\nLABEL org.opencontainers.image.revision={rev}\n"),
                                (["docker", "push", "-q", ref], None)):
                done = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                      check=False, timeout=180)
                assert done.returncode == 0, done.stderr[-1500:]
        image = {"git_url": release_repo["path"], "image": f"{repo}:{{tag}}",
                 "registry_scheme": "http"}
        r = freeze("rc2", release_repo["rc2"], **image)
        assert r.status is Status.OK, r.finding
        assert "image label matches" in r.finding and "not applicable" in r.finding, r.finding
        r = freeze("rc1", release_repo["rc1"], **image)
        assert r.status is Status.FAIL, r.finding
        assert f"was built from {release_repo['rc2'][:12]}, not the RC commit " \
               f"{release_repo['rc1'][:12]}" in r.finding, r.finding
    finally:
        subprocess.run(["docker", "rmi", "--force", *refs], capture_output=True, check=False)


# ----------------------------------------------------------------------- [preflight] checks

def test_unknown_check_names_and_missing_sections_are_config_errors():
    with pytest.raises(ConfigError) as e:
        parse_config(BASE_CONFIG + '\n[preflight]\nchecks = ["release_freez"]\n')
    msg = "\n".join(e.value.problems)
    assert "unknown check `release_freez`" in msg, msg
    assert "known: release_freeze, prod_config, backup_drill, migration_check, rc_evidence, " \
           "team_scripts" in msg, msg
    with pytest.raises(ConfigError) as e:
        parse_config(BASE_CONFIG + '\n[preflight]\nchecks = ["rc_evidence", "team_scripts"]\n')
    msg = "\n".join(e.value.problems)
    assert "checks lists rc_evidence, team_scripts without its section" in msg, msg
    assert "[preflight.rc_evidence], [[preflight.team_scripts]]" in msg, msg
    cfg = parse_config(BASE_CONFIG + '\n[preflight]\nchecks = ["rc-evidence"]\n'
                       '[preflight.rc_evidence]\nroutes = [{ name = "r", url = "http://x" }]\n')
    assert cfg.preflight.selected() == ["rc_evidence"]
    assert [s.name for s in build_specs(cfg.preflight)] == ["rc_evidence"]


@pytest.fixture
def team_bot(clean_db, tmp_path, toy, release_repo):
    """The bot on the toy target, its preflight: a git release freeze and one JUnit suite."""
    evidence = tmp_path / "evidence" / "rc2" / "reports"
    evidence.mkdir(parents=True)
    (evidence / "contract.xml").write_text(JUNIT_OK)
    cfg = BASE_CONFIG + toy.config() + f"""
[preflight]
checks = ["release_freeze", "rc_evidence"]

[preflight.release_freeze]
source = "git"
git_url = "{release_repo['path']}"

[preflight.rc_evidence]
dir = "{tmp_path / 'evidence' / '{tag}'}"
junit = [{{ name = "API contract", files = ["reports/contract.xml"] }}]
"""
    b = Bot(clean_db, tmp_path, config=cfg)
    yield b
    b.stop()


def _preflight(bot, words="preflight", outcome="succeeded"):
    after = bot.seq()
    assert "Queued" in bot.command("alice", words)
    card = bot.workspace.wait_for_message(
        "C_CUTOVER", contains="step `preflight`", after_seq=after, timeout=30,
        predicate=lambda m: m.ephemeral_to is None)  # in the run card's thread (issue 21)
    return bot.card_showing(card, f"— {outcome}", "failed" if outcome == "succeeded"
                            else "succeeded", timeout=90)


def test_only_the_listed_checks_run_the_rest_show_as_not_configured(team_bot, release_repo):
    bot = team_bot
    bot.command("alice", f"start rc2 {release_repo['rc2']}")
    shown = text_of(_preflight(bot))
    assert "— succeeded" in shown, shown
    assert "✅ *release_freeze*" in shown and "branch protection not applicable" in shown, shown
    assert "✅ *rc_evidence*: API contract 2/2" in shown, shown
    for name in ("prod_config", "backup_drill", "migration_check", "team_scripts"):
        assert f"➖ *{name}*: not configured" in shown, f"{name} must show as off: {shown}"
        assert f"❌ *{name}*" not in shown
    status = bot.command("carol", "status")
    assert "Preflight* — green" in status and "➖ *backup_drill*: not configured" in status, \
        status
    after = bot.seq()
    answer = bot.command("alice", "maintenance on")
    assert "Approval requested" in answer, f"the listed checks are green: {answer}"
    card = bot.workspace.wait_for_message("C_CUTOVER", contains="Maintenance mode on",
                                          after_seq=after,
                                          predicate=lambda m: m.ephemeral_to is None and not is_run_card(m))
    assert "2/2 checks green" in text_of(card) and "Override" not in text_of(card)
    # a check the team did not choose is not run on request either, and says how to add it
    one = text_of(_preflight(bot, "preflight prod_config", outcome="failed"))
    assert "not one of this preflight's checks" in one and "[preflight] checks" in one, one


# ----------------------------------------------------------------------- rc_evidence

def _evidence(tmp_path, tag="rc2", **section):
    cfg = PreflightConfig.model_validate({"rc_evidence": section})
    return run_checks(build_specs(cfg, ["rc_evidence"]), rc_tag=tag).results["rc_evidence"]


def test_rc_evidence_items_are_the_teams_and_a_missing_one_fails_by_name(tmp_path, toy):
    base = tmp_path / "ev" / "rc2"
    (base / "reports").mkdir(parents=True)
    (base / "reports" / "contract.xml").write_text(JUNIT_OK)
    r = _evidence(tmp_path, dir=str(tmp_path / "ev" / "{tag}"), junit=[
        {"name": "API contract", "files": ["reports/contract.xml"]},
        {"name": "journal balance", "files": ["reports/journal.xml"]}],
        routes=[{"name": "transfers", "url": toy.url + "/v1/transfers", "method": "POST"}])
    assert r.status is Status.FAIL
    assert "journal balance:" in r.finding and "reports/journal.xml is missing" in r.finding
    assert "route transfers: POST" in r.finding and "HTTP 501 (not served)" in r.finding, \
        r.finding
    assert "API contract" not in r.finding, "only what failed is on the checklist line"
    # one route alone is a whole configuration: no built-in file is looked for
    r = _evidence(tmp_path, routes=[{"name": "health", "url": toy.url + "/api/health"}])
    assert r.status is Status.OK and "route health answers (200)" in r.finding, r.finding
    r = _evidence(tmp_path, routes=[{"name": "health", "url": toy.url + "/api/health",
                                     "expect_status": [401]}])
    assert r.status is Status.FAIL and "answers HTTP 200 (not served)" in r.finding, r.finding
    # an evidence directory CI never published
    r = _evidence(tmp_path, tag="rc3", dir=str(tmp_path / "ev" / "{tag}"),
                  junit=[{"name": "API contract", "files": ["reports/contract.xml"]}])
    assert r.status is Status.FAIL and "the evidence directory" in r.finding \
        and "rc3 is missing" in r.finding, r.finding


def test_rc_evidence_with_nothing_configured_says_what_to_configure(tmp_path):
    r = run_checks(build_specs(PreflightConfig.model_validate({"rc_evidence": {}}),
                               ["rc_evidence"]), rc_tag="rc2").results["rc_evidence"]
    assert r.status is Status.FAIL
    assert r.finding.startswith("nothing to check: configure at least one of "
                                "[[preflight.rc_evidence.junit]]"), r.finding
    (tmp_path / "empty.xml").write_text("<testsuites/>")
    r = _evidence(tmp_path, dir=str(tmp_path), junit=[{"name": "e2e", "files": ["empty.xml"]}])
    assert "e2e: 0 test case(s) in empty.xml, at least 1 expected" in r.finding, r.finding
    assert " in ;" not in r.finding


def test_old_sample_keys_are_refused_with_the_new_shape():
    for section, key, words in (
            ("rc_evidence", {"dir": "x", "e2e_junit": ["a.xml"]},
             "[[preflight.rc_evidence.junit]]"),
            ("rc_evidence", {"payouts_url": "http://x"}, "[[preflight.rc_evidence.routes]]"),
            ("prod_config", {"source": "process", "psps": ["stripe"]},
             "[[preflight.prod_config.rules]]")):
        with pytest.raises(ValueError, match=r"no longer a key") as e:
            PreflightConfig.model_validate({section: key})
        assert words in str(e.value), str(e.value)


# ----------------------------------------------------------------------- prod_config

def _prod(tmp_path, env: str, rules: list[dict]):
    path = tmp_path / "target.env"
    path.write_text(env)
    cfg = PreflightConfig.model_validate({"prod_config": {
        "source": "env_file", "env_file": str(path), "rules": rules}})
    return run_checks(build_specs(cfg, ["prod_config"])).results["prod_config"]


def test_prod_config_rules_are_the_teams(tmp_path):
    env = ("APP_DEBUG=true\nAPP_REGION=us\nAPP_ENV=staging\nLL_SESSION_KEY=short-but-secret-k3y\n"
           "LL_OPERATOR_EMAIL=ops@example.com\nALLOWED_PROXIES=*\n")
    rules = [{"key": "APP_DEBUG", "equals": "false"},
             {"key": "APP_REGION", "one_of": ["eu", "uk"]},
             {"key": "APP_ENV", "not_equals": "staging"},
             {"key": "LL_SESSION_KEY", "matches": "^.{32,}$", "hint": "32+ characters"},
             {"key": "LL_OPERATOR_EMAIL", "not_matches": "@example\\.com$"},
             {"key": "ALLOWED_PROXIES", "check": "networks"},
             {"key": "APP_FEATURE_FLAGS", "required": False, "equals": "none"},
             {"key": "APP_LICENSE"}]
    r = _prod(tmp_path, env, rules)
    assert r.status is Status.FAIL
    for words in ("APP_DEBUG must be 'false' (it is 'true')",
                  "APP_REGION must be one of 'eu', 'uk' (it is 'us')",
                  "APP_ENV must not be 'staging'",
                  "LL_SESSION_KEY does not match ^.{32,}$", "(expected 32+ characters)",
                  "LL_OPERATOR_EMAIL matches @example\\.com$, which it must not",
                  "ALLOWED_PROXIES: * (trusts everyone)",
                  "APP_FEATURE_FLAGS is not set (optional)", "APP_LICENSE is not set"):
        assert any(words in d for d in r.details), (words, r.details)
    assert_no_secret(r, {"session key": "short-but-secret-k3y"})
    assert "(+4 more)" in r.finding, "the line names the first three failures and counts the rest"
    good = ("APP_DEBUG=false\nAPP_REGION=eu\nAPP_ENV=production\nAPP_LICENSE=x\n"
            "LL_SESSION_KEY=" + "k" * 40 + "\nLL_OPERATOR_EMAIL=ops@team.io\n"
            "ALLOWED_PROXIES=10.0.0.0/8\n")
    r = _prod(tmp_path, good, rules)
    assert r.status is Status.OK and r.finding == "all 8 rules pass", r.details


def test_prod_config_without_rules_says_what_to_configure(tmp_path):
    r = _prod(tmp_path, "A=1\n", [])
    assert r.status is Status.FAIL
    assert r.finding.startswith("no rules to check: add [[preflight.prod_config.rules]]"), \
        r.finding
    with pytest.raises(ValueError, match="not a regular expression"):
        PreflightConfig.model_validate({"prod_config": {"source": "process", "rules": [
            {"key": "A", "matches": "("}]}})


def test_the_samples_rules_are_configuration_in_the_example_and_the_demo():
    """golive.example.toml carries the sample stack's rules and evidence, the same as the
    demo's generated config: none of them is built into golive."""
    example = tomllib.loads((ROOT / "golive.example.toml").read_text())["preflight"]
    sample = tomllib.loads(prod_config_rules("http://127.0.0.1:18090"))["preflight"]
    assert example["prod_config"]["rules"] == sample["prod_config"]["rules"]
    ev = tomllib.loads(rc_evidence_toml(example["rc_evidence"]["dir"],
                                        example["rc_evidence"]["routes"][0]["url"]))
    assert example["rc_evidence"] == ev["preflight"]["rc_evidence"]
    source = "\n".join(p.read_text() for p in (ROOT / "runbook" / "checks").glob("*.py"))
    for sample_name in ("STRIPE_SECRET_KEY", "ADYEN_", "BOOTSTRAP_ENABLED", "e2e-money-loop",
                        "backend-regression", "/api/payouts", "SHA256SUMS", '"payouts"',
                        '"accounts"'):
        assert sample_name not in source, f"{sample_name} is built into runbook/checks"


# ----------------------------------------------------------------------- team scripts

def test_a_team_script_gets_only_what_it_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLIVE_H5_BOT_DSN", "postgresql://bot:bot-only-pw-4711@db/prod")
    monkeypatch.setenv("GOLIVE_H5_REGION", "eu-west")
    script = tmp_path / "show.sh"
    script.write_text("#!/bin/sh\necho \"dsn=${GOLIVE_H5_BOT_DSN:-unset}\"\n"
                      "echo \"region=${GOLIVE_H5_REGION:-unset}\"\necho \"mine=$MINE\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    cfg = PreflightConfig.model_validate({"team_scripts": [
        {"name": "show", "command": [str(script)], "env": {"MINE": "given"},
         "env_passthrough": ["GOLIVE_H5_REGION"]}]})
    r = team_scripts.run(CheckContext("team_scripts", cfg.team_scripts))
    out = "\n".join(r.details)
    assert r.status is Status.OK, r.details
    assert "dsn=unset" in out, f"the bot's own variables must not reach a team script: {out}"
    assert "region=eu-west" in out and "mine=given" in out, out
    with pytest.raises(ValueError, match='where = "container" needs container'):
        PreflightConfig.model_validate({"team_scripts": [
            {"name": "x", "command": ["true"], "where": "container"}]})
