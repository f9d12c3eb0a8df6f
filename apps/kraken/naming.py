"""The one place where Kraken's many spellings of assets and pairs become the portal's names.

Kraken's REST API still answers with legacy ISO-4217-A3-ish ids (``XXBT``, ``ZUSD``, pair key
``XXBTZUSD``), altnames (``XBT``, ``XBTUSD``) and WebSocket v1 names (``XBT/USD``), while WS v2 and
people say ``BTC/USD`` (FACTS §4.1, §5.1). Every app shows and stores the normalised form:

* assets: ``XXBT``/``XBT`` → ``BTC``, ``XDG``/``XXDG`` → ``DOGE``, ``ZUSD`` → ``USD``, ...
* balance keys with a wallet suffix: ``DOT.F`` → (``DOT``, ``earn``), ``XBT.M`` → (``BTC``, ...)
* pairs: ``XXBTZUSD``/``XBTUSD``/``XBT/USD``/``BTC/USD`` → ``BTC/USD``

It also quantises Decimal amounts to a pair's or asset's precision. Money is ``Decimal`` end to
end: the helpers refuse floats.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Protocol

# Kraken's legacy X/Z-prefixed ids and the old altnames that differ from the common ticker.
# Only these are rewritten: a generic "strip a leading X or Z" rule would break real tickers
# such as XTZ (Tezos), ZRX (0x) or ZEC's altname.
_ASSET_ALIASES: dict[str, str] = {
    "XXBT": "BTC",
    "XBT": "BTC",
    "XXDG": "DOGE",
    "XDG": "DOGE",
    "XETH": "ETH",
    "XETC": "ETC",
    "XLTC": "LTC",
    "XXRP": "XRP",
    "XXLM": "XLM",
    "XXMR": "XMR",
    "XZEC": "ZEC",
    "XREP": "REP",
    "XMLN": "MLN",
    "XICN": "ICN",
    "XNMC": "NMC",
    "XXVN": "XVN",
    "ZUSD": "USD",
    "ZEUR": "EUR",
    "ZGBP": "GBP",
    "ZCAD": "CAD",
    "ZJPY": "JPY",
    "ZAUD": "AUD",
    "ZCHF": "CHF",
}

# Wallet a balance suffix stands for (FACTS §4.2): ``.F`` opt-in rewards (Kraken Earn "flex"),
# ``.B`` yield-bearing, ``.S``/``.M`` legacy staking, ``.T`` tokenized assets.
WALLET_SPOT = "spot"
WALLET_EARN = "earn"
WALLET_YIELD = "yield"
WALLET_STAKED = "staked"
WALLET_TOKENIZED = "tokenized"
_WALLET_SUFFIXES: dict[str, str] = {
    "F": WALLET_EARN,
    "B": WALLET_YIELD,
    "S": WALLET_STAKED,
    "M": WALLET_STAKED,
    "T": WALLET_TOKENIZED,
}

# Quote currencies Kraken lists pairs against, used to split separator-less pair ids such as
# ``XBTUSDT``. Longest first, so ``USDT`` wins over ``USD`` and ``ZUSD`` over ``USD``.
_QUOTES: tuple[str, ...] = tuple(
    sorted(
        {
            "ZUSD",
            "ZEUR",
            "ZGBP",
            "ZCAD",
            "ZJPY",
            "ZAUD",
            "XXBT",
            "XETH",
            "PYUSD",
            "RLUSD",
            "USDT",
            "USDC",
            "USDG",
            "USD",
            "EUR",
            "GBP",
            "CAD",
            "JPY",
            "AUD",
            "CHF",
            "AED",
            "XBT",
            "BTC",
            "ETH",
            "DAI",
            "DOT",
            "POL",
        },
        key=len,
        reverse=True,
    )
)


def normalize_asset(name: str) -> str:
    """``XXBT`` → ``BTC``; ``usd`` → ``USD``; unknown tickers are upper-cased unchanged.

    A wallet suffix is dropped (``DOT.F`` → ``DOT``); use :func:`split_balance_key` to keep it.
    """
    return split_balance_key(name)[0]


def split_balance_key(name: str) -> tuple[str, str]:
    """``DOT.F`` → (``DOT``, ``earn``); ``XXBT`` → (``BTC``, ``spot``); ``ETH2.S`` → (``ETH2``,
    ``staked``)."""
    raw = name.strip().upper()
    wallet = WALLET_SPOT
    base, dot, suffix = raw.rpartition(".")
    if dot and base and suffix in _WALLET_SUFFIXES:
        raw, wallet = base, _WALLET_SUFFIXES[suffix]
    return _ASSET_ALIASES.get(raw, raw), wallet


def asset_spellings(asset: str) -> frozenset[str]:
    """Every spelling Kraken uses for the normalised `asset`: ``BTC`` → {BTC, XBT, XXBT}. For
    finding stored rows whatever spelling their writer kept."""
    common = normalize_asset(asset)
    return frozenset(
        {common, *(legacy for legacy, name in _ASSET_ALIASES.items() if name == common)}
    )


def pair_symbol(name: str) -> str:
    """Any Kraken spelling of a pair → the display symbol ``BASE/QUOTE``.

    ``XXBTZUSD``, ``XBTUSD``, ``XBT/USD``, ``btc/usd`` → ``BTC/USD``; ``XETHXXBT`` → ``ETH/BTC``.
    Raises ValueError when the name cannot be split into two assets.
    """
    raw = name.strip().upper()
    if raw.endswith(".D"):  # legacy dark-pool pair ids
        raw = raw[:-2]
    if "/" in raw:
        base, _, quote = raw.partition("/")
        if not base or not quote or "/" in quote:
            raise ValueError(f"Not a currency pair: {name!r}")
        return f"{normalize_asset(base)}/{normalize_asset(quote)}"
    for quote in _QUOTES:
        if raw.endswith(quote) and len(raw) > len(quote):
            base = raw[: -len(quote)]
            # Legacy X/Z quotes only follow a full ticker: XTZUSD is XTZ/USD, not XT/ZUSD.
            if quote in _ASSET_ALIASES and len(quote) == 4 and len(base) < 3:
                continue
            return f"{normalize_asset(base)}/{normalize_asset(quote)}"
    raise ValueError(f"Not a currency pair: {name!r}")


def pair_symbol_from_parts(base: str, quote: str) -> str:
    """Symbol from Kraken's ``base``/``quote`` fields of an AssetPairs entry (exact, no guess)."""
    return f"{normalize_asset(base)}/{normalize_asset(quote)}"


