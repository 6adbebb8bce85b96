from __future__ import annotations

import pytest

from promptpulse.instrumentation import errors
from promptpulse.instrumentation.fingerprint import fingerprint, template_of


def test_variable_parts_do_not_change_the_fingerprint() -> None:
    a = fingerprint('Order 123 for ann@x.io placed 2024-01-05, ref "abc" see https://x.io/a?b=1')
    b = fingerprint('Order 98765 for bob@y.com placed 2025-12-31, ref "zzz top" see https://y.org/')
    assert a == b
    assert len(a) == 16
    assert fingerprint("You are a support agent.") != fingerprint("You are a sales agent.")


def test_template_prefers_instructions() -> None:
    assert template_of("system text", "user text") == "system text"
    assert template_of(None, "u" * 2000) == "u" * 512
    assert template_of(None, None) is None


class _Status(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"status {status_code}")
        self.status_code = status_code


class APITimeoutError(Exception):
    pass


class APIConnectionError(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (_Status(429), "rate_limit"),
        (_Status(401), "auth"),
        (_Status(403), "auth"),
        (_Status(400), "validation"),
        (_Status(422), "validation"),
        (_Status(500), "model_error"),
        (_Status(529), "model_error"),
        (_Status(504), "timeout"),
        (APITimeoutError(), "timeout"),
        (TimeoutError(), "timeout"),
        (APIConnectionError(), "system"),
        (ValueError(), "system"),
    ],
)
def test_classify(exc: BaseException, category: str) -> None:
    assert errors.classify(exc) == category


def test_error_type_is_qualified() -> None:
    assert errors.error_type(ValueError()) == "ValueError"
    assert errors.error_type(_Status(1)) == f"{__name__}._Status"


def test_messages_fingerprint_takes_the_system_texts_joined_else_the_first_message() -> None:
    from types import SimpleNamespace

    from promptpulse.instrumentation.kit.content import messages_fingerprint

    user = {"role": "user", "content": "Where is order 123?"}
    assert messages_fingerprint([{"role": "system", "content": "Be kind."}, user]) == fingerprint("Be kind.")
    developer = {"role": "developer", "content": [{"type": "text", "text": "B."}]}
    two = [{"role": "system", "content": "A."}, user, developer]
    assert messages_fingerprint(two) == fingerprint("A.\nB.")
    # SDK objects and dicts mixed; empty and non-text system content is skipped.
    mixed = [SimpleNamespace(role="system", content="Obj."), {"role": "system", "content": ""}, user]
    assert messages_fingerprint(mixed) == fingerprint("Obj.")
    no_text = [{"role": "system", "content": [{"type": "image_url"}]}, {"role": "system", "content": None}]
    assert messages_fingerprint([user, *no_text]) == fingerprint("Where is order 123?")  # the first message's
    assert messages_fingerprint([*no_text, user]) is None  # the first message has no text
    assert messages_fingerprint([user], instructions="Inst.") == fingerprint("Inst.")
    assert messages_fingerprint([user], system_roles=("user",)) == fingerprint("Where is order 123?")
    assert messages_fingerprint([{"role": ["odd"], "content": "x"}]) == fingerprint("x")
    assert messages_fingerprint(iter([user])) is None and messages_fingerprint([]) is None
    assert messages_fingerprint([{"role": "system", "content": "Be kind."}]) == "9cc11283e899a1a2"
