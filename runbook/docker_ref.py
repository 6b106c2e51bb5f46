"""Validate Docker image references and tags (distribution/reference grammar), without I/O.

A tag typed into Slack ends up in an environment variable handed to ``docker compose``, so it
is checked against the registry grammar before anything else happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_TOTAL_MAX = 255
TAG_MAX = 128

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?",
    re.ASCII,
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}", re.ASCII)


@dataclass(frozen=True)
class Reference:
    """A parsed image reference: ``domain/path[:tag][@digest]``."""

    domain: str | None
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _describe(s: str) -> str:
    shown = s if len(s) <= 40 else s[:37] + "..."
    return repr(shown)


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid image tag, else raise ``ValueError`` saying why."""
    if not isinstance(tag, str) or tag == "":
        raise ValueError("image tag is empty")
    if len(tag) > TAG_MAX:
        raise ValueError(f"image tag is too long ({len(tag)} characters, at most {TAG_MAX})")
    if not _TAG.fullmatch(tag):
        bad = next((c for c in tag if not re.fullmatch(r"[\w.-]", c, re.ASCII)), None)
        if bad is not None:
            raise ValueError(
                f"image tag {_describe(tag)} contains {bad!r}; "
                "allowed: letters, digits, '_', '.', '-'"
            )
        raise ValueError(f"image tag {_describe(tag)} must start with a letter, digit or '_'")
    return tag


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it looks like ``algorithm:hex``, else raise ``ValueError``."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"digest {_describe(digest)} is not of the form algorithm:hex")
    algo, hexpart = digest.split(":", 1)
    if algo == "sha256" and len(hexpart) != 64:
        raise ValueError(f"sha256 digest must have 64 hex digits, got {len(hexpart)}")
    return digest


def _looks_like_domain(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or (
        component != component.lower()
    )


def parse_reference(s: str) -> Reference:
    """Parse ``s`` as an image reference; raise ``ValueError`` with a short reason if invalid."""
    if not isinstance(s, str) or s == "":
        raise ValueError("image reference is empty")
    if any(c.isspace() for c in s):
        raise ValueError(f"image reference {_describe(s)} contains whitespace")
    if not s.isascii():
        raise ValueError(f"image reference {_describe(s)} contains non-ASCII characters")

    rest, digest = s, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        validate_digest(digest)

    domain = None
    first, sep, remainder = rest.partition("/")
    if sep and _looks_like_domain(first):
        if not _HOST.fullmatch(first):
            raise ValueError(f"registry host {_describe(first)} is not a valid host[:port]")
        domain, rest = first, remainder

    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        validate_tag(tag)

    if rest == "":
        raise ValueError(f"image reference {_describe(s)} has no repository name")
    for component in rest.split("/"):
        if component == "":
            raise ValueError(f"image reference {_describe(s)} has an empty path component")
        if component != component.lower():
            raise ValueError(f"repository name {_describe(rest)} must be lowercase")
        if not _PATH_COMPONENT.fullmatch(component):
            raise ValueError(
                f"repository path component {_describe(component)} is invalid "
                "(lowercase letters and digits, separated by '.', '_', '__' or '-')"
            )
    name_len = len(rest) + (len(domain) + 1 if domain else 0)
    if name_len > NAME_TOTAL_MAX:
        raise ValueError(f"repository name is too long ({name_len} characters, at most 255)")
    return Reference(domain=domain, path=rest, tag=tag, digest=digest)


def image_ref(repository: str, tag: str) -> str:
    """``repository:tag`` after validating both parts."""
    ref = parse_reference(f"{repository}:{validate_tag(tag)}")
    return str(ref)
