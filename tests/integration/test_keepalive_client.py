"""The bot's Slack client over one pool of keep-alive connections, over real HTTP.

A small HTTP/1.1 server stands in for Slack's endpoints here so that each test can count the
connections and script the answers (429 with Retry-After, 500, a dropped connection); the
last test uses the Slack sandbox itself.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import URLError

import pytest
from slack_sdk.errors import SlackApiError

from bot.dev.sandbox import SandboxServer, Workspace
from bot.slack.client import KeepAlive, MaskingRespond, MaskingWebClient

SECRET = "hunter2hunter2"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        srv = self.server
        with srv.lock:
            srv.seen.append((self.path, self.client_address[1], body.decode()))
            status, headers, close = srv.script.pop(0) if srv.script else (200, {}, False)
        if close == "drop":  # cut without an answer
            self.close_connection = True
            return
        data = json.dumps({"ok": status == 200, "error": "" if status == 200 else "x"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, int, str]] = []
        self.script: list[tuple[int, dict, object]] = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def ports(self, path_end=""):
        return [port for path, port, _ in self.seen if path.endswith(path_end)]


@pytest.fixture
def server():
    srv = _Server()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(server, calls=None, keep_alive=None):
    return MaskingWebClient(token="xoxb-test-token", base_url=server.url + "/api/",
                            secrets={"pw": SECRET}, keep_alive=keep_alive,
                            on_call=(lambda m, e: calls.append((m, e))) if calls is not None
                            else None)


def test_web_api_calls_share_one_connection_and_stay_masked(server):
    client = _client(server)
    for i in range(5):
        assert client.chat_postMessage(channel="C1", text=f"#{i} pw {SECRET}")["ok"]
    ports = server.ports("/chat.postMessage")
    assert len(ports) == 5 and len(set(ports)) == 1, ports
    assert all(SECRET not in body and "****" in body for _, _, body in server.seen)
    client.keep_alive.close()


def test_replies_share_the_client_pool_and_are_masked(server):
    client = _client(server)
    calls: list = []
    client.users_info(user="U1")
    for i in range(3):
        respond = MaskingRespond(response_url=f"{server.url}/response/{i}",
                                 secrets={"pw": SECRET}, keep_alive=client.keep_alive,
                                 on_call=lambda m, e: calls.append((m, e)))
        assert respond(text=f"status: {SECRET}", response_type="ephemeral").status_code == 200
    assert len(set(server.ports())) == 1, server.seen  # the Web API's connection, reused
    bodies = [json.loads(b) for p, _, b in server.seen if p.startswith("/response/")]
    assert bodies == [{"text": "status: ****", "response_type": "ephemeral"}] * 3
    assert calls == [("response_url", None)] * 3


def test_a_429_is_retried_after_retry_after_except_for_message_calls(server):
    calls: list = []
    client = _client(server, calls)
    server.script = [(429, {"Retry-After": "0"}, False), (200, {}, False)]
    assert client.users_info(user="U1")["ok"]
    assert len(server.ports("/users.info")) == 2
    server.script = [(429, {"Retry-After": "0"}, False)]
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel="C1", text="once")
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] == "0"
    assert len(server.ports("/chat.postMessage")) == 1, "chat.postMessage was sent twice"
    assert calls[-1] == ("chat.postMessage", "x")  # counted as a failed call


def test_a_500_is_an_error_the_caller_sees(server):
    client = _client(server)
    server.script = [(500, {}, False)]
    with pytest.raises(SlackApiError) as exc:
        client.chat_update(channel="C1", ts="1.0", text="x")
    assert exc.value.response.status_code == 500
    assert len(server.ports("/chat.update")) == 1


def test_a_closed_or_cut_connection_is_replaced(server):
    client = _client(server)
    server.script = [(200, {}, True)]  # the server closes after answering
    assert client.users_info(user="U1")["ok"]
    assert client.users_info(user="U1")["ok"]
    assert len(set(server.ports())) == 2
    server.script = [(200, {}, "drop")]  # cut with no answer: a lookup is retried
    assert client.users_info(user="U1")["ok"]
    assert len(server.ports()) == 4
    server.script = [(200, {}, "drop")]  # a post is not: it may have been applied
    with pytest.raises(Exception) as exc:
        client.chat_postMessage(channel="C1", text="maybe posted")
    assert not isinstance(exc.value, SlackApiError)
    assert len(server.ports("/chat.postMessage")) == 1


def test_nothing_listening_raises_what_urllib_raised():
    client = MaskingWebClient(token="xoxb-t", base_url="http://127.0.0.1:9/api/", secrets={})
    with pytest.raises(URLError):
        client.users_info(user="U1")


def test_a_stopped_sandbox_answers_nothing_on_a_kept_connection():
    ws = Workspace.default_demo()
    sandbox = SandboxServer(ws, signing_secret="s" * 16, bot_token="xoxb-keepalive").start()
    client = MaskingWebClient(token="xoxb-keepalive", base_url=sandbox.api_url, secrets={},
                              keep_alive=KeepAlive())
    try:
        assert client.auth_test()["ok"]
        assert client.auth_test()["ok"]
    finally:
        sandbox.stop()
    with pytest.raises(URLError):
        client.auth_test()


def test_a_connection_idle_past_its_expiry_is_replaced(server):
    now = [100.0]
    client = _client(server, keep_alive=KeepAlive(idle_expiry_s=5.0, clock=lambda: now[0]))
    client.users_info(user="U1")
    now[0] += 4.9
    client.users_info(user="U1")
    now[0] += 5.1
    client.users_info(user="U1")
    ports = server.ports("/users.info")
    assert ports[0] == ports[1] != ports[2], ports
