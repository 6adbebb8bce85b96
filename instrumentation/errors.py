"""Error classification: exception or HTTP status -> ``promptpulse.error.category``.

Duck-typed on purpose (status_code attribute, class names), so it serves every client library without importing it.
"""

from __future__ import annotations

_TIMEOUT_NAMES = ("Timeout", "TimedOut", "DeadlineExceeded")


def status_code_of(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if isinstance(code, int):
        return code
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore's ClientError: the parsed response, as a dict
        code = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    else:
        code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def category_for_status(status: int) -> str:
    if status == 429:
        return "rate_limit"
    if status in (408, 504):
        return "timeout"
    if status in (401, 403):
        return "auth"
    if 400 <= status < 500:
        return "validation"
    if status >= 500:
        return "model_error"  # provider-side failure: 500, 502, 503, 529 overloaded
    return "system"


def classify(exc: BaseException, status: int | None = None) -> str:
    """One of semconv.ERROR_CATEGORIES."""
    names = [cls.__name__ for cls in type(exc).__mro__]
    if any(marker in name for name in names for marker in _TIMEOUT_NAMES) or isinstance(exc, TimeoutError):
        return "timeout"
    if status is None:
        status = status_code_of(exc)
    if status is not None:
        return category_for_status(status)
    lowered = " ".join(names).lower()
    if "ratelimit" in lowered:
        return "rate_limit"
    if "authentication" in lowered or "permission" in lowered:
        return "auth"
    if "validation" in lowered or "badrequest" in lowered:
        return "validation"
    return "system"


def error_type(exc: BaseException) -> str:
    """``error.type``: the fully qualified exception class, as the semantic conventions recommend."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
