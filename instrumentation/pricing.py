"""The price table and its lookup.

One source of truth: ``prices/prices.csv`` ships in the wheel, sets ``promptpulse.cost.usd`` here, and is loaded
into ClickHouse's ``model_prices`` by the processor. Users extend or override it with a CSV of the same columns
named by ``PROMPTPULSE_PRICES_FILE``. Model names are normalised the same way here and in SQL
(``MODEL_PREFIX_PATTERN``/``MODEL_SUFFIX_PATTERN`` are RE2-compatible so the schema can reuse them).

A row prices one model name as written: a dated snapshot (``gpt-4o-2024-05-13``) by its own row when there is one,
else by its family's row (the name without the snapshot suffix). ``service_tier`` rows (``batch``, ``flex``,
``priority``) price calls the provider says ran in that tier; a row with ``above_input_tokens`` prices the whole
call when its input (cached input included) exceeds that many tokens (long-context rates).
"""

from __future__ import annotations

import csv
import dataclasses
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
    "service_tier",
    "above_input_tokens",
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
    "cache_write_1h_per_mtok",
    "reasoning_per_mtok",
    "effective_date",
    "source",
    "source_date",
)
# Optional in a user's file (a file with the columns of earlier releases still loads).
OPTIONAL_COLUMNS = frozenset(
    {"service_tier", "above_input_tokens", "cache_write_1h_per_mtok", "source", "source_date", "reasoning_per_mtok"}
)
STANDARD_TIER = ""
# What providers call their standard tier (OpenAI's "default", Anthropic's "standard"; "auto" is a request value).
_STANDARD_TIER_NAMES = frozenset({"", "default", "standard", "auto", "on_demand"})

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
    """The family name of a model as a provider reports it (the price table's fallback for a snapshot)."""
    return _SUFFIX_RE.sub("", snapshot_name(model))


def snapshot_name(model: str) -> str:
    """The model's own name in the price table: lower case, without a routing prefix, snapshot suffix kept."""
    return _PREFIX_RE.sub("", model.strip().lower())


def normalize_tier(service_tier: str | None) -> str:
    """A provider's service tier name as the price table keys it ("" for the standard tier)."""
    if not service_tier:
        return STANDARD_TIER
    tier = service_tier.strip().lower()
    return STANDARD_TIER if tier in _STANDARD_TIER_NAMES else tier


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
    service_tier: str = STANDARD_TIER
    above_input_tokens: int = 0
    cache_write_1h_per_mtok: Decimal | None = None
    source: str = ""
    source_date: dt.date | None = None
    # (divisor, input, output, cache read, cache write, reasoning, 1-hour cache write): the rates as exact integers
    # over one divisor, so cost() is integer arithmetic and one correctly rounded division (Decimal costs ~5x more).
    _scaled: tuple[int, int, int, int | None, int | None, int | None, int | None] = field(
        init=False, repr=False, compare=False, hash=False
    )
    # The long-context row that takes over above its threshold (set by PriceTable), or None.
    _above: ModelPrice | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        exponent, rates = _scale(
            (
                self.input_per_mtok,
                self.output_per_mtok,
                self.cache_read_per_mtok,
                self.cache_write_per_mtok,
                self.reasoning_per_mtok,
                self.cache_write_1h_per_mtok,
            )
        )
        object.__setattr__(self, "_scaled", (10 ** (exponent + 6), *rates))

    def with_long_context(self, above: ModelPrice | None) -> ModelPrice:
        """This row with ``above`` pricing the calls beyond ``above.above_input_tokens`` input tokens."""
        linked = dataclasses.replace(self)
        object.__setattr__(linked, "_above", above)
        return linked

    def cost(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
    ) -> float:
        """USD for one call. ``input_tokens`` includes cached input; ``output_tokens`` includes reasoning;
        ``cache_write_tokens`` includes the ``cache_write_1h_tokens`` written for one hour.

        Exactly the Decimal sum of tokens x rate / 1,000,000, rounded once to the nearest float (int / int is
        correctly rounded in Python, as is float() of the exact Decimal quotient)."""
        above = self._above
        if above is not None and input_tokens > above.above_input_tokens:
            return above.cost(
                input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
                cache_write_1h_tokens,
            )
        divisor, input_rate, output_rate, read_rate, write_rate, reasoning_rate, write_1h_rate = self._scaled
        cache_read = cache_read_tokens if read_rate is not None else 0
        cache_write = cache_write_tokens if write_rate is not None else 0
        uncached = input_tokens - cache_read - cache_write
        reasoning = reasoning_tokens if reasoning_rate is not None else 0
        output = output_tokens - reasoning
        total = (uncached if uncached > 0 else 0) * input_rate + (output if output > 0 else 0) * output_rate
        if cache_read:
            total += cache_read * read_rate  # type: ignore[operator]
        if cache_write:
            # The 1-hour writes at their own rate when the row has one, else (like the rest) at the write rate.
            write_1h = min(cache_write_1h_tokens, cache_write) if write_1h_rate is not None else 0
            total += (cache_write - write_1h) * write_rate  # type: ignore[operator]
            if write_1h > 0:
                total += write_1h * write_1h_rate  # type: ignore[operator]
        if reasoning:
            total += reasoning * reasoning_rate  # type: ignore[operator]
        return total / divisor


