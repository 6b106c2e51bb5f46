"""Plain-text rendering of sandbox channels, messages and modals (Block Kit and mrkdwn)."""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.dev.sandbox.blocks import Button, iter_buttons

if TYPE_CHECKING:  # the workspace imports the renderer for its timeout report
    from bot.dev.sandbox.workspace import Message, View, Workspace

_LINK = re.compile(r"<([^<>\n]+)>")


@dataclass(frozen=True)
class ButtonRef:
    """A numbered button in a rendering: which message and which of its buttons."""

    number: int
    channel: str
    ts: str
    index: int  # 1-based index among the message's buttons (SandboxServer.click(index=...))
    text: str
    action_id: str


@dataclass
class ButtonNumbering:
    """Assigns `[n]` numbers to buttons; a button keeps its number while the numbering lives."""

    refs: dict[int, ButtonRef] = field(default_factory=dict)
    _keys: dict[tuple[str, str, str, str | None], int] = field(default_factory=dict)

    def number(self, channel: str, ts: str, button: Button) -> int:
        """The number for this button, assigning the next free one on first sight."""
        key = (channel, ts, button.action_id, button.value)
        number = self._keys.get(key)
        if number is None:
            number = len(self._keys) + 1
            self._keys[key] = number
        self.refs[number] = ButtonRef(
            number, channel, ts, button.index, button.text, button.action_id
        )
        return number


@dataclass
class Rendering:
    """Rendered text plus the buttons it numbered."""

    text: str
    buttons: dict[int, ButtonRef]


