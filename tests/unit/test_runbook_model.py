"""runbook/model.py: the shipped cutover.toml loads; every validation problem is reported."""

from __future__ import annotations

import pytest

from runbook.model import (
    DONE_STATES,
    Gate,
    RunbookError,
    default_runbook_path,
    load_runbook,
)

KINDS = {
    "check.all", "check.release_freeze", "check.prod_config", "check.backup_drill",
    "check.migration_dry_run", "check.rc_evidence", "maintenance", "deploy", "migrate",
    "health", "smoke", "traffic", "canary", "watch.ledger", "watch.webhooks",
    "watch.error_budget", "rollback.revert_deploy", "rollback.data", "rollback.verify_readonly",
}

PREFLIGHT = ["preflight"]  # one step runs every check concurrently (check.all)
CUTOVER = ["maintenance-on", "maintenance-off", "deploy", "migrate", "health", "smoke",
           "traffic-open"]
POST = ["canary", "ledger-check", "webhook-watch", "error-budget"]
ROLLBACK = ["rb-maintenance-on", "rb-revert-deploy", "rb-restore-or-downgrade", "rb-verify",
            "rb-traffic-open"]


@pytest.fixture(scope="module")
def shipped():
    return load_runbook(default_runbook_path(), known_kinds=KINDS, approver_groups={"sre"})


def problems_of(text: str, **kw) -> list[str]:
    kw.setdefault("known_kinds", KINDS)
    with pytest.raises(RunbookError) as exc:
        load_runbook(text, source="test.toml", **kw)
    err = exc.value
    assert str(err) == "\n".join(err.problems), "str(RunbookError) must be one line per problem"
    return err.problems


def assert_one_problem(text: str, *needles: str, **kw) -> str:
    problems = problems_of(text, **kw)
    hits = [p for p in problems if all(n in p for n in needles)]
    assert hits, f"expected a problem mentioning {needles}, got: {problems}"
    assert all(p.startswith("test.toml: ") for p in problems), f"file not named: {problems}"
    return hits[0]


HEAD = """
[runbook]
name = "t"
version = "1"
"""


def rb(steps: str, rollback: str = "") -> str:
    return HEAD + '\n[[phases]]\nid = "main"\n' + steps + rollback


def step(id: str, kind: str = "health", extra: str = "") -> str:
    return f'\n[[phases.steps]]\nid = "{id}"\ntitle = "T {id}"\nkind = "{kind}"\n{extra}\n'


# ------------------------------------------------------------------------------ shipped file


def test_shipped_runbook_has_the_seed_phases_in_order(shipped):
    assert [p.id for p in shipped.phases] == ["preflight", "cutover", "post"], "phase order"
    assert [s.id for s in shipped.phase("preflight").steps] == PREFLIGHT
    assert [s.id for s in shipped.phase("cutover").steps] == CUTOVER
    assert [s.id for s in shipped.phase("post").steps] == POST
    assert [s.id for s in shipped.rollback] == ROLLBACK, "rollback plan order"
    assert [s.id for s in shipped.all_steps()] == PREFLIGHT + CUTOVER + POST + ROLLBACK, (
        "all_steps must be runbook order with rollback last"
    )
    assert shipped.order_index("deploy") == len(PREFLIGHT) + CUTOVER.index("deploy")


def test_shipped_runbook_steps_and_gates(shipped):
    deploy = shipped.step("deploy")
    assert deploy.kind == "deploy" and deploy.args == ("tag",) and deploy.command == "deploy"
    assert deploy.gate == Gate(approvals=1, groups=()), "deploy must be gated, 1 approver"
    assert deploy.requires == ("maintenance-on",)
    assert shipped.step("maintenance-on").params == {"mode": "on"}
    assert shipped.step("maintenance-on").requires == tuple(PREFLIGHT), (
        "maintenance-on must explicitly require the preflight step"
    )
    assert shipped.step("preflight").kind == "check.all" and \
        shipped.step("preflight").args == ("check",), "/golive preflight [<check>]"
    assert shipped.step("traffic-open").params == {"action": "open"}
    assert shipped.step("traffic-open").gated, "traffic-open must be gated"
    assert not shipped.step("migrate").gated, "migrate is not gated in the seed"
    assert shipped.step("rb-restore-or-downgrade").params["strategy"] == "downgrade"
    assert shipped.step("rb-restore-or-downgrade").phase == "rollback"
    assert shipped.rollback_gate == Gate(1, ()), "rollback is gated by default"
    assert shipped.step("preflight").timeout_s == 900, "past the slowest check's timeout"
    for s in shipped.cutover_steps()[len(PREFLIGHT):]:
        assert s.requires, f"{s.id} must state its requirements explicitly"


