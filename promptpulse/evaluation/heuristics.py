"""Built-in heuristic metrics: cheap, local, deterministic. Each returns a :class:`Result` with value 1.0 (pass) or
0.0 (fail) — or a measured value for ``length`` — and a reason that never repeats the checked text (a reason is
stored, content may not be)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    value: float | None = None  # None: no score (see error)
    label: str = ""
    reason: str = ""
    error: str = ""  # an evaluation error: the metric could not score the call
    judge_model: str = ""
    judge_cost_usd: float | None = None  # None: no judge, or a judge call whose price is unknown

    @property
    def ok(self) -> bool:
        return not self.error and self.value is not None


def passed(ok: bool, reason: str) -> Result:
    return Result(1.0 if ok else 0.0, "pass" if ok else "fail", reason)


class MetricError(ValueError):
    """The metric cannot run: a missing field or a bad parameter. Becomes an evaluation error, never a score."""


def _text(params: Mapping[str, Any], key: str = "output") -> str:
    v = params.get(key)
    if v is None:
        raise MetricError(f"no {key} (content not captured, or the mapping names an empty field)")
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


# ------------------------------------------------------------------------------------------------------ format
def valid_json(p: Mapping[str, Any]) -> Result:
    text = _text(p).strip()
    try:
        json.loads(_strip_fence(text))
    except ValueError as e:
        return passed(False, f"not valid JSON: {e.__class__.__name__} at char {getattr(e, 'pos', '?')}")
    return passed(True, "valid JSON")


def _strip_fence(text: str) -> str:
    m = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    return m.group(1) if m else text


def json_schema(p: Mapping[str, Any]) -> Result:
    schema = p.get("schema")
    if isinstance(schema, str):
        schema = json.loads(schema)
    if not isinstance(schema, Mapping):
        raise MetricError("json_schema needs params.schema (a JSON Schema object)")
    try:
        import jsonschema
    except ImportError:
        raise MetricError("json_schema needs the jsonschema package (pip install 'promptpulse[evaluation]')")
    text = _strip_fence(_text(p).strip())
    try:
        doc = json.loads(text)
    except ValueError:
        return passed(False, "not valid JSON")
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(str(x) for x in e.path) or "(root)"
        return passed(False, f"{len(errors)} schema error(s); first at {where}: {e.validator} {e.validator_value!r}"
                      [:300])
    return passed(True, "matches the schema")


def regex(p: Mapping[str, Any]) -> Result:
    pattern = p.get("pattern")
    if not isinstance(pattern, str):
        raise MetricError("regex needs params.pattern")
    flags = re.I if p.get("ignore_case") else 0
    found = re.search(pattern, _text(p), flags | re.S) is not None
    want = not p.get("must_not_match", False)
    return passed(found == want, f"pattern {'found' if found else 'not found'}")


def _needles(p: Mapping[str, Any]) -> list[str]:
    v = p.get("value", p.get("values"))
    if isinstance(v, str):
        return [v]
    if isinstance(v, Sequence) and v and all(isinstance(x, str) for x in v):
        return list(v)
    raise MetricError("contains / not_contains need params.value (a string or a list of strings)")


def _found(p: Mapping[str, Any]) -> list[str]:
    text = _text(p)
    case = bool(p.get("case_sensitive", False))
    hay = text if case else text.lower()
    return [n for n in _needles(p) if (n if case else n.lower()) in hay]


def contains(p: Mapping[str, Any]) -> Result:
    needles, found = _needles(p), _found(p)
    ok = len(found) == len(needles) if p.get("all", False) else bool(found)
    return passed(ok, f"{len(found)} of {len(needles)} value(s) found")


def not_contains(p: Mapping[str, Any]) -> Result:
    found = _found(p)
    return passed(not found, f"{len(found)} forbidden value(s) found" if found else "none of the values found")


def length(p: Mapping[str, Any]) -> Result:
    text = _text(p)
    unit = p.get("unit", "chars")
    if unit not in ("chars", "words"):
        raise MetricError("length: unit is chars or words")
    n = len(text) if unit == "chars" else len(text.split())
    lo, hi = p.get("min"), p.get("max")
    ok = (lo is None or n >= lo) and (hi is None or n <= hi)
    return passed(ok, f"{n} {unit} (bounds {lo if lo is not None else '-'}..{hi if hi is not None else '-'})")


# ------------------------------------------------------------------------------------------------------ refusal
# Phrases assistants use to decline. Matched at the start of a sentence of the first 400 characters: a refusal says
# so up front; "I can't stress enough" deep inside an answer is not one.
REFUSAL_PATTERNS = (
    r"i(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:no|')t|cannot|am not able|'m not able|won't)",
    r"i (?:can(?:no|')t|cannot|won't|will not|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:help|assist|provide|comply|do that|answer|fulfil|fulfill|share|support|create|generate|write|give)",
    r"(?:sorry|unfortunately),? (?:but )?i (?:can(?:no|')t|cannot|am unable|'m unable|won't)",
    r"as an ai(?: language model)?,? i (?:can(?:no|')t|cannot|don't|do not|am not able)",
    r"i(?:'m| am) not (?:able|allowed|permitted) to (?:help|assist|provide|answer|share|discuss)",
    r"i must (?:decline|refuse)",
)
_REFUSAL = re.compile(r"(?:^|[.!?\n]\s*)(?:" + "|".join(REFUSAL_PATTERNS) + ")", re.I)


def is_refusal(text: str) -> bool:
    return _REFUSAL.search(text[:400].replace("’", "'")) is not None


def refusal(p: Mapping[str, Any]) -> Result:
    r = is_refusal(_text(p))
    return passed(not r, "the answer is a refusal" if r else "not a refusal")


# ------------------------------------------------------------------------------------------------------ PII
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# International (+cc ...) or North-American-style numbers of 10-15 digits with the usual separators.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){2,4}(?![\w])")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def find_pii(text: str, kinds: Sequence[str] = ("email", "phone", "card")) -> dict[str, int]:
    """Counts of e-mail addresses, phone numbers and payment card numbers (13-19 digits passing the Luhn check)."""
    found: dict[str, int] = {}
    cards: list[tuple[int, int]] = []
    if "card" in kinds:
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                cards.append(m.span())
        if cards:
            found["card"] = len(cards)
    if "email" in kinds:
        n = len(_EMAIL.findall(text))
        if n:
            found["email"] = n
    if "phone" in kinds:
        n = 0
        for m in _PHONE.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            inside_card = any(a <= m.start() < b for a, b in cards)
            if 10 <= len(digits) <= 15 and not inside_card:
                n += 1
        if n:
            found["phone"] = n
    return found


def pii(p: Mapping[str, Any]) -> Result:
    kinds = p.get("types", ("email", "phone", "card"))
    unknown = set(kinds) - {"email", "phone", "card"}
    if unknown:
        raise MetricError(f"pii: unknown types {sorted(unknown)} (email, phone, card)")
    found = find_pii(_text(p), kinds)
    if found:
        return passed(False, "found " + ", ".join(f"{n} {k}" for k, n in sorted(found.items())))
    return passed(True, "no PII found")


# ------------------------------------------------------------------------------------------------------ language
# Scripts first (a text mostly in one non-Latin script is that script's language), then, for Latin text, the share
# of each language's most frequent function words among the text's words; the best share wins if it is at least 5 %.
_SCRIPTS = (
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
)
_STOPWORDS = {
    "en": "the and is are was to of in that it for you with on this be not have as your can",
    "fr": "le la les et est un une des du de que qui pour pas vous dans sur avec ce il nous",
    "de": "der die das und ist nicht ein eine zu den mit sie ich es sich auf für von dem wir",
    "es": "el la los las y es un una que de en por para con no se su lo del como",
    "it": "il lo la gli le e è un una che di per non con si del della sono come ma",
    "pt": "o a os as e é um uma que de em para com não se do da por como você",
    "nl": "de het een en is van dat niet te in op voor met zijn je ik er",
}
STOPWORDS: dict[str, frozenset[str]] = {code: frozenset(words.split(" ")) for code, words in _STOPWORDS.items()}


def detect_language(text: str) -> str:
    """An ISO 639-1 code, or "" when the text gives too little to tell."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return ""
    for code, rx in _SCRIPTS:
        if len(rx.findall(text)) >= 0.3 * len(letters):
            if code == "zh" and _SCRIPTS[1][1].search(text):
                return "ja"  # kana among the ideographs
            return code
    words = re.findall(r"[^\W\d_]+", text.lower())
    if not words:
        return ""
    best, share = "", 0.0
    for code, stop in STOPWORDS.items():
        s = sum(w in stop for w in words) / len(words)
        if s > share:
            best, share = code, s
    return best if share >= 0.05 else ""


def language(p: Mapping[str, Any]) -> Result:
    found = detect_language(_text(p))
    expected = p.get("expected")
    if expected is None:
        raise MetricError("language needs params.expected (an ISO 639-1 code or a list of them)")
    allowed = [expected] if isinstance(expected, str) else list(expected)
    if not found:
        return Result(None, "", "", error="language: the text is too short or has too few known words to tell")
    ok = found in allowed
    return Result(1.0 if ok else 0.0, found, f"detected {found}, expected {'/'.join(allowed)}")


HEURISTICS: dict[str, Callable[[Mapping[str, Any]], Result]] = {
    "valid_json": valid_json,
    "json_schema": json_schema,
    "regex": regex,
    "contains": contains,
    "not_contains": not_contains,
    "length": length,
    "refusal": refusal,
    "pii": pii,
    "language": language,
}

# The guardrail type of a heuristic marked ``guardrail = true`` (``guardrail = "<type>"`` names it).
GUARDRAIL_TYPES = {
    "valid_json": "format", "json_schema": "format", "regex": "format", "length": "format",
    "contains": "topic", "not_contains": "topic", "refusal": "refusal", "pii": "pii", "language": "language",
}
