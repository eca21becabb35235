"""HTTP POST of a webhook delivery (standard library, in a worker thread so the event loop
keeps serving). Answers are reduced to a status code; bodies and URLs are never logged."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from svod_segmentation.domain.webhooks import HttpAnswer

# A receiver that does not answer within this long is treated as down (retried).
TIMEOUT_S = 10.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (3xx), not followed: the signed body goes only where it was
    configured to go."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> HttpAnswer:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read()
            return HttpAnswer(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return HttpAnswer(error.code, f"HTTP {error.code}")
    except ValueError as error:  # a URL the request line cannot carry (checked on create)
        return HttpAnswer(400, f"unusable URL: {type(error).__name__}")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return HttpAnswer(0, f"no answer: {type(reason).__name__}")


class WebhookClient:
    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        return await asyncio.to_thread(_post, url, body, headers, self.timeout_s)
