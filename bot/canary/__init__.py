"""The canary's shell (runbook 2C): its thread, buttons and modals over the pure room in
``runbook/canary/``. State lives in the ``canaries`` table; every change commits with its audit
row and outbox rows; the sender renders the messages (bot/canary/cards.py)."""
