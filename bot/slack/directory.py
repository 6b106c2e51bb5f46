"""Who is who, asked fresh at every decision: users.info and usergroups.users.list.

Nothing is cached: a click decides with the membership Slack has now (one Tier 2 call per
group per click, far inside the limits), and a lookup that fails refuses the click rather than
deciding it with a guess (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from runbook.rules.approvals import Actor

log = logging.getLogger(__name__)

GROUPS_UNAVAILABLE = "Could not check group membership, try again. Nothing was decided."
ACCOUNT_UNAVAILABLE = "Could not check your account, try again. Nothing was decided."


class DirectoryUnavailable(Exception):
    """Slack could not say who the clicker is or who is in a group; ``message`` is for them."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Directory:
    def __init__(self, client: WebClient, *, groups: Mapping[str, str]):
        self.client = client
        self.groups = dict(groups)  # approver group name -> usergroup id

    def actor(self, user_id: str) -> Actor:
        """The user's account flags now (deleted, bot, guest); DirectoryUnavailable if Slack
        cannot say."""
        try:
            user = self.client.users_info(user=user_id)["user"]
        except SlackApiError as e:
            if e.response is not None and e.response.get("error") == "user_not_found":
                return Actor(user_id=user_id, deleted=True)  # a definite answer: no such user
            raise DirectoryUnavailable(ACCOUNT_UNAVAILABLE) from e
        except Exception as e:  # connection errors, timeouts: same refusal
            raise DirectoryUnavailable(ACCOUNT_UNAVAILABLE) from e
        return Actor(
            user_id=user_id,
            deleted=bool(user.get("deleted")),
            is_bot=bool(user.get("is_bot")) or bool(user.get("is_app_user")),
            is_guest=bool(user.get("is_restricted")) or bool(user.get("is_ultra_restricted")),
        )

    def display_names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """User id -> the name Slack shows (display name, else real name), for texts that
        cannot render a mention (a report file). Best effort: whoever cannot be looked up
        now is left out, and the caller shows their user id."""
        names: dict[str, str] = {}
        for uid in sorted(set(user_ids)):
            try:
                user = self.client.users_info(user=uid)["user"]
            except Exception as e:  # noqa: BLE001 - a name is a nicety; the id stays
                log.info("no display name for %s: %s", uid, type(e).__name__)
                continue
            profile = user.get("profile") or {}
            name = (profile.get("display_name") or profile.get("real_name")
                    or user.get("real_name") or "").strip()
            if name:
                names[uid] = name
        return names

    def group_members(self) -> dict[str, frozenset[str]]:
        """Approver group name -> member ids, as Slack has them now; DirectoryUnavailable if
        any group cannot be read."""
        return {name: self._members(gid) for name, gid in self.groups.items()}

    def _members(self, group_id: str) -> frozenset[str]:
        try:
            return frozenset(self.client.usergroups_users_list(usergroup=group_id)["users"])
        except Exception as e:  # any failure refuses the click, never cached
            raise DirectoryUnavailable(GROUPS_UNAVAILABLE) from e