def _decimal(value: str | None) -> Decimal | None:
    value = (value or "").strip()
    return Decimal(value) if value else None


def _date(value: str | None) -> dt.date | None:
    value = (value or "").strip()
    return dt.date.fromisoformat(value) if value else None


def parse_rows(rows: Iterable[dict[str, str]]) -> list[ModelPrice]:
    prices = []
    for row in rows:
        prices.append(
            ModelPrice(
                provider=row["provider"].strip().lower(),
                model=snapshot_name(row["model"]),
                input_per_mtok=_decimal(row["input_per_mtok"]) or Decimal(0),
                output_per_mtok=_decimal(row["output_per_mtok"]) or Decimal(0),
                cache_read_per_mtok=_decimal(row.get("cache_read_per_mtok")),
                cache_write_per_mtok=_decimal(row.get("cache_write_per_mtok")),
                reasoning_per_mtok=_decimal(row.get("reasoning_per_mtok")),
                effective_date=_date(row.get("effective_date")) or dt.date(1970, 1, 1),
                service_tier=normalize_tier(row.get("service_tier")),
                above_input_tokens=int((row.get("above_input_tokens") or "0").strip() or 0),
                cache_write_1h_per_mtok=_decimal(row.get("cache_write_1h_per_mtok")),
                source=(row.get("source") or "").strip(),
                source_date=_date(row.get("source_date")),
            )
        )
    return prices


def price_key(price: ModelPrice) -> tuple[str, str, dt.date, str, int]:
    """What makes a row unique (model_prices' ORDER BY): later rows with the same key replace earlier ones."""
    return price.provider, price.model, price.effective_date, price.service_tier, price.above_input_tokens


def bundled_prices_path() -> Path:
    return Path(str(resources.files("promptpulse.instrumentation") / "prices" / "prices.csv"))


def load_prices(extra_file: str | os.PathLike[str] | None = None) -> list[ModelPrice]:
    """The bundled table, then the user's file (later rows win for the same provider, model and date)."""
    paths = [bundled_prices_path()]
    extra_file = extra_file if extra_file is not None else os.environ.get(PRICES_FILE_ENV)
    if extra_file:
        paths.append(Path(extra_file))
    merged: dict[tuple[str, str, dt.date, str, int], ModelPrice] = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8") as fh:
            for price in parse_rows(csv.DictReader(fh)):
                merged[price_key(price)] = price
    return sorted(merged.values(), key=price_key)


