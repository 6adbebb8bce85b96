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
    keys = [(p.provider, p.model, p.effective_date) for p in prices]
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
    extra.write_text(
        ",".join(pricing.COLUMNS)
        + "\nopenai,gpt-4o,1.00,2.00,,,,2024-10-01\nacme,acme-large,4,8,,,,2024-01-01\n",
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
