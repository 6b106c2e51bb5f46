"""The developer tools: the Slack sandbox and its console, `golive demo`, `golive rehearse`.

Nothing on the production path (the door, the work side, the engine, the audit) imports this
package; import-linter's contracts in pyproject.toml say so and CI checks them. Its third-party
dependencies (websockets, rich, the embedded PostgreSQL) come with the `dev-tools` extra.
"""
