"""Block Kit validation (Slack's documented limits) and button helpers for the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Slack's documented limits; the sandbox rejects what Slack would reject so that a payload
# that passes tests cannot fail in production.
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
MAX_TEXT_OBJECT = 3000
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_URL = 3000
MAX_ID = 255
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_INPUT_LABEL = 2000
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30

KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)


class BlockError(ValueError):
    """A Block Kit payload Slack would reject; `pointer` is the JSON pointer Slack reports."""

    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(f"{message} [json-pointer:{pointer}]")
        self.pointer = pointer


def parse_blocks(raw: Any) -> list[dict[str, Any]] | None:
    """Accept blocks as a list or a JSON string (form-encoded callers send a string)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BlockError(f"blocks are not valid JSON: {exc.msg}", "/blocks") from exc
    if not isinstance(raw, list) or not all(isinstance(b, dict) for b in raw):
        raise BlockError("blocks must be an array of objects", "/blocks")
    return raw


def _check_text_object(obj: Any, limit: int, pointer: str, *, plain_only: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        raise BlockError("must be a text object of type plain_text or mrkdwn", pointer)
    if plain_only and obj.get("type") != "plain_text":
        raise BlockError("must be a plain_text text object", pointer)
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise BlockError("text must be a non-empty string", f"{pointer}/text")
    if len(text) > limit:
        raise BlockError(f"must be less than {limit + 1} characters", f"{pointer}/text")


def _check_id(value: Any, pointer: str) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise BlockError("must be a non-empty string", pointer)
    if len(value) > MAX_ID:
        raise BlockError(f"must be less than {MAX_ID + 1} characters", pointer)


def _check_confirm(confirm: Any, pointer: str) -> None:
    if confirm is None:
        return
    if not isinstance(confirm, dict):
        raise BlockError("confirm must be an object", pointer)
    _check_text_object(confirm.get("title"), MAX_CONFIRM_TITLE, f"{pointer}/title", plain_only=True)
    _check_text_object(confirm.get("text"), MAX_CONFIRM_TEXT, f"{pointer}/text")
    _check_text_object(
        confirm.get("confirm"), MAX_CONFIRM_BUTTON, f"{pointer}/confirm", plain_only=True
    )
    _check_text_object(confirm.get("deny"), MAX_CONFIRM_BUTTON, f"{pointer}/deny", plain_only=True)


def _check_element(element: Any, pointer: str, action_ids: set[str]) -> None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        raise BlockError("element must be an object with a type", pointer)
    action_id = element.get("action_id")
    _check_id(action_id, f"{pointer}/action_id")
    if action_id is not None:
        # Slack rejects duplicate action_ids within one block.
        if action_id in action_ids:
            raise BlockError(f"action_id {action_id!r} already exists", f"{pointer}/action_id")
        action_ids.add(action_id)
    if element["type"] == "button":
        _check_text_object(element.get("text"), MAX_BUTTON_TEXT, f"{pointer}/text", plain_only=True)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > MAX_BUTTON_VALUE):
            raise BlockError(
                f"must be less than {MAX_BUTTON_VALUE + 1} characters", f"{pointer}/value"
            )
        url = element.get("url")
        if url is not None and (not isinstance(url, str) or len(url) > MAX_URL):
            raise BlockError(f"must be less than {MAX_URL + 1} characters", f"{pointer}/url")
        style = element.get("style")
        if style is not None and style not in ("primary", "danger"):
            raise BlockError("must be one of primary, danger", f"{pointer}/style")
    _check_confirm(element.get("confirm"), f"{pointer}/confirm")


