"""The canary room (runbook 2C): checklist state machine, ledger verification, evidence and the report."""
