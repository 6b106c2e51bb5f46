"""The one WebClient the bot uses: masks secrets out of every payload and counts calls.

Bolt builds a plain WebClient for every request and a plain ``respond``; ``use_masking_client``
is the middleware that puts this client and a masking ``respond`` in their place, so every
listener's Web API call and ``response_url`` reply is masked and metered.
"""

from __future__ import annotations

import io
import os
import select
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from http.client import HTTPConnection, HTTPMessage, HTTPSConnection
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request

from slack_bolt.context.respond import Respond
from slack_bolt.context.respond.internals import _build_message
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient, WebhookResponse

from runbook.adapters.redact import Masker

# Never re-sent by the client: an old chat.update body could overwrite a newer card, and a
# chat.postMessage re-sent after a lost answer posts twice. The outbox retries these itself,
# with a fresh render and a metadata lookup before posting again.
NOT_RESENT = ("/chat.update", "/chat.postMessage")


class RateLimitRetry(RateLimitErrorRetryHandler):
    """Retry rate-limited calls, except the message calls in NOT_RESENT."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if request.url.endswith(NOT_RESENT):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


class ConnectionRetry(ConnectionErrorRetryHandler):
    """Retry calls cut off by the network, except the message calls in NOT_RESENT (the cut
    may have come after Slack applied them)."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if request.url.endswith(NOT_RESENT):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


