"""Interaction payloads Slack never sends but an attacker (or a bug) might: each must be
refused or ignored by the door, over HTTP and over Socket Mode, with no 5xx and no traceback."""

MALFORMED = [
    "[]", "null", "42", '"text"', "{", "{}", '{"type": 5}',
    '{"type": "block_actions"}',
    '{"type": "block_actions", "actions": []}',
    ('{"type": "block_actions", "actions": [{"action_id": "approve", "value": "abc"}],'
     ' "user": {"id": "U_BOB"}, "channel": {"id": "C_CUTOVER"}}'),
    '{"type": "block_actions", "actions": [{"action_id": "approve", "value": "1"}]}',
    '{"type": "block_actions", "actions": "approve", "user": "U_BOB"}',
    '{"type": "view_submission", "view": {"callback_id": "no_such_view"}, "user": {"id": "U_BOB"}}',
    '{"type": "view_submission", "view": null}',
    '{"type": "shortcut", "callback_id": 7}',
]
