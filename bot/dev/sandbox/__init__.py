"""A local Slack workspace for tests and the terminal console (Web API + signed deliveries)."""

from bot.dev.sandbox.console import Console
from bot.dev.sandbox.render import render_channel, render_message, render_view
from bot.dev.sandbox.server import Delivery, SandboxServer, sign
from bot.dev.sandbox.workspace import ManualClock, Message, Workspace

__all__ = [
    "Console",
    "Delivery",
    "ManualClock",
    "Message",
    "SandboxServer",
    "Workspace",
    "render_channel",
    "render_message",
    "render_view",
    "sign",
]