def test_shipped_triggers(shipped):
    assert [t.id for t in shipped.triggers] == [
        "payout-failure-rate", "ledger-invariant", "security-incident"]
    payout = shipped.trigger("payout-failure-rate")
    assert payout.fired({"payout_failure_rate": 0.16}) is True, "16% > 15% must fire"
    assert payout.fired({"payout_failure_rate": 0.15}) is False, "exactly 15% must not fire"
    assert payout.fired({}) is None, "unmeasured metric: cannot say"
    assert shipped.trigger("ledger-invariant").fired({"ledger_violations": 1}) is True
    assert shipped.trigger("security-incident").manual
    assert shipped.trigger("security-incident").fired({"x": 1}) is None


def test_by_command(shipped):
    assert shipped.by_command("deploy").id == "deploy"
    assert shipped.by_command("  Maintenance   ON ").id == "maintenance-on", (
        "commands must match case/space-insensitively, and before rb-maintenance-on"
    )
    assert shipped.by_command("traffic open").id == "traffic-open"
    assert shipped.by_command("preflight").id == "preflight"
    assert [s.id for s in shipped.steps_for_command("preflight")] == PREFLIGHT
    assert [s.id for s in shipped.steps_for_command("rollback")] == ROLLBACK
    assert shipped.by_command("launch missiles") is None


def test_next_steps_and_unmet_requirements_along_a_run(shipped):
    states: dict[str, str] = {}
    assert [s.id for s in shipped.next_steps(states)] == PREFLIGHT, "fresh run: all preflight"
    assert shipped.unmet_requirements("maintenance-on", states) == PREFLIGHT
    for sid in PREFLIGHT:
        states[sid] = "skipped"
    assert shipped.unmet_requirements("maintenance-on", states) == [], "skipped counts as met"
    assert [s.id for s in shipped.next_steps(states)] == ["maintenance-on"]

    states["maintenance-on"] = "running"
    assert shipped.unmet_requirements("deploy", states) == ["maintenance-on"], (
        "a running requirement is not met"
    )
    assert [s.id for s in shipped.next_steps(states)] == ["maintenance-on"]
    states["maintenance-on"] = "failed"
    assert shipped.unmet_requirements("deploy", states) == ["maintenance-on"]
    assert [s.id for s in shipped.next_steps(states)] == ["maintenance-on"], "failed: retry"

    for sid in CUTOVER:
        states[sid] = "succeeded"
    assert [s.id for s in shipped.next_steps(states)] == [
        "canary", "webhook-watch", "error-budget"], "after traffic-open the watches start"
    states["canary"] = "succeeded"
    assert [s.id for s in shipped.next_steps(states)] == [
        "ledger-check", "webhook-watch", "error-budget"]
    for sid in POST:
        states[sid] = "succeeded"
    assert shipped.next_steps(states) == [], "everything done"
    assert [s.id for s in shipped.next_steps({}, rollback=True)] == ["rb-maintenance-on"]
    assert "succeeded" in DONE_STATES and "skipped" in DONE_STATES


def test_load_from_text_and_from_str_path(tmp_path):
    text = rb(step("a"))
    assert load_runbook(text, known_kinds=KINDS).step("a").timeout_s == 300
    p = tmp_path / "mine.toml"
    p.write_text(text + "oops = 1\n")
    with pytest.raises(RunbookError) as exc:
        load_runbook(str(p), known_kinds=KINDS)
    assert exc.value.problems[0].startswith("mine.toml: step 'a': unknown key 'oops'"), (
        f"a path's file name must be in the message: {exc.value.problems}"
    )


# ------------------------------------------------------------------------------ validation


def test_unknown_kind_lists_known_ones():
    msg = assert_one_problem(rb(step("a", kind="deploi")), "step 'a'", "unknown kind 'deploi'")
    assert "did you mean 'deploy'" in msg and "known kinds:" in msg and "migrate" in msg, msg


def test_duplicate_id():
    assert_one_problem(rb(step("a") + step("a")), "step 'a'", "duplicate id")


def test_requires_missing_step():
    msg = assert_one_problem(rb(step("a", extra='requires = ["bb"]')), "step 'a'", "requires 'bb'")
    assert "not a step" in msg, msg


def test_cycle_is_named():
    text = rb(step("a", extra='requires = ["c"]') + step("b", extra='requires = ["a"]')
              + step("c", extra='requires = ["b"]'))
    assert_one_problem(text, "dependency cycle: a -> c -> b -> a")
    assert_one_problem(rb(step("x", extra='requires = ["x"]')), "step 'x'", "cycle: x -> x")


@pytest.mark.parametrize("gate, needle", [
    ("gated = true\ngate = { approvals = 0 }", "approvals must be a whole number from 1 to 10"),
    ("gated = true\ngate = { approvals = 11 }", "got 11"),
    ("gate = { approvals = 2, group = [] }", "unknown key 'group' (did you mean 'groups'?)"),
    ("gated = false\ngate = { approvals = 1 }", "gated = false"),
    ("gated = true\ngate = { groups = ['dba'] }", "unknown approver group 'dba'"),
])
def test_bad_gate(gate, needle):
    msg = assert_one_problem(rb(step("a", extra=gate)), "step 'a'", needle, approver_groups={"sre"})
    if "dba" in needle:
        assert "configured groups: sre" in msg, msg


