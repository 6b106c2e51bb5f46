"""A git repository read with ``git ls-remote``: a tag's commit without GitHub's API.

Works on a local path or any URL git can read (https, ssh, file); nothing is cloned. git never
prompts (``GIT_TERMINAL_PROMPT=0``, ssh in batch mode): credentials come from the bot's own git
setup. An annotated tag is peeled to its commit (the ``^{}`` line ls-remote prints for it).
"""

from __future__ import annotations

import os
import subprocess

from runbook.adapters.github import TagTarget


class GitError(Exception):
    """The repository could not be read, or the tag is not in it."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def resolve_tag(url: str, tag: str, *, timeout: float = 10.0, git: str = "git") -> TagTarget:
    """The commit ``tag`` points at in the repository at ``url`` (a path or a URL)."""
    if url.startswith("-"):
        raise GitError(f"not a repository path or URL: {url!r}")
    ref = f"refs/tags/{tag}"
    try:
        r = subprocess.run([git, "ls-remote", "--tags", url, ref, f"{ref}^{{}}"],
                           capture_output=True, text=True, timeout=timeout, check=False,
                           env=_env(), stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise GitError(f"`{git}` is not installed on the bot's host") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git ls-remote {url} did not answer within {timeout:.0f} s") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr or "").splitlines() if ln.strip()]
        why = next((ln for ln in lines if ln.startswith("fatal:")), lines[0] if lines else "")
        raise GitError(f"cannot read the git repository {url}: "
                       f"{why.removeprefix('fatal: ') or f'git exited {r.returncode}'}")
    refs: dict[str, str] = {}
    for line in r.stdout.splitlines():
        sha, _, name = line.partition("\t")
        refs[name.strip()] = sha.strip().lower()
    if ref not in refs:
        raise GitError(f"tag {tag} not found in {url}")
    peeled = refs.get(f"{ref}^{{}}")
    if peeled:
        return TagTarget(commit_sha=peeled, annotated=True, chain=[refs[ref]])
    return TagTarget(commit_sha=refs[ref], annotated=False, chain=[])