class PriceTable:
    """Lookup by (provider, model, service tier), memoised: the hot path pays one dict lookup per call."""

    def __init__(self, prices: Iterable[ModelPrice], today: dt.date | None = None) -> None:
        today = today or dt.date.today()
        # The row in force today for each (provider, tier, model, threshold): later effective dates replace earlier.
        in_force: dict[tuple[str, str, str, int], ModelPrice] = {}
        for price in sorted(prices, key=lambda p: p.effective_date):
            if price.effective_date <= today:
                in_force[(price.provider, price.service_tier, price.model, price.above_input_tokens)] = price
        long_context: dict[tuple[str, str, str], list[ModelPrice]] = {}
        for (provider, tier, model, above), price in in_force.items():
            if above:
                long_context.setdefault((provider, tier, model), []).append(price)
        # (provider, tier, name) → the base row, linked to its long-context rows (lowest threshold first).
        self._by_key: dict[tuple[str, str, str], ModelPrice] = {}
        for (provider, tier, model, above), price in sorted(in_force.items(), key=lambda kv: kv[0]):
            if above:
                continue
            chain: ModelPrice | None = None
            for tier_row in sorted(long_context.get((provider, tier, model), ()), key=lambda p: -p.above_input_tokens):
                chain = tier_row.with_long_context(chain)
            self._by_key[(provider, tier, model)] = price.with_long_context(chain) if chain else price
        # A family without a row of its own is priced by its newest snapshot row (a table of snapshots only).
        self._family_fallback: dict[tuple[str, str, str], ModelPrice] = {}
        for (provider, tier, model), price in sorted(self._by_key.items(), key=lambda kv: kv[1].effective_date):
            family = _SUFFIX_RE.sub("", model)
            if family != model and (provider, tier, family) not in self._by_key:
                self._family_fallback[(provider, tier, family)] = price
        # (tier, name) → a row of any provider: models served by a provider not in the table.
        self._by_model: dict[tuple[str, str], ModelPrice] = {}
        for (_provider, tier, model), price in self._by_key.items():
            if model != ANY_MODEL:
                self._by_model.setdefault((tier, model), price)
        for (_provider, tier, model), price in self._family_fallback.items():
            self._by_model.setdefault((tier, model), price)
        self._memo: dict[tuple[str, str, str | None], ModelPrice | None] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def lookup(self, provider: str, model: str, service_tier: str | None = None) -> ModelPrice | None:
        """The row pricing ``model`` served by ``provider`` in ``service_tier``: the snapshot's own row, else its
        family's; a tier without a row of its own is priced at the standard rate."""
        key = (provider, model, service_tier)
        try:
            return self._memo[key]
        except KeyError:
            pass
        exact = snapshot_name(model)
        family = _SUFFIX_RE.sub("", exact)
        names = (exact, family) if family != exact else (exact,)
        tier = normalize_tier(service_tier)
        tiers = (tier, STANDARD_TIER) if tier else (STANDARD_TIER,)
        billed_as = PROVIDER_ALIASES.get(provider, provider)
        found = self._find(billed_as, tiers, names)
        with self._lock:
            self._memo[key] = found
            if found is None and model not in self._warned:
                self._warned.add(model)
                _log.warning("promptpulse: no price for model %r (provider %r); cost not recorded", model, provider)
        return found

    def _find(self, provider: str, tiers: tuple[str, ...], names: tuple[str, ...]) -> ModelPrice | None:
        by_key, fallback, by_model = self._by_key, self._family_fallback, self._by_model
        for tier in tiers:
            for name in names:
                found = by_key.get((provider, tier, name)) or fallback.get((provider, tier, name))
                if found is not None:
                    return found
        found = by_key.get((provider, STANDARD_TIER, ANY_MODEL))
        if found is not None:
            return found
        for tier in tiers:
            for name in names:
                found = by_model.get((tier, name))
                if found is not None:
                    return found
        return None

    def cost(self, provider: str, model: str, service_tier: str | None = None, **usage: int) -> float | None:
        price = self.lookup(provider, model, service_tier)
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
