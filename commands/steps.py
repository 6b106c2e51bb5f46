"""The runbook-step subcommands, derived from the runbook: each asks the engine for the step(s)
behind its words.

A step's ``command`` (``maintenance on``, ``deploy``) names the subcommand (its first word),
the words that pick the step (``on``) and, with ``args``, the arguments it takes (``<tag>``).
So a team that adds a step with a new command gets a new subcommand, its usage line and its
🔒 without touching code. One handler serves them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from bot.slack.blocks import esc
from commands.base import Command, Context, Invocation, Reply, UsageError
from runbook.docker_ref import validate_tag
from runbook.model import Runbook, RunbookError
from runbook.steps.preflight import check_name


@dataclass(frozen=True)
class ArgKind:
    """How a named argument is checked; an arg name not listed in :data:`ARGS` takes a word."""

    check: Callable[[str], object]
    """Raises ValueError (its text is shown) when the word is not one."""
    noun: str
    example: str
    optional: bool = False
    """May be left out when it is the last argument (``/golive preflight [<check>]``)."""


ARGS: Mapping[str, ArgKind] = {
    "tag": ArgKind(validate_tag, "image tag", "v2.3.1"),
    "check": ArgKind(check_name, "preflight check", "prod_config", optional=True),
}


def _optional_tail(args: tuple[str, ...]) -> int:
    """How many of ``args``, from the end, may be left out."""
    n = 0
    for a in reversed(args):
        if a not in ARGS or not ARGS[a].optional:
            break
        n += 1
    return n


def _arg_usage(args: tuple[str, ...]) -> list[str]:
    cut = len(args) - _optional_tail(args)
    return [f"<{a}>" if i < cut else f"[<{a}>]" for i, a in enumerate(args)]


@dataclass(frozen=True)
class Variant:
    """One runbook command under a subcommand: ``maintenance on`` -> words ``("on",)``."""

    command: str
    words: tuple[str, ...]
    args: tuple[str, ...]


@dataclass(frozen=True)
class StepCommand:
    name: str
    variants: tuple[Variant, ...]

    @property
    def usage(self) -> str:
        """``/golive maintenance on|off``, ``/golive deploy &lt;tag&gt;`` (Slack-escaped)."""
        by_args: dict[tuple[str, ...], list[str]] = {}
        for v in self.variants:
            by_args.setdefault(v.args, []).append(" ".join(v.words))
        forms = []
        for args, words in by_args.items():
            choice = "|".join(w for w in words if w)
            if choice and "" in words:
                choice = f"[{choice}]"
            forms.append(" ".join(x for x in (choice, *_arg_usage(args)) if x))
        return esc(" ".join(x for x in (f"/golive {self.name}", " | ".join(forms)) if x))

    def example(self) -> str | None:
        """A filled-in invocation, when every argument of a variant has an example."""
        for v in self.variants:
            if v.args and all(a in ARGS for a in v.args):
                return esc(" ".join(("/golive", self.name, *v.words,
                                     *(ARGS[a].example for a in v.args))))
        return None

    def match(self, inv: Invocation) -> tuple[Variant, dict[str, str]]:
        """The variant ``inv`` names and its arguments by name; UsageError otherwise."""
        said = tuple(w.lower() for w in inv.words)
        for v in sorted(self.variants, key=lambda v: -len(v.words)):
            given = len(said) - len(v.words)
            if said[:len(v.words)] == v.words and \
                    len(v.args) - _optional_tail(v.args) <= given <= len(v.args):
                values = dict(zip(v.args, inv.words[len(v.words):], strict=False))
                for name, word in values.items():
                    _check(name, word)
                return v, values
        if all(not v.words and not v.args for v in self.variants):
            raise UsageError(f"`/golive {self.name}` takes no arguments.")
        example = self.example()
        raise UsageError(f"Usage: `{self.usage}`" + (f", e.g. `{example}`" if example else ""))


def _check(name: str, word: str) -> None:
    kind = ARGS.get(name)
    if kind is None:
        return
    try:
        kind.check(word)
    except ValueError as e:
        raise UsageError(f"`{esc(word[:80])}` is not a valid {kind.noun}: {esc(e)}") from None


def step_commands(runbook: Runbook, *, reserved: Mapping[str, str | None]
                  ) -> list[StepCommand]:
    """The runbook's subcommands in runbook order. A step whose command starts with a
    ``reserved`` word belongs to the bot's own command when it is exactly what that word maps
    to (``rollback``); otherwise it clashes, a runbook problem (RunbookError)."""
    grouped: dict[str, dict[str, Variant]] = {}
    problems = []
    for s in runbook.all_steps():
        if s.command is None:
            continue
        first, *rest = s.command.split()
        if first in reserved:
            if reserved[first] != s.command:
                problems.append(f"{runbook.source or '<runbook>'}: step '{s.id}': command "
                                f"'{s.command}' clashes with `/golive {first}`, which the bot "
                                "provides; choose another word")
            continue
        variants = grouped.setdefault(first, {})
        old = variants.get(s.command)
        args = tuple(dict.fromkeys((*(old.args if old else ()), *s.args)))
        variants[s.command] = Variant(s.command, tuple(rest), args)
    if problems:
        raise RunbookError(problems)
    return [StepCommand(name, tuple(v.values())) for name, v in grouped.items()]


def summary(runbook: Runbook, sub: StepCommand, available: Callable[[str], bool]) -> str:
    """The ``[help]`` line (or the steps' titles) and whether its step kinds are built."""
    steps = [s for v in sub.variants for s in runbook.steps_for_command(v.command)]
    text = runbook.help.get(sub.name) or "; ".join(dict.fromkeys(s.title for s in steps))
    built = [available(s.kind) for s in steps]
    if not any(built):
        text += " (not built yet)"
    elif not all(built):
        text += " (partly not built yet)"
    return esc(text)


def commands(runbook: Runbook, *, reserved: Mapping[str, str | None],
             available: Callable[[str], bool]) -> list[Command]:
    """One :class:`Command` per runbook subcommand; gated when any of its steps is."""
    out = []
    for sub in step_commands(runbook, reserved=reserved):
        gated = any(s.gated for v in sub.variants for s in runbook.steps_for_command(v.command))
        out.append(Command(sub.name, sub.usage, summary(runbook, sub, available),
                           partial(handle, sub), partial(validate, sub),
                           gated=gated, takes_override=True, from_runbook=True,
                           prepare=partial(prepare, sub)))
    return out


def validate(sub: StepCommand, inv: Invocation) -> None:
    sub.match(inv)


def prepare(sub: StepCommand, ctx: Context, inv: Invocation) -> None:
    """Before the request's transaction: the plan part of each gated step it asks for."""
    variant, args = sub.match(inv)
    ctx.engine.prepare_request(command=variant.command, args=args, override=inv.override)


def handle(sub: StepCommand, ctx: Context, inv: Invocation) -> Reply:
    variant, args = sub.match(inv)
    lines = ctx.engine.request(actor=ctx.actor, command=variant.command, args=args,
                               override=inv.override)
    return Reply("\n".join(lines))


__all__ = ["ARGS", "ArgKind", "StepCommand", "Variant", "commands", "handle", "step_commands",
           "validate"]
