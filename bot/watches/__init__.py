"""The watches' shell: leader election, scheduling and the channel messages (bot/watches/).

The measurements and their verdict are the runbook's (``runbook/watches/``); this package
runs them on one replica and records what the channel must see, through the outbox.
"""