def human_size(size: int) -> str:
    """1234 -> '1.2 KB'."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}"
    return f"{size} B"  # unreachable; keeps type checkers content


class Renderer:
    """Renders workspace content for one viewer; reuse a numbering to keep button numbers stable."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        for_user: str | None = None,
        width: int = 100,
        numbering: ButtonNumbering | None = None,
    ) -> None:
        self.ws = workspace
        self.for_user = for_user
        self.width = max(width, 40)
        self.numbering = numbering if numbering is not None else ButtonNumbering()

    # ----------------------------------------------------------------- mrkdwn

    def mrkdwn(self, text: str) -> str:
        """Minimal Slack mrkdwn to plain text: mentions, channels, groups, links, entities."""
        return html.unescape(_LINK.sub(self._link, text))

    def _link(self, match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            user = self.ws.users.get(target[1:])
            return f"@{user.name}" if user else "@" + (label or target[1:])
        if target.startswith("#"):
            channel = self.ws.channels.get(target[1:])
            return f"#{channel.name}" if channel else "#" + (label or target[1:])
        if target.startswith("!subteam^"):
            group = self.ws.usergroups.get(target[len("!subteam^") :])
            return f"@{group.handle}" if group else (label or "@" + target[len("!subteam^") :])
        if target.startswith("!date^"):
            return label or target
        if target.startswith("!"):
            return "@" + target[1:]
        if target.startswith("mailto:"):
            return label or target[len("mailto:") :]
        return f"{label} ({target})" if label and label != target else target

    def _text(self, obj: Any) -> str:
        if not isinstance(obj, dict):
            return ""
        text = str(obj.get("text", ""))
        return self.mrkdwn(text) if obj.get("type") == "mrkdwn" else text

    # ----------------------------------------------------------------- layout helpers

    def _wrap(self, text: str, indent: int) -> list[str]:
        pad = " " * indent
        out: list[str] = []
        for line in text.split("\n"):
            if not line.strip():
                out.append("")
                continue
            out.extend(
                textwrap.wrap(
                    line,
                    width=self.width,
                    initial_indent=pad,
                    subsequent_indent=pad,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                or [pad]
            )
        return out

    def _join_items(self, items: list[str], indent: int) -> list[str]:
        """Lay out short items (buttons) on lines no wider than the terminal."""
        lines: list[str] = []
        current = " " * indent
        for item in items:
            if current.strip() and len(current) + 2 + len(item) > self.width:
                lines.append(current)
                current = " " * indent
            current += ("  " if current.strip() else "") + item
        if current.strip():
            lines.append(current)
        return lines

    # ----------------------------------------------------------------- blocks

    def _element(
        self, element: dict[str, Any], button_numbers: dict[int, int], button: Button | None
    ) -> str:
        etype = element.get("type")
        if etype == "button" and button is not None:
            label = f"[{button_numbers[button.index]}] {button.text}"
            return label + (" ↗" if element.get("url") else "")
        placeholder = self._text(element.get("placeholder")) or str(etype)
        if etype == "overflow":
            return "[⋯]"
        if etype == "image":
            return f"[image: {element.get('alt_text', '')}]"
        return f"[{placeholder} ▾]"

    def blocks(
        self,
        blocks: list[dict[str, Any]],
        indent: int,
        *,
        channel: str = "",
        ts: str = "",
        errors: dict[str, str] | None = None,
    ) -> list[str]:
        """Render a list of blocks; buttons are numbered through `self.numbering`."""
        buttons = list(iter_buttons(blocks))
        numbers = {b.index: self.numbering.number(channel, ts, b) for b in buttons}
        by_element = {id(b.element): b for b in buttons}
        lines: list[str] = []
        for position, block in enumerate(blocks):
            btype = block.get("type")
            if btype == "header":
                lines += self._wrap("# " + self._text(block.get("text")), indent)
            elif btype == "section":
                if block.get("text"):
                    lines += self._wrap(self._text(block["text"]), indent)
                for f in block.get("fields") or []:
                    lines += self._wrap(self._text(f), indent)
                accessory = block.get("accessory")
                if isinstance(accessory, dict):
                    label = self._element(accessory, numbers, by_element.get(id(accessory)))
                    lines.append(" " * indent + label)
            elif btype == "context":
                parts = [
                    self._text(e) if e.get("type") != "image" else f"[{e.get('alt_text', 'image')}]"
                    for e in block.get("elements") or []
                ]
                lines += self._wrap(" | ".join(parts), indent)
            elif btype == "divider":
                lines.append(" " * indent + "─" * min(40, self.width - indent))
            elif btype == "actions":
                items = [
                    self._element(e, numbers, by_element.get(id(e)))
                    for e in block.get("elements") or []
                    if isinstance(e, dict)
                ]
                lines += self._join_items(items, indent)
            elif btype == "rich_text":
                lines += self._wrap(self._rich_text(block.get("elements") or []), indent)
            elif btype == "markdown":
                lines += self._wrap(str(block.get("text", "")), indent)
            elif btype == "image":
                lines.append(" " * indent + f"[image: {block.get('alt_text', '')}]")
            elif btype == "input":
                element = block.get("element") or {}
                label = self._text(block.get("label"))
                value = self._text(element.get("placeholder"))
                kind = element.get("type", "input")
                lines += self._wrap(f"{label}: [{kind}{': ' + value if value else ''}]", indent)
                bid = block.get("block_id") or f"b{position}"
                if errors and bid in errors:
                    lines += self._wrap(f"! {errors[bid]}", indent + 2)
            elif btype == "table":
                for row in block.get("rows") or []:
                    cells = [
                        self._rich_text([c])
                        if c.get("type") == "rich_text"
                        else str(c.get("text", ""))
                        for c in row
                    ]
                    lines += self._wrap(" | ".join(cells), indent)
            else:
                lines.append(" " * indent + f"[{btype}]")
        return lines

    def _rich_text(self, elements: Iterable[dict[str, Any]]) -> str:
        out: list[str] = []
        for element in elements:
            etype = element.get("type")
            inner = element.get("elements") or []
            if etype == "rich_text_section":
                out.append(self._inline(inner))
            elif etype == "rich_text_list":
                ordered = element.get("style") == "ordered"
                depth = "  " * int(element.get("indent", 0))
                for i, item in enumerate(inner, start=1):
                    bullet = f"{i}." if ordered else "•"
                    out.append(f"{depth}{bullet} {self._inline(item.get('elements') or [])}")
            elif etype == "rich_text_preformatted":
                out.extend("  " + line for line in self._inline(inner).split("\n"))
            elif etype == "rich_text_quote":
                out.extend("> " + line for line in self._inline(inner).split("\n"))
            elif etype == "rich_text":
                out.append(self._rich_text(inner))
        return "\n".join(out)

    def _inline(self, elements: Iterable[dict[str, Any]]) -> str:
        parts: list[str] = []
        for e in elements:
            etype = e.get("type")
            if etype == "text":
                parts.append(str(e.get("text", "")))
            elif etype == "link":
                url = str(e.get("url", ""))
                parts.append(f"{e['text']} ({url})" if e.get("text") else url)
            elif etype == "user":
                user = self.ws.users.get(str(e.get("user_id")))
                parts.append("@" + (user.name if user else str(e.get("user_id"))))
            elif etype == "usergroup":
                group = self.ws.usergroups.get(str(e.get("usergroup_id")))
                parts.append("@" + (group.handle if group else str(e.get("usergroup_id"))))
            elif etype == "channel":
                channel = self.ws.channels.get(str(e.get("channel_id")))
                parts.append("#" + (channel.name if channel else str(e.get("channel_id"))))
            elif etype == "emoji":
                parts.append(f":{e.get('name', '')}:")
            elif etype == "broadcast":
                parts.append("@" + str(e.get("range", "here")))
            elif etype == "date":
                parts.append(str(e.get("fallback", "")))
        return "".join(parts)

    # ----------------------------------------------------------------- messages

    def visible(self, msg: Message) -> bool:
        """Whether the viewer can see this message."""
        return (
            msg.ephemeral_to is None or self.for_user is None or msg.ephemeral_to == self.for_user
        )

    def author(self, user_id: str) -> str:
        """Display name for a message author."""
        user = self.ws.users.get(user_id)
        return user.name if user else user_id

    def message(
        self, msg: Message, *, reply: bool | None = None, note: str = "", updated: bool = False
    ) -> list[str]:
        """Render one message: a header line, then its body indented under it.

        `updated` marks a live re-print of a message that just changed (console output).
        """
        with self.ws.lock:
            reply = msg.is_reply if reply is None else reply
            head_indent, body_indent = (2, 4) if reply else (0, 2)
            flags = []
            if updated:
                flags.append("(updated)")
            elif msg.edited:
                flags.append("(edited)")
            if msg.ephemeral_to is not None:
                if self.for_user is not None and msg.ephemeral_to == self.for_user:
                    flags.append("(only visible to you)")
                else:
                    flags.append(f"(only visible to @{self.author(msg.ephemeral_to)})")
            if msg.reply_broadcast:
                flags.append("(also sent to the channel)")
            if note:
                flags.append(note)
            head = ("↳ " if reply else "") + self.author(msg.user)
            lines = [" " * head_indent + " ".join([head, *flags])]
            if msg.blocks:
                lines += self.blocks(msg.blocks, body_indent, channel=msg.channel, ts=msg.ts)
            elif msg.text:
                lines += self._wrap(self.mrkdwn(msg.text), body_indent)
            for fid in msg.files:
                f = self.ws.files.get(fid)
                if f is not None:
                    lines.append(" " * body_indent + f"📎 {f.name} ({human_size(f.size)})")
            if msg.reactions:
                lines.append(
                    " " * body_indent
                    + "  ".join(f":{name}: {len(users)}" for name, users in msg.reactions.items())
                )
            return lines

    def channel_lines(self, channel: str) -> list[str]:
        """The whole channel: top-level messages, each followed by its thread."""
        with self.ws.lock:
            chan = self.ws.channel(channel)
            title = (
                f"#{chan.name}" if not chan.is_im else f"DM with @{self.author(chan.im_user or '')}"
            )
            msgs = [m for m in self.ws.messages(chan.id) if self.visible(m)]
            replies: dict[str, list[Message]] = {}
            for m in msgs:
                if m.is_reply:
                    replies.setdefault(str(m.thread_ts), []).append(m)
            lines = [f"=== {title} ==="]
            shown: set[str] = set()
            for m in msgs:
                if m.is_reply:
                    continue
                if len(lines) > 1:
                    lines.append("")  # a blank line between top-level messages reads better
                lines += self.message(m)
                for r in replies.get(m.ts, []):
                    lines += self.message(r)
                shown.add(m.ts)
            for thread_ts, orphans in replies.items():
                if thread_ts not in shown:  # the parent was deleted or is invisible
                    for r in orphans:
                        lines += self.message(r, note="(reply to a deleted message)")
            if len(lines) == 1:
                lines.append("(no messages)")
            return lines

    def channel_text(self, channel: str) -> str:
        """The whole channel as one string."""
        return "\n".join(self.channel_lines(channel))

    def view(self, view: View) -> list[str]:
        """Render a modal: title, blocks (with validation errors) and its submit/close buttons."""
        with self.ws.lock:
            v = view.view
            title = self._text(v.get("title")) or "(untitled)"
            lines = [
                f"+-- modal {view.id}: {title} "
                + "-" * max(0, min(40, self.width) - len(title) - 14)
            ]
            lines += self.blocks(
                list(v.get("blocks") or []), 2, channel=view.id, ts=view.id, errors=view.errors
            )
            footer = [f"<{self._text(v['close'])}>"] if v.get("close") else []
            if v.get("submit"):
                footer.append(f"<{self._text(v['submit'])}>")
            if footer:
                lines.append("  " + "  ".join(footer))
            return lines


def render_channel(
    workspace: Workspace, channel: str, *, for_user: str | None = None, width: int = 100
) -> str:
    """Readable plain text of a channel as `for_user` sees it (all ephemerals if None)."""
    return Renderer(workspace, for_user=for_user, width=width).channel_text(channel)


def render_channel_view(
    workspace: Workspace,
    channel: str,
    *,
    for_user: str | None = None,
    width: int = 100,
    numbering: ButtonNumbering | None = None,
) -> Rendering:
    """Like render_channel, but also returns the numbered buttons."""
    renderer = Renderer(workspace, for_user=for_user, width=width, numbering=numbering)
    text = renderer.channel_text(channel)
    return Rendering(text, dict(renderer.numbering.refs))


def render_message(
    workspace: Workspace, message: Message, *, for_user: str | None = None, width: int = 100
) -> str:
    """Readable plain text of one message."""
    return "\n".join(Renderer(workspace, for_user=for_user, width=width).message(message))


def render_view(workspace: Workspace, view_id: str, *, width: int = 100) -> str:
    """Readable plain text of a modal."""
    return "\n".join(Renderer(workspace, width=width).view(workspace.views[view_id]))
