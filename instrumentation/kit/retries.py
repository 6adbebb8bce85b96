"""The retry count of Stainless SDKs (openai, anthropic, groq…): they call ``_sleep_for_retry(retries_taken=n, …)``
before retry n+1, and that hook records n+1 as ``promptpulse.retry.count`` on the current call's span."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

from promptpulse.instrumentation import patching, wrappers
from promptpulse.instrumentation import semconv as sc

_log = logging.getLogger(__name__)


def retry_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Runs only on retries, never on the plain path; works for the async client too (the coroutine is returned
    unawaited). Acts only inside one of our calls; a stand-in span (``promptpulse_span``) is followed to ours."""
    try:
        if wrappers.in_call():
            retries_taken = kwargs.get("retries_taken")
            if isinstance(retries_taken, int):
                span = trace.get_current_span()
                span = getattr(span, "promptpulse_span", span)
                if span.is_recording():
                    span.set_attribute(sc.PROMPTPULSE_RETRY_COUNT, retries_taken + 1)
    except Exception:
        _log.debug("promptpulse: counting a retry failed", exc_info=True)
    return wrapped(*args, **kwargs)


def retry_patches(package: str) -> list[patching.Patch]:
    """The retry hooks of a Stainless SDK's sync and async base clients. Optional: the hook is newer than the oldest
    supported SDK versions, which then count no retries."""
    module = f"{package}._base_client"
    return [
        patching.Patch(module, "SyncAPIClient._sleep_for_retry", retry_wrapper, optional=True),
        patching.Patch(module, "AsyncAPIClient._sleep_for_retry", retry_wrapper, optional=True),
    ]