def test_gate_defaults_and_groups_without_config():
    runbook = load_runbook(rb(step("a", extra="gated = true") + step(
        "b", extra="gate = { approvals = 2, groups = ['dba'] }")), known_kinds=KINDS)
    assert runbook.step("a").gate == Gate(1, ()), "gated = true alone means 1 approver"
    assert runbook.step("b").gate == Gate(2, ("dba",)), "a gate table implies gated"
    assert runbook.step("a").gated and not load_runbook(
        rb(step("c")), known_kinds=KINDS).step("c").gated


@pytest.mark.parametrize("timeout", ["0", "-5", str(6 * 3600 + 1), '"10m"', "1.5"])
def test_bad_timeout(timeout):
    assert_one_problem(rb(step("a", extra=f"timeout = {timeout}")), "step 'a'", "bad timeout")


def test_six_hours_is_allowed():
    assert load_runbook(rb(step("a", extra="timeout = 21600")),
                        known_kinds=KINDS).step("a").timeout_s == 21600


def test_unknown_key_typo():
    msg = assert_one_problem(rb(step("b") + step("a", extra='requirs = ["b"]')), "step 'a'",
                      "unknown key 'requirs'")
    assert "did you mean 'requires'" in msg, msg


def test_missing_title_and_kind():
    text = rb('\n[[phases.steps]]\nid = "a"\n')
    problems = problems_of(text)
    assert any("step 'a': missing 'title'" in p for p in problems), problems
    assert any("step 'a': missing 'kind'" in p for p in problems), problems
    assert_one_problem(rb('\n[[phases.steps]]\ntitle = "x"\nkind = "health"\n'),
                "step #1 of phase 'main'", "missing 'id'")


def test_rollback_step_requiring_a_cutover_step():
    text = rb(step("a"), '\n[rollback]\n[[rollback.steps]]\nid = "r"\ntitle = "R"\n'
              'kind = "traffic"\nrequires = ["a"]\n')
    assert_one_problem(text, "step 'r'", "rollback step requires 'a'")


def test_cutover_step_requiring_a_rollback_step():
    text = rb(step("a", extra='requires = ["r"]'),
              '\n[rollback]\n[[rollback.steps]]\nid = "r"\ntitle = "R"\nkind = "traffic"\n')
    assert_one_problem(text, "step 'a'", "requires rollback step 'r'")


def test_bad_param_choice_and_triggers():
    text = rb(step("a", kind="rollback.data", extra='params = { strategy = "yolo" }'),
              '\n[rollback]\ntriggers = [{ id = "t", metric = "m", op = "=>", threshold = 1 },'
              ' { id = "u", manual = true, metric = "m" }]\n')
    problems = problems_of(text)
    assert any("step 'a': params.strategy must be one of restore, downgrade" in p
               for p in problems), problems
    assert any("rollback trigger 't': 'op' must be one of" in p for p in problems), problems
    assert any("rollback trigger 'u': a manual trigger has no metric" in p
               for p in problems), problems


def test_all_problems_collected_at_once():
    text = rb(step("a", kind="nope", extra="timeout = 0\nrequirs = []")
              + step("a") + step("b", extra='requires = ["zz"]'))
    problems = problems_of(text)
    assert len(problems) >= 5, f"every problem must be reported in one go: {problems}"


def test_invalid_toml_is_one_problem():
    problems = problems_of("[runbook\nname=")
    assert len(problems) == 1 and "invalid TOML" in problems[0], problems


# ------------------------------------------------------------------------------ version


def test_version_is_a_content_hash_that_approvals_can_bind_to(shipped):
    text = default_runbook_path().read_text()
    assert len(shipped.version) == 64 and int(shipped.version, 16) >= 0, (
        f"version must be a sha256 hex digest, got {shipped.version!r}")
    assert shipped.declared_version == "1", "the [runbook] version as written stays available"
    same = load_runbook("# a comment\n" + text.replace("\n", "\n\n"), known_kinds=KINDS,
                        source="elsewhere.toml")
    assert same.version == shipped.version, "comments, layout and file name must not count"
    edits = {
        "a gate": ('gate = { approvals = 1, groups = [] }\nargs = ["tag"]',
                   'gate = { approvals = 2, groups = [] }\nargs = ["tag"]'),
        "a param": ('strategy = "downgrade"', 'strategy = "restore"'),
        "a timeout": ('kind = "smoke"', 'kind = "smoke"\ntimeout = 601'),
        "a trigger": ("threshold = 0.15", "threshold = 0.2"),
    }
    for what, (old, new) in edits.items():
        assert text.count(old) == 1, f"test setup: {old!r} must occur once"
        edited = load_runbook(text.replace(old, new), known_kinds=KINDS)
        assert edited.version != shipped.version, f"changing {what} must change the version"
