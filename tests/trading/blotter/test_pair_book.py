"""The blotters' pair decimals come from the market feed's pair list; an entry without its
decimals (a partial list) must not break a page (it gave a 500 on the home page)."""

from __future__ import annotations

from apps.trading.presentation_blotter import PairBook


def test_an_entry_without_decimals_is_treated_as_unlisted_and_the_others_are_kept() -> None:
    book = PairBook(
        [
            {"symbol": "BTC/USD"},  # no price_decimals: as a partial list would have it
            {"symbol": "ADA/USD", "price_decimals": 6, "qty_decimals": 8},
        ]
    )
    assert book.symbols == ["ADA/USD"]
    assert book["ADA/USD"].price_decimals == 6
    assert book["BTC/USD"].price_decimals == 8  # Kraken's widest, not a guess
