"""The price table and its lookup.

One source of truth: ``prices/prices.csv`` ships in the wheel, sets ``promptpulse.cost.usd`` here, and is loaded
into ClickHouse's ``model_prices`` by the processor. Users extend or override it with a CSV of the same columns
named by ``PROMPTPULSE_PRICES_FILE``. Model names are normalised the same way here and in SQL
(``MODEL_PREFIX_PATTERN``/``MODEL_SUFFIX_PATTERN`` are RE2-compatible so the schema can reuse them).
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path

_log = logging.getLogger(__name__)

PRICES_FILE_ENV = "PROMPTPULSE_PRICES_FILE"
COLUMNS = (
    "provider",
    "model",
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
    "reasoning_per_mtok",
    "effective_date",
)

# "openai/gpt-4o", "models/gemini-2.0-flash" -> the part after the last slash; then a Bedrock cross-region
# inference-profile prefix: "us.anthropic.claude-…", "arn:…:inference-profile/eu.amazon.nova-lite-v1:0".
MODEL_PREFIX_PATTERN = r"^(.*/)?((us|us-gov|eu|apac|global|jp|au|ca)\.)?"
# Dated snapshots and version tags: gpt-4o-mini-2024-07-18, claude-3-5-sonnet-20241022, gemini@20240101, -latest,
# Bedrock's -v2:0, Gemini's -001, Mistral's -2411, Cohere's -08-2024.
MODEL_SUFFIX_PATTERN = r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-latest|-v\d+(:\d+)?|-\d{2}-\d{4}|-\d{3,4})+$"
_PREFIX_RE = re.compile(MODEL_PREFIX_PATTERN)
_SUFFIX_RE = re.compile(MODEL_SUFFIX_PATTERN)

# Providers that bill at another provider's list price.
PROVIDER_ALIASES = {"azure.ai.openai": "openai", "openrouter": "", "litellm": ""}

# A row with model "*" prices every model of its provider not listed by name (e.g. local Ollama models: 0).
ANY_MODEL = "*"

_MILLION = Decimal(1_000_000)


def normalize_model(model: str) -> str:
    """The price-table name of a model as a provider reports it."""
    name = _PREFIX_RE.sub("", model.strip().lower())
    return _SUFFIX_RE.sub("", name)


def _scale(rates: tuple[Decimal | None, ...]) -> tuple[int, tuple[int | None, ...]]:
    """The rates as exact integers over one power of ten: ``rate == scaled / 10**exponent``."""
    exponent = max([0, *(-int(r.as_tuple().exponent) for r in rates if r is not None)])
    scaled: list[int | None] = []
    for rate in rates:
        if rate is None:
            scaled.append(None)
            continue
        sign, digits, exp = rate.as_tuple()
        value = int("".join(map(str, digits)) or "0") * 10 ** (int(exp) + exponent)
        scaled.append(-value if sign else value)
    return exponent, tuple(scaled)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    provider: str
    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    reasoning_per_mtok: Decimal | None
    effective_date: dt.date
    # (divisor, input, output, cache read, cache write, reasoning): the rates as exact integers over one divisor,
    # so cost() is integer arithmetic and one correctly rounded division (Decimal arithmetic costs ~5x more).
    _scaled: tuple[int, int, int, int | None, int | None, int | None] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        exponent, rates = _scale(
            (
                self.input_per_mtok,
                self.output_per_mtok,
                self.cache_read_per_mtok,
                self.cache_write_per_mtok,
                self.reasoning_per_mtok,
            )
        )
        object.__setattr__(self, "_scaled", (10 ** (exponent + 6), *rates))

    def cost(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> float:
        """USD for one call. ``input_tokens`` includes cached input; ``output_tokens`` includes reasoning.

        Exactly the Decimal sum of tokens x rate / 1,000,000, rounded once to the nearest float (int / int is
        correctly rounded in Python, as is float() of the exact Decimal quotient)."""
        divisor, input_rate, output_rate, read_rate, write_rate, reasoning_rate = self._scaled
        cache_read = cache_read_tokens if read_rate is not None else 0
        cache_write = cache_write_tokens if write_rate is not None else 0
        uncached = input_tokens - cache_read - cache_write
        reasoning = reasoning_tokens if reasoning_rate is not None else 0
        output = output_tokens - reasoning
        total = (uncached if uncached > 0 else 0) * input_rate + (output if output > 0 else 0) * output_rate
        if cache_read:
            total += cache_read * read_rate  # type: ignore[operator]
        if cache_write:
            total += cache_write * write_rate  # type: ignore[operator]
        if reasoning:
            total += reasoning * reasoning_rate  # type: ignore[operator]
        return total / divisor


def _decimal(value: str | None) -> Decimal | None:
    value = (value or "").strip()
    return Decimal(value) if value else None


def parse_rows(rows: Iterable[dict[str, str]]) -> list[ModelPrice]:
    prices = []
    for row in rows:
        prices.append(
            ModelPrice(
                provider=row["provider"].strip().lower(),
                model=normalize_model(row["model"]),
                input_per_mtok=_decimal(row["input_per_mtok"]) or Decimal(0),
                output_per_mtok=_decimal(row["output_per_mtok"]) or Decimal(0),
                cache_read_per_mtok=_decimal(row.get("cache_read_per_mtok")),
                cache_write_per_mtok=_decimal(row.get("cache_write_per_mtok")),
                reasoning_per_mtok=_decimal(row.get("reasoning_per_mtok")),
                effective_date=dt.date.fromisoformat(row.get("effective_date") or "1970-01-01"),
            )
        )
    return prices


def bundled_prices_path() -> Path:
    return Path(str(resources.files("promptpulse.instrumentation") / "prices" / "prices.csv"))


def load_prices(extra_file: str | os.PathLike[str] | None = None) -> list[ModelPrice]:
    """The bundled table, then the user's file (later rows win for the same provider, model and date)."""
    paths = [bundled_prices_path()]
    extra_file = extra_file if extra_file is not None else os.environ.get(PRICES_FILE_ENV)
    if extra_file:
        paths.append(Path(extra_file))
    merged: dict[tuple[str, str, dt.date], ModelPrice] = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8") as fh:
            for price in parse_rows(csv.DictReader(fh)):
                merged[(price.provider, price.model, price.effective_date)] = price
    return sorted(merged.values(), key=lambda p: (p.provider, p.model, p.effective_date))


