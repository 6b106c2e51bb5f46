"""The running bot says which config it loaded: `golive socket` logs the file and its content
hash when it starts, the same identity `/golive status` shows."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.harness import BASE_CONFIG, SocketBot

pytestmark = pytest.mark.slow  # starts a `golive socket` process


def test_golive_socket_logs_the_config_path_and_hash_it_started_with(clean_db, tmp_path):
    bot = SocketBot(clean_db, tmp_path, config=BASE_CONFIG)
    try:
        path = tmp_path / "golive.toml"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        said = f"config: {path.resolve()} (sha256 {digest})"
        assert said in bot.output(), f"the start-up log must name the config:\n{bot.output()}"
        status = bot.command("bob", "status")
        assert f"{path.resolve()} (sha256 {digest})" in status, status
    finally:
        bot.stop()
