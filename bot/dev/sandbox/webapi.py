"""Slack Web API semantics for the sandbox (transport-free: the server feeds it parsed requests)."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.dev.sandbox.blocks import (
    MAX_MESSAGE_BLOCKS,
    MAX_MESSAGE_TEXT,
    MAX_VIEW_BLOCKS,
    BlockError,
    parse_blocks,
    validate_blocks,
)
from bot.dev.sandbox.faults import Fault, Faults
from bot.dev.sandbox.limits import UPDATE_INTERVAL, PostLimit
from bot.dev.sandbox.workspace import APP_ID, RateLimitEvent, View, Workspace

TRIGGER_TTL = 3.0  # seconds a trigger_id stays valid (Slack: 3 s)
RESPONSE_URL_TTL = 30 * 60.0  # response_url lifetime (Slack: 30 minutes)
RESPONSE_URL_MAX_USES = 5
MAX_VIEW_STACK = 3
MAX_VIEW_TITLE = 24
MAX_PRIVATE_METADATA = 3000


class ApiError(Exception):
    """A Slack error response (`{"ok": false, "error": ...}`), optionally with a non-200 status."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        detail: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.detail = detail or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Slack sends for this error."""
        out: dict[str, Any] = {"ok": False, "error": self.error}
        if self.detail:
            out["errors"] = list(self.detail)
            out["response_metadata"] = {"messages": [f"[ERROR] {d}" for d in self.detail]}
        return out