# --- Decimal quantisation -------------------------------------------------------------------


class PairPrecision(Protocol):
    """What the quantisers need from a pair (``apps.kraken.models.AssetPair`` fits)."""

    @property
    def pair_decimals(self) -> int: ...
    @property
    def lot_decimals(self) -> int: ...
    @property
    def cost_decimals(self) -> int: ...
    @property
    def tick_size(self) -> Decimal | None: ...


class AssetPrecision(Protocol):
    @property
    def decimals(self) -> int: ...


def to_decimal(value: Decimal | str | int) -> Decimal:
    """Decimal from a Decimal, int or numeric string; floats are refused (they lose cents)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise TypeError(f"Expected Decimal, str or int, got {type(value).__name__}")
    result = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    if not result.is_finite():
        raise ValueError(f"Not a finite amount: {value!r}")
    return result


def _exp(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


def quantize_price(
    pair: PairPrecision, value: Decimal | str | int, *, rounding: str = ROUND_HALF_UP
) -> Decimal:
    """Round a price to the pair's tick size (or ``pair_decimals`` when it has none).

    Pass ``rounding=ROUND_DOWN`` for a buy limit that must not exceed the user's price, or
    ``ROUND_UP`` for a sell.
    """
    amount = to_decimal(value)
    exp = _exp(pair.pair_decimals)
    tick = pair.tick_size
    if tick is not None and tick > 0:
        steps = (amount / tick).quantize(Decimal(1), rounding=rounding)
        return (steps * tick).quantize(exp)
    return amount.quantize(exp, rounding=rounding)


def quantize_volume(
    pair: PairPrecision, value: Decimal | str | int, *, rounding: str = ROUND_DOWN
) -> Decimal:
    """Round a base-asset volume to ``lot_decimals``; down by default (never more than asked)."""
    return to_decimal(value).quantize(_exp(pair.lot_decimals), rounding=rounding)


def quantize_cost(
    pair: PairPrecision, value: Decimal | str | int, *, rounding: str = ROUND_HALF_EVEN
) -> Decimal:
    """Round a quote-asset amount (price * volume) to ``cost_decimals``."""
    return to_decimal(value).quantize(_exp(pair.cost_decimals), rounding=rounding)


def quantize_asset(
    asset: AssetPrecision, value: Decimal | str | int, *, rounding: str = ROUND_DOWN
) -> Decimal:
    """Round an amount of an asset to the asset's ``decimals`` (down by default)."""
    return to_decimal(value).quantize(_exp(asset.decimals), rounding=rounding)


def decimal_to_wire(value: Decimal) -> str:
    """Plain notation for a request parameter: ``Decimal('1E+2')`` → ``'100'``, never exponent."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
