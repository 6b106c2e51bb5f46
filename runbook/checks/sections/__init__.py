"""One module per ``[preflight.<check>]`` section of the golive TOML (the check of the same
name in ``runbook/checks`` reads it); ``base`` is what they share. ``runbook/checks/config.py``
puts them together as ``[preflight]``."""
