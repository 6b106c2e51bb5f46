"""The one WebClient the bot uses: masks secrets out of every payload and counts calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from runbook.adapters.redact import mask


class RateLimitRetry(RateLimitErrorRetryHandler):
    """Retry rate-limited calls, except chat.update: re-sending its old body could overwrite
    a newer card; the poster re-renders and reschedules those itself."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if request.url.endswith("/chat.update"):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


def mask_payload(value: Any, secrets: Mapping[str, str]) -> Any:
    """Mask every string inside a JSON-like payload."""
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, Mapping):
        return {k: mask_payload(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_payload(v, secrets) for v in value]
    return value


class MaskingWebClient(WebClient):
    """A WebClient whose outgoing payloads never carry a known secret or a Slack token."""

    def __init__(self, *, secrets: Mapping[str, str], on_call: Callable[[str, str | None], None]
                 | None = None, **kwargs: Any):
        kwargs.setdefault("retry_handlers", [ConnectionErrorRetryHandler(max_retry_count=2),
                                             RateLimitRetry(max_retry_count=3)])
        kwargs.setdefault("timeout", 10)
        super().__init__(**kwargs)
        self._secrets = dict(secrets)
        self._on_call = on_call

    def api_call(self, api_method: str, *, http_verb: str = "POST", files: Any = None,
                 data: Any = None, params: Any = None, json: Any = None, headers: Any = None,
                 auth: Any = None):
        if api_method != "auth.test":
            data = mask_payload(data, self._secrets) if data else data
            params = mask_payload(params, self._secrets) if params else params
            json = mask_payload(json, self._secrets) if json else json
        error: str | None = None
        try:
            return super().api_call(api_method, http_verb=http_verb, files=files, data=data,
                                    params=params, json=json, headers=headers, auth=auth)
        except SlackApiError as e:
            error = str(e.response.get("error", "unknown")) if e.response else "unknown"
            raise
        except Exception as e:
            error = type(e).__name__
            raise
        finally:
            if self._on_call:
                self._on_call(api_method, error)