class KeepAlive:
    """Kept-alive HTTP connections for the Slack calls of one process: one per thread and host.

    slack_sdk sends each call with urllib: a new connection (and TLS handshake) per call and
    ``Connection: close``; at 200 replies a second that was a quarter of the work process's
    CPU. This sends the same request (method, URL, headers, body) over the calling thread's
    open connection to that host (``http.client``, as urllib itself uses: no lock, no pool to
    share), and fails as urllib fails: a non-2xx answer raises ``HTTPError`` with its headers
    and body (so the 429 and 5xx handling is the SDK's, unchanged); a failure to connect or to
    send raises ``URLError``; a connection cut before the answer raises what ``http.client``
    raises (``RemoteDisconnected``, ``ConnectionResetError``) and a read timeout stays a
    ``TimeoutError``, so ``ConnectionRetry`` decides exactly as before. Nothing is re-sent
    here. A connection idle for ``idle_expiry_s`` or closed by the server while idle is
    replaced before it is used; one that answered ``Connection: close`` is not kept; a forked
    child never uses its parent's.
    """

    def __init__(self, *, idle_expiry_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self._idle_expiry_s = idle_expiry_s
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        self._tls: ssl.SSLContext | None = None

    def _kept(self) -> dict[tuple, tuple[HTTPConnection, float]]:
        kept = getattr(self._local, "kept", None)
        if kept is None or self._local.pid != os.getpid():
            kept = self._local.kept = {}
            self._local.pid = os.getpid()
        return kept

    def _connection(self, scheme: str, host: str, port: int | None,
                    timeout: float) -> HTTPConnection:
        kept, key = self._kept(), (scheme, host, port)
        entry = kept.pop(key, None)
        if entry is not None:
            conn, last_used = entry
            if self._clock() - last_used <= self._idle_expiry_s and not _closed_by_peer(conn):
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                return conn
            conn.close()
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            conn = HTTPSConnection(host, port, timeout=timeout, context=self._tls)
        else:
            conn = HTTPConnection(host, port, timeout=timeout)
        with self._lock:
            self._open.add(conn)
        return conn

    def send(self, req: Request, timeout: float) -> tuple[int, HTTPMessage, bytes]:
        """Send ``req``; return its 2xx status, headers and body, or raise as urllib does."""
        parts = urlsplit(req.full_url)
        conn = self._connection(parts.scheme, parts.hostname or "", parts.port, timeout)
        headers = {k: str(v) for k, v in req.header_items()
                   if k.lower() not in ("content-length", "host", "connection")}
        try:
            try:
                conn.request(req.get_method(), req.selector, body=req.data, headers=headers)
            except OSError as e:  # urllib: a failure to connect or to send is a URLError
                raise URLError(e) from e
            resp = conn.getresponse()
            body = resp.read()
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self._kept()[(parts.scheme, parts.hostname or "", parts.port)] = (conn, self._clock())
        if not 200 <= resp.status < 300:
            raise HTTPError(req.full_url, resp.status, resp.reason, resp.headers,
                            io.BytesIO(body))
        return resp.status, resp.headers, body

    def close(self) -> None:
        """Close every connection this pool opened (in any thread)."""
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            conn.close()


def _closed_by_peer(conn: HTTPConnection) -> bool:
    """An idle kept connection is readable only when the server closed it (or broke HTTP)."""
    if conn.sock is None:
        return True
    try:
        return bool(select.select([conn.sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _text(headers: HTTPMessage, body: bytes) -> str:
    return body.decode(headers.get_content_charset() or "utf-8")


class KeepAliveWebhookClient(WebhookClient):
    """slack_sdk's WebhookClient (its retries included) over a ``KeepAlive`` pool."""

    def __init__(self, *, keep_alive: KeepAlive, **kwargs: Any):
        super().__init__(**kwargs)
        self._keep_alive = keep_alive

    def _perform_http_request_internal(self, url: str, req: Request) -> WebhookResponse:
        if self.proxy is not None or self.ssl is not None or not url.lower().startswith("http"):
            return super()._perform_http_request_internal(url, req)
        status, headers, body = self._keep_alive.send(req, self.timeout)
        return WebhookResponse(url=url, status_code=status, body=_text(headers, body),
                               headers=headers)  # type: ignore[arg-type]


def mask_payload(value: Any, secrets: Mapping[str, str] | Masker) -> Any:
    """Mask every string inside a JSON-like payload."""
    masker = secrets if isinstance(secrets, Masker) else Masker(secrets)
    return _masked(value, masker)


def _masked(value: Any, masker: Masker) -> Any:
    if isinstance(value, str):
        return masker(value)
    if isinstance(value, Mapping):
        return {k: _masked(v, masker) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v, masker) for v in value]
    return value


class MaskingWebClient(WebClient):
    """A WebClient whose outgoing payloads never carry a known secret or a Slack token."""

    def __init__(self, *, secrets: Mapping[str, str], on_call: Callable[[str, str | None], None]
                 | None = None, keep_alive: KeepAlive | None = None, **kwargs: Any):
        kwargs.setdefault("retry_handlers", [ConnectionRetry(max_retry_count=2),
                                             RateLimitRetry(max_retry_count=3)])
        kwargs.setdefault("timeout", 10)
        super().__init__(**kwargs)
        self._secrets = dict(secrets)
        self._masker = Masker(self._secrets)
        self._on_call = on_call
        self.keep_alive = keep_alive or KeepAlive()

    def __deepcopy__(self, memo: dict) -> MaskingWebClient:
        # Bolt deep-copies each request for its lazy listeners; they must share this client
        # (its metrics and pool), and a copy would fail on the metrics' locks anyway.
        return self

    def api_call(self, api_method: str, *, http_verb: str = "POST", files: Any = None,
                 data: Any = None, params: Any = None, json: Any = None, headers: Any = None,
                 auth: Any = None):
        if api_method != "auth.test":
            data = mask_payload(data, self._masker) if data else data
            params = mask_payload(params, self._masker) if params else params
            json = mask_payload(json, self._masker) if json else json
        error: str | None = None
        try:
            return super().api_call(api_method, http_verb=http_verb, files=files, data=data,
                                    params=params, json=json, headers=headers, auth=auth)
        except SlackApiError as e:
            error = str(e.response.get("error", "unknown")) if e.response else "unknown"
            raise
        except Exception as e:
            error = type(e).__name__
            raise
        finally:
            if self._on_call:
                self._on_call(api_method, error)

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        if self.proxy is not None or self.ssl is not None or not url.lower().startswith("http"):
            return super()._perform_urllib_http_request_internal(url, req)
        status, headers, body = self.keep_alive.send(req, self.timeout)
        if headers.get_content_type() == "application/gzip":  # admin.analytics.getFile
            return {"status": status, "headers": headers, "body": body}
        return {"status": status, "headers": headers, "body": _text(headers, body)}


class MaskingRespond(Respond):
    """Bolt's ``respond`` with every field masked and each reply counted as ``response_url``."""

    def __init__(self, *, response_url: str | None, secrets: Mapping[str, str] | Masker,
                 on_call: Callable[[str, str | None], None] | None = None,
                 keep_alive: KeepAlive | None = None, **kwargs: Any):
        super().__init__(response_url=response_url, **kwargs)
        self._secrets = secrets if isinstance(secrets, Masker) else Masker(dict(secrets))
        self._on_call = on_call
        self._keep_alive = keep_alive or KeepAlive()

    def __deepcopy__(self, memo: dict) -> MaskingRespond:
        return self  # immutable, and shared like the client (see MaskingWebClient.__deepcopy__)

    def __call__(self, text: str | dict = "", blocks: Any = None, attachments: Any = None,
                 **kwargs: Any):
        def clean(value: Any) -> Any:
            if isinstance(value, list | tuple):
                value = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
            return mask_payload(value, self._secrets)

        error: str | None = None
        try:
            resp = self._send(clean(text), blocks=clean(blocks),
                              attachments=clean(attachments),
                              **{k: clean(v) for k, v in kwargs.items()})
            if resp.status_code != 200:
                error = f"http_{resp.status_code}"
            return resp
        except Exception as e:
            error = type(e).__name__
            raise
        finally:
            if self._on_call:
                self._on_call("response_url", error)

    def _send(self, text: str | dict, **kwargs: Any) -> WebhookResponse:
        # Bolt's Respond.__call__, over the keep-alive pool instead of a new WebhookClient's
        # new connection.
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        if isinstance(text, dict):
            message = _build_message(**text)
        elif isinstance(text, str):
            message = _build_message(text=text, **kwargs)
        else:
            raise TypeError(f"The arg is unexpected type ({type(text)})")
        client = KeepAliveWebhookClient(url=self.response_url, proxy=self.proxy, ssl=self.ssl,
                                        keep_alive=self._keep_alive)
        return client.send_dict(message)


def use_masking_client(client: MaskingWebClient) -> Callable[..., Any]:
    """Bolt middleware: listeners get ``client`` and a masking ``respond``, never Bolt's own.

    Register it after Bolt's authorization (``app.use``): authorization sets the token on the
    request's client, which must not touch this shared one.
    """

    def masking_client(context: Any, next: Callable[[], Any]) -> Any:
        context["client"] = client
        context["respond"] = MaskingRespond(response_url=context.response_url,
                                            secrets=client._masker, on_call=client._on_call,
                                            keep_alive=client.keep_alive,
                                            proxy=client.proxy, ssl=client.ssl)
        return next()

    return masking_client
