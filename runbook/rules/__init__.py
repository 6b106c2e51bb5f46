"""The rules, pure: who may do what where (``policy``), the two-person rule (``approvals``) and
the canonical JSON an approval's hash and the audit chain are computed over (``canonical``).
No I/O and nothing from ``bot``: import-linter's contracts in pyproject.toml check both."""