@dataclass
class ApiResult:
    """What the HTTP layer sends back."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class IssuedTrigger:
    """A trigger_id issued with a delivery."""

    id: str
    user: str
    issued_at: float
    used: bool = False


@dataclass
class ResponseTarget:
    """What a response_url token points at."""

    token: str
    user: str
    channel: str
    message_ts: str | None  # the message the interaction came from (None for slash commands)
    issued_at: float
    uses: int = 0


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes")


def _as_json(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ApiError("invalid_arguments", detail=[f"{name} is not valid JSON"]) from exc
    return value


def _metadata(params: dict[str, Any]) -> dict[str, Any] | None:
    """The message metadata of a chat.postMessage/chat.update call (event_type + payload)."""
    meta = _as_json(params.get("metadata"), "metadata")
    if not meta:
        return None
    if not isinstance(meta, dict) or not meta.get("event_type") or \
            not isinstance(meta.get("event_payload", {}), dict):
        raise ApiError("invalid_metadata_format")
    return {"event_type": str(meta["event_type"]), "event_payload": meta.get("event_payload", {})}


def _with_metadata(msg: Any, ws: Workspace, include: bool) -> dict[str, Any]:
    """The message as history/replies show it; metadata only when asked for, as in Slack."""
    out = msg.to_api(ws.team_id, ws.files)
    if include and msg.metadata:
        out["metadata"] = json.loads(json.dumps(msg.metadata))
    return out


class WebApi:
    """Implements the Web API methods the bot uses, plus response_url and trigger bookkeeping."""

    def __init__(
        self, workspace: Workspace, *, clock: Callable[[], float], base_url: Callable[[], str]
    ) -> None:
        self.ws = workspace
        self.clock = clock
        self._base_url = base_url
        self._lock = threading.Lock()
        self._triggers: dict[str, IssuedTrigger] = {}
        self._responses: dict[str, ResponseTarget] = {}
        self._last_update: dict[tuple[str, str], float] = {}
        # Slack's documented 1/s per channel with short bursts (bot/dev/sandbox/limits.py); None
        # turns it off for a test that wants a raw race.
        self.post_limit: PostLimit | None = PostLimit()
        self.faults = Faults()
        self.socket_url: Callable[[], str] | None = None  # set when the app uses Socket Mode
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "api.test": lambda p: {"args": {k: v for k, v in p.items() if k != "token"}},
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.open": self._conversations_open,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
        }

    # ----------------------------------------------------------------- dispatch

    def fail_next(self, method: str, *, status: int = 500, error: str = "internal_error",
                  times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` calls of ``method`` with ``status`` and ``error`` (an outage
        of one method: HTTP 500, or 429 with ``headers={"Retry-After": "1"}``)."""
        self.faults.add(Fault(method, status=status, error=error, times=times,
                              headers=dict(headers or {})))

    def inject(self, fault: Fault) -> Fault:
        """Activate a fault rule (random errors, 429s, applied-then-500, an outage with
        ``Fault()``); ``faults.remove(rule)`` ends it."""
        return self.faults.add(fault)

    def call(self, method: str, params: dict[str, Any]) -> ApiResult:
        """Run one Web API method; errors become Slack-shaped results, never exceptions."""
        fault = self.faults.pick(method, params)
        if fault is not None and fault.hold is not None:
            fault.wait()  # outside every lock: other calls go on meanwhile
            fault = None
        if fault is not None and not fault.applied:
            return ApiResult(fault.status, fault.body(), dict(fault.headers))
        handler = self._methods.get(method)
        if handler is None:
            return ApiResult(200, ApiError("unknown_method").body())
        try:
            # One call at a time: each is a short in-memory operation, and serializing them makes
            # every method atomic with respect to deliveries, the console and other calls.
            with self.ws.lock:
                body = handler(params)
        except ApiError as exc:
            return ApiResult(exc.status, exc.body(), exc.headers)
        if fault is not None:  # applied, and the answer is lost
            return ApiResult(fault.status, fault.body(), dict(fault.headers))
        return ApiResult(200, {"ok": True, **body})

    # ----------------------------------------------------------------- triggers / response_url

    def issue_trigger(self, user: str) -> str:
        """A fresh trigger_id, valid for TRIGGER_TTL seconds on the sandbox clock."""
        tid = f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[tid] = IssuedTrigger(tid, user, self.clock())
        return tid

    def _use_trigger(self, trigger_id: Any) -> IssuedTrigger:
        with self._lock:
            trigger = self._triggers.get(str(trigger_id or ""))
            if trigger is None:
                raise ApiError("invalid_trigger_id")
            if self.clock() - trigger.issued_at > TRIGGER_TTL:
                raise ApiError("expired_trigger_id")
            if trigger.used:
                raise ApiError("exchanged_trigger_id")
            trigger.used = True
            return trigger

    def issue_response_url(self, user: str, channel: str, message_ts: str | None) -> str:
        """A response_url for one delivery, valid 30 minutes and 5 uses."""
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._responses[token] = ResponseTarget(token, user, channel, message_ts, self.clock())
        return f"{self._base_url()}response/{token}"

    def respond(self, token: str, payload: dict[str, Any]) -> ApiResult:
        """Handle a POST to a response_url."""
        with self._lock:
            target = self._responses.get(token)
            if target is None:
                return ApiResult(404, {"ok": False, "error": "no_such_url"})
            if self.clock() - target.issued_at > RESPONSE_URL_TTL:
                return ApiResult(404, {"ok": False, "error": "expired_url"})
            if target.uses >= RESPONSE_URL_MAX_USES:
                return ApiResult(404, {"ok": False, "error": "used_url"})
            target.uses += 1
        try:
            self._apply_response(target, payload)
        except ApiError as exc:
            # Slack answers response_url misuse with HTTP 4xx and a short error.
            return ApiResult(400 if exc.status == 200 else exc.status, exc.body())
        return ApiResult(200, {"ok": True})

    def _apply_response(self, target: ResponseTarget, payload: dict[str, Any]) -> None:
        ws = self.ws
        if _as_bool(payload.get("delete_original", False)):
            if target.message_ts is None or ws.message(target.channel, target.message_ts) is None:
                raise ApiError("message_not_found")
            ws.delete_message(target.channel, target.message_ts)
            return
        text, blocks = self.message_content(payload, require=True)
        if _as_bool(payload.get("replace_original", False)) and target.message_ts is not None:
            if ws.message(target.channel, target.message_ts) is None:
                raise ApiError("message_not_found")
            ws.update_message(target.channel, target.message_ts, text=text, blocks=blocks)
            return
        in_channel = payload.get("response_type") == "in_channel"
        ws.post_message(
            target.channel,
            ws.bot_user_id,
            text,
            blocks,
            thread_ts=self._thread_ts(target.channel, payload.get("thread_ts")),
            ephemeral_to=None if in_channel else target.user,
            via_response_url=True,
            source="response_url",
        )

    # ----------------------------------------------------------------- helpers

    def _channel_id(self, params: dict[str, Any], key: str = "channel") -> str:
        ref = params.get(key)
        if not ref:
            raise ApiError("channel_not_found")
        try:
            return self.ws.channel(str(ref)).id
        except KeyError:
            raise ApiError("channel_not_found") from None

    def _user_id(self, ref: Any) -> str:
        if not ref or str(ref) not in self.ws.users:
            raise ApiError("user_not_found")
        return str(ref)

    def message_content(
        self, params: dict[str, Any], *, require: bool, max_blocks: int = MAX_MESSAGE_BLOCKS
    ) -> tuple[str, list[dict[str, Any]] | None]:
        """Validate text/blocks like chat.postMessage does; returns (text, blocks)."""
        try:
            blocks = parse_blocks(params.get("blocks"))
            if blocks is not None:
                validate_blocks(blocks, max_blocks=max_blocks)
        except BlockError as exc:
            raise ApiError("invalid_blocks", detail=[str(exc)]) from None
        text = params.get("text")
        text = "" if text is None else str(text)
        if len(text) > MAX_MESSAGE_TEXT:
            raise ApiError("msg_too_long")
        if require and not text and not blocks and not params.get("attachments"):
            raise ApiError("no_text")
        return text, blocks

    def _thread_ts(self, channel: str, thread_ts: Any) -> str | None:
        if not thread_ts:
            return None
        parent = self.ws.message(channel, str(thread_ts))
        if parent is None:
            raise ApiError("thread_not_found")
        # Replying to a reply lands in the same thread, as in Slack.
        return parent.thread_ts or parent.ts

    def _view_payload(self, params: dict[str, Any]) -> dict[str, Any]:
        view = _as_json(params.get("view"), "view")
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise ApiError("invalid_arguments", detail=["view.type must be modal or home"])
        detail: list[str] = []
        title = view.get("title") or {}
        if view.get("type") == "modal" and len(str(title.get("text", ""))) > MAX_VIEW_TITLE:
            detail.append(
                f"must be less than {MAX_VIEW_TITLE + 1} characters [json-pointer:/view/title/text]"
            )
        for key in ("submit", "close"):
            if view.get(key) and len(str(view[key].get("text", ""))) > MAX_VIEW_TITLE:
                detail.append(
                    f"must be less than {MAX_VIEW_TITLE + 1} characters "
                    f"[json-pointer:/view/{key}/text]"
                )
        if len(str(view.get("private_metadata", ""))) > MAX_PRIVATE_METADATA:
            detail.append("must be less than 3001 characters [json-pointer:/view/private_metadata]")
        if len(str(view.get("callback_id", ""))) > 255:
            detail.append("must be less than 256 characters [json-pointer:/view/callback_id]")
        try:
            validate_blocks(parse_blocks(view.get("blocks")) or [], max_blocks=MAX_VIEW_BLOCKS)
        except BlockError as exc:
            detail.append(str(exc).replace("json-pointer:/blocks", "json-pointer:/view/blocks"))
        if detail:
            # Slack reports view problems as invalid_arguments, not invalid_blocks.
            raise ApiError("invalid_arguments", detail=detail)
        return view

    @staticmethod
    def view_hash(view: dict[str, Any]) -> str:
        """A content hash for views.update's `hash` conflict check."""
        return hashlib.sha1(json.dumps(view, sort_keys=True).encode()).hexdigest()[:20]

    # ----------------------------------------------------------------- methods

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        bot = self.ws.users[self.ws.bot_user_id]
        return {
            "url": f"https://{self.ws.team_domain}.slack.com/",
            "team": self.ws.team_domain,
            "user": bot.name,
            "team_id": self.ws.team_id,
            "user_id": bot.id,
            "bot_id": self.ws.bot_id,
            "app_id": APP_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.socket_url is None:
            raise ApiError("invalid_auth")  # no app-level token exists without Socket Mode
        return {"url": self.socket_url()}

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(params)
        text, blocks = self.message_content(params, require=True)
        thread_ts = self._thread_ts(channel, params.get("thread_ts"))
        metadata = _metadata(params)
        now = self.clock()
        with self._lock:
            admitted = self.post_limit is None or self.post_limit.admit(channel, now)
        if not admitted:
            self.ws.record_rate_limit(RateLimitEvent("chat.postMessage", channel, "", now))
            raise ApiError("ratelimited", status=429, headers={"Retry-After": "1"})
        msg = self.ws.post_message(
            channel,
            self.ws.bot_user_id,
            text,
            blocks,
            thread_ts=thread_ts,
            reply_broadcast=bool(thread_ts) and _as_bool(params.get("reply_broadcast", False)),
        )
        msg.metadata = metadata
        return {"channel": channel, "ts": msg.ts, "message": msg.to_api(self.ws.team_id)}

    def _own_message(self, params: dict[str, Any], refusal: str) -> tuple[str, str]:
        """The (channel, ts) of a message the bot posted, as chat.update/delete require."""
        channel = self._channel_id(params)
        ts = str(params.get("ts") or "")
        msg = self.ws.message(channel, ts)
        if msg is None or msg.ephemeral_to is not None:
            raise ApiError("message_not_found")
        if msg.user != self.ws.bot_user_id:
            raise ApiError(refusal)
        return channel, ts

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._own_message(params, "cant_update_message")
        text, blocks = self.message_content(params, require=False)
        metadata = _metadata(params)
        now = self.clock()
        with self._lock:
            last = self._last_update.get((channel, ts))
            limited = last is not None and now - last < UPDATE_INTERVAL
            if not limited:
                self._last_update[(channel, ts)] = now
        if limited:
            self.ws.record_rate_limit(RateLimitEvent("chat.update", channel, ts, now))
            raise ApiError("ratelimited", status=429, headers={"Retry-After": "1"})
        msg = self.ws.update_message(
            channel, ts, text=text if "text" in params else None, blocks=blocks
        )
        if metadata is not None:  # like Slack, an update without metadata keeps the old
            msg.metadata = metadata
        return {
            "channel": channel,
            "ts": ts,
            "text": msg.text,
            "message": msg.to_api(self.ws.team_id),
        }

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(params)
        user = self._user_id(params.get("user"))
        if self.ws.users[user].deleted:
            raise ApiError("user_not_in_channel")
        text, blocks = self.message_content(params, require=True)
        msg = self.ws.post_message(
            channel,
            self.ws.bot_user_id,
            text,
            blocks,
            thread_ts=self._thread_ts(channel, params.get("thread_ts")),
            ephemeral_to=user,
        )
        return {"message_ts": msg.ts}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._own_message(params, "cant_delete_message")
        self.ws.delete_message(channel, ts)
        return {"channel": channel, "ts": ts}

    def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(params)
        ts = str(params.get("message_ts") or "")
        if self.ws.message(channel, ts) is None:
            raise ApiError("message_not_found")
        link = f"https://{self.ws.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"channel": channel, "permalink": link}

    def _reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(params)
        ts = str(params.get("timestamp") or "")
        name = str(params.get("name") or "").strip(":")
        if not name:
            raise ApiError("invalid_name")
        if self.ws.message(channel, ts) is None:
            raise ApiError("message_not_found")
        if not self.ws.add_reaction(channel, ts, name, self.ws.bot_user_id):
            raise ApiError("already_reacted")
        return {}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self._user_id(params.get("user"))
        return {"user": self.ws.users[user].to_api(self.ws.team_id)}

    def _users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        members = [u.to_api(self.ws.team_id) for u in self.ws.users.values()]
        return {"members": members, "response_metadata": {"next_cursor": ""}}

    def _users_lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        for user in self.ws.users.values():
            if user.email and user.email == params.get("email"):
                return {"user": user.to_api(self.ws.team_id)}
        raise ApiError("users_not_found")

    def _usergroups_list(self, params: dict[str, Any]) -> dict[str, Any]:
        include_users = _as_bool(params.get("include_users", False))
        groups = []
        for g in self.ws.usergroups.values():
            item: dict[str, Any] = {"id": g.id, "handle": g.handle, "name": g.name or g.handle}
            item["user_count"] = len(g.users)
            if include_users:
                item["users"] = list(g.users)
            groups.append(item)
        return {"usergroups": groups}

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self.ws.usergroups.get(str(params.get("usergroup") or ""))
        if group is None:
            raise ApiError("no_such_subteam")
        return {"users": list(group.users)}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(params)
        return {"channel": self.ws.channels[channel].to_api()}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if len(users) != 1:
            raise ApiError("not_enough_users" if not users else "invalid_arguments")
        user = self._user_id(users[0])
        return {"channel": self.ws.dm_channel(user).to_api()}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(params)
        limit = int(params.get("limit") or 100)
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or 0) or float("inf")
        inclusive = _as_bool(params.get("inclusive", False))
        msgs = [
            m
            for m in self.ws.messages(channel, include_ephemeral=False)
            if (not m.is_reply or m.reply_broadcast)
            and (oldest <= float(m.ts) <= latest if inclusive else oldest < float(m.ts) < latest)
        ]
        msgs.reverse()  # newest first, like Slack
        page = msgs[:limit]
        meta = _as_bool(params.get("include_all_metadata", False))
        out = [
            self._with_thread_info(channel, _with_metadata(m, self.ws, meta)) for m in page
        ]
        return {
            "messages": out,
            "has_more": len(msgs) > limit,
            "response_metadata": {"next_cursor": ""},
        }

    def _with_thread_info(self, channel: str, message: dict[str, Any]) -> dict[str, Any]:
        replies = [
            m
            for m in self.ws.thread(channel, message["ts"])
            if m.is_reply and m.ephemeral_to is None
        ]
        if replies and "thread_ts" not in message:
            message["thread_ts"] = message["ts"]
        if replies:
            message["reply_count"] = len(replies)
            message["reply_users"] = sorted({m.user for m in replies})
            message["latest_reply"] = replies[-1].ts
        return message

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(params)
        ts = str(params.get("ts") or "")
        parent = self.ws.message(channel, ts)
        if parent is None:
            raise ApiError("thread_not_found")
        root = parent.thread_ts or parent.ts
        msgs = [m for m in self.ws.thread(channel, root) if m.ephemeral_to is None]
        meta = _as_bool(params.get("include_all_metadata", False))
        out = [_with_metadata(m, self.ws, meta) for m in msgs]
        if out and out[0]["ts"] == root:
            out[0] = self._with_thread_info(channel, out[0])
        return {"messages": out, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = params.get("filename")
        length = params.get("length")
        if not filename or length is None:
            raise ApiError("invalid_arguments")
        try:
            size = int(length)
        except ValueError:
            raise ApiError("invalid_arguments") from None
        f = self.ws.add_file(str(filename), size, url_base=f"{self._base_url()}files/")
        return {"upload_url": f"{self._base_url()}upload/{f.id}", "file_id": f.id}

    def _files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        items = _as_json(params.get("files"), "files")
        if not isinstance(items, list) or not items:
            raise ApiError("invalid_arguments")
        channel = self._channel_id(params, "channel_id") if params.get("channel_id") else None
        if channel is None and params.get("channels"):
            channel = self._channel_id({"channel": str(params["channels"]).split(",")[0]})
        text = str(params.get("initial_comment") or "")
        if len(text) > MAX_MESSAGE_TEXT:
            raise ApiError("msg_too_long")
        thread_ts = self._thread_ts(channel, params.get("thread_ts")) if channel else None
        ids = []
        for item in items:
            f = self.ws.files.get(str(item.get("id")))
            if f is None or f.content is None:
                raise ApiError("file_not_found")
            if f.completed:
                raise ApiError("file_upload_already_completed")
            ids.append(f.id)
        with self.ws.lock:
            for item, fid in zip(items, ids, strict=True):
                f = self.ws.files[fid]
                f.title = str(item.get("title") or f.name)
                f.completed = True
            if channel is not None:
                msg = self.ws.post_message(
                    channel,
                    self.ws.bot_user_id,
                    text,
                    thread_ts=thread_ts,
                    files=ids,
                    source="upload",
                )
                for fid in ids:
                    self.ws.files[fid].channels.append(channel)
                    self.ws.files[fid].message_ts = msg.ts
            return {"files": [self.ws.files[fid].to_api() for fid in ids]}

    def _files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        f = self.ws.files.get(str(params.get("file") or ""))
        if f is None or not f.completed:
            raise ApiError("file_not_found")
        return {"file": f.to_api()}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view_payload(params)
        trigger = self._use_trigger(params.get("trigger_id"))
        vid = self.ws.new_id("V")
        opened = self.ws.add_view(
            View(
                id=vid,
                user=trigger.user,
                view=view,
                hash=self.view_hash(view),
                root_view_id=vid,
                external_id=view.get("external_id"),
            )
        )
        return {"view": opened.to_api(self.ws.team_id)}

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view_payload(params)
        trigger = self._use_trigger(params.get("trigger_id"))
        stack = self.ws.open_views(trigger.user)
        if not stack:
            raise ApiError("invalid_trigger_id")
        if len(stack) >= MAX_VIEW_STACK:
            raise ApiError("push_limit_reached")
        vid = self.ws.new_id("V")
        pushed = self.ws.add_view(
            View(
                id=vid,
                user=trigger.user,
                view=view,
                hash=self.view_hash(view),
                root_view_id=stack[0].id,
                previous_view_id=stack[-1].id,
                external_id=view.get("external_id"),
            )
        )
        return {"view": pushed.to_api(self.ws.team_id)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view_payload(params)
        target = None
        if params.get("view_id"):
            target = self.ws.views.get(str(params["view_id"]))
        elif params.get("external_id"):
            target = next(
                (v for v in self.ws.views.values() if v.external_id == params["external_id"]), None
            )
        if target is None or target.closed:
            raise ApiError("not_found")
        if params.get("hash") and params["hash"] != target.hash:
            raise ApiError("hash_conflict")
        self.replace_view(target.id, view)
        return {"view": self.ws.views[target.id].to_api(self.ws.team_id)}

    def replace_view(self, view_id: str, view: dict[str, Any]) -> None:
        """Swap a view's content (views.update or response_action=update)."""

        def mutate(v: View) -> None:
            v.history.append(v.view)
            v.view = view
            v.hash = self.view_hash(view)
            v.errors = {}

        self.ws.change_view(view_id, mutate)
