"""Where a migration's part of the plan comes from, changing nothing: the target database
(its alembic revision: one SELECT) and the RC image (``alembic history`` and ``alembic upgrade
current:head --sql``, with a placeholder URL: the offline SQL needs only the dialect, so no
database URL is handed to the image), the rollback's downgrade SQL, and squawk's findings.
Whatever cannot be read is an ``Unresolved`` entry with why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runbook.adapters.redact import mask
from runbook.plan.inputs import PlanInputs
from runbook.plan.model import MigrationPlan, Unresolved
from runbook.plan.services import url_variables, why
from runbook.target import TargetConfig
from runbook.target_deployers import ComposeDeployerConfig, KubernetesDeployerConfig

# The offline SQL needs a dialect, not a database: no URL of the bot's reaches the image.
OFFLINE_URL = "postgresql://golive-plan@offline.invalid:5432/plan"
_HISTORY_EDGE = re.compile(r"^\s*(?P<down>[0-9A-Za-z_]+|<base>)(?:\s*\([^)]*\))*\s*->\s*"
                           r"(?P<up>[0-9A-Za-z_]+)")


def parse_chain(history: str, current: str | None, head: str) -> tuple[str, ...]:
    """The revisions from ``current`` (exclusive) up to ``head``, oldest first, read from
    ``alembic history`` lines (``0001_ledger -> 0002_payout (head), ...``)."""
    parent: dict[str, str | None] = {}
    for line in history.splitlines():
        m = _HISTORY_EDGE.match(line)
        if m:
            parent[m.group("up")] = None if m.group("down") == "<base>" else m.group("down")
    chain: list[str] = []
    at: str | None = head
    stops = set((current or "").split(",")) - {""}
    while at and at not in stops and at not in chain:
        chain.append(at)
        at = parent.get(at)
    return tuple(reversed(chain))


def _rc_image(target: TargetConfig, tag: str) -> str | None:
    d = target.deployer
    m = target.migrations
    if isinstance(d, ComposeDeployerConfig):
        svc = next((s for s in d.services if s.service == m.service), d.services[0])
        return d.image(svc, tag)
    if isinstance(d, KubernetesDeployerConfig):
        c = next((c for c in d.containers if c.deployment == m.service), d.containers[0])
        return d.image(c, tag)
    return None


def migration_plan(target: TargetConfig, inputs: PlanInputs, secrets: Mapping[str, str],
                   *, runner: Any = None, deployer: Any = None
                   ) -> tuple[MigrationPlan | None, list[Unresolved]]:
    """current → head, the chain, the upgrade and downgrade SQL, squawk's findings."""
    from runbook.adapters import alembic_cli, squawk

    m = target.migrations
    unresolved: list[Unresolved] = []
    url = (m.database_url.get_secret_value() if m.database_url else None) or inputs.database_url
    current: str | None = None
    if not url:
        unresolved.append(Unresolved("database revision", "no target database: set "
                                     "[target.migrations] database_url"))
    else:
        try:
            current = alembic_cli.current(url, version_table=m.version_table,
                                          schema=m.version_table_schema)
        except Exception as e:  # noqa: BLE001
            unresolved.append(Unresolved("database revision", why(e, secrets)))
    url_variable = m.url_variable or inputs.url_variable
    extra: dict[str, str] = {}
    if runner is None and not url_variable and m.mode == "compose-run":
        try:  # the offline placeholder where the service's compose environment has a DB URL
            extra = {k: OFFLINE_URL for k in url_variables(target, deployer=deployer)}
        except Exception as e:  # noqa: BLE001
            unresolved.append(Unresolved("database URL variable", why(e, secrets)))
    if runner is None:
        if m.mode == "alembic-api":
            if m.script_location is None:
                return None, [*unresolved, Unresolved("migrations", "mode alembic-api needs "
                                                      "[target.migrations] script_location")]
            runner = alembic_cli.ApiRunner(m.script_location, url_variable)
        else:
            image = _rc_image(target, inputs.rc_tag or "")
            if image is None or not inputs.rc_tag:
                return None, [*unresolved, Unresolved("migrations", "no RC image to read the "
                                                      "migrations from (no tag or deployer)")]
            runner = alembic_cli.ImageRunner(image, m.command, url_variable, extra,
                                             pull="missing")
    history = ""
    try:
        if isinstance(runner, alembic_cli.ImageRunner):
            history = runner.run(["history"], url=None, timeout=m.timeout_s,
                                 what="alembic history").stdout
            heads, _ = alembic_cli.parse_history(history)
        else:
            heads, _ = runner.history(timeout=m.timeout_s)
    except Exception as e:  # noqa: BLE001
        return (MigrationPlan(current=current, head=None),
                [*unresolved, Unresolved("migration head", why(e, secrets))])
    head = ",".join(sorted(heads)) or None
    chain = parse_chain(history, current, head) if history and head else ()
    if head is None or current == head:
        return MigrationPlan(current=current, head=head, chain=chain), unresolved
    sql = down = ""
    findings: tuple[str, ...] = ()

    def downgrade_sql() -> str:
        return mask(runner.run(["downgrade", f"{head}:{current}", "--sql"], url=OFFLINE_URL,
                               timeout=m.timeout_s, what="alembic downgrade --sql").stdout,
                    secrets)

    with ThreadPoolExecutor(1, thread_name_prefix="plan-downgrade") as pool:
        # the rollback's downgrade SQL renders while the upgrade's renders and is linted
        down_f = pool.submit(downgrade_sql) if isinstance(
            runner, alembic_cli.ImageRunner) and current else None
        try:
            sql = mask(runner.offline_sql(OFFLINE_URL, current, timeout=m.timeout_s), secrets)
        except Exception as e:  # noqa: BLE001
            unresolved.append(Unresolved("upgrade SQL", why(e, secrets)))
        if sql and inputs.squawk:
            try:
                findings = tuple(str(f) for f in squawk.lint(sql))
            except Exception as e:  # noqa: BLE001
                unresolved.append(Unresolved("squawk", why(e, secrets)))
        if down_f is not None:
            try:
                down = down_f.result()
            except Exception as e:  # noqa: BLE001
                unresolved.append(Unresolved("downgrade SQL", why(e, secrets)))
    return MigrationPlan(current=current, head=head, chain=chain, sql=sql, findings=findings,
                         down_sql=down), unresolved
