"""Who is who: users.info and usergroups.users.list, with a short cache for group members."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.approvals import Actor


class Directory:
    def __init__(self, client: WebClient, *, groups: Mapping[str, str], cache_seconds: float = 60,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.groups = dict(groups)  # approver group name -> usergroup id
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def actor(self, user_id: str) -> Actor:
        """The user's account flags, checked at click time (deleted, bot, guest)."""
        try:
            user = self.client.users_info(user=user_id)["user"]
        except SlackApiError:
            # Unknown to Slack: treat as deactivated, so it can never approve.
            return Actor(user_id=user_id, deleted=True)
        return Actor(
            user_id=user_id,
            deleted=bool(user.get("deleted")),
            is_bot=bool(user.get("is_bot")) or bool(user.get("is_app_user")),
            is_guest=bool(user.get("is_restricted")) or bool(user.get("is_ultra_restricted")),
        )

    def group_members(self) -> dict[str, frozenset[str]]:
        """Approver group name -> member ids, cached for ``cache_seconds``."""
        return {name: self._members(gid) for name, gid in self.groups.items()}

    def _members(self, group_id: str) -> frozenset[str]:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(group_id)
            if hit and now - hit[0] < self.cache_seconds:
                return hit[1]
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group_id)["users"])
        except SlackApiError:
            users = frozenset()
        with self._lock:
            self._cache[group_id] = (now, users)
        return users
