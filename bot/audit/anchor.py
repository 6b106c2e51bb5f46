"""Anchors: the audit chain's head kept outside the database. Pure (the CLI does the I/O).

A database writer can delete the newest rows (or all of them) and leave a chain that verifies
on its own; a head recorded elsewhere cannot be taken back. Anchors come in three forms, and
``golive audit verify --head`` accepts each:

* the short form a card shows, ``<row id>:<first 16 hex of its hash>`` (``42:3f9a1c2b4d5e6f70``);
* a bare hash or hash prefix (at least 12 hex), as ``/golive finish`` posts in full;
* an anchor record, one JSON line per ``golive audit anchor`` (``head_id``, ``head_hash``,
  ``key_id``, ``at``); a file of them is checked line by line.

An anchor holds when the row it names is still in the chain with that hash; rows appended
since are fine. An empty log never satisfies an anchor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.audit.chain import canonical_json, format_at

SHORT_HEX = 16
MIN_HEX = 12
_SHORT = re.compile(rf"^#?(\d+):([0-9a-f]{{{MIN_HEX},64}})$")
_BARE = re.compile(rf"^[0-9a-f]{{{MIN_HEX},64}}$")


class AnchorError(ValueError):
    """Text that is not an anchor (message says which form was expected)."""


@dataclass(frozen=True)
class Anchor:
    head_id: int | None
    hash_prefix: str
    key_id: str | None = None

    def __str__(self) -> str:
        short = self.hash_prefix[:SHORT_HEX]
        return short if self.head_id is None else f"{self.head_id}:{short}"


def short_anchor(head_id: int, head_hash: str) -> str:
    """The short form a card shows: ``<row id>:<first 16 hex>``."""
    return f"{head_id}:{head_hash[:SHORT_HEX]}"


def anchor_record(*, head_id: int, head_hash: str, key_id: str, at: datetime) -> str:
    """One JSON line for an anchor file or URL (the key id, never the key)."""
    return canonical_json({"type": "audit-anchor", "at": format_at(at), "head_id": head_id,
                           "head_hash": head_hash, "key_id": key_id})


def parse_anchors(text: str) -> list[Anchor]:
    """Every anchor in ``text`` (one per non-blank line, any of the three forms)."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().strip("`").lower()
        if not line:
            continue
        if line.startswith("{"):
            try:
                d = json.loads(raw)
                out.append(Anchor(int(d["head_id"]), str(d["head_hash"]).lower(),
                                  d.get("key_id")))
            except (ValueError, KeyError, TypeError) as e:
                raise AnchorError(f"line {n}: not an anchor record: {e}") from None
        elif m := _SHORT.match(line):
            out.append(Anchor(int(m.group(1)), m.group(2)))
        elif _BARE.match(line):
            out.append(Anchor(None, line))
        else:
            raise AnchorError(f"line {n}: not an anchor ({raw.strip()[:40]!r}): expected "
                              f"ID:HASH, a hash of at least {MIN_HEX} hex, or an anchor record")
    if not out:
        raise AnchorError("no anchor given")
    return out


def check_anchors(chain: Iterable[tuple[int, str]], anchors: Iterable[Anchor], *,
                  key_id: str) -> list[str]:
    """Problems with ``anchors`` against the chain's ``(id, hash)`` pairs (rows of the database
    or the rows and links of an export); empty list = every anchor holds."""
    hashes = dict(chain)
    problems = []
    for a in anchors:
        if a.key_id is not None and a.key_id != key_id:
            problems.append(f"anchor {a}: recorded under key {a.key_id}, verifying with key "
                            f"{key_id}")
            continue
        if a.head_id is not None:
            h = hashes.get(a.head_id)
            if h is None:
                problems.append(f"anchor {a}: no audit row {a.head_id} (the log has "
                                f"{len(hashes)} rows): truncated or rewritten since anchored")
            elif not h.startswith(a.hash_prefix):
                problems.append(f"anchor {a}: row {a.head_id} has hash {h[:SHORT_HEX]}…:"
                                " the log was rewritten since anchored")
        elif not any(h.startswith(a.hash_prefix) for h in hashes.values()):
            problems.append(f"anchor {a}: no audit row has this hash: the log was rewritten "
                            "or truncated since it was recorded")
    return problems
