"""In-memory model of a Slack workspace for the sandbox: users, channels, messages, files, views."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

BOT_USER_ID = "U_GOLIVE"
BOT_ID = "B_GOLIVE"
BOT_NAME = "golive"
APP_ID = "A_GOLIVE"


class ManualClock:
    """A monotonic clock tests advance by hand, so time-based rules need no sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`."""
        with self._lock:
            self._now += seconds


@dataclass
class User:
    """A workspace member (or the bot user)."""

    id: str
    name: str
    real_name: str = ""
    is_bot: bool = False
    deleted: bool = False
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    is_admin: bool = False
    email: str | None = None
    tz: str = "Europe/London"
    bot_id: str | None = None

    def to_api(self, team_id: str) -> dict[str, Any]:
        """The user object as `users.info` returns it."""
        profile: dict[str, Any] = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.name,
            "display_name_normalized": self.name,
        }
        if self.email:
            profile["email"] = self.email
        if self.bot_id:
            profile["bot_id"] = self.bot_id
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": self.real_name,
            "tz": self.tz,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": self.is_ultra_restricted,
            "profile": profile,
        }


@dataclass
class Usergroup:
    """A user group (`<!subteam^ID>`)."""

    id: str
    handle: str
    users: list[str]
    name: str = ""


@dataclass
class Channel:
    """A public channel or a DM."""

    id: str
    name: str
    is_im: bool = False
    im_user: str | None = None
    is_private: bool = False
    topic: str = ""

    def to_api(self) -> dict[str, Any]:
        """The channel object as `conversations.info` returns it."""
        if self.is_im:
            return {"id": self.id, "is_im": True, "user": self.im_user, "is_open": True}
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": False,
            "is_im": False,
            "is_private": self.is_private,
            "is_archived": False,
            "is_member": True,
            "topic": {"value": self.topic},
            "purpose": {"value": ""},
        }


@dataclass
class MessageVersion:
    """One earlier version of a message and the (monotonic) time it was written."""

    text: str
    blocks: list[dict[str, Any]] | None
    at: float


@dataclass
class Message:
    """A channel message, thread reply or ephemeral message."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    ephemeral_to: str | None = None
    files: list[str] = field(default_factory=list)
    history: list[MessageVersion] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    via_response_url: bool = False
    bot_id: str | None = None
    reply_broadcast: bool = False
    source: str = "api"  # api | response_url | ack | user | upload
    at: float = 0.0  # monotonic time the current version was written
    seq: int = 0  # workspace-wide order of creation
    metadata: dict[str, Any] | None = None  # chat.postMessage's event_type + event_payload

    @property
    def edited(self) -> bool:
        """True once the message has been updated."""
        return bool(self.history)

    @property
    def is_reply(self) -> bool:
        """True for a thread reply (not the parent)."""
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def update_times(self) -> list[float]:
        """Monotonic times of each update (excludes the original post)."""
        return [v.at for v in self.history[1:]] + ([self.at] if self.history else [])

    def to_api(
        self, team_id: str, files: Mapping[str, SandboxFile] | None = None
    ) -> dict[str, Any]:
        """The message object as the Web API and interaction payloads show it."""
        out: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
        }
        out["team"] = team_id
        if self.bot_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = APP_ID
        if self.blocks is not None:
            out["blocks"] = copy.deepcopy(self.blocks)
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.reply_broadcast:
            out["subtype"] = "thread_broadcast"
        if self.history:
            out["edited"] = {"user": self.user, "ts": self.ts}
        if self.files and files is not None:
            out["files"] = [files[f].to_api() for f in self.files if f in files]
            out["upload"] = True
        if self.reactions:
            out["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in self.reactions.items()
            ]
        return out


@dataclass
class SandboxFile:
    """A file uploaded through the three-call external upload flow."""

    id: str
    name: str
    length: int
    title: str = ""
    content: bytes | None = None
    user: str = BOT_USER_ID
    channels: list[str] = field(default_factory=list)
    message_ts: str | None = None
    completed: bool = False
    url_private: str = ""

    @property
    def size(self) -> int:
        """Size of the uploaded bytes (or the announced length before upload)."""
        return len(self.content) if self.content is not None else self.length

    def to_api(self) -> dict[str, Any]:
        """The file object as `files.completeUploadExternal` returns it."""
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title or self.name,
            "size": self.size,
            "user": self.user,
            "url_private": self.url_private,
            "channels": list(self.channels),
        }


@dataclass
class View:
    """A modal opened by the bot."""

    id: str
    user: str
    view: dict[str, Any]
    hash: str
    root_view_id: str
    previous_view_id: str | None = None
    external_id: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    closed: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_api(self, team_id: str) -> dict[str, Any]:
        """The view object as `views.open` and view payloads show it."""
        out = copy.deepcopy(self.view)
        out.update(
            {
                "id": self.id,
                "team_id": team_id,
                "state": {"values": copy.deepcopy(self.state)},
                "hash": self.hash,
                "root_view_id": self.root_view_id,
                "previous_view_id": self.previous_view_id,
                "app_id": APP_ID,
                "bot_id": BOT_ID,
                "external_id": self.external_id or "",
            }
        )
        out.setdefault("private_metadata", "")
        out.setdefault("callback_id", "")
        out.setdefault("blocks", [])
        out.setdefault("clear_on_close", False)
        out.setdefault("notify_on_close", False)
        return out


@dataclass
class ApiCall:
    """One request the bot sent to the sandbox (Web API, response_url or file upload)."""

    method: str
    params: dict[str, Any]
    raw: str  # the request body (and query string) as received, for secret scanning
    at: float
    status: int = 200
    ok: bool = True
    error: str | None = None


@dataclass
class RateLimitEvent:
    """A call the sandbox answered with HTTP 429."""

    method: str
    channel: str
    ts: str
    at: float


@dataclass
class DeliveryRecord:
    """A request the sandbox delivered to the bot (slash command, click, view submission)."""

    kind: str
    user: str
    status: int
    elapsed: float
    body: str
    error: str | None = None


@dataclass(frozen=True)
class Change:
    """A notification sent to subscribers after every mutation."""

    kind: str  # message_posted|message_updated|message_deleted|reaction_added|view_*|file_*|...
    channel: str | None = None
    ts: str | None = None
    view_id: str | None = None
    user: str | None = None


class Workspace:
    """Thread-safe in-memory Slack workspace; every mutation notifies waiters and subscribers."""

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config = config or {}
        team = config.get("team") or {}
        self.team_id: str = team.get("id", "T0SANDBOX")
        self.team_domain: str = team.get("domain", "sandbox")
        self.clock = clock
        # One re-entrant lock guards all state; the Condition lets tests wait for changes.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._subscribers: list[Callable[[Change], None]] = []
        self._last_ts_us = 0
        self._seq = 0
        self._ids = 0
        self.users: dict[str, User] = {}
        self.usergroups: dict[str, Usergroup] = {}
        self.channels: dict[str, Channel] = {}
        self._messages: dict[str, list[Message]] = {}
        self.deleted_messages: list[Message] = []
        self.files: dict[str, SandboxFile] = {}
        self.views: dict[str, View] = {}
        self.api_calls: list[ApiCall] = []
        self.rate_limited: list[RateLimitEvent] = []
        self.deliveries: list[DeliveryRecord] = []
        self.delivery_failures: list[DeliveryRecord] = []
        self.slow_acks: list[DeliveryRecord] = []
        self.confirms_shown: list[dict[str, Any]] = []
        self.view_responses: list[dict[str, Any]] = []

        bot = config.get("bot") or {}
        self.bot_user_id: str = bot.get("id", BOT_USER_ID)
        self.bot_id: str = bot.get("bot_id", BOT_ID)
        self.users[self.bot_user_id] = User(
            id=self.bot_user_id,
            name=bot.get("name", BOT_NAME),
            real_name=bot.get("real_name", "GoLive"),
            is_bot=True,
            bot_id=self.bot_id,
        )
        for u in config.get("users", []):
            user = User(
                id=u["id"],
                name=u["name"],
                real_name=u.get("real_name", u["name"].title()),
                is_bot=bool(u.get("is_bot", False)),
                deleted=bool(u.get("deleted", False)),
                is_restricted=bool(u.get("is_restricted", False)),
                is_ultra_restricted=bool(u.get("is_ultra_restricted", False)),
                is_admin=bool(u.get("is_admin", False)),
                email=u.get("email"),
                tz=u.get("tz", "Europe/London"),
            )
            self.users[user.id] = user
        for g in config.get("usergroups", []):
            self.usergroups[g["id"]] = Usergroup(
                id=g["id"],
                handle=g["handle"],
                users=list(g.get("users", [])),
                name=g.get("name", ""),
            )
        for c in config.get("channels", []):
            self.channels[c["id"]] = Channel(
                id=c["id"], name=c["name"], is_private=bool(c.get("is_private", False))
            )
            self._messages[c["id"]] = []

    @classmethod
    def default_demo(cls, *, clock: Callable[[], float] = time.monotonic) -> Workspace:
        """The demo workspace: alice requests, bob and carol approve, dave is a guest, eve left."""
        return cls(
            {
                "team": {"id": "T0SANDBOX", "domain": "sandbox"},
                "users": [
                    {"id": "U_ALICE", "name": "alice", "real_name": "Alice Archer"},
                    {"id": "U_BOB", "name": "bob", "real_name": "Bob Baker"},
                    {"id": "U_CAROL", "name": "carol", "real_name": "Carol Chen"},
                    {
                        "id": "U_DAVE",
                        "name": "dave",
                        "real_name": "Dave Guest",
                        "is_restricted": True,
                    },
                    {"id": "U_EVE", "name": "eve", "real_name": "Eve Former", "deleted": True},
                ],
                "usergroups": [
                    {
                        "id": "S_APPROVERS",
                        "handle": "golive-approvers",
                        "users": ["U_BOB", "U_CAROL"],
                    }
                ],
                "channels": [
                    {"id": "C_CUTOVER", "name": "cutover"},
                    {"id": "C_INCIDENT", "name": "incident"},
                ],
            },
            clock=clock,
        )

    # ----------------------------------------------------------------- notification

    @property
    def lock(self) -> threading.RLock:
        """The workspace lock; hold it to read several fields consistently."""
        return self._lock

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call `callback(change)` after every mutation; returns an unsubscribe function.

        Callbacks run synchronously under the workspace lock, in mutation order, so they must be
        quick and must never wait on another thread that could need the workspace.
        """
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _changed(self, change: Change) -> None:
        # Called with the lock held: subscribers see changes in order, then waiters wake.
        for callback in list(self._subscribers):
            try:
                callback(change)
            except Exception:  # a broken subscriber must not break the Web API
                log.exception("sandbox subscriber failed on %s", change)
        self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 10.0, *, channel: str | None = None
    ) -> T:
        """Wait until `predicate()` is truthy and return it; TimeoutError shows the channel."""
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
            if result:
                return result
            raise TimeoutError(self._timeout_report(predicate, timeout, channel))

    def _timeout_report(
        self, predicate: Callable[[], Any], timeout: float, channel: str | None
    ) -> str:
        from bot.dev.sandbox.render import render_channel

        name = getattr(predicate, "__qualname__", repr(predicate))
        lines = [f"condition {name} not met within {timeout:.1f}s"]
        channels = [channel] if channel else [c for c, msgs in self._messages.items() if msgs]
        for cid in channels:
            lines.append(render_channel(self, cid))
        if not channels:
            lines.append("(no messages in any channel)")
        errors = [c for c in self.api_calls if not c.ok][-5:]
        if errors:
            lines.append(
                "recent rejected calls: " + ", ".join(f"{c.method}: {c.error}" for c in errors)
            )
        if self.delivery_failures:
            f = self.delivery_failures[-1]
            lines.append(f"last delivery failure: {f.kind} -> {f.status} {f.error or f.body[:200]}")
        return "\n".join(lines)

    # ----------------------------------------------------------------- ids and lookup

    def next_ts(self) -> str:
        """A Slack-style ts ("1732760000.000100"), strictly increasing."""
        with self._lock:
            now_us = int(time.time() * 1_000_000)
            self._last_ts_us = max(now_us, self._last_ts_us + 1)
            return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def new_id(self, prefix: str) -> str:
        """A fresh id such as F0000001 or V0000002."""
        with self._lock:
            self._ids += 1
            return f"{prefix}{self._ids:07d}"

    @property
    def seq(self) -> int:
        """Sequence number of the latest message; pass to `messages(after_seq=...)`."""
        with self._lock:
            return self._seq

    def user(self, ref: str) -> User:
        """Find a user by id, name or @name; KeyError if unknown."""
        ref = ref.lstrip("@")
        with self._lock:
            if ref in self.users:
                return self.users[ref]
            for user in self.users.values():
                if user.name == ref:
                    return user
        raise KeyError(f"no such user: {ref!r}")

    def channel(self, ref: str) -> Channel:
        """Find a channel by id, name or #name; a user id resolves to the DM with that user."""
        ref = ref.lstrip("#")
        with self._lock:
            if ref in self.channels:
                return self.channels[ref]
            for channel in self.channels.values():
                if channel.name == ref and not channel.is_im:
                    return channel
            if ref in self.users:
                return self.dm_channel(ref)
        raise KeyError(f"no such channel: {ref!r}")

    def dm_channel(self, user_id: str) -> Channel:
        """The bot's DM with `user_id`, created on first use (like conversations.open)."""
        cid = "D" + user_id[1:] if user_id.startswith("U") else "D_" + user_id
        with self._lock:
            if cid not in self.channels:
                self.channels[cid] = Channel(
                    id=cid, name="directmessage", is_im=True, im_user=user_id
                )
                self._messages[cid] = []
            return self.channels[cid]

    def usergroup(self, ref: str) -> Usergroup:
        """Find a usergroup by id or handle; KeyError if unknown."""
        with self._lock:
            if ref in self.usergroups:
                return self.usergroups[ref]
            for group in self.usergroups.values():
                if group.handle == ref.lstrip("@"):
                    return group
        raise KeyError(f"no such usergroup: {ref!r}")

    # ----------------------------------------------------------------- reading messages

    def messages(
        self,
        channel: str,
        *,
        include_replies: bool = True,
        include_ephemeral: bool = True,
        visible_to: str | None = None,
        after_seq: int = 0,
    ) -> list[Message]:
        """Messages of a channel in posting order (a snapshot list)."""
        with self._lock:
            cid = self.channel(channel).id
            out = []
            for m in self._messages.get(cid, []):
                if m.seq <= after_seq:
                    continue
                if m.is_reply and not include_replies:
                    continue
                if m.ephemeral_to is not None:
                    if not include_ephemeral:
                        continue
                    if visible_to is not None and m.ephemeral_to != visible_to:
                        continue
                out.append(m)
            return out

    def message(self, channel: str, ts: str) -> Message | None:
        """The message with this ts in the channel, or None."""
        with self._lock:
            cid = self.channel(channel).id
            for m in self._messages.get(cid, []):
                if m.ts == ts:
                    return m
            return None

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """The parent and its replies, in order (ephemerals in the thread included)."""
        with self._lock:
            cid = self.channel(channel).id
            return [
                m
                for m in self._messages.get(cid, [])
                if m.ts == thread_ts or m.thread_ts == thread_ts
            ]

    def latest(self, channel: str, *, visible_to: str | None = None) -> Message | None:
        """The most recently posted message in the channel (optionally as seen by a user)."""
        msgs = self.messages(channel, visible_to=visible_to)
        return msgs[-1] if msgs else None

    def all_messages(self) -> list[Message]:
        """Every message in every channel, in posting order."""
        with self._lock:
            msgs = [m for ms in self._messages.values() for m in ms]
        return sorted(msgs, key=lambda m: m.seq)

    def wait_for_message(
        self,
        channel: str,
        *,
        contains: str | None = None,
        predicate: Callable[[Message], bool] | None = None,
        after_seq: int = 0,
        timeout: float = 10.0,
    ) -> Message:
        """Wait for a message in `channel` whose text or blocks contain `contains`."""

        def find() -> Message | None:
            for m in self.messages(channel, after_seq=after_seq):
                if contains is not None and contains not in message_text(m):
                    continue
                if predicate is not None and not predicate(m):
                    continue
                return m
            return None

        find.__qualname__ = f"message in {channel} containing {contains!r}"
        return self.wait_for(find, timeout, channel=channel)

    # ----------------------------------------------------------------- mutations

    def post_message(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
        ephemeral_to: str | None = None,
        files: Iterable[str] = (),
        via_response_url: bool = False,
        reply_broadcast: bool = False,
        source: str = "api",
    ) -> Message:
        """Append a message to a channel and notify."""
        with self._lock:
            cid = self.channel(channel).id
            author = self.users.get(user)
            self._seq += 1
            msg = Message(
                channel=cid,
                ts=self.next_ts(),
                user=user,
                text=text,
                blocks=copy.deepcopy(blocks),
                thread_ts=thread_ts,
                ephemeral_to=ephemeral_to,
                files=list(files),
                via_response_url=via_response_url,
                bot_id=author.bot_id if author else None,
                reply_broadcast=reply_broadcast,
                source=source,
                at=self.clock(),
                seq=self._seq,
            )
            self._messages[cid].append(msg)
            self._changed(Change("message_posted", cid, msg.ts, user=ephemeral_to))
            return msg

    def update_message(
        self, channel: str, ts: str, *, text: str | None, blocks: list[dict[str, Any]] | None
    ) -> Message:
        """Replace a message's text/blocks, keeping the previous version in its history."""
        with self._lock:
            msg = self.message(channel, ts)
            if msg is None:
                raise KeyError(f"message_not_found: {channel} {ts}")
            msg.history.append(MessageVersion(msg.text, copy.deepcopy(msg.blocks), msg.at))
            if text is not None:
                msg.text = text
            # Like Slack, an update without blocks removes the old blocks.
            msg.blocks = copy.deepcopy(blocks)
            msg.at = self.clock()
            self._changed(Change("message_updated", msg.channel, ts, user=msg.ephemeral_to))
            return msg

    def delete_message(self, channel: str, ts: str) -> Message:
        """Remove a message (kept in `deleted_messages`)."""
        with self._lock:
            msg = self.message(channel, ts)
            if msg is None:
                raise KeyError(f"message_not_found: {channel} {ts}")
            self._messages[msg.channel].remove(msg)
            self.deleted_messages.append(msg)
            self._changed(Change("message_deleted", msg.channel, ts, user=msg.ephemeral_to))
            return msg

    def add_reaction(self, channel: str, ts: str, name: str, user: str) -> bool:
        """Add a reaction; False if this user already reacted with it."""
        with self._lock:
            msg = self.message(channel, ts)
            if msg is None:
                raise KeyError(f"message_not_found: {channel} {ts}")
            users = msg.reactions.setdefault(name, [])
            if user in users:
                return False
            users.append(user)
            self._changed(Change("reaction_added", msg.channel, ts, user=user))
            return True

    def add_file(self, name: str, length: int, *, url_base: str) -> SandboxFile:
        """Register a pending upload (files.getUploadURLExternal)."""
        with self._lock:
            fid = self.new_id("F")
            f = SandboxFile(id=fid, name=name, length=length, url_private=f"{url_base}{fid}")
            self.files[fid] = f
            self._changed(Change("file_created"))
            return f

    def store_file_content(self, file_id: str, content: bytes) -> SandboxFile:
        """Store uploaded bytes for a pending file."""
        with self._lock:
            f = self.files[file_id]
            f.content = content
            self._changed(Change("file_uploaded"))
            return f

    def record_call(self, call: ApiCall) -> None:
        """Log a request the bot made (accepted or rejected)."""
        with self._lock:
            self.api_calls.append(call)
            self._changed(Change("api_call"))

    def record_rate_limit(self, event: RateLimitEvent) -> None:
        """Log a call answered with 429."""
        with self._lock:
            self.rate_limited.append(event)
            self._changed(Change("rate_limited", event.channel, event.ts))

    def record_delivery(self, record: DeliveryRecord, *, failed: bool, slow: bool) -> None:
        """Log a request delivered to the bot."""
        with self._lock:
            self.deliveries.append(record)
            if failed:
                self.delivery_failures.append(record)
            if slow:
                self.slow_acks.append(record)
            self._changed(Change("delivery", user=record.user))

    def record_confirm(self, entry: dict[str, Any]) -> None:
        """Log that a button's confirm dialog was shown (and accepted)."""
        with self._lock:
            self.confirms_shown.append(entry)
            self._changed(Change("confirm_shown", user=entry.get("user")))

    def record_view_response(self, entry: dict[str, Any]) -> None:
        """Log the bot's answer to a view submission."""
        with self._lock:
            self.view_responses.append(entry)
            self._changed(Change("view_response", view_id=entry.get("view_id")))

    def add_view(self, view: View) -> View:
        """Register a newly opened or pushed view."""
        with self._lock:
            self.views[view.id] = view
            self._changed(Change("view_opened", view_id=view.id, user=view.user))
            return view

    def change_view(
        self, view_id: str, mutate: Callable[[View], None], kind: str = "view_updated"
    ) -> View:
        """Apply `mutate` to a view under the lock and notify."""
        with self._lock:
            view = self.views[view_id]
            mutate(view)
            self._changed(Change(kind, view_id=view_id, user=view.user))
            return view

    def open_views(self, user: str) -> list[View]:
        """The user's open modal stack, root first."""
        with self._lock:
            return [v for v in self.views.values() if v.user == user and not v.closed]

    # ----------------------------------------------------------------- inspection helpers

    def calls(self, method: str | None = None) -> list[ApiCall]:
        """Logged requests, optionally only those for one method."""
        with self._lock:
            return [c for c in self.api_calls if method is None or c.method == method]

    def find_in_outgoing(self, needle: str) -> list[ApiCall]:
        """Every logged request whose raw payload contains `needle` (for secret-leak tests)."""
        with self._lock:
            return [c for c in self.api_calls if needle in c.raw]


def message_text(msg: Message) -> str:
    """All human-visible text of a message (text plus every text in its blocks), for matching."""
    parts = [msg.text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    parts.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(msg.blocks)
    return "\n".join(parts)
