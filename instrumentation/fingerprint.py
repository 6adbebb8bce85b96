"""``promptpulse.prompt.fingerprint``: a stable hash of a prompt's template for untagged version tracking.

What counts as the template: the system/developer instructions when there are any (templates live there), else the
first message's first 512 characters. Variable parts are normalised before hashing — numbers, UUIDs, e-mail
addresses, URLs and quoted strings — so "Order 123 for ann@x.io" and "Order 987 for bob@y.com" share a fingerprint.
Results are memoised: a system prompt repeats on every call, so the hot path is one dict lookup.
"""

from __future__ import annotations

import hashlib
import re

_PREFIX_CHARS = 512
_MEMO_LIMIT = 4096

_VARIABLE_PARTS = re.compile(
    r"""[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"""  # UUID
    r"""|[\w.+-]+@[\w-]+\.[\w.-]+"""  # e-mail
    r"""|https?://\S+"""  # URL
    r"""|"[^"\n]{0,200}"|'[^'\n]{0,200}'"""  # quoted strings
    r"""|\d+(?:[.,:]\d+)*"""  # numbers, dates, times
)
_SPACES = re.compile(r"\s+")

_memo: dict[str, str] = {}


def normalise_template(text: str) -> str:
    return _SPACES.sub(" ", _VARIABLE_PARTS.sub("\x00", text)).strip()


def fingerprint(template: str) -> str:
    """16 hex characters; equal for texts that differ only in their variable parts."""
    found = _memo.get(template)
    if found is not None:
        return found
    digest = hashlib.blake2b(normalise_template(template).encode("utf-8", "replace"), digest_size=8).hexdigest()
    if len(_memo) >= _MEMO_LIMIT:
        _memo.clear()
    _memo[template] = digest
    return digest


def template_of(instructions: str | None, first_message: str | None) -> str | None:
    """The text a fingerprint is taken of, by the rule in this module's docstring."""
    if instructions:
        return instructions
    if first_message:
        return first_message[:_PREFIX_CHARS]
    return None