def _check_block(block: dict[str, Any], pointer: str) -> None:
    btype = block.get("type")
    if btype not in KNOWN_BLOCK_TYPES:
        raise BlockError(f"unsupported block type {btype!r}", f"{pointer}/type")
    _check_id(block.get("block_id"), f"{pointer}/block_id")
    action_ids: set[str] = set()
    if btype == "section":
        text, fields = block.get("text"), block.get("fields")
        if text is None and not fields:
            raise BlockError("must provide text or fields", pointer)
        if text is not None:
            _check_text_object(text, MAX_SECTION_TEXT, f"{pointer}/text")
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                raise BlockError(
                    f"must be less than {MAX_SECTION_FIELDS + 1} items", f"{pointer}/fields"
                )
            for i, field in enumerate(fields):
                _check_text_object(field, MAX_FIELD_TEXT, f"{pointer}/fields/{i}")
        if block.get("accessory") is not None:
            _check_element(block["accessory"], f"{pointer}/accessory", action_ids)
    elif btype == "header":
        _check_text_object(block.get("text"), MAX_HEADER_TEXT, f"{pointer}/text", plain_only=True)
    elif btype == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            raise BlockError("must provide elements", f"{pointer}/elements")
        if len(elements) > MAX_CONTEXT_ELEMENTS:
            raise BlockError(
                f"must be less than {MAX_CONTEXT_ELEMENTS + 1} items", f"{pointer}/elements"
            )
        for i, element in enumerate(elements):
            if isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
                _check_text_object(element, MAX_TEXT_OBJECT, f"{pointer}/elements/{i}")
            elif not (isinstance(element, dict) and element.get("type") == "image"):
                raise BlockError("must be a text or image element", f"{pointer}/elements/{i}")
    elif btype == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            raise BlockError("must provide elements", f"{pointer}/elements")
        if len(elements) > MAX_ACTIONS_ELEMENTS:
            raise BlockError(
                f"must be less than {MAX_ACTIONS_ELEMENTS + 1} items", f"{pointer}/elements"
            )
        for i, element in enumerate(elements):
            _check_element(element, f"{pointer}/elements/{i}", action_ids)
    elif btype == "input":
        _check_text_object(block.get("label"), MAX_INPUT_LABEL, f"{pointer}/label", plain_only=True)
        _check_element(block.get("element"), f"{pointer}/element", action_ids)
    elif btype == "image":
        if not block.get("image_url") and not block.get("slack_file"):
            raise BlockError("must provide image_url", pointer)
        if not block.get("alt_text"):
            raise BlockError("must provide alt_text", f"{pointer}/alt_text")
    elif btype == "rich_text" and not isinstance(block.get("elements"), list):
        raise BlockError("must provide elements", f"{pointer}/elements")


def validate_blocks(blocks: list[dict[str, Any]], *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> None:
    """Raise BlockError if Slack would answer `invalid_blocks` for these blocks."""
    if len(blocks) > max_blocks:
        raise BlockError(f"must be less than {max_blocks + 1} items", "/blocks")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        _check_block(block, f"/blocks/{i}")
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                raise BlockError(f"block_id {block_id!r} already exists", f"/blocks/{i}/block_id")
            block_ids.add(block_id)


@dataclass(frozen=True)
class Button:
    """A button found in a message or view, with the block that holds it."""

    index: int  # 1-based, over all buttons of the message in block order
    block_id: str
    element: dict[str, Any]

    @property
    def action_id(self) -> str:
        """The button's action_id (Slack generates one when omitted; so does the sandbox)."""
        return str(self.element.get("action_id") or f"auto_{self.block_id}_{self.index}")

    @property
    def text(self) -> str:
        """The button's label."""
        return str((self.element.get("text") or {}).get("text", ""))

    @property
    def value(self) -> str | None:
        """The button's value, if any."""
        value = self.element.get("value")
        return None if value is None else str(value)


def block_id_of(block: dict[str, Any], position: int) -> str:
    """The block's id; Slack assigns a random one when omitted, the sandbox a stable one."""
    return str(block.get("block_id") or f"b{position}")


def iter_buttons(blocks: list[dict[str, Any]] | None) -> Iterator[Button]:
    """Yield every button (section accessories and actions elements) in block order."""
    index = 0
    for position, block in enumerate(blocks or []):
        candidates: list[Any] = []
        if block.get("type") == "section" and block.get("accessory") is not None:
            candidates = [block["accessory"]]
        elif block.get("type") == "actions":
            candidates = list(block.get("elements") or [])
        for element in candidates:
            if isinstance(element, dict) and element.get("type") == "button":
                index += 1
                yield Button(index=index, block_id=block_id_of(block, position), element=element)
