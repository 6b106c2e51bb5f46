"""The sandbox HTTP server: a local Slack Web API plus signed delivery of commands and clicks."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from bot.dev.sandbox.blocks import Button, iter_buttons
from bot.dev.sandbox.socketmode import SocketModeServer
from bot.dev.sandbox.webapi import ApiError, ApiResult, WebApi
from bot.dev.sandbox.workspace import APP_ID, ApiCall, DeliveryRecord, Message, View, Workspace

log = logging.getLogger(__name__)

SLACK_ACK_LIMIT = 3.0  # Slack shows an error if the app does not answer within 3 s
DELIVERY_TIMEOUT = 10.0
SLACK_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass
class Delivery:
    """The outcome of one request the sandbox sent to the bot."""

    kind: str
    status: int  # HTTP status of the bot's answer; 0 if the bot could not be reached
    body: str
    elapsed: float
    trigger_id: str | None = None
    response_url: str | None = None
    error: str | None = None  # transport error, or the error Slack would show the user
    response_action: str | None = None
    via: str = "http"  # or "socket": the envelope went over an app's Socket Mode link

    @property
    def ok(self) -> bool:
        """True if the bot acknowledged: HTTP 200, or its ack on the Socket Mode link."""
        return self.status == 200 and self.error is None

    def json(self) -> Any:
        """The bot's answer parsed as JSON (None if empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body.strip() else None
        except json.JSONDecodeError:
            return None


