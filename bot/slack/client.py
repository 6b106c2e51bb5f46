"""The one WebClient the bot uses: masks secrets out of every payload and counts calls.

Bolt builds a plain WebClient for every request and a plain ``respond``; ``use_masking_client``
is the middleware that puts this client and a masking ``respond`` in their place, so every
listener's Web API call and ``response_url`` reply is masked and metered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from runbook.adapters.redact import mask

# Never re-sent by the client: an old chat.update body could overwrite a newer card, and a
# chat.postMessage re-sent after a lost answer posts twice. The outbox retries these itself,
# with a fresh render and a metadata lookup before posting again.
NOT_RESENT = ("/chat.update", "/chat.postMessage")


class RateLimitRetry(RateLimitErrorRetryHandler):
    """Retry rate-limited calls, except the message calls in NOT_RESENT."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if request.url.endswith(NOT_RESENT):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


class ConnectionRetry(ConnectionErrorRetryHandler):
    """Retry calls cut off by the network, except the message calls in NOT_RESENT (the cut
    may have come after Slack applied them)."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if request.url.endswith(NOT_RESENT):
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
        kwargs.setdefault("retry_handlers", [ConnectionRetry(max_retry_count=2),
                                             RateLimitRetry(max_retry_count=3)])
        kwargs.setdefault("timeout", 10)
        super().__init__(**kwargs)
        self._secrets = dict(secrets)
        self._on_call = on_call

    def __deepcopy__(self, memo: dict) -> MaskingWebClient:
        # Bolt deep-copies each request for its lazy listeners; they must share this client
        # (its metrics and pool), and a copy would fail on the metrics' locks anyway.
        return self

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


class MaskingRespond(Respond):
    """Bolt's ``respond`` with every field masked and each reply counted as ``response_url``."""

    def __init__(self, *, response_url: str | None, secrets: Mapping[str, str],
                 on_call: Callable[[str, str | None], None] | None = None, **kwargs: Any):
        super().__init__(response_url=response_url, **kwargs)
        self._secrets = dict(secrets)
        self._on_call = on_call

    def __deepcopy__(self, memo: dict) -> MaskingRespond:
        return self  # immutable, and shared like the client (see MaskingWebClient.__deepcopy__)

    def __call__(self, text: str | dict = "", blocks: Any = None, attachments: Any = None,
                 **kwargs: Any):
        def clean(value: Any) -> Any:
            if isinstance(value, list | tuple):
                value = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
            return mask_payload(value, self._secrets)

        error: str | None = None
        try:
            resp = super().__call__(clean(text), blocks=clean(blocks),
                                    attachments=clean(attachments),
                                    **{k: clean(v) for k, v in kwargs.items()})
            if resp.status_code != 200:
                error = f"http_{resp.status_code}"
            return resp
        except Exception as e:
            error = type(e).__name__
            raise
        finally:
            if self._on_call:
                self._on_call("response_url", error)


def use_masking_client(client: MaskingWebClient) -> Callable[..., Any]:
    """Bolt middleware: listeners get ``client`` and a masking ``respond``, never Bolt's own.

    Register it after Bolt's authorization (``app.use``): authorization sets the token on the
    request's client, which must not touch this shared one.
    """

    def masking_client(context: Any, next: Callable[[], Any]) -> Any:
        context["client"] = client
        context["respond"] = MaskingRespond(response_url=context.response_url,
                                            secrets=client._secrets, on_call=client._on_call,
                                            proxy=client.proxy, ssl=client.ssl)
        return next()

    return masking_client
