"""A terminal UI over the sandbox: type slash commands, click numbered buttons, switch users."""

from __future__ import annotations

import re
import shlex
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from bot.dev.sandbox.render import ButtonNumbering, ButtonRef, Renderer
from bot.dev.sandbox.server import Delivery, SandboxServer
from bot.dev.sandbox.workspace import Change, Message, Workspace

HELP = """\
Commands:
  /golive <args>      run the bot's slash command as the current user
  <n> or /click <n>   click button [n]
  /as <user>          act as another user (name or id), e.g. /as bob
  /in <channel>       switch channel, e.g. /in incident
  /show               reprint the current channel (renumbers buttons from 1)
  /thread [n]         list threads, or show thread n
  /view               show your open modal
  /submit block.action=value ...   submit your open modal
  /users              list users, groups and channels, with their IDs
  /knob <name> <v>    turn a sample app knob, e.g. /knob error_5xx_rate 0.3 (demo with paybox)
  /help               this help
  /quit               leave
Anything else is posted to the channel as a plain message from the current user."""


def _topic(text: str) -> str:
    """A thread's parent as a header: its first line without the state it showed when the
    reply came (a leading icon, a trailing " — state"), which the card updates after."""
    first = text.split("\n")[0].split(" — ")[0]
    return _LEADING_ICON.sub("", first)


_LEADING_ICON = re.compile(r"^[^\w`*_(\[]+\s*")


def _typed_so_far() -> str:
    try:
        import readline  # not available on every platform
    except ImportError:
        return ""
    return readline.get_line_buffer()


