"""`golive config check`, the stack half: each line is a read-only try of what the night does.

The compose file is parsed by `docker compose config` (it must name the configured services and
read their tag variables), the smoke script must be able to execute, the health path must
answer 2xx and its contract (the health step's own check) hold against today's answer, one
login, the maintenance switch URL must answer (never toggled), the migration tool must answer
``current`` where the migrate step runs it, the preflight's sources must answer, every watch and
canary query must plan (``EXPLAIN``) on the target database, and the Docker engine must answer.
Every try has its own timeout and the tries run side by side, so the whole check stays short.
A section that is not configured is "off": a ⚠️ when the runbook needs it, never a ❌.

One module per thing tried: ``deployer`` (Docker engine or Kubernetes cluster, compose file),
``app`` (smoke script, health and its contract, login, dashboard, switches), ``migrations``,
``sources`` (the preflight's and the watches' sources), ``queries`` (EXPLAIN); ``common`` holds
what they share and ``stack`` runs them all (``stack_checks``).
"""
