"""The autopilot (issue 21): `/golive go` drives the run through the engine's facade, one
more requester (bot/autopilot/driver.py); its rules are pure (runbook/rules/autopilot.py)."""

from bot.autopilot.driver import Autopilot, register

__all__ = ["Autopilot", "register"]