class Console:
    """Interactive sandbox client; `handle_line` is the whole UI, `run` just feeds it stdin."""

    def __init__(
        self,
        server: SandboxServer,
        workspace: Workspace,
        *,
        user: str = "U_ALICE",
        channel: str = "C_CUTOVER",
        out: TextIO = sys.stdout,
        width: int = 100,
        command: str = "/golive",
        knobs: Callable[[str, str], str] | None = None,
    ) -> None:
        self.server = server
        self.ws = workspace
        self.user = workspace.user(user).id
        self.channel = workspace.channel(channel).id
        self.out = out
        self.width = width
        self.command = command
        self.knobs = knobs
        self.done = False
        self._numbering = ButtonNumbering()
        self._out_lock = threading.Lock()
        self._prompting = False
        self._unsubscribe = workspace.subscribe(self._on_change)

    # ----------------------------------------------------------------- output

    @property
    def prompt(self) -> str:
        """The input prompt, e.g. `alice@#cutover> `."""
        chan = self.ws.channels[self.channel]
        where = f"#{chan.name}" if not chan.is_im else f"@{self.ws.users[chan.im_user or ''].name}"
        return f"{self.ws.users[self.user].name}@{where}> "

    def _write(self, text: str) -> None:
        # Never hold the output lock while touching the workspace: subscribers run under the
        # workspace lock and then take this one, so the reverse order could deadlock.
        with self._out_lock:
            if self._prompting and self.out.isatty():
                # Asynchronous output while input() waits: clear the prompt line, print, then
                # redraw the prompt and whatever the user had typed so far.
                self.out.write("\r\x1b[K" + text + "\n" + self.prompt + _typed_so_far())
            else:
                self.out.write(text + "\n")
            self.out.flush()

    def _renderer(self) -> Renderer:
        return Renderer(self.ws, for_user=self.user, width=self.width, numbering=self._numbering)

    def show_channel(self) -> None:
        """Print the whole current channel, numbering its buttons from 1."""
        self._numbering = ButtonNumbering()
        self._write(self._renderer().channel_text(self.channel))

    def _on_change(self, change: Change) -> None:
        """Print new activity as it arrives (server thread, under the workspace lock)."""
        if change.kind in ("message_posted", "message_updated") and change.channel and change.ts:
            msg = self.ws.message(change.channel, change.ts)
            if msg is None:
                return
            if msg.ephemeral_to is not None and msg.ephemeral_to != self.user:
                return
            if change.channel != self.channel:
                chan = self.ws.channels[change.channel]
                self._write(f"(new activity in #{chan.name}; /in {chan.name} to see it)")
                return
            self._write(self._format_message(msg, updated=change.kind == "message_updated"))
        elif change.kind == "message_deleted" and change.channel == self.channel:
            if change.user is None or change.user == self.user:
                self._write("(a message was deleted)")
        elif change.kind in ("view_opened", "view_updated") and change.user == self.user:
            view = self.ws.views.get(change.view_id or "")
            if view is not None and not view.closed:
                lines = self._renderer().view(view)
                lines.append("  (fill it in with /submit block_id.action_id=value ...)")
                self._write("\n".join(lines))
        elif change.kind == "view_closed" and change.user == self.user:
            self._write(f"(modal {change.view_id} closed)")

    def _format_message(self, msg: Message, *, updated: bool) -> str:
        renderer = self._renderer()
        lines = renderer.message(msg, updated=updated)
        if msg.is_reply:
            parent = self.ws.message(msg.channel, str(msg.thread_ts))
            if parent is not None:
                summary = _topic(renderer.mrkdwn(parent.text or ""))[:50]
                lines.insert(0, f"in thread: {renderer.author(parent.user)}: {summary}")
        return "\n".join(lines)

    # ----------------------------------------------------------------- input

    def handle_line(self, line: str) -> None:
        """Execute one line of user input."""
        line = line.strip()
        if not line:
            return
        if line.isdigit():
            self._click(int(line))
            return
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        handlers = {
            "/click": lambda: self._click_arg(rest),
            "/as": lambda: self._as(rest),
            "/in": lambda: self._in(rest),
            "/show": self.show_channel,
            "/thread": lambda: self._thread(rest),
            "/view": self._view,
            "/submit": lambda: self._submit(rest),
            "/users": self._users,
            "/knob": lambda: self._knob(rest),
            "/help": lambda: self._write(HELP),
            "/quit": self._quit,
            "/exit": self._quit,
        }
        if word == self.command:
            self._slash(rest)
        elif word in handlers:
            handlers[word]()
        elif word.startswith("/"):
            self._write(f"unknown command {word}; try /help")
        else:
            self.ws.post_message(self.channel, self.user, line, source="user")

    def _knob(self, arg: str) -> None:
        name, _, value = arg.partition(" ")
        if self.knobs is None:
            self._write("! no sample app to turn knobs on (run the demo with the paybox stack)")
        elif not name or not value.strip():
            self._write("usage: /knob <name> <value>, e.g. /knob error_5xx_rate 0.3")
        else:
            self._write(self.knobs(name, value.strip()))

    def _quit(self) -> None:
        self.done = True

    def _report(self, what: str, delivery: Delivery) -> None:
        if delivery.status == 0:
            self._write(f"! {what} failed: the bot is not reachable ({delivery.error})")
        elif delivery.status != 200:
            self._write(
                f'! {what} failed with the error "{delivery.error}" '
                f"(bot answered HTTP {delivery.status})"
            )
        elif delivery.error:
            self._write(f'! {what} failed with the error "{delivery.error}"')
        if delivery.elapsed > 3.0:
            self._write(
                f"! the bot took {delivery.elapsed:.1f}s to answer; Slack gives up after 3s"
            )

    def _slash(self, text: str) -> None:
        try:
            delivery = self.server.slash(
                self.user, text, channel=self.channel, command=self.command
            )
        except (RuntimeError, ValueError) as exc:
            self._write(f"! {self.command} {text}: {exc}")
            return
        self._report(f"{self.command} {text}".strip(), delivery)

    def _click_arg(self, arg: str) -> None:
        if not arg.isdigit():
            self._write("usage: /click <n>")
            return
        self._click(int(arg))

    def _click(self, number: int) -> None:
        ref: ButtonRef | None = self._numbering.refs.get(number)
        if ref is None:
            self._write(f"! there is no button [{number}]; /show to renumber")
            return
        msg = self.ws.message(ref.channel, ref.ts)
        if msg is None:
            self._write(f"! button [{number}] belongs to a deleted message")
            return
        # Prefer the position (action_ids may repeat across blocks), unless the message changed.
        by_index = [b for b in self.server.buttons(msg) if b.index == ref.index]
        try:
            if by_index and by_index[0].action_id == ref.action_id:
                delivery = self.server.click(self.user, msg, index=ref.index)
            else:
                delivery = self.server.click(self.user, msg, action_id=ref.action_id)
        except LookupError:
            self._write(f"! button [{number}] ({ref.text}) is no longer on its message")
            return
        self._report(f"clicking [{number}] {ref.text}", delivery)

    def _as(self, who: str) -> None:
        try:
            user = self.ws.user(who)
        except KeyError:
            self._write(f"! no such user {who!r}; /users lists them")
            return
        if user.deleted:
            self._write(f"! {user.name} is deactivated")
            return
        self.user = user.id
        self._write(f"(now acting as {user.name})")
        self.show_channel()

    def _in(self, where: str) -> None:
        try:
            self.channel = self.ws.channel(where).id
        except KeyError:
            names = ", ".join(f"#{c.name}" for c in self.ws.channels.values() if not c.is_im)
            self._write(f"! no such channel {where!r}; channels: {names}")
            return
        self.show_channel()

    def _threads(self) -> list[Message]:
        msgs = self.ws.messages(self.channel, visible_to=self.user)
        parents = {m.thread_ts for m in msgs if m.is_reply}
        return [m for m in msgs if m.ts in parents]

    def _thread(self, arg: str) -> None:
        threads = self._threads()
        if not arg:
            if not threads:
                self._write("(no threads in this channel)")
            renderer = self._renderer()
            for i, m in enumerate(threads, start=1):
                summary = _topic(renderer.mrkdwn(m.text))[:60]
                replies = len(self.ws.thread(self.channel, m.ts)) - 1
                self._write(f"{i}. {renderer.author(m.user)}: {summary} ({replies} replies)")
            return
        if not arg.isdigit() or not 1 <= int(arg) <= len(threads):
            self._write(f"! no thread {arg}; /thread lists them")
            return
        parent = threads[int(arg) - 1]
        renderer = self._renderer()
        lines: list[str] = []
        for m in self.ws.thread(self.channel, parent.ts):
            if renderer.visible(m):
                lines += renderer.message(m)
        self._write("\n".join(lines))

    def _open_view(self) -> str | None:
        views = self.ws.open_views(self.user)
        return views[-1].id if views else None

    def _view(self) -> None:
        view_id = self._open_view()
        if view_id is None:
            self._write("(no open modal)")
            return
        self._write("\n".join(self._renderer().view(self.ws.views[view_id])))

    def _submit(self, arg: str) -> None:
        view_id = self._open_view()
        if view_id is None:
            self._write("! no open modal to submit")
            return
        values: dict[str, dict[str, str]] = {}
        try:
            for item in shlex.split(arg):
                key, _, value = item.partition("=")
                block_id, _, action_id = key.partition(".")
                if not block_id or not action_id or not _:
                    raise ValueError(item)
                values.setdefault(block_id, {})[action_id] = value
        except ValueError as exc:
            self._write(f"! cannot parse {exc}; use block_id.action_id=value")
            return
        delivery = self.server.submit_view(self.user, view_id, values)
        self._report("submitting the modal", delivery)
        view = self.ws.views[view_id]
        if view.errors:
            for block_id, error in view.errors.items():
                self._write(f"! {block_id}: {error}")

    def _users(self) -> None:
        lines = []
        for u in self.ws.users.values():
            flags = [
                f
                for f, on in (
                    ("bot", u.is_bot),
                    ("guest", u.is_restricted),
                    ("deactivated", u.deleted),
                )
                if on
            ]
            mark = "*" if u.id == self.user else " "
            lines.append(
                f"{mark} {u.name:<10} {u.real_name:<20} {u.id:<10} {' '.join(flags)}".rstrip()
            )
        for g in self.ws.usergroups.values():
            members = ", ".join(self.ws.users[m].name for m in g.users if m in self.ws.users)
            lines.append(f"  @{g.handle} ({g.id}): {members}")
        # The IDs a config names in [channels] (golive demo --config maps a team's own to these).
        for c in self.ws.channels.values():
            if not c.is_im:
                mark = "*" if c.id == self.channel else " "
                lines.append(f"{mark} #{c.name:<9} {'channel':<20} {c.id}")
        self._write("\n".join(lines))

    # ----------------------------------------------------------------- loop

    def run(self) -> None:
        """Read commands from stdin until /quit or EOF."""
        self._write(f"Slack sandbox - you are {self.ws.users[self.user].name}. /help for commands.")
        self.show_channel()
        try:
            while not self.done:
                with self._out_lock:
                    self._prompting = True
                try:
                    line = input(self.prompt)
                except (EOFError, KeyboardInterrupt):
                    self._write("")
                    break
                finally:
                    with self._out_lock:
                        self._prompting = False
                self.handle_line(line)
        finally:
            self.close()

    def close(self) -> None:
        """Stop printing workspace activity."""
        self._unsubscribe()