def sign(signing_secret: str, body: bytes, timestamp: float | str | None = None) -> dict[str, str]:
    """Slack's v0 request-signing headers for `body`."""
    ts = str(int(time.time() if timestamp is None else float(timestamp)))
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: SandboxServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        """Cut every kept-alive connection: a stopped Slack answers nothing more."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "SlackSandbox/1.0"
    # Keep-alive, as Slack's own endpoints: a client may reuse its connection. Every answer
    # carries a Content-Length; an idle connection is closed after `timeout` seconds. Headers
    # and body are two writes: without TCP_NODELAY the body waits for the client's delayed
    # ACK on a kept connection (~40 ms a call).
    protocol_version = "HTTP/1.1"
    timeout = 30
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox http: " + format, *args)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self, status: int, body: dict[str, Any] | str, headers: Mapping[str, str] | None = None
    ) -> None:
        if isinstance(body, dict):
            data = json.dumps(body).encode()
            ctype = "application/json; charset=utf-8"
        else:
            data = body.encode()
            ctype = "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        """Serve Web API calls sent as GET and file downloads."""
        self._dispatch(b"")

    def do_POST(self) -> None:
        """Serve Web API calls, response_url posts and file uploads."""
        self._dispatch(self._read_body())

    def do_PUT(self) -> None:
        """Serve file uploads sent with PUT."""
        self._dispatch(self._read_body())

    def _dispatch(self, body: bytes) -> None:
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        try:
            if len(segments) == 2 and segments[0] == "api":
                status, payload, headers = sandbox._handle_api(
                    segments[1], parts.query, body, dict(self.headers.items())
                )
            elif len(segments) == 2 and segments[0] == "response" and self.command == "POST":
                status, payload, headers = sandbox._handle_response_url(segments[1], body)
            elif len(segments) == 2 and segments[0] == "upload" and self.command in ("POST", "PUT"):
                status, payload, headers = sandbox._handle_upload(
                    segments[1], body, self.headers.get("Content-Type", "")
                )
            elif len(segments) == 2 and segments[0] == "files" and self.command == "GET":
                self._send_file(segments[1])
                return
            else:
                status, payload, headers = 404, {"ok": False, "error": "not_found"}, {}
        except Exception:  # keep serving; a sandbox bug should surface as a 500, not a hang
            log.exception("sandbox failed on %s %s", self.command, self.path)
            status, payload, headers = 500, {"ok": False, "error": "internal_error"}, {}
        self._send(status, payload, headers)

    def _send_file(self, file_id: str) -> None:
        sandbox = self.server.sandbox
        auth = self.headers.get("Authorization", "")
        f = sandbox.workspace.files.get(file_id)
        if auth != f"Bearer {sandbox.bot_token}" or f is None or f.content is None:
            self._send(404, "not found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(f.content)))
        self.end_headers()
        self.wfile.write(f.content)


def _parse_params(query: str, body: bytes, content_type: str) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if not body:
        return params
    if content_type.startswith("application/json"):
        data = json.loads(body.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("JSON body must be an object")
        params.update(data)
    elif content_type.startswith("multipart/form-data"):
        for name, (_, value) in _parse_multipart(body, content_type).items():
            params[name] = value.decode("utf-8", errors="replace")
    else:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return params


def _parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """Parse multipart/form-data into {name: (filename, bytes)}."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    out: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name is not None:
            out[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return out


class SandboxServer:
    """A local Slack: serves the Web API to the bot and delivers signed interactions to it."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        signing_secret: str,
        bot_token: str,
        bot_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] | None = None,
        verification_token: str = "sandbox-verification-token",
    ) -> None:
        self.workspace = workspace
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.bot_url = bot_url
        self.host = host
        self.port = port
        self.clock = clock or workspace.clock
        self.verification_token = verification_token
        self.api = WebApi(workspace, clock=self.clock, base_url=lambda: self.base_url)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None
        self.app_token: str | None = None
        self.socket: SocketModeServer | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> SandboxServer:
        """Bind and serve in a background thread; returns self."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.sandbox = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._client = httpx.Client(timeout=DELIVERY_TIMEOUT)
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="slack-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._client is not None:
            self._client.close()
        if self.socket is not None:
            self.socket.stop()
        self._httpd = self._thread = self._client = None

    def enable_socket_mode(self, app_token: str) -> SocketModeServer:
        """Turn the app into a Socket Mode app: apps.connections.open accepts ``app_token``
        and commands, clicks and submissions go over its WebSocket link instead of HTTP."""
        if not app_token.startswith("xapp-"):
            raise ValueError("an app-level token starts with xapp-")
        if self.socket is None:
            self.socket = SocketModeServer(app_id=APP_ID, host=self.host,
                                           ack_limit=SLACK_ACK_LIMIT).start()
            self.api.socket_url = self.socket.issue_url
        self.app_token = app_token
        return self.socket

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Root URL of the sandbox, with a trailing slash."""
        return f"http://{self.host}:{self.port}/"

    @property
    def api_url(self) -> str:
        """Web API base URL for `WebClient(base_url=...)` (trailing slash included)."""
        return f"{self.base_url}api/"

    # ----------------------------------------------------------------- inbound (bot -> Slack)

    def _handle_api(
        self, method: str, query: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {k.lower(): v for k, v in headers.items()}
        raw = body.decode("utf-8", errors="replace")
        if query:
            raw = f"{query}\n{raw}"
        try:
            params = _parse_params(query, body, headers.get("content-type", ""))
        except (ValueError, UnicodeDecodeError):
            params = {}
            result = ApiResult(200, ApiError("invalid_form_data").body())
        else:
            token = params.pop("token", None)
            auth = headers.get("authorization", "")
            if auth.startswith("Bearer "):
                token = auth[len("Bearer ") :]
            # apps.connections.open takes the app-level token, and only it takes one.
            app_level = method == "apps.connections.open"
            expected = (self.app_token if app_level else self.bot_token) or ""
            if not token:
                result = ApiResult(200, ApiError("not_authed").body())
            elif app_level != str(token).startswith("xapp-"):
                result = ApiResult(200, ApiError("not_allowed_token_type").body())
            elif not expected or not hmac.compare_digest(str(token), expected):
                result = ApiResult(200, ApiError("invalid_auth").body())
            else:
                result = self.api.call(method, params)
        self.workspace.record_call(
            ApiCall(
                method=method,
                params=params,
                raw=raw,
                at=self.clock(),
                status=result.status,
                ok=bool(result.body.get("ok")),
                error=result.body.get("error"),
            )
        )
        return result.status, result.body, result.headers

    def _handle_response_url(
        self, token: str, body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        raw = body.decode("utf-8", errors="replace")
        try:
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            result = ApiResult(400, {"ok": False, "error": "invalid_payload"})
            payload = {}
        else:
            result = self.api.respond(token, payload)
        self.workspace.record_call(
            ApiCall(
                "response_url",
                payload,
                raw,
                self.clock(),
                result.status,
                bool(result.body.get("ok")),
                result.body.get("error"),
            )
        )
        return result.status, result.body, result.headers

    def _handle_upload(
        self, file_id: str, body: bytes, content_type: str
    ) -> tuple[int, dict[str, Any] | str, dict[str, str]]:
        content = body
        if content_type.startswith("multipart/form-data"):
            parts = _parse_multipart(body, content_type)
            chosen = parts.get("file") or next((p for p in parts.values() if p[0]), None)
            content = chosen[1] if chosen else b""
        f = self.workspace.files.get(file_id)
        ok = f is not None and not f.completed
        self.workspace.record_call(
            ApiCall(
                "files.upload_url",
                {"file_id": file_id, "length": len(content)},
                content.decode("utf-8", errors="replace"),
                self.clock(),
                200 if ok else 404,
                ok,
                None if ok else "file_not_found",
            )
        )
        if not ok:
            return 404, "file not found", {}
        self.workspace.store_file_content(file_id, content)
        # Slack's upload endpoint answers with a short plain-text body.
        return 200, f"OK - {len(content)}", {}

    # ----------------------------------------------------------------- outbound (Slack -> bot)

    def sign(self, body: bytes, timestamp: float | str | None = None) -> dict[str, str]:
        """Signing headers for `body` with this server's secret (for forging tests)."""
        return sign(self.signing_secret, body, timestamp)

    def deliver(
        self,
        body: bytes,
        headers: Mapping[str, str],
        path: str | None = None,
        *,
        kind: str = "raw",
        user: str = "",
    ) -> Delivery:
        """POST `body` to the bot with exactly these headers (no signing added)."""
        if self._client is None:
            raise RuntimeError("SandboxServer is not started")
        if not self.bot_url:
            raise RuntimeError("SandboxServer.bot_url is not set")
        url = self.bot_url
        if path is not None:
            parts = urlsplit(url)
            url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        started = time.perf_counter()
        try:
            response = self._client.post(url, content=body, headers=dict(headers))
            status, text, error = response.status_code, response.text, None
            if status != 200:
                # What Slack shows the user when the app answers non-200.
                error = "http_service_error" if status < 500 else "dispatch_failed"
        except httpx.TimeoutException as exc:
            status, text, error = 0, "", f"operation_timeout ({exc})"
        except httpx.HTTPError as exc:
            status, text, error = 0, "", f"dispatch_failed ({type(exc).__name__}: {exc})"
        elapsed = time.perf_counter() - started
        return self._recorded(Delivery(kind=kind, status=status, body=text, elapsed=elapsed,
                                       error=error), user)

    def _recorded(self, delivery: Delivery, user: str) -> Delivery:
        record = DeliveryRecord(delivery.kind, user, delivery.status, delivery.elapsed,
                                delivery.body, delivery.error)
        self.workspace.record_delivery(record, failed=delivery.error is not None,
                                       slow=delivery.elapsed > SLACK_ACK_LIMIT)
        return delivery

    def _deliver_signed(self, fields: Mapping[str, str], *, kind: str, user: str) -> Delivery:
        if self.socket is not None:
            # A Socket Mode app: the same fields, unsigned, as an envelope on its link.
            sent = self.socket.deliver_form(fields)
            return self._recorded(Delivery(kind=kind, status=sent.status, body=sent.body,
                                           elapsed=sent.elapsed, error=sent.error,
                                           via="socket"), user)
        body = urlencode(fields).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": SLACK_USER_AGENT,
            **self.sign(body),
        }
        return self.deliver(body, headers, kind=kind, user=user)

    def _active_user(self, ref: str) -> str:
        user = self.workspace.user(ref)
        if user.deleted:
            raise ValueError(f"user {user.name} is deactivated and cannot act in Slack")
        return user.id

    def _team(self) -> dict[str, str]:
        return {"id": self.workspace.team_id, "domain": self.workspace.team_domain}

    def _user_obj(self, user_id: str) -> dict[str, str]:
        name = self.workspace.users[user_id].name
        return {"id": user_id, "username": name, "name": name, "team_id": self.workspace.team_id}

    def slash(
        self, user: str, text: str, *, channel: str = "C_CUTOVER", command: str = "/golive"
    ) -> Delivery:
        """Deliver a slash command as `user`; a non-empty ack is shown to the user as Slack does."""
        user_id = self._active_user(user)
        chan = self.workspace.channel(channel)
        trigger_id = self.api.issue_trigger(user_id)
        response_url = self.api.issue_response_url(user_id, chan.id, None)
        fields = {
            "token": self.verification_token,
            "team_id": self.workspace.team_id,
            "team_domain": self.workspace.team_domain,
            "channel_id": chan.id,
            "channel_name": chan.name,
            "user_id": user_id,
            "user_name": self.workspace.users[user_id].name,
            "command": command,
            # Slack escapes &, < and > in what the user typed before sending it.
            "text": text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        delivery = self._deliver_signed(fields, kind="slash", user=user_id)
        delivery.trigger_id, delivery.response_url = trigger_id, response_url
        if delivery.ok and delivery.body.strip():
            self._show_ack(delivery, user_id, chan.id)
        return delivery

    def _show_ack(self, delivery: Delivery, user_id: str, channel: str) -> None:
        """Show a slash command's ack body the way Slack does (ephemeral unless in_channel)."""
        payload = delivery.json()
        if not isinstance(payload, dict):
            payload = {"text": delivery.body}
        try:
            text, blocks = self.api.message_content(payload, require=False)
        except ApiError as exc:
            delivery.error = exc.error
            self.workspace.record_delivery(
                DeliveryRecord(
                    "slash_ack",
                    user_id,
                    delivery.status,
                    delivery.elapsed,
                    delivery.body,
                    exc.error,
                ),
                failed=True,
                slow=False,
            )
            return
        if not text and not blocks:
            return
        in_channel = payload.get("response_type") == "in_channel"
        self.workspace.post_message(
            channel,
            self.workspace.bot_user_id,
            text,
            blocks,
            ephemeral_to=None if in_channel else user_id,
            source="ack",
        )

    def buttons(self, message: Message) -> list[Button]:
        """The buttons of the message's current version, numbered from 1."""
        current = self.workspace.message(message.channel, message.ts)
        return list(iter_buttons(current.blocks if current else message.blocks))

    def click(
        self,
        user: str,
        message: Message,
        *,
        action_id: str | None = None,
        value: str | None = None,
        index: int | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> Delivery:
        """Click a button of `message` (by action_id, value or 1-based index) as `user`.

        ``edit`` may change the payload before it is signed (a tampered client's click)."""
        user_id = self._active_user(user)
        with self.workspace.lock:
            current = self.workspace.message(message.channel, message.ts)
            if current is None:
                raise LookupError(f"message {message.ts} no longer exists in {message.channel}")
            if current.ephemeral_to is not None and current.ephemeral_to != user_id:
                raise LookupError(f"message {message.ts} is only visible to {current.ephemeral_to}")
            buttons = list(iter_buttons(current.blocks))
            button = self._pick(buttons, action_id=action_id, value=value, index=index)
            msg_api = current.to_api(self.workspace.team_id, self.workspace.files)
            chan = self.workspace.channels[current.channel]
            is_ephemeral = current.ephemeral_to is not None
        if button.element.get("confirm"):
            # Slack shows the confirm dialog first; the sandbox assumes the user confirmed.
            self.workspace.record_confirm(
                {
                    "user": user_id,
                    "ts": current.ts,
                    "action_id": button.action_id,
                    "confirm": button.element["confirm"],
                }
            )
        trigger_id = self.api.issue_trigger(user_id)
        response_url = self.api.issue_response_url(user_id, chan.id, current.ts)
        action: dict[str, Any] = {
            "action_id": button.action_id,
            "block_id": button.block_id,
            "text": dict(button.element.get("text") or {}),
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        if button.value is not None:
            action["value"] = button.value
        if button.element.get("style"):
            action["style"] = button.element["style"]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user_obj(user_id),
            "api_app_id": APP_ID,
            "token": self.verification_token,
            "container": {
                "type": "message",
                "message_ts": current.ts,
                "channel_id": chan.id,
                "is_ephemeral": is_ephemeral,
            },
            "trigger_id": trigger_id,
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": chan.id, "name": chan.name},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        if not is_ephemeral:
            # Slack omits the message body for clicks on ephemeral messages.
            payload["message"] = msg_api
        if edit is not None:
            edit(payload)
        delivery = self._deliver_signed(
            {"payload": json.dumps(payload)}, kind="block_actions", user=user_id
        )
        delivery.trigger_id, delivery.response_url = trigger_id, response_url
        return delivery

    def send_payload(self, payload: Any, *, user: str = "") -> Delivery:
        """Deliver any interaction payload (malformed ones too), correctly signed."""
        return self._deliver_signed({"payload": json.dumps(payload)}, kind="raw_payload",
                                    user=user)

    @staticmethod
    def _pick(
        buttons: list[Button], *, action_id: str | None, value: str | None, index: int | None
    ) -> Button:
        if sum(x is not None for x in (action_id, value, index)) != 1:
            raise ValueError("give exactly one of action_id, value, index")
        for b in buttons:
            if (
                (action_id is not None and b.action_id == action_id)
                or (value is not None and b.value == value)
                or (index is not None and b.index == index)
            ):
                return b
        listing = ", ".join(f"[{b.index}] {b.text} ({b.action_id}={b.value})" for b in buttons)
        raise LookupError(f"no such button; the message has: {listing or 'no buttons'}")

    def _view_state(self, view: View, values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Shape submitted values like Slack's view.state.values, based on the input elements."""
        elements: dict[tuple[str, str], dict[str, Any]] = {}
        for position, block in enumerate(view.view.get("blocks") or []):
            element = block.get("element") if block.get("type") == "input" else None
            if isinstance(element, dict):
                bid = block.get("block_id") or f"b{position}"
                elements[(bid, element.get("action_id") or "")] = element
        state: dict[str, Any] = {}
        for block_id, actions in values.items():
            for action_id, value in actions.items():
                element = elements.get((block_id, action_id), {"type": "plain_text_input"})
                state.setdefault(block_id, {})[action_id] = _state_value(element, value)
        return state

    def submit_view(
        self, user: str, view_id: str, values: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Delivery:
        """Submit an open modal as `user`; applies the bot's response_action like Slack."""
        user_id = self._active_user(user)
        view = self.workspace.views.get(view_id)
        if view is None or view.closed:
            raise LookupError(f"view {view_id} is not open")
        state = self._view_state(view, values or {})
        self.workspace.change_view(view_id, lambda v: setattr(v, "state", state), "view_state")
        trigger_id = self.api.issue_trigger(user_id)
        payload = {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user_obj(user_id),
            "api_app_id": APP_ID,
            "token": self.verification_token,
            "trigger_id": trigger_id,
            "view": view.to_api(self.workspace.team_id),
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        delivery = self._deliver_signed(
            {"payload": json.dumps(payload)}, kind="view_submission", user=user_id
        )
        delivery.trigger_id = trigger_id
        if delivery.ok:
            self._apply_view_response(view, delivery)
        return delivery

    def _apply_view_response(self, view: View, delivery: Delivery) -> None:
        ack = delivery.json() if delivery.body.strip() else {}
        ack = ack if isinstance(ack, dict) else {}
        action = ack.get("response_action")
        delivery.response_action = action
        self.workspace.record_view_response(
            {"view_id": view.id, "response_action": action, "body": ack}
        )
        if action == "errors":
            errors = dict(ack.get("errors") or {})
            self.workspace.change_view(view.id, lambda v: setattr(v, "errors", errors))
        elif action == "update" and isinstance(ack.get("view"), dict):
            self.api.replace_view(view.id, ack["view"])
        elif action == "push" and isinstance(ack.get("view"), dict):
            vid = self.workspace.new_id("V")
            self.workspace.add_view(
                View(
                    id=vid,
                    user=view.user,
                    view=ack["view"],
                    hash=self.api.view_hash(ack["view"]),
                    root_view_id=view.root_view_id,
                    previous_view_id=view.id,
                )
            )
        elif action == "clear":
            for v in self.workspace.open_views(view.user):
                self.workspace.change_view(
                    v.id, lambda v: setattr(v, "closed", True), "view_closed"
                )
        else:
            self.workspace.change_view(view.id, lambda v: setattr(v, "closed", True), "view_closed")

    def close_view(self, user: str, view_id: str) -> Delivery | None:
        """Close a modal as `user`; delivers view_closed if the view asked for notify_on_close."""
        user_id = self._active_user(user)
        view = self.workspace.change_view(
            view_id, lambda v: setattr(v, "closed", True), "view_closed"
        )
        if not view.view.get("notify_on_close"):
            return None
        payload = {
            "type": "view_closed",
            "team": self._team(),
            "user": self._user_obj(user_id),
            "api_app_id": APP_ID,
            "token": self.verification_token,
            "view": view.to_api(self.workspace.team_id),
            "is_cleared": False,
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return self._deliver_signed(
            {"payload": json.dumps(payload)}, kind="view_closed", user=user_id
        )


def _state_value(element: Mapping[str, Any], value: Any) -> dict[str, Any]:
    """One entry of view.state.values for a submitted value."""
    etype = str(element.get("type", "plain_text_input"))
    if isinstance(value, dict):
        return {"type": etype, **value}
    if etype in ("static_select", "radio_buttons", "external_select"):
        key = "selected_option"
        option = _find_option(element, str(value))
        return {"type": etype, key: option}
    if etype == "checkboxes" or etype == "multi_static_select":
        values = value if isinstance(value, list) else [value]
        return {"type": etype, "selected_options": [_find_option(element, str(v)) for v in values]}
    if etype == "users_select":
        return {"type": etype, "selected_user": value}
    if etype == "multi_users_select":
        return {
            "type": etype,
            "selected_users": list(value) if isinstance(value, list) else [value],
        }
    if etype in ("conversations_select", "channels_select"):
        key = "selected_conversation" if etype == "conversations_select" else "selected_channel"
        return {"type": etype, key: value}
    if etype == "datepicker":
        return {"type": etype, "selected_date": value}
    if etype == "timepicker":
        return {"type": etype, "selected_time": value}
    return {"type": etype, "value": value}


def _find_option(element: Mapping[str, Any], value: str) -> dict[str, Any]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    for option in options:
        if option.get("value") == value:
            return dict(option)
    return {"text": {"type": "plain_text", "text": value}, "value": value}
