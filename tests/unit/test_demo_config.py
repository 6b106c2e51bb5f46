"""`golive demo --config FILE`: the team's file as written, with the sandbox's people.

What the demo hands the bot is checked through the bot's own config parser: the team's target,
runbook and canary keep their meaning (relative paths from the file's folder, as the bot reads
them), while the channels, approvers and operators become the sandbox's, every approver group
name the team's runbook gates use included.
"""

from __future__ import annotations

import tomllib

from bot.dev.demo import team_config
from bot.settings import parse_config

TEAM = """\
environment = "staging"
runbook = "ops/cutover.toml"
secrets = ["SHOP_TOKEN"]

[channels]
cutover = "C0123CUTOVER"
incident = ["C0456INCIDENT"]

[approvers]
users = ["U0AAAAAAA"]
groups = { sre = "S0SRETEAM", "payments-leads" = "S0PAYLEADS" }

[operators]
users = ["U0CCCCCCC"]

[target]
name = "shop"
public_url = "http://127.0.0.1:9"
internal_url = "http://127.0.0.1:9"

[canary]
template = "ops/report.md"
"""


def test_the_team_file_keeps_its_stack_and_gets_the_sandboxs_people(tmp_path):
    cfg = tmp_path / "team" / "golive.toml"
    cfg.parent.mkdir()
    cfg.write_text(TEAM, encoding="utf-8")
    text, notes = team_config(cfg)

    parsed = parse_config(text, environ={"SHOP_TOKEN": "t0ken-value"})
    assert parsed.target.name == "shop" and parsed.environment == "staging"
    assert parsed.secrets == ["SHOP_TOKEN"]
    assert parsed.channels.cutover == "C_CUTOVER" and parsed.channels.incident == ["C_INCIDENT"]
    assert parsed.approvers.users == []
    assert parsed.approvers.groups == {"approvers": "S_APPROVERS", "sre": "S_APPROVERS",
                                       "payments-leads": "S_APPROVERS"}, \
        "the runbook's gate groups must all resolve to the sandbox's approvers"
    assert parsed.operators is not None and parsed.operators.users == ["U_ALICE"]
    # Relative paths mean what they meant next to the team's file.
    assert parsed.runbook == cfg.parent.resolve() / "ops" / "cutover.toml"
    assert parsed.canary.template == cfg.parent.resolve() / "ops" / "report.md"
    assert notes and "C0123CUTOVER, C0456INCIDENT" in notes[0], notes


def test_a_file_already_naming_the_sandbox_is_not_remarked_on(tmp_path):
    cfg = tmp_path / "golive.toml"
    cfg.write_text(TEAM.replace("C0123CUTOVER", "C_CUTOVER").replace("C0456INCIDENT",
                                                                     "C_INCIDENT"),
                   encoding="utf-8")
    text, notes = team_config(cfg)
    assert notes == []
    assert tomllib.loads(text)["channels"] == {"cutover": "C_CUTOVER", "incident": ["C_INCIDENT"]}