class PriceTable:
    """Lookup by (provider, model), memoised: the hot path pays one dict lookup per call."""

    def __init__(self, prices: Iterable[ModelPrice], today: dt.date | None = None) -> None:
        today = today or dt.date.today()
        self._by_key: dict[tuple[str, str], ModelPrice] = {}
        self._by_model: dict[str, ModelPrice] = {}
        for price in sorted(prices, key=lambda p: p.effective_date):
            if price.effective_date > today:
                continue
            self._by_key[(price.provider, price.model)] = price
            if price.model != ANY_MODEL:
                self._by_model.setdefault(price.model, price)
        self._memo: dict[tuple[str, str], ModelPrice | None] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        key = (provider, model)
        try:
            return self._memo[key]
        except KeyError:
            pass
        name = normalize_model(model)
        billed_as = PROVIDER_ALIASES.get(provider, provider)
        by_key = self._by_key
        found = by_key.get((billed_as, name)) or by_key.get((billed_as, ANY_MODEL)) or self._by_model.get(name)
        with self._lock:
            self._memo[key] = found
            if found is None and model not in self._warned:
                self._warned.add(model)
                _log.warning("promptpulse: no price for model %r (provider %r); cost not recorded", model, provider)
        return found

    def cost(self, provider: str, model: str, **usage: int) -> float | None:
        price = self.lookup(provider, model)
        return None if price is None else price.cost(**usage)


_default: PriceTable | None = None


def default_table() -> PriceTable:
    global _default
    if _default is None:
        _default = PriceTable(load_prices())
    return _default


def reset_default_table() -> None:
    """Forget the loaded table (after PROMPTPULSE_PRICES_FILE changes)."""
    global _default
    _default = None
