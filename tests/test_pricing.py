"""The bundled price table, name normalisation and cost arithmetic (expected values computed by hand)."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest

from promptpulse.instrumentation import pricing
from promptpulse.instrumentation.pricing import ModelPrice, PriceTable, load_prices, normalize_model


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("anthropic/claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("models/gemini-1.5-pro@20240101", "gemini-1.5-pro"),
        ("o3-mini", "o3-mini"),
        ("gpt-4.1", "gpt-4.1"),
    ],
)
def test_normalize_model(raw: str, expected: str) -> None:
    assert normalize_model(raw) == expected


def test_bundled_table_has_both_providers_and_no_duplicates() -> None:
    prices = load_prices(extra_file="")
    keys = [pricing.price_key(p) for p in prices]
    assert len(keys) == len(set(keys))
    assert {p.provider for p in prices} >= {"openai", "anthropic"}
    table = PriceTable(prices)
    assert table.lookup("openai", "gpt-4o-mini").input_per_mtok == Decimal("0.15")  # type: ignore[union-attr]


def test_cost_openai_with_cache_and_reasoning() -> None:
    table = PriceTable(load_prices(extra_file=""))
    # gpt-4o-mini: 0.15 in, 0.60 out, 0.075 cached (per million)
    # 1000 input of which 200 cached, 500 output -> 800*0.15 + 200*0.075 + 500*0.60 = 120 + 15 + 300 = 435 µ$
    cost = table.cost("openai", "gpt-4o-mini-2024-07-18", input_tokens=1000, output_tokens=500, cache_read_tokens=200)
    assert cost == pytest.approx(0.000435, abs=1e-15)


def test_cost_anthropic_with_cache_write() -> None:
    table = PriceTable(load_prices(extra_file=""))
    # claude-3-5-sonnet: 3 in, 15 out, 0.30 cache read, 3.75 cache write
    # input 10_000 = 6_000 uncached + 3_000 read + 1_000 written; output 2_000
    # 6000*3 + 3000*0.3 + 1000*3.75 + 2000*15 = 18000 + 900 + 3750 + 30000 = 52650 µ$
    cost = table.cost(
        "anthropic",
        "claude-3-5-sonnet-20241022",
        input_tokens=10_000,
        output_tokens=2_000,
        cache_read_tokens=3_000,
        cache_write_tokens=1_000,
    )
    assert cost == pytest.approx(0.05265, abs=1e-15)


def test_azure_bills_at_openai_prices_and_unknown_model_has_no_cost(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable(load_prices(extra_file=""))
    assert table.cost("azure.ai.openai", "gpt-4o", input_tokens=1_000_000) == pytest.approx(2.5)
    with caplog.at_level(logging.WARNING, logger="promptpulse.instrumentation.pricing"):
        assert table.cost("openai", "my-finetune-xyz", input_tokens=10) is None
        assert table.cost("openai", "my-finetune-xyz", input_tokens=10) is None
    assert sum("my-finetune-xyz" in r.getMessage() for r in caplog.records) == 1  # one warning per model


def test_user_file_overrides_and_extends(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    extra = tmp_path / "prices.csv"
    # the columns of earlier releases: a user's file keeps loading
    extra.write_text(
        "provider,model,input_per_mtok,output_per_mtok,cache_read_per_mtok,cache_write_per_mtok,reasoning_per_mtok,"
        "effective_date\nopenai,gpt-4o,1.00,2.00,,,,2024-10-01\nacme,acme-large,4,8,,,,2024-01-01\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(pricing.PRICES_FILE_ENV, str(extra))
    table = PriceTable(load_prices())
    assert table.cost("openai", "gpt-4o", input_tokens=1_000_000, output_tokens=1_000_000) == pytest.approx(3.0)
    assert table.cost("acme", "acme-large", input_tokens=500_000) == pytest.approx(2.0)


def test_effective_date_picks_the_price_in_force() -> None:
    old = ModelPrice("x", "m", Decimal(1), Decimal(1), None, None, None, dt.date(2024, 1, 1))
    new = ModelPrice("x", "m", Decimal(2), Decimal(2), None, None, None, dt.date(2025, 1, 1))
    assert PriceTable([old, new], today=dt.date(2024, 6, 1)).cost("x", "m", input_tokens=1_000_000) == 1.0
    assert PriceTable([new, old], today=dt.date(2025, 6, 1)).cost("x", "m", input_tokens=1_000_000) == 2.0


def test_reasoning_price_applies_only_when_listed() -> None:
    price = ModelPrice("x", "m", Decimal(1), Decimal(10), None, None, Decimal(20), dt.date(2024, 1, 1))
    # 100 output of which 40 reasoning: 60*10 + 40*20 = 1400 per million
    assert price.cost(output_tokens=100, reasoning_tokens=40) == pytest.approx(0.0014)


# --- snapshots, tiers, long context, 1-hour cache writes (bundled rows; costs by hand, exact to the float) --------
def _usd(micro_dollars: str) -> float:
    """The correctly rounded float of a sum of tokens x USD-per-million, written out by hand."""
    from fractions import Fraction

    return float(Fraction(micro_dollars) / 1_000_000)


@pytest.fixture(scope="module")
def bundled() -> PriceTable:
    return PriceTable(load_prices(extra_file=""), today=dt.date(2026, 12, 2))


@pytest.mark.parametrize(
    ("provider", "model", "row", "expected"),
    [
        # 1000 input (200 cached), 100 output
        ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13", "6500"),  # 1000*5 (no cache rate) + 100*15
        ("openai", "openai/gpt-4o-2024-05-13", "gpt-4o-2024-05-13", "6500"),
        ("azure.ai.openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13", "6500"),
        ("openai", "gpt-4o-2024-08-06", "gpt-4o", "3250"),  # 800*2.50 + 200*1.25 + 100*10
        ("openai", "gpt-4o", "gpt-4o", "3250"),
        ("openai", "chatgpt-4o-latest", "chatgpt-4o-latest", "6500"),
        ("openai", "gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106", "1200"),  # 1000*1 + 100*2
        ("openai", "gpt-3.5-turbo-0125", "gpt-3.5-turbo", "650"),  # 1000*0.50 + 100*1.50
        # a family without a row of its own is priced by its newest snapshot row (embeddings: output rate 0)
        ("openai", "text-embedding-ada-002", "text-embedding-ada-002", "100"),  # 1000*0.10 + 100*0
        ("gcp.gemini", "gemini-embedding-001", "gemini-embedding-001", "150"),  # 1000*0.15 + 100*0
    ],
)
def test_a_snapshot_is_priced_by_its_own_row(
    bundled: PriceTable, provider: str, model: str, row: str, expected: str
) -> None:
    price = bundled.lookup(provider, model)
    assert price is not None and price.model == row
    assert price.cost(input_tokens=1000, output_tokens=100, cache_read_tokens=200) == _usd(expected)


def test_service_tiers_use_their_rows_and_fall_back_to_standard(bundled: PriceTable) -> None:
    usage = {"input_tokens": 1000, "cache_read_tokens": 100, "output_tokens": 500, "reasoning_tokens": 200}
    # gpt-5: 900 uncached, 100 cached, 500 output (reasoning is output: no separate rate)
    assert bundled.cost("openai", "gpt-5", "flex", **usage) == _usd("3068.75")  # 900*0.625 + 100*0.0625 + 500*5
    assert bundled.cost("openai", "gpt-5", "batch", **usage) == _usd("3068.75")
    assert bundled.cost("openai", "gpt-5", "priority", **usage) == _usd("12275")  # 900*2.50 + 100*0.25 + 500*20
    assert bundled.cost("openai", "gpt-5-2025-08-07", "priority", **usage) == _usd("12275")  # snapshot → family
    for standard in (None, "", "default", "auto", "standard", "DEFAULT"):
        assert bundled.cost("openai", "gpt-5", standard, **usage) == _usd("6137.5")  # 900*1.25 + 100*0.125 + 500*10
    # a tier without a row for the model: the standard rate (gpt-4.1 is not offered on flex)
    assert bundled.cost("openai", "gpt-4.1", "flex", **usage) == _usd("5850")  # 900*2 + 100*0.50 + 500*8
    assert bundled.cost("openai", "gpt-4o", "priority", **usage) == _usd("12537.5")  # 900*4.25 + 100*2.125 + 500*17
    assert bundled.lookup("openai", "gpt-5", "priority") is not bundled.lookup("openai", "gpt-5")


def test_long_context_rates_price_the_whole_call_above_the_threshold(bundled: PriceTable) -> None:
    # claude-sonnet-4-5, cache read 50k, cache write 20k of which 5k for one hour, 1000 output
    cache = {"cache_read_tokens": 50_000, "cache_write_tokens": 20_000, "cache_write_1h_tokens": 5_000}
    # at 200k input exactly: the base rates. 130k*3 + 50k*0.30 + 15k*3.75 + 5k*6 + 1000*15
    assert bundled.cost("anthropic", "claude-sonnet-4-5", input_tokens=200_000, output_tokens=1000, **cache) == _usd(
        "506250"
    )
    # above it: 180k*6 + 50k*0.60 + 15k*7.50 + 5k*12 + 1000*22.50
    assert bundled.cost("anthropic", "claude-sonnet-4-5-20250929", input_tokens=250_000, output_tokens=1000,
                        **cache) == _usd("1305000")
    # gemini-2.5-pro: 100k*1.25 + 10k*10 below; 300k*2.50 + 10k*15 above
    assert bundled.cost("gcp.gemini", "gemini-2.5-pro", input_tokens=100_000, output_tokens=10_000) == _usd("225000")
    assert bundled.cost("gcp.gemini", "gemini-2.5-pro", input_tokens=300_000, output_tokens=10_000) == _usd("900000")
    # a model without a long-context row keeps its rate at any length: gpt-4.1, 1M input
    assert bundled.cost("openai", "gpt-4.1", input_tokens=1_000_000) == _usd("2000000")


def test_one_hour_cache_writes_at_their_rate(bundled: PriceTable) -> None:
    # claude-haiku-4-5: 10k input = 6k uncached + 1k written for 5 minutes + 3k for one hour
    # 6000*1 + 1000*1.25 + 3000*2 = 13250
    assert bundled.cost("anthropic", "claude-haiku-4-5", input_tokens=10_000, cache_write_tokens=4_000,
                        cache_write_1h_tokens=3_000) == _usd("13250")
    # a row without a 1-hour rate prices them as any cache write (no more 1-hour tokens than writes are counted)
    price = ModelPrice("x", "m", Decimal(1), Decimal(1), None, Decimal(2), None, dt.date(2024, 1, 1))
    assert price.cost(input_tokens=10, cache_write_tokens=4, cache_write_1h_tokens=9) == _usd("14")  # 6*1 + 4*2


def test_every_bundled_row_names_its_source_and_date() -> None:
    prices = load_prices(extra_file="")
    assert len(prices) > 100
    for p in prices:
        assert p.source_date == dt.date(2026, 12, 2), p
        assert p.source.startswith("https://"), p
        assert p.service_tier in ("", "batch", "flex", "priority"), p
    standard = {(p.provider, p.model) for p in prices if not p.service_tier and not p.above_input_tokens}
    for p in prices:
        if p.service_tier or p.above_input_tokens:
            assert (p.provider, p.model) in standard, p  # a tier or long-context row has its base row


def test_a_family_without_its_own_row_takes_its_newest_snapshot_in_force() -> None:
    def row(model: str, rate: int, day: dt.date) -> ModelPrice:
        return ModelPrice("acme", pricing.snapshot_name(model), Decimal(rate), Decimal(0), None, None, None, day)

    rows = [row("acme-large-2024-01-01", 1, dt.date(2024, 1, 1)), row("acme-large-2025-01-01", 2, dt.date(2025, 1, 1))]
    assert PriceTable(rows, today=dt.date(2025, 6, 1)).cost("acme", "acme-large", input_tokens=1_000_000) == 2.0
    assert PriceTable(rows, today=dt.date(2024, 6, 1)).cost("acme", "acme-large", input_tokens=1_000_000) == 1.0
    table = PriceTable(rows, today=dt.date(2025, 6, 1))
    assert table.cost("acme", "acme-large-2024-01-01", input_tokens=1_000_000) == 1.0  # its own row
